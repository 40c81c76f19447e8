// Terminals, for --shell-job: a program that uses the terminal of the shell
// that started it. Restore gives it the terminal ckpt itself runs on.

import * as z from 'zod/mini';
import fs from 'node:fs';
import { O } from '../kernel/consts.js';
import { isTerminal } from '../kernel/fdtype.js';
import { refused, conflict, CkptError } from '../errors.js';
import { fileId, u32, count, absPath } from '../image/schema.js';
import { defineKind } from './kind.js';

export const TtyFile = z.object({
  id: fileId,
  kind: z.literal('tty'),
  path: absPath,
  /** open flags, without O_CLOEXEC */
  flags: u32,
  rdev: count,
});
export type TtyFile = z.infer<typeof TtyFile>;

/** ckpt's own terminal: the first of its fds 0-2 that is one. */
function callerTerminal(): number {
  for (let fd = 0; fd < 3; fd++) {
    let st: fs.Stats;
    try { st = fs.fstatSync(fd); } catch { continue; }
    if (isTerminal(st)) return fd;
  }
  throw conflict('the image uses a terminal (--shell-job) but ckpt restore is not running on one: run it from a terminal');
}

export const ttyKind = defineKind<TtyFile>({
  kind: 'tty',
  schema: TtyFile,
  takes: (f) => f.object.type === 'tty',
  dump(f, ctx) {
    if (!ctx.shellJob) {
      throw refused(`pid ${f.pid}: fd ${f.fd} is the terminal ${f.link}; dump with --shell-job to let restore hand it the caller's terminal`);
    }
    return { kind: 'tty', path: f.link, flags: f.flags & ~O.CLOEXEC, rdev: f.st.rdev };
  },
  describe: (t) => `terminal ${t.path} (given the caller's terminal on restore)`,
  check(_t, ctx) {
    if (!ctx.shellJob) throw new CkptError('usage', `pid ${ctx.holder} used a terminal when dumped: restore it with --shell-job`);
    callerTerminal();
  },
  terminal: true,
  phase: 'objects',
  create: () => ({ local: callerTerminal(), closeAfter: false }),
});

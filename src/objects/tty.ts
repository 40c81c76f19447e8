// Terminals, for --shell-job: a program that uses the terminal of the shell
// that started it. Restore gives it the terminal ckpt itself runs on.

import * as z from 'zod/mini';
import fs from 'node:fs';
import { RemoteTask } from '../kernel/remote.js';
import { NR, O, F } from '../kernel/consts.js';
import { FdEntry } from '../kernel/proc.js';
import { refused, conflict } from '../errors.js';
import { placeFd } from './regfile.js';
import { fdNum, u32, count, absPath } from '../image/schema.js';

export const TtyFd = z.object({
  fd: fdNum,
  kind: z.literal('tty'),
  path: absPath,
  flags: u32,
  rdev: count,
});
export type TtyFd = z.infer<typeof TtyFd>;

export function dumpTtyFd(pid: number, e: FdEntry, st: fs.Stats, shellJob: boolean): TtyFd {
  if (!shellJob) {
    throw refused(`pid ${pid}: fd ${e.fd} is the terminal ${e.link}; dump with --shell-job to let restore hand it the caller's terminal`);
  }
  return { fd: e.fd, kind: 'tty', path: e.link, flags: e.flags, rdev: st.rdev };
}

/** Find a terminal among the task's inherited fds 0-2 and park a copy of it at `parkAt`. */
export function parkCallerTty(rt: RemoteTask, inherited: Array<{ fd: number; link: string }>, parkAt: number): number {
  for (const f of inherited) {
    if (f.fd > 2) continue;
    let st: fs.Stats;
    try { st = fs.statSync(`/proc/${rt.pid}/fd/${f.fd}`); } catch { continue; }
    if (st.isCharacterDevice() && (f.link.startsWith('/dev/pts/') || f.link.startsWith('/dev/tty') || f.link === '/dev/console')) {
      return Number(rt.call('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, f.fd, F.DUPFD_CLOEXEC, parkAt));
    }
  }
  throw conflict('the image uses a terminal (--shell-job) but ckpt restore is not running on one: run it from a terminal');
}

export function restoreTtyFd(rt: RemoteTask, t: TtyFd, parked: number): void {
  const fd = Number(rt.call(`dup(tty) for fd ${t.fd}`, NR.fcntl, parked, F.DUPFD, 0));
  placeFd(rt, fd, t.fd, (t.flags & O.CLOEXEC) !== 0);
}

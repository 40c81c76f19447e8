// pidfd: a file that refers to a process (or, with PIDFD_THREAD, to one
// thread). A pidfd of a process or thread of the dumped tree is made again
// on restore with pidfd_open, once the tree exists with its PIDs, so it
// refers to the restored process; its flags (PIDFD_NONBLOCK, PIDFD_THREAD)
// are kept. A pidfd of a process outside the tree, or of one that has
// exited (its PID may be reused by then), is refused.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, PIDFD } from '../kernel/consts.js';
import { pidfdOpenRaw, setFl } from '../kernel/sys.js';
import { taskState } from '../kernel/proc.js';
import { refused, badImage, conflict } from '../errors.js';
import { fileId, u32, pid } from '../image/schema.js';
import { defineKind } from './kind.js';

export const PidfdFile = z.object({
  id: fileId,
  kind: z.literal('pidfd'),
  /** The process (or, for a thread pidfd, the thread) it refers to. */
  pid,
  /** PIDFD_THREAD: it refers to one thread (its `pid` is a TID). */
  thread: z.boolean(),
  /** status flags (O_NONBLOCK is PIDFD_NONBLOCK), without O_CLOEXEC, the access mode and O_EXCL (PIDFD_THREAD) */
  flags: u32,
});
export type PidfdFile = z.infer<typeof PidfdFile>;

export const pidfdKind = defineKind<PidfdFile>({
  kind: 'pidfd',
  schema: PidfdFile,
  takes: (f) => f.object.type === 'pidfd',
  dump(f, ctx) {
    const where = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
    const p = f.info.get('Pid');
    if (p === undefined || !/^-?\d+$/.test(p)) throw refused(`${where}: its fdinfo has no Pid line this ckpt can read`);
    const n = Number(p);
    const thread = (f.flags & PIDFD.THREAD) !== 0;
    const what = thread ? 'thread' : 'process';
    if (n <= 0) throw refused(`${where}: a pidfd of a ${what} that has exited; such pidfds are not supported (the PID may be in use by another process after restore)`);
    if (!ctx.treeIds.has(n)) throw refused(`${where}: a pidfd of ${what} ${n}, outside the tree; pidfds of processes outside the tree are not supported`);
    if (taskState(n) === 'Z' || taskState(n) === 'X') throw refused(`${where}: a pidfd of ${what} ${n}, which has exited (a zombie); pidfds of exited processes are not supported yet`);
    return { kind: 'pidfd', pid: n, thread, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE | PIDFD.THREAD) };
  },
  describe: (p) => `pidfd of ${p.thread ? 'thread' : 'process'} ${p.pid}${p.flags & O.NONBLOCK ? ', non-blocking' : ''}`,
  check(p) {
    if (p.flags & (O.ACCMODE | PIDFD.THREAD)) throw badImage(`image file files.json: open file ${p.id}: the status flags of a pidfd hold an access mode or O_EXCL`);
  },
  phase: 'objects',
  create(p) {
    const fd = pidfdOpenRaw(p.pid, (p.flags & PIDFD.NONBLOCK) | (p.thread ? PIDFD.THREAD : 0));
    if (fd < 0) throw conflict(`open file ${p.id}: pidfd_open(${p.pid}${p.thread ? ', PIDFD_THREAD' : ''}) failed (errno ${-fd}): the ${p.thread ? 'thread' : 'process'} it refers to is not there`);
    try { setFl(fd, p.flags); } catch (e) { fs.closeSync(fd); throw e; }
    return { local: fd, closeAfter: true };
  },
});

// The fd table: classify each fd of the target, hand it to the module for its
// kind, and refuse (naming the fd) whatever no module supports yet.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { readFds } from '../kernel/proc.js';
import { RemoteTask } from '../kernel/remote.js';
import { NR } from '../kernel/consts.js';
import { refused } from '../errors.js';
import { PathFd, dumpPathFd, checkPathFd, restorePathFd, isTty } from './regfile.js';
import { TtyFd, dumpTtyFd, parkCallerTty, restoreTtyFd } from './tty.js';
import { IOV_SCRATCH } from './memory.js';

export const FdImage = z.discriminatedUnion('kind', [PathFd, TtyFd]);
export type FdImage = z.infer<typeof FdImage>;

const UNSUPPORTED: Array<[RegExp, string]> = [
  [/^pipe:/, 'a pipe (pipes are not supported yet)'],
  [/^socket:/, 'a socket (sockets are not supported yet)'],
  [/^anon_inode:\[?eventfd/, 'an eventfd (not supported yet)'],
  [/^anon_inode:\[?eventpoll/, 'an epoll instance (not supported yet)'],
  [/^anon_inode:\[?signalfd/, 'a signalfd (not supported yet)'],
  [/^anon_inode:\[?timerfd/, 'a timerfd (not supported yet)'],
  [/^anon_inode:inotify/, 'an inotify instance (not supported yet)'],
  [/^anon_inode:\[?fanotify/, 'a fanotify instance (not supported yet)'],
  [/^anon_inode:\[?pidfd/, 'a pidfd (not supported yet)'],
  [/^anon_inode:\[?userfaultfd/, 'a userfaultfd (not supported yet)'],
  [/^anon_inode:/, 'an anonymous-inode object (not supported yet)'],
  [/^\/memfd:/, 'a memfd (not supported yet)'],
];

export function dumpFds(pid: number, shellJob: boolean): FdImage[] {
  const out: FdImage[] = [];
  for (const e of readFds(pid)) {
    for (const [re, what] of UNSUPPORTED) {
      if (re.test(e.link)) throw refused(`pid ${pid}: fd ${e.fd} is ${what}: ${e.link}`);
    }
    let st: fs.Stats;
    try { st = fs.statSync(`/proc/${pid}/fd/${e.fd}`); } catch (err) {
      throw refused(`pid ${pid}: fd ${e.fd} (${e.link}) cannot be examined: ${(err as Error).message}`);
    }
    if (isTty(st)) out.push(dumpTtyFd(pid, e, st, shellJob));
    else out.push(dumpPathFd(pid, e, st));
  }
  return out;
}

/** Checks that need no process: do the files still exist and match? */
export function checkFds(fds: FdImage[]): void {
  for (const f of fds) if (f.kind === 'path') checkPathFd(f);
}

/** Replace the task's inherited fd table with the image's. */
export function restoreFds(rt: RemoteTask, fds: FdImage[]): void {
  const inherited = fs.readdirSync(`/proc/${rt.pid}/fd`).map(Number).map((fd) => ({ fd, link: safeLink(`/proc/${rt.pid}/fd/${fd}`) }));
  const maxFd = Math.max(2, ...fds.map((f) => f.fd), ...inherited.map((f) => f.fd));
  const needTty = fds.some((f) => f.kind === 'tty');
  const parked = needTty ? parkCallerTty(rt, inherited, maxFd + 1) : -1;
  for (const f of inherited) if (f.fd !== parked) rt.call(`close(${f.fd})`, NR.close, f.fd);
  for (const f of [...fds].sort((a, b) => a.fd - b.fd)) {
    if (f.kind === 'path') restorePathFd(rt, f, IOV_SCRATCH);
    else restoreTtyFd(rt, f, parked);
  }
  if (parked >= 0) rt.call('close(parked tty)', NR.close, parked);
}

function safeLink(p: string): string {
  try { return fs.readlinkSync(p); } catch { return ''; }
}

export function describeFd(f: FdImage): string {
  if (f.kind === 'tty') return `terminal ${f.path} (given the caller's terminal on restore)`;
  return `${f.type} ${f.path} flags 0${f.flags.toString(8)} pos ${f.pos}`;
}

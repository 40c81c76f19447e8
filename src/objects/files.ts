// The fd table: classify each fd of the target, hand it to the module for its
// kind, and refuse (naming the fd) whatever no module supports yet.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { readFds } from '../kernel/proc.js';
import { RemoteTask } from '../kernel/remote.js';
import { NR, O, F, KCMP } from '../kernel/consts.js';
import { kcmpSame } from '../kernel/sys.js';
import { refused } from '../errors.js';
import { PathFd, dumpPathFd, checkPathFd, restorePathFd, isTty } from './regfile.js';
import { TtyFd, dumpTtyFd, parkCallerTty, restoreTtyFd } from './tty.js';
import { IOV_SCRATCH } from './memory/index.js';
import { fdNum, superRefine } from '../image/schema.js';

/** An fd that shares its open file description with a lower fd of the same process (dup). */
export const DupFd = z.object({ fd: fdNum, kind: z.literal('dup'), of: fdNum, cloexec: z.boolean() });
export type DupFd = z.infer<typeof DupFd>;

/** An fd that shares its open file description with an fd of the parent process (inherited across fork). */
export const InheritFd = z.object({ fd: fdNum, kind: z.literal('inherit'), parentFd: fdNum, cloexec: z.boolean() });
export type InheritFd = z.infer<typeof InheritFd>;

export const FdImage = z.discriminatedUnion('kind', [PathFd, TtyFd, DupFd, InheritFd]);
export type FdImage = z.infer<typeof FdImage>;

/** A process's fds, by number: each number once; a dup refers to a lower fd of the table that is not itself a dup. */
export const FdTable = z.array(FdImage).check(superRefine((fds, ctx) => {
  const seen = new Map<number, FdImage>();
  fds.forEach((f, i) => {
    if (seen.has(f.fd)) ctx.addIssue({ code: 'custom', message: `fd ${f.fd} is listed twice`, path: [i, 'fd'], input: f.fd });
    if (f.kind === 'dup') {
      const of = seen.get(f.of);
      if (!of || of.kind === 'dup') ctx.addIssue({ code: 'custom', message: `fd ${f.fd} is a copy of fd ${f.of}, which is not an earlier open file of the table`, path: [i, 'of'], input: f.of });
    }
    seen.set(f.fd, f);
  });
}));

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

/**
 * The fd table of a process. With `parentPid` (a process of the tree), an fd
 * that shares its open file description with one of the parent's is recorded
 * as inherited: restore forks the process from its parent, which gives it
 * that very description again (offset and flags shared, as before).
 */
export function dumpFds(pid: number, shellJob: boolean, parentPid: number | undefined, treeIds: Set<number>): FdImage[] {
  const out: FdImage[] = [];
  const inode = new Map<number, string>();
  const parentFds = parentPid ? parentInodes(parentPid) : [];
  for (const e of readFds(pid)) {
    for (const [re, what] of UNSUPPORTED) {
      if (re.test(e.link)) throw refused(`pid ${pid}: fd ${e.fd} is ${what}: ${e.link}`);
    }
    if (e.info.has('lock')) {
      throw refused(`pid ${pid}: fd ${e.fd} (${e.link}) holds a file lock (${e.info.get('lock')!.split(/\s+/).slice(1, 3).join(' ')}); file locks are not supported yet`);
    }
    let st: fs.Stats;
    try { st = fs.statSync(`/proc/${pid}/fd/${e.fd}`); } catch (err) {
      throw refused(`pid ${pid}: fd ${e.fd} (${e.link}) cannot be examined: ${(err as Error).message}`);
    }
    const key = `${st.dev}:${st.ino}`;
    const cloexec = (e.flags & O.CLOEXEC) !== 0;
    const fromParent = parentFds.find((pf) => pf.key === key && kcmpSame(parentPid!, pid, KCMP.FILE, pf.fd, e.fd));
    const twin = fromParent ? undefined : out.find((o) => o.kind !== 'dup' && o.kind !== 'inherit' && inode.get(o.fd) === key && sameFile(pid, o.fd, e.fd));
    inode.set(e.fd, key);
    if (fromParent) out.push({ fd: e.fd, kind: 'inherit', parentFd: fromParent.fd, cloexec });
    else if (twin) out.push({ fd: e.fd, kind: 'dup', of: twin.fd, cloexec });
    else if (isTty(st)) out.push(dumpTtyFd(pid, e, st, shellJob));
    else out.push(dumpPathFd(pid, e, st, treeIds));
  }
  return out;
}


function parentInodes(ppid: number): Array<{ fd: number; key: string }> {
  const out: Array<{ fd: number; key: string }> = [];
  for (const e of readFds(ppid)) {
    try { const st = fs.statSync(`/proc/${ppid}/fd/${e.fd}`); out.push({ fd: e.fd, key: `${st.dev}:${st.ino}` }); } catch { /* gone */ }
  }
  return out;
}
/** Do two fds of the process share one open file description? */
function sameFile(pid: number, a: number, b: number): boolean {
  return kcmpSame(pid, pid, KCMP.FILE, a, b);
}

/** Checks that need no process: do the files still exist and match? (Files of the tree's own /proc entries come later.) */
export function checkFds(fds: FdImage[]): void {
  for (const f of fds) if (f.kind === 'path' && f.procPid === undefined) checkPathFd(f);
}

/**
 * Replace the task's inherited fd table with the image's. Files under
 * /proc/PID of a process of the tree that does not exist yet (and dups of
 * them) are left out and returned, to be opened by openDeferredFds once
 * every process of the tree has its PID.
 */
export function restoreFds(rt: RemoteTask, fds: FdImage[], keep: number[] = []): FdImage[] {
  const deferred: FdImage[] = [];
  const later = new Set<number>();
  for (const f of [...fds].sort((a, b) => a.fd - b.fd)) {
    // (all of them: a path under /proc/PID may name a thread, or a child, not made yet)
    if ((f.kind === 'path' && f.procPid !== undefined) || (f.kind === 'dup' && later.has(f.of))) {
      deferred.push(f);
      later.add(f.fd);
    }
  }
  const inherited = fs.readdirSync(`/proc/${rt.pid}/fd`).map(Number).map((fd) => ({ fd, link: safeLink(`/proc/${rt.pid}/fd/${fd}`) }));
  let top = Math.max(2, ...fds.map((f) => f.fd), ...inherited.map((f) => f.fd)) + 1;
  const needTty = fds.some((f) => f.kind === 'tty');
  const parked = needTty ? parkCallerTty(rt, inherited, top) : -1;
  if (parked >= 0) top = parked + 1;
  // Descriptions inherited from the parent (this task was forked from it):
  // set them aside above everything before the table is cleared.
  const aside = new Map<number, number>();
  for (const f of fds) {
    if (f.kind !== 'inherit' || aside.has(f.parentFd)) continue;
    aside.set(f.parentFd, rt.callN(`fcntl(F_DUPFD_CLOEXEC, ${f.parentFd})`, NR.fcntl, f.parentFd, F.DUPFD_CLOEXEC, top));
  }
  const asideFds = new Set(aside.values());
  for (const f of inherited) if (f.fd !== parked && !keep.includes(f.fd) && !asideFds.has(f.fd)) rt.call(`close(${f.fd})`, NR.close, f.fd);
  for (const f of [...fds].sort((a, b) => a.fd - b.fd)) {
    if (later.has(f.fd)) continue;
    if (f.kind === 'path') restorePathFd(rt, f, IOV_SCRATCH);
    else if (f.kind === 'tty') restoreTtyFd(rt, f, parked);
    else if (f.kind === 'inherit') rt.call(`dup3(inherited ${f.parentFd}, ${f.fd})`, NR.dup3, aside.get(f.parentFd)!, f.fd, f.cloexec ? O.CLOEXEC : 0);
    else rt.call(`dup3(${f.of}, ${f.fd})`, NR.dup3, f.of, f.fd, f.cloexec ? O.CLOEXEC : 0);
  }
  for (const a of asideFds) rt.call('close(set-aside fd)', NR.close, a);
  if (parked >= 0) rt.call('close(parked tty)', NR.close, parked);
  return deferred;
}

/** The fds restoreFds left for later, now that every process of the tree exists. */
export function openDeferredFds(rt: RemoteTask, fds: FdImage[]): void {
  for (const f of fds) {
    if (f.kind === 'path') {
      checkPathFd(f);
      restorePathFd(rt, f, IOV_SCRATCH);
    } else if (f.kind === 'dup') rt.call(`dup3(${f.of}, ${f.fd})`, NR.dup3, f.of, f.fd, f.cloexec ? O.CLOEXEC : 0);
  }
}

function safeLink(p: string): string {
  try { return fs.readlinkSync(p); } catch { return ''; }
}

export function describeFd(f: FdImage): string {
  if (f.kind === 'dup') return `same open file as fd ${f.of}`;
  if (f.kind === 'inherit') return `same open file as the parent's fd ${f.parentFd}`;
  if (f.kind === 'tty') return `terminal ${f.path} (given the caller's terminal on restore)`;
  return `${f.type} ${f.path} flags 0${f.flags.toString(8)} pos ${f.pos}`;
}

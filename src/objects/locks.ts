// File locks and leases (--file-locks, as in CRIU): flock locks, POSIX record
// locks (fcntl F_SETLK), open-file-description locks (F_OFD_SETLK) and
// leases (F_SETLEASE), recorded in locks.json and taken again on restore by
// the process that held them, once every fd table is installed.
//
// Who owns a lock decides where it is recorded and who takes it again:
// - flock, OFD locks and leases belong to an open file description: one lock,
//   however many fds and processes share the description (an flock inherited
//   across fork is the parent's and the child's at once). They are taken
//   again through the restored description, in the process that took them
//   (the pid the kernel shows) when it holds it, else in its first holder.
// - POSIX locks belong to the fd table (the process, or the processes that
//   share one table), and are dropped when it closes any fd of the file:
//   they are taken last, after every fd is in place, by the task whose table
//   it is, through the fd the kernel shows them on.
// The kernel lists in /proc/PID/fdinfo/N only the locks of that fd's
// description or of that task's table; locks that processes outside the tree
// hold on the same files are theirs, and are neither shown nor restored.
// A request blocked on a lock (F_SETLKW, flock without LOCK_NB) is not a
// lock: the blocked task is in a syscall that the kernel restarts after
// restore, and it waits again for the restored lock.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { parseLockLine, readFdLocks, LockLine } from '../kernel/proc.js';
import { RemoteTask } from '../kernel/remote.js';
import { KCMP, E, F_OWNER, errnoName } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { kcmpSame, pidfdGetfd, getSig, getOwnEx } from '../kernel/sys.js';
import { refused, conflict, badImage, CkptError } from '../errors.js';
import { fileId, fdNum, pid as pidNum, dec63, int, superRefine } from '../image/schema.js';
import type { FdRef } from './files.js';

export const FileLock = z.object({
  /** flock(2), a POSIX record lock (F_SETLK), an OFD lock (F_OFD_SETLK) or a lease (F_SETLEASE). */
  type: z.enum(['flock', 'posix', 'ofd', 'lease']),
  mode: z.enum(['read', 'write']),
  /** The task (a process, or a thread with an fd table of its own) that takes it on restore. */
  pid: pidNum,
  /** Its fd through which the lock is taken, and that fd's open file description. */
  fd: fdNum,
  file: fileId,
  /** Record locks: the first byte and the last (inclusive; absent: to the end of the file, however far it grows). */
  start: z.optional(dec63),
  end: z.optional(dec63),
  /** Leases: the description's F_SETSIG signal (0: SIGIO) and F_SETOWN_EX owner, which a lease break is sent to. */
  sig: z.optional(int(0, 64)),
  owner: z.optional(z.object({ type: int(0, 2), pid: int(-4194304, 4194304) })),
});
export type FileLock = z.infer<typeof FileLock>;

export const LocksImage = z.object({ locks: z.array(FileLock) }).check(superRefine((doc, ctx) => {
  doc.locks.forEach((l, i) => {
    const ranged = l.type === 'posix' || l.type === 'ofd';
    if (ranged && l.start === undefined) ctx.addIssue({ code: 'custom', message: `a ${l.type} lock needs its start`, path: ['locks', i, 'start'], input: l });
    if (!ranged && (l.start !== undefined || l.end !== undefined)) ctx.addIssue({ code: 'custom', message: `a ${l.type} lock has no range`, path: ['locks', i, 'start'], input: l });
    if (l.end !== undefined && l.start !== undefined && BigInt(l.end) < BigInt(l.start)) ctx.addIssue({ code: 'custom', message: 'the range ends before it starts', path: ['locks', i, 'end'], input: l.end });
    if (l.type !== 'lease' && (l.sig !== undefined || l.owner !== undefined)) ctx.addIssue({ code: 'custom', message: 'only a lease has a signal and an owner', path: ['locks', i, 'sig'], input: l });
  });
}));
export type LocksImage = z.infer<typeof LocksImage>;

const CLASS: Record<string, FileLock['type']> = { FLOCK: 'flock', POSIX: 'posix', OFDLCK: 'ofd', LEASE: 'lease' };

/** A lock line seen on one fd of one task's table. */
interface Seen { task: number; proc: number; fd: number; file: number; line: LockLine; link: string }

/**
 * Collects the locks of the tree while it is dumped (noteTable for each fd
 * table, right after it was dumped), refuses what cannot be kept, and at the
 * end (finish) records each lock once, with the task that takes it again.
 */
export class LockCollector {
  private readonly seen: Seen[] = [];
  /** Every fd table noted: the task that has it, its process, its fds. */
  private readonly tables: Array<{ task: number; proc: number; fds: FdRef[] }> = [];
  private outside: Map<string, Array<{ pid: number; fd: number }>> | null = null;

  constructor(private readonly enabled: boolean, private readonly treeIds: Set<number>) {}

  /** The fd table of task `task` (of process `proc`), as just dumped; read the locks of each fd. */
  noteTable(proc: number, task: number, fds: FdRef[]): void {
    this.tables.push({ task, proc, fds });
    for (const f of fds) {
      const raw = readFdLocks(proc, f.fd, task);
      if (!raw.length) continue;
      const where = `pid ${proc}${task !== proc ? ` (thread ${task})` : ''}: fd ${f.fd} (${linkOf(proc, task, f.fd)})`;
      for (const text of raw) {
        const line = parseLockLine(text);
        const what = text.split(/\s+/).slice(1, 3).join(' ');
        if (!this.enabled) throw refused(`${where} holds a file lock (${what}); dump with --file-locks to keep it`);
        if (!line) throw refused(`${where}: a file lock ckpt cannot read: ${text}`);
        const type = CLASS[line.class];
        if (!type) throw refused(`${where} holds a file lock of a kind ckpt cannot restore (${what})`);
        if (type === 'lease') {
          if (line.state === 'BREAKING') throw refused(`${where}: its lease is being broken (a process opened the file and waits); dump again once the lease is given up or kept`);
          if (line.state !== 'ACTIVE') throw refused(`${where}: a lease in state ${line.state} cannot be restored`);
        } else if (line.state !== 'ADVISORY') {
          throw refused(`${where} holds a file lock (${what}); only advisory locks on files can be restored`);
        }
        if (line.type === 'UNLCK') throw refused(`${where}: a lock of type UNLCK (${text})`);
        this.seen.push({ task, proc, fd: f.fd, file: f.file, line, link: linkOf(proc, task, f.fd) });
      }
    }
  }

  /** Once every table is noted: each lock once, with the task that takes it on restore. */
  finish(): FileLock[] {
    const out: FileLock[] = [];
    const done = new Set<string>();
    for (const s of this.seen) {
      const type = CLASS[s.line.class];
      const mode = s.line.type === 'WRITE' ? 'write' : 'read';
      const range = type === 'posix' || type === 'ofd'
        ? { start: s.line.start.toString(), ...(s.line.end === null ? {} : { end: s.line.end.toString() }) } : {};
      let task = s.task;
      let fd = s.fd;
      if (type === 'posix') {
        // The table's lock, once (another fd of the same description, another task sharing the table, shows it too);
        // taken by the process that took it (the pid shown) if it shares this table.
        if (s.line.pid !== s.proc && this.treeIds.has(s.line.pid) && kcmpSame(s.line.pid, s.task, KCMP.FILES)) task = s.line.pid;
      } else {
        // The description's lock: taken by the process that took it if it holds the description, else by its first holder.
        const holders = this.tables.filter((t) => t.fds.some((x) => x.file === s.file));
        const h = holders.find((t) => t.task === s.line.pid) ?? holders[0];
        task = h.task;
        fd = h.fds.find((x) => x.file === s.file)!.fd;
        this.refuseOutside(s);
      }
      const key = type === 'posix'
        ? `posix:${this.tableKey(task)}:${s.line.dev}:${s.line.ino}:${mode}:${s.line.start}:${s.line.end}`
        : `${type}:${s.file}:${mode}:${s.line.start}:${s.line.end}`;
      if (done.has(key)) continue;
      done.add(key);
      const lock: FileLock = { type, mode, pid: task, fd, file: s.file, ...range };
      if (type === 'lease') Object.assign(lock, leaseOwner(s));
      out.push(lock);
    }
    return out;
  }

  /** One name per fd table: the first task noted that shares it. */
  private tableKey(task: number): number {
    for (const t of this.tables) if (t.task === task || kcmpSame(t.task, task, KCMP.FILES)) return t.task;
    return task;
  }

  /**
   * A description's lock whose description a process outside the tree holds
   * too would be held by two descriptions after restore (or the restore
   * would find it taken): refused.
   */
  private refuseOutside(s: Seen): void {
    if (!this.outside) this.outside = scanOutside(this.treeIds);
    for (const o of this.outside.get(s.link) ?? []) {
      if (kcmpSame(o.pid, s.task, KCMP.FILE, o.fd, s.fd)) {
        throw refused(`pid ${s.proc}: fd ${s.fd} (${s.link}): its ${s.line.class} lock belongs to an open file description that pid ${o.pid}, outside the tree, holds too (fd ${o.fd}); such locks cannot be kept`);
      }
    }
  }
}

function linkOf(proc: number, task: number, fd: number): string {
  try { return fs.readlinkSync(task === proc ? `/proc/${proc}/fd/${fd}` : `/proc/${proc}/task/${task}/fd/${fd}`); } catch { return '?'; }
}

/** fds of processes outside the tree, by the path they link to (one scan of /proc per dump). */
function scanOutside(treeIds: Set<number>): Map<string, Array<{ pid: number; fd: number }>> {
  const m = new Map<string, Array<{ pid: number; fd: number }>>();
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || treeIds.has(Number(p)) || Number(p) === process.pid) continue;
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link: string;
      try { link = fs.readlinkSync(`/proc/${p}/fd/${fd}`); } catch { continue; }
      if (!link.startsWith('/')) continue;
      const list = m.get(link) ?? [];
      list.push({ pid: Number(p), fd: Number(fd) });
      m.set(link, list);
    }
  }
  return m;
}

/** A leased description's F_SETSIG signal and owner (F_SETOWN_EX), read through a duplicate of ckpt's (no new open: that would break the lease). */
function leaseOwner(s: Seen): Pick<FileLock, 'sig' | 'owner'> {
  const dup = pidfdGetfd(s.task, s.fd);
  try {
    const o = getOwnEx(dup);
    return { sig: getSig(dup), owner: { type: o.type, pid: o.pid } };
  } finally { fs.closeSync(dup); }
}

// ---- restore ----

/** What locks.json says must agree with the fd tables: each lock's task has its fd, on its description. */
export function checkLocks(locks: LocksImage, tableOf: (task: number) => FdRef[] | undefined): void {
  locks.locks.forEach((l, i) => {
    const fds = tableOf(l.pid);
    if (!fds) throw badImage(`image file locks.json: field locks[${i}].pid: ${l.pid} is no task of the image with an fd table`);
    if (!fds.some((f) => f.fd === l.fd && f.file === l.file)) throw badImage(`image file locks.json: field locks[${i}].fd: pid ${l.pid} has no fd ${l.fd} on open file ${l.file}`);
  });
}

const describeLock = (l: FileLock) => `${l.type} ${l.mode} lock${l.start !== undefined ? ` on bytes ${l.start}-${l.end ?? 'EOF'}` : ''}`;

/**
 * Take every lock again, each by its task through its fd (every fd table is
 * installed: nothing closes an fd of the tree after this, which would drop
 * its POSIX locks). A lock someone else holds meanwhile is a conflict.
 */
export function restoreLocks(locks: LocksImage, taskOf: (task: number) => RemoteTask, describeFile: (id: number) => string): void {
  for (const l of locks.locks) {
    const rt = taskOf(l.pid);
    const write = l.mode === 'write';
    let r: number;
    if (l.type === 'flock') r = remote.tryFlock(rt, l.fd, write);
    else if (l.type === 'lease') r = remote.trySetlease(rt, l.fd, write);
    else {
      const start = BigInt(l.start!);
      const len = l.end === undefined ? 0n : BigInt(l.end) - start + 1n;
      r = remote.trySetlk(rt, l.fd, l.type === 'ofd', write, start, len);
    }
    if (r < 0) {
      const what = `pid ${l.pid}: fd ${l.fd} (${describeFile(l.file)}): its ${describeLock(l)}`;
      if (-r === E.EAGAIN || -r === E.EACCES) {
        throw conflict(`${what} cannot be taken again: another process holds a conflicting lock${l.type === 'lease' ? ' or has the file open' : ''} (a process outside the tree, or the dumped one, still running)`);
      }
      throw new CkptError('failed', `${what} cannot be taken again: ${errnoName(-r)}`);
    }
    // (F_SETLEASE made the taker the owner of the description's signals: the recorded owner, if another, is set back)
    if (l.type === 'lease') {
      if (l.sig) remote.fcntlSetsig(rt, l.fd, l.sig);
      if (l.owner && !(l.owner.type === F_OWNER.PID && l.owner.pid === rt.pid)) remote.fcntlSetownEx(rt, l.fd, l.owner.type, l.owner.pid);
    }
  }
}

export function describeLocks(locks: LocksImage): string[] {
  return locks.locks.map((l) => `pid ${l.pid} fd ${l.fd}: ${describeLock(l)}`);
}


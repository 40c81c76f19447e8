// Files opened by path: regular files, directories, FIFOs and the harmless
// character devices (/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom).
// They are reopened by path with the same flags and offset.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { NR, O, AT_FDCWD } from '../kernel/consts.js';
import { FdEntry } from '../kernel/proc.js';
import { refused, conflict } from '../errors.js';
import { peekFd } from './fdpeek.js';
import { fionread } from '../kernel/sys.js';
import { fdNum, u32, dec63, count, pid, absPath, refine } from '../image/schema.js';

/** A 64-bit stat number as a JSON number: a whole number, not negative, below 2^64. */
const statNum = z.number().check(z.gte(0), z.lt(2 ** 64), refine((n) => Number.isInteger(n), 'expected a whole number'));

export const PathFd = z.object({
  fd: fdNum,
  kind: z.literal('path'),
  type: z.enum(['reg', 'dir', 'chr', 'fifo']),
  path: absPath,
  flags: u32,
  pos: dec63,
  mode: u32,
  size: count,
  dev: statNum, // (stat's numbers: an inode above 2^53 is rounded, as fs.stat gives it; informational at restore)
  ino: statNum,
  rdev: count,
  /** The path is under /proc/PID of a process of the tree: reopened once that process exists again. */
  procPid: z.optional(pid),
});
export type PathFd = z.infer<typeof PathFd>;

const SAFE_CHR = new Set(['1:3', '1:5', '1:7', '1:8', '1:9']); // null, zero, full, random, urandom

const major = (rdev: number) => Number((BigInt(rdev) >> 8n) & 0xfffn);
const minor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));

export function isTty(st: fs.Stats): boolean {
  if (!st.isCharacterDevice()) return false;
  const maj = major(st.rdev);
  // pty slaves, virtual consoles, /dev/tty and /dev/console (not /dev/ptmx, 5:2: a pty master is no terminal to hand over)
  return maj === 136 || maj === 4 || (maj === 5 && (minor(st.rdev) === 0 || minor(st.rdev) === 1));
}

/** Capture one fd that refers to a file by path; refuse what cannot be reopened. */
export function dumpPathFd(pid: number, e: FdEntry, st: fs.Stats, treeIds: Set<number>): PathFd {
  const where = `pid ${pid}: fd ${e.fd} (${e.link})`;
  if (e.link.endsWith(' (deleted)')) throw refused(`${where}: the file was deleted; deleted files are not supported yet`);
  if (!e.link.startsWith('/')) throw refused(`${where}: not a file reachable by path`);
  let type: PathFd['type'];
  if (st.isFile()) type = 'reg';
  else if (st.isDirectory()) type = 'dir';
  else if (st.isFIFO()) {
    type = 'fifo';
    const queued = peekFd(pid, e.fd, fionread);
    if (queued > 0) throw refused(`${where}: the FIFO holds ${queued} unread bytes; FIFO contents are not supported yet`);
  } else if (st.isCharacterDevice()) {
    const id = `${major(st.rdev)}:${minor(st.rdev)}`;
    if (!SAFE_CHR.has(id)) throw refused(`${where}: character device ${id} is not supported`);
    type = 'chr';
  } else throw refused(`${where}: block devices and other special files are not supported`);
  // A file replaced since it was opened would be restored as the wrong file.
  let byPath: fs.Stats | null = null;
  try { byPath = fs.statSync(e.link); } catch { /* checked below */ }
  if (!byPath || byPath.ino !== st.ino || byPath.dev !== st.dev) {
    throw refused(`${where}: the path now names a different file than the one open; such files are not supported yet`);
  }
  const f: PathFd = {
    fd: e.fd, kind: 'path', type, path: e.link, flags: e.flags, pos: e.pos.toString(), mode: st.mode,
    size: type === 'reg' ? st.size : 0, dev: st.dev, ino: st.ino, rdev: st.rdev,
  };
  // A file of the tree's own /proc entries (its children's stat...): reopened for that process once it exists again.
  const proc = /^\/proc\/([0-9]+)(\/|$)/.exec(e.link);
  if (proc && treeIds.has(Number(proc[1]))) f.procPid = Number(proc[1]);
  return f;
}

/** Before any process is created: is the file still there and the same? */
export function checkPathFd(f: PathFd): void {
  let st: fs.Stats;
  try { st = fs.statSync(f.path); } catch {
    throw conflict(`fd ${f.fd}: ${f.path} no longer exists`);
  }
  const kindOk = f.type === 'reg' ? st.isFile() : f.type === 'dir' ? st.isDirectory() : f.type === 'fifo' ? st.isFIFO() : st.isCharacterDevice() && st.rdev === f.rdev;
  if (!kindOk) throw conflict(`fd ${f.fd}: ${f.path} is no longer a ${f.type}`);
  if (f.type === 'reg' && st.size !== f.size && !f.path.startsWith('/proc/')) {
    throw conflict(`fd ${f.fd}: ${f.path} changed size since the dump (${f.size} -> ${st.size} bytes); restoring would give the program a file it did not have`);
  }
}

/** Open the file in the task and put it at its fd number. */
export function restorePathFd(rt: RemoteTask, f: PathFd, scratchOff: number): void {
  const p = rt.putString(f.path, scratchOff);
  const keep = f.flags & ~(O.CREAT | O.TRUNC | O.EXCL | O.NOCTTY);
  let helper = -1;
  if (f.type === 'fifo') {
    // Opening one end of a FIFO blocks until the other end exists: hold both ends briefly.
    helper = Number(rt.call(`open(${f.path})`, NR.openat, AT_FDCWD, p, O.RDWR | O.CLOEXEC | O.NONBLOCK, 0));
  }
  const fd = Number(rt.call(`open(${f.path}) for fd ${f.fd}`, NR.openat, AT_FDCWD, p, keep, 0));
  if (helper >= 0) rt.call('close', NR.close, helper);
  placeFd(rt, fd, f.fd, (f.flags & O.CLOEXEC) !== 0);
  if ((f.type === 'reg' || f.type === 'dir') && f.pos !== '0') {
    rt.call(`lseek(fd ${f.fd})`, NR.lseek, f.fd, BigInt(f.pos), 0);
  }
}

/** Move a freshly opened fd to its number. */
export function placeFd(rt: RemoteTask, fd: number, target: number, cloexec: boolean): void {
  if (fd === target) return;
  rt.call(`dup3(${fd}, ${target})`, NR.dup3, fd, target, cloexec ? O.CLOEXEC : 0);
  rt.call(`close(${fd})`, NR.close, fd);
}

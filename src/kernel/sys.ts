// Typed system calls that ckpt makes itself (not in a target): signals,
// kcmp, pidfds, resource limits, scheduling, robust lists, userfaultfd
// copies. The rest of ckpt calls these instead of naming syscall numbers.

import fs from 'node:fs';
import { sys, syscallRaw, addressOf, SysError, posixSpawn, mapFile, attachShm } from './ffi.js';
import { NR, KCMP, O, UFFD, F, SPLICE, IOCTL, AT_FDCWD, S_IFIFO, PIDFD_THREAD, POLL_ALL, SOCK, IPC, SHM, E } from './consts.js';
import {
  UFFDIO_COPY_STRUCT, RLIMIT64, F_OWNER_EX, ITIMERSPEC, TIMESPEC, FILE_HANDLE, KCMP_EPOLL_SLOT, POLLFD,
  SHMID_DS, SOCKADDR_UN, SUN_PATH_OFFSET, SUN_PATH_MAX, UCRED, TIMEVAL, MSGHDR, CMSGHDR, cmsgSpace, cmsgLen, iovecArray,
} from './structs.js';

export { SysError, posixSpawn, mapFile, attachShm };
export type { SpawnOptions, FileMapping, ShmAttach } from './ffi.js';

/** kill(2); returns 0 or -errno (a process that is gone is no error here). */
export function kill(pid: number, sig: number): number {
  return syscallRaw(NR.kill, pid, sig);
}

/**
 * exit_group(2): end this whole process at once, with `code`, skipping
 * Node's teardown of its threads (the command's last act; see cli.ts).
 */
export function exitGroup(code: number): never {
  syscallRaw(NR.exit_group, code);
  throw new Error('exit_group returned');
}

/** tgkill(2) of a task by itself (tgid = tid); returns 0 or -errno. */
export function tgkill(tgid: number, tid: number, sig: number): number {
  return syscallRaw(NR.tgkill, tgid, tid, sig);
}

export type KcmpType = typeof KCMP[keyof typeof KCMP];
/** Do the two tasks share the object of `type` (for FILE: their fds `a` and `b`)? */
export function kcmpSame(pid1: number, pid2: number, type: KcmpType, a = 0, b = 0): boolean {
  return syscallRaw(NR.kcmp, pid1, pid2, type, a, b) === 0;
}
/**
 * Is fd `fd` of `pid` the file that the epoll instance at fd `efd` of
 * `epollPid` has registered under fd number `tfd` (the `toff`-th such
 * registration, in the order /proc/PID/fdinfo lists them)? (kcmp KCMP_EPOLL_TFD)
 */
export function kcmpEpollTarget(pid: number, fd: number, epollPid: number, efd: number, tfd: number, toff: number): boolean {
  const slot = KCMP_EPOLL_SLOT.encode({ efd, tfd, toff });
  const r = syscallRaw(NR.kcmp, pid, epollPid, KCMP.EPOLL_TFD, fd, addressOf(slot));
  void slot;
  // (a kernel without KCMP_EPOLL_TFD cannot tell: an error, not a "different file")
  if (r < 0) throw new SysError(`kcmp(KCMP_EPOLL_TFD, pid ${epollPid} fd ${efd} target fd ${tfd})`, -r);
  return r === 0;
}
/** kcmp that throws when it cannot compare (for `check`). */
export function kcmpWorks(pid: number): void {
  sys('kcmp', NR.kcmp, pid, pid, KCMP.FILE, 0, 0);
}

export function pidfdOpen(pid: number, flags = 0): number {
  return sys(`pidfd_open(${pid})`, NR.pidfd_open, pid, flags);
}
/** pidfd_open that returns -errno instead of throwing. */
export function pidfdOpenRaw(pid: number, flags: number): number {
  return syscallRaw(NR.pidfd_open, pid, flags);
}

/** A pidfd of a task: a process, or a thread (PIDFD_THREAD, Linux 6.9), whose fd table may be its own. */
function pidfdOfTask(tid: number): number {
  const r = syscallRaw(NR.pidfd_open, tid, 0);
  if (r >= 0) return r;
  return sys(`pidfd_open(${tid}, PIDFD_THREAD)`, NR.pidfd_open, tid, PIDFD_THREAD);
}

/** A duplicate of fd `fd` of task `pid` (a process, or a thread with an fd table of its own), open in ckpt (the caller closes it). */
export function pidfdGetfd(pid: number, fd: number): number {
  const pidfd = pidfdOfTask(pid);
  try {
    return sys(`pidfd_getfd(${pid}, ${fd})`, NR.pidfd_getfd, pidfd, fd, 0);
  } finally { fs.closeSync(pidfd); }
}


/** Can this process make a userfaultfd? Returns 0 or the errno. */
export function userfaultfdErrno(): number {
  const r = syscallRaw(NR.userfaultfd, O.CLOEXEC);
  if (r < 0) return -r;
  fs.closeSync(r);
  return 0;
}

/** prlimit64: a process's resource limit `r` as [soft, hard]. */
export function getRlimit(pid: number, r: number, name = String(r)): [bigint, bigint] {
  const b = Buffer.alloc(RLIMIT64.size);
  sys(`prlimit64(${pid}, ${name})`, NR.prlimit64, pid, r, 0, addressOf(b));
  const l = RLIMIT64.decode(b);
  return [l.cur, l.max];
}
export function setRlimit(pid: number, r: number, soft: bigint, hard: bigint, name = String(r)): void {
  const b = RLIMIT64.encode({ cur: soft, max: hard });
  sys(`prlimit64(${pid}, ${name} = ${soft}/${hard})`, NR.prlimit64, pid, r, addressOf(b), 0);
}

const PRIO_PROCESS = 0;

/** A thread's scheduling: policy, real-time priority, nice value and CPU mask (as bytes, CPU 0 in bit 0 of byte 0). */
export function getSched(tid: number, maskBytes: number): { policy: number; priority: number; nice: number; mask: Buffer } {
  const policy = sys(`sched_getscheduler(${tid})`, NR.sched_getscheduler, tid);
  const param = Buffer.alloc(4);
  sys(`sched_getparam(${tid})`, NR.sched_getparam, tid, addressOf(param));
  // The raw getpriority returns 20 - nice, so that it is never negative.
  const nice = 20 - sys(`getpriority(${tid})`, NR.getpriority, PRIO_PROCESS, tid);
  const mask = Buffer.alloc(maskBytes);
  const n = sys(`sched_getaffinity(${tid})`, NR.sched_getaffinity, tid, maskBytes, addressOf(mask));
  return { policy, priority: param.readInt32LE(0), nice, mask: mask.subarray(0, n) };
}

/** Set policy, priority and nice value; then the CPU mask, whose errno is returned (0 on success). */
export function setSched(tid: number, policy: number, priority: number, nice: number, mask: Buffer): number {
  const param = Buffer.alloc(4);
  param.writeInt32LE(priority, 0);
  sys(`sched_setscheduler(${tid}, ${policy})`, NR.sched_setscheduler, tid, policy, addressOf(param));
  sys(`setpriority(${tid}, ${nice})`, NR.setpriority, PRIO_PROCESS, tid, nice);
  const r = syscallRaw(NR.sched_setaffinity, tid, mask.length, addressOf(mask));
  return r < 0 ? -r : 0;
}

/** get_robust_list of a thread: the list head's address and its length. */
export function getRobustList(tid: number): { head: bigint; len: number } {
  const hb = Buffer.alloc(16);
  sys(`get_robust_list(${tid})`, NR.get_robust_list, tid, addressOf(hb), addressOf(hb) + 8n);
  return { head: hb.readBigUInt64LE(0), len: Number(hb.readBigUInt64LE(8)) };
}

const uffdArg = Buffer.alloc(UFFDIO_COPY_STRUCT.size);
const C = UFFDIO_COPY_STRUCT;
const O_DST = C.offsetOf('dst'), O_SRC = C.offsetOf('src'), O_LEN = C.offsetOf('len'), O_MODE = C.offsetOf('mode'), O_COPY = C.offsetOf('copy');

/**
 * Copy `len` bytes of `buf` from offset `off` into the memory of the
 * process that owns the userfaultfd `uffd`, at `dst` (UFFDIO_COPY: the
 * pages are filled, not zeroed first). Retries after a partial copy.
 */
export function uffdCopy(uffd: number, dst: bigint, buf: Buffer, off: number, len: number): void {
  const src = addressOf(buf) + BigInt(off);
  let done = 0;
  while (done < len) {
    // (offsets looked up once: this runs for every run of pages copied in)
    uffdArg.writeBigUInt64LE(dst + BigInt(done), O_DST);
    uffdArg.writeBigUInt64LE(src + BigInt(done), O_SRC);
    uffdArg.writeBigUInt64LE(BigInt(len - done), O_LEN);
    uffdArg.writeBigUInt64LE(0n, O_MODE);
    uffdArg.writeBigInt64LE(0n, O_COPY);
    try {
      sys('ioctl(UFFDIO_COPY)', NR.ioctl, uffd, UFFD.IOC_COPY, addressOf(uffdArg));
    } catch (e) {
      const copied = Number(C.get(uffdArg, 'copy'));
      if (copied > 0) { done += copied; continue; }
      throw e;
    }
    return;
  }
}

/** pipe2(2) in ckpt: [read end, write end]. */
export function pipe2(flags: number): [number, number] {
  const b = Buffer.alloc(8);
  sys('pipe2', NR.pipe2, addressOf(b), flags);
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

/** The capacity of a pipe, in bytes (F_GETPIPE_SZ). */
export function pipeSize(fd: number): number { return sys('fcntl(F_GETPIPE_SZ)', NR.fcntl, fd, F.GETPIPE_SZ); }
/** Set a pipe's capacity (F_SETPIPE_SZ); returns the capacity given, or -errno. */
export function setPipeSize(fd: number, size: number): number { return syscallRaw(NR.fcntl, fd, F.SETPIPE_SZ, size); }

/** The file status flags of an open file description (F_GETFL) and setting them (F_SETFL). */
export function getFl(fd: number): number { return sys('fcntl(F_GETFL)', NR.fcntl, fd, F.GETFL); }
export function setFl(fd: number, flags: number): void { sys('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, flags); }
/** Make one of ckpt's fds close-on-exec (F_SETFD). */
export function setCloexec(fd: number): void { sys('fcntl(F_SETFD)', NR.fcntl, fd, F.SETFD, 1); }

/**
 * A copy of the data buffered in the pipe whose read end is `readFd`,
 * without consuming it: tee(2) into a pipe of the same capacity, then read
 * that one. `size` is the pipe's capacity.
 */
export function peekPipe(readFd: number, size: number): Buffer {
  const [r, w] = pipe2(O.CLOEXEC | O.NONBLOCK);
  try {
    const set = setPipeSize(w, size);
    if (set < 0) throw new SysError('fcntl(F_SETPIPE_SZ) for a copy of a pipe', -set);
    const n = syscallRaw(NR.tee, readFd, w, size, SPLICE.NONBLOCK);
    if (n === -11 /* EAGAIN: empty */) return Buffer.alloc(0);
    if (n < 0) throw new SysError('tee', -n);
    const out = Buffer.alloc(n);
    let got = 0;
    while (got < n) got += fs.readSync(r, out, got, n - got, null);
    return out;
  } finally { fs.closeSync(r); fs.closeSync(w); }
}

/** The events ckpt's fd `fd` is ready for now (poll(2) with every event asked for, not waiting). */
export function pollNow(fd: number): number {
  const p = POLLFD.encode({ fd, events: POLL_ALL });
  sys('poll', NR.poll, addressOf(p), 1, 0);
  return POLLFD.get(p, 'revents');
}

// ---- event objects made in ckpt: eventfd, signalfd, timerfd, inotify, fanotify

/** eventfd2(0, flags): a new eventfd whose counter is 0. */
export function eventfd(flags: number): number { return sys('eventfd2', NR.eventfd2, 0, flags); }

/** Add `v` to an eventfd's counter (a write of 8 bytes; the fd must not block). */
export function eventfdAdd(fd: number, v: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  const n = fs.writeSync(fd, b);
  if (n !== 8) throw new Error(`eventfd write of ${v}: ${n} bytes written`);
}

/** Read one 8-byte value (an eventfd's counter, a timerfd's expirations); null when the fd would block. */
export function readU64(fd: number): bigint | null {
  const b = Buffer.alloc(8);
  const n = syscallRaw(NR.read, fd, addressOf(b), 8);
  if (n === -11) return null;
  if (n < 0) throw new SysError('read of 8 bytes', -n);
  if (n !== 8) throw new Error(`read of 8 bytes gave ${n}`);
  return b.readBigUInt64LE(0);
}

/** signalfd4(-1, mask, flags): a new signalfd for the signals of `mask` (bit n-1 for signal n). */
export function signalfd(mask: bigint, flags: number): number {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(mask);
  return sys('signalfd4', NR.signalfd4, -1, addressOf(b), 8, flags);
}

export function timerfdCreate(clock: number, flags: number): number {
  return sys(`timerfd_create(clock ${clock})`, NR.timerfd_create, clock, flags);
}

/** A timer's setting in nanoseconds: time to (or, with TFD_TIMER_ABSTIME, time of) the next expiration (0: disarmed), and the period (0: one-shot). */
export interface TimerSpec { value: bigint; interval: bigint }
const NS = 1000000000n;
const toSpec = (b: Buffer): TimerSpec => {
  const v = ITIMERSPEC.decode(b);
  return { value: v.valueSec * NS + v.valueNsec, interval: v.intervalSec * NS + v.intervalNsec };
};

/** timerfd_settime; returns 0 or -errno (ECANCELED: a TFD_TIMER_CANCEL_ON_SET timer whose clock was set). */
export function timerfdSettime(fd: number, flags: number, t: TimerSpec): number {
  const b = ITIMERSPEC.encode({ valueSec: t.value / NS, valueNsec: t.value % NS, intervalSec: t.interval / NS, intervalNsec: t.interval % NS });
  const r = syscallRaw(NR.timerfd_settime, fd, flags, addressOf(b), 0);
  return r < 0 ? r : 0;
}

/** timerfd_gettime: the time to the next expiration (0: disarmed) and the period. */
export function timerfdGettime(fd: number): TimerSpec {
  const b = Buffer.alloc(ITIMERSPEC.size);
  sys('timerfd_gettime', NR.timerfd_gettime, fd, addressOf(b));
  return toSpec(b);
}

/** Set the expirations a timerfd reports as not yet read (TFD_IOC_SET_TICKS; `ticks` > 0). */
export function timerfdSetTicks(fd: number, ticks: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(ticks);
  sys('ioctl(TFD_IOC_SET_TICKS)', NR.ioctl, fd, IOCTL.TFD_IOC_SET_TICKS, addressOf(b));
}

/** clock_gettime, in nanoseconds. */
export function clockNow(clock: number): bigint {
  const b = Buffer.alloc(TIMESPEC.size);
  sys(`clock_gettime(${clock})`, NR.clock_gettime, clock, addressOf(b));
  const t = TIMESPEC.decode(b);
  return t.sec * NS + t.nsec;
}

/** The bytes waiting to be read (FIONREAD). */
export function fionread(fd: number): number {
  const b = Buffer.alloc(4);
  sys('ioctl(FIONREAD)', NR.ioctl, fd, IOCTL.FIONREAD, addressOf(b));
  return b.readInt32LE(0);
}

export function inotifyInit(flags: number): number { return sys('inotify_init1', NR.inotify_init1, flags); }
/** inotify_add_watch; returns the watch descriptor or -errno. */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  const p = Buffer.from(path + '\0');
  return syscallRaw(NR.inotify_add_watch, fd, addressOf(p), mask >>> 0);
}
export function inotifyRmWatch(fd: number, wd: number): void { sys(`inotify_rm_watch(${wd})`, NR.inotify_rm_watch, fd, wd); }

/** Read and drop every event queued on an inotify fd that does not block; returns their watch descriptors and masks. */
export function drainInotify(fd: number): Array<{ wd: number; mask: number }> {
  const out: Array<{ wd: number; mask: number }> = [];
  const b = Buffer.alloc(65536);
  for (;;) {
    const n = syscallRaw(NR.read, fd, addressOf(b), b.length);
    if (n === -11) return out;
    if (n < 0) throw new SysError('read of inotify events', -n);
    // struct inotify_event: wd (i32), mask (u32), cookie (u32), len (u32), then len bytes of name
    for (let at = 0; at + 16 <= n; at += 16 + b.readUInt32LE(at + 12)) out.push({ wd: b.readInt32LE(at), mask: b.readUInt32LE(at + 4) });
  }
}

export function fanotifyInit(flags: number, eventFlags: number): number {
  return sys('fanotify_init', NR.fanotify_init, flags >>> 0, eventFlags >>> 0);
}
/** fanotify_mark on the object `dirfd` refers to (path null) or on `path`; returns 0 or -errno. */
export function fanotifyMark(fd: number, flags: number, mask: bigint, dirfd: number, path: string | null): number {
  const p = path === null ? null : Buffer.from(path + '\0');
  return syscallRaw(NR.fanotify_mark, fd, flags >>> 0, mask, dirfd, p ? addressOf(p) : 0);
}

/** open_by_handle_at: open the file of a file handle (type and bytes as /proc/PID/fdinfo shows them) on the filesystem of `mountFd`; returns the fd or -errno. */
export function openByHandleAt(mountFd: number, type: number, handle: Buffer, flags: number): number {
  const b = Buffer.alloc(FILE_HANDLE.size + handle.length);
  FILE_HANDLE.encodeInto(b, { bytes: handle.length, type });
  handle.copy(b, FILE_HANDLE.size);
  return syscallRaw(NR.open_by_handle_at, mountFd, addressOf(b), flags);
}

// ---------------------------------------------------------------- files whose contents ckpt carries

/** memfd_create(2) in ckpt; returns the fd or -errno. */
export function memfdCreate(name: string, flags: number): number {
  const b = Buffer.from(name + '\0');
  return syscallRaw(NR.memfd_create, addressOf(b), flags);
}

/** The seals of a file (F_GET_SEALS); -errno when it cannot have any (EINVAL). */
export function getSeals(fd: number): number { return syscallRaw(NR.fcntl, fd, F.GET_SEALS); }
/** Add seals (F_ADD_SEALS). */
export function addSeals(fd: number, seals: number): void { sys(`fcntl(F_ADD_SEALS, 0x${seals.toString(16)})`, NR.fcntl, fd, F.ADD_SEALS, seals); }

/** mknod(path, S_IFIFO | mode): a FIFO; returns 0 or -errno. */
export function mkfifo(path: string, mode: number): number {
  const b = Buffer.from(path + '\0');
  return syscallRaw(NR.mknodat, AT_FDCWD, addressOf(b), S_IFIFO | (mode & 0o7777), 0);
}

/** futimens: set a file's access and modification times, in nanoseconds since the epoch. */
export function futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
  const t = Buffer.alloc(32);
  t.writeBigInt64LE(atimeNs / 1000000000n, 0); t.writeBigInt64LE(atimeNs % 1000000000n, 8);
  t.writeBigInt64LE(mtimeNs / 1000000000n, 16); t.writeBigInt64LE(mtimeNs % 1000000000n, 24);
  sys('futimens', NR.utimensat, fd, 0, addressOf(t), 0);
}

const cfrOffsets = Buffer.alloc(16);
/**
 * copy_file_range(2) of `len` bytes from `inFd` at `inOff` to `outFd` at
 * `outOff` (neither file offset moves); returns the bytes copied (0 at the
 * end of the input) or -errno (EXDEV and others: the caller copies itself).
 */
export function copyFileRange(inFd: number, inOff: number, outFd: number, outOff: number, len: number): number {
  cfrOffsets.writeBigInt64LE(BigInt(inOff), 0);
  cfrOffsets.writeBigInt64LE(BigInt(outOff), 8);
  const a = addressOf(cfrOffsets);
  return syscallRaw(NR.copy_file_range, inFd, a, outFd, a + 8n, len, 0);
}

/**
 * The data ranges of an open file below `size`, in bytes: [offset, length]
 * (SEEK_DATA / SEEK_HOLE: what is not listed is a hole). A file system
 * without them reports the whole file as data.
 */
export function dataRanges(fd: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = 0;
  while (at < size) {
    const d = syscallRaw(NR.lseek, fd, at, 3 /* SEEK_DATA */);
    if (d < 0) {
      if (-d === 6 /* ENXIO: no data after `at` */) break;
      throw new SysError('lseek(SEEK_DATA)', -d);
    }
    if (d >= size) break;
    const h = syscallRaw(NR.lseek, fd, d, 4 /* SEEK_HOLE */);
    if (h < 0) throw new SysError('lseek(SEEK_HOLE)', -h);
    const end = Math.min(h, size);
    if (end > d) out.push([d, end - d]);
    at = end;
  }
  return out;
}

/** lseek(2) in ckpt; returns the new offset. */
export function lseek(fd: number, off: bigint, whence: number): number {
  return sys('lseek', NR.lseek, fd, off, whence);
}

// ---------------------------------------------------------------- file locks and leases (dump: a leased description's signal and owner)

/** fcntl(fd, F_GETSIG): the signal sent for I/O readiness and lease breaks (0: SIGIO). */
export function getSig(fd: number): number { return sys('fcntl(F_GETSIG)', NR.fcntl, fd, F.GETSIG); }
/** fcntl(fd, F_GETOWN_EX): who gets those signals (type 0 a thread, 1 a process, 2 a process group; pid 0: nobody). */
export function getOwnEx(fd: number): { type: number; pid: number } {
  const b = Buffer.alloc(F_OWNER_EX.size);
  sys('fcntl(F_GETOWN_EX)', NR.fcntl, fd, F.GETOWN_EX, addressOf(b));
  return { type: F_OWNER_EX.get(b, 'type'), pid: F_OWNER_EX.get(b, 'pid') };
}

// ---------------------------------------------------------------- sockets (in ckpt)
// A unix socket address is handled as the bytes of its sun_path as the kernel
// keeps them (an abstract name starts with a 0 byte; a path name ends with
// its NUL): an empty Buffer is an unnamed socket.

/** A struct sockaddr_un for `name`, and its length (2 alone: ask for autobind). */
export function sockaddrUn(name: Buffer): Buffer {
  if (name.length > SUN_PATH_MAX) throw new Error(`internal: a unix socket name of ${name.length} bytes`);
  const b = Buffer.alloc(SUN_PATH_OFFSET + name.length);
  b.writeUInt16LE(SOCK.AF_UNIX, SOCKADDR_UN.offsetOf('family'));
  name.copy(b, SUN_PATH_OFFSET);
  return b;
}
/** The name in a sockaddr_un the kernel filled in (`len`: the length it gave). */
export function sockaddrUnName(b: Buffer, len: number): Buffer {
  return Buffer.from(b.subarray(SUN_PATH_OFFSET, Math.max(SUN_PATH_OFFSET, Math.min(len, b.length))));
}

export function socket(family: number, type: number, proto = 0): number {
  return sys(`socket(${family}, ${type})`, NR.socket, family, type | SOCK.CLOEXEC, proto);
}
/** socketpair(AF_UNIX, type): two connected sockets, close-on-exec, open in ckpt. */
export function socketpair(type: number): [number, number] {
  const fds = Buffer.alloc(8);
  sys(`socketpair(AF_UNIX, ${type})`, NR.socketpair, SOCK.AF_UNIX, type | SOCK.CLOEXEC, 0, addressOf(fds));
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}
/** bind a unix socket to `name` (empty: autobind); 0 or -errno. */
export function bindUnix(fd: number, name: Buffer): number {
  const a = sockaddrUn(name);
  return syscallRaw(NR.bind, fd, addressOf(a), a.length);
}
/** connect a unix socket to `name`; 0 or -errno. */
export function connectUnix(fd: number, name: Buffer): number {
  const a = sockaddrUn(name);
  return syscallRaw(NR.connect, fd, addressOf(a), a.length);
}
export function listen(fd: number, backlog: number): void { sys(`listen(${backlog})`, NR.listen, fd, backlog); }
/** accept4(fd, NULL, NULL, SOCK_CLOEXEC). */
export function accept(fd: number): number { return sys('accept4', NR.accept4, fd, 0, 0, SOCK.CLOEXEC); }
export function shutdown(fd: number, how: number): void { sys(`shutdown(${how})`, NR.shutdown, fd, how); }

function sockName(fd: number, nr: number, what: string): Buffer | null {
  const b = Buffer.alloc(SOCKADDR_UN.size + 2);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length, 0);
  const r = syscallRaw(nr, fd, addressOf(b), addressOf(len));
  if (r === -107 /* ENOTCONN */) return null;
  if (r < 0) throw new SysError(what, -r);
  return sockaddrUnName(b, len.readUInt32LE(0));
}
/** getsockname of a unix socket: its name (empty when unnamed). */
export function getsocknameUnix(fd: number): Buffer { return sockName(fd, NR.getsockname, 'getsockname')!; }
/** getpeername of a unix socket: its peer's name, or null when not connected. */
export function getpeernameUnix(fd: number): Buffer | null { return sockName(fd, NR.getpeername, 'getpeername'); }

export function setsockoptInt(fd: number, level: number, opt: number, v: number, name = String(opt)): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  sys(`setsockopt(${name}, ${v})`, NR.setsockopt, fd, level, opt, addressOf(b), 4);
}
/** SO_PEERCRED: the credentials the kernel keeps of the socket's peer (pid 0 and uid/gid -1 when none). */
export function getPeercred(fd: number): { pid: number; uid: number; gid: number } {
  const b = Buffer.alloc(UCRED.size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length, 0);
  sys('getsockopt(SO_PEERCRED)', NR.getsockopt, fd, SOCK.SOL_SOCKET, 17, addressOf(b), addressOf(len));
  return UCRED.decode(b);
}
/** A struct timeval option (SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD) as [sec, usec]. */
export function getsockoptTimeval(fd: number, opt: number, name: string): [number, number] {
  const b = Buffer.alloc(TIMEVAL.size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length, 0);
  sys(`getsockopt(${name})`, NR.getsockopt, fd, SOCK.SOL_SOCKET, opt, addressOf(b), addressOf(len));
  const t = TIMEVAL.decode(b);
  return [Number(t.sec), Number(t.usec)];
}
export function setsockoptTimeval(fd: number, opt: number, v: [number, number], name: string): void {
  const b = TIMEVAL.encode({ sec: v[0], usec: v[1] });
  sys(`setsockopt(${name})`, NR.setsockopt, fd, SOCK.SOL_SOCKET, opt, addressOf(b), b.length);
}

/** One message (or stream chunk) read from a unix socket. */
export interface UnixMessage {
  data: Buffer;
  /** The sender's name (datagram sockets; empty when unnamed), or null when the kernel gave none. */
  from: Buffer | null;
  /** SCM_CREDENTIALS, when the socket passes them. */
  creds: { pid: number; uid: number; gid: number } | null;
  /** Fds received (SCM_RIGHTS), open in ckpt, close-on-exec. */
  fds: number[];
  /** Control messages of other kinds, as [level, type]. */
  other: Array<[number, number]>;
  /** msg_flags (MSG_TRUNC, MSG_CTRUNC...). */
  flags: number;
  /** The datagram's whole length (with MSG_TRUNC asked: more than data.length when it did not fit). */
  len: number;
}

/**
 * recvmsg on a unix socket of ckpt's, without waiting: `flags` are added to
 * MSG_DONTWAIT | MSG_CMSG_CLOEXEC (MSG_PEEK to leave the message queued).
 * Returns null when there is nothing to read (EAGAIN), or -errno for other errors.
 */
export function recvUnix(fd: number, size: number, flags: number): UnixMessage | null | number {
  const data = Buffer.alloc(Math.max(size, 1));
  const name = Buffer.alloc(SOCKADDR_UN.size + 2);
  const control = Buffer.alloc(cmsgSpace(SOCK.SCM_MAX_FD) + 512);
  const iov = iovecArray([[addressOf(data), size]]);
  const m = MSGHDR.encode({ name: addressOf(name), namelen: name.length, iov: addressOf(iov), iovlen: 1, control: addressOf(control), controllen: control.length });
  const r = syscallRaw(NR.recvmsg, fd, addressOf(m), flags | SOCK.MSG_DONTWAIT | SOCK.MSG_CMSG_CLOEXEC);
  if (r === -11) return null;
  if (r < 0) return r;
  const out: UnixMessage = { data: Buffer.from(data.subarray(0, Math.min(r, size))), from: null, creds: null, fds: [], other: [], flags: MSGHDR.get(m, 'flags'), len: r };
  const namelen = MSGHDR.get(m, 'namelen');
  if (namelen >= SUN_PATH_OFFSET) out.from = sockaddrUnName(name, namelen);
  const clen = Number(MSGHDR.get(m, 'controllen'));
  for (let at = 0; at + CMSGHDR.size <= clen;) {
    const c = CMSGHDR.decode(control, at);
    const len = Number(c.len);
    if (len < CMSGHDR.size) break;
    const body = control.subarray(at + CMSGHDR.size, at + len);
    if (c.level === SOCK.SOL_SOCKET && c.type === SOCK.SCM_RIGHTS) {
      for (let i = 0; i + 4 <= body.length; i += 4) out.fds.push(body.readInt32LE(i));
    } else if (c.level === SOCK.SOL_SOCKET && c.type === SOCK.SCM_CREDENTIALS) {
      out.creds = UCRED.decode(Buffer.from(body));
    } else if (c.level === SOCK.SOL_SOCKET && c.type === SOCK.SCM_PIDFD && body.length >= 4) {
      fs.closeSync(body.readInt32LE(0));
      out.other.push([c.level, c.type]);
    } else out.other.push([c.level, c.type]);
    at += (len + 7) & ~7;
  }
  return out;
}

/**
 * sendmsg on a unix socket of ckpt's, without waiting: `data`, to `to` (a
 * name; null: the connected peer), with SCM_CREDENTIALS `creds` and SCM_RIGHTS
 * `fds` when given. Returns the bytes sent or -errno.
 */
export function sendUnix(fd: number, data: Buffer, opts: { to?: Buffer | null; creds?: { pid: number; uid: number; gid: number } | null; fds?: number[] } = {}): number {
  const body = data.length ? data : Buffer.alloc(1);
  const iov = iovecArray([[addressOf(body), data.length]]);
  const to = opts.to ? sockaddrUn(opts.to) : null;
  const parts: Buffer[] = [];
  if (opts.creds) {
    const c = Buffer.alloc(cmsgSpace(3));
    CMSGHDR.encodeInto(c, { len: cmsgLen(3), level: SOCK.SOL_SOCKET, type: SOCK.SCM_CREDENTIALS });
    UCRED.encodeInto(c, opts.creds, CMSGHDR.size);
    parts.push(c);
  }
  if (opts.fds?.length) {
    const c = Buffer.alloc(cmsgSpace(opts.fds.length));
    CMSGHDR.encodeInto(c, { len: cmsgLen(opts.fds.length), level: SOCK.SOL_SOCKET, type: SOCK.SCM_RIGHTS });
    opts.fds.forEach((x, i) => c.writeInt32LE(x, CMSGHDR.size + 4 * i));
    parts.push(c);
  }
  const control = parts.length ? Buffer.concat(parts) : null;
  const m = MSGHDR.encode({
    name: to ? addressOf(to) : 0, namelen: to ? to.length : 0, iov: addressOf(iov), iovlen: 1,
    control: control ? addressOf(control) : 0, controllen: control ? control.length : 0,
  });
  const r = syscallRaw(NR.sendmsg, fd, addressOf(m), SOCK.MSG_DONTWAIT | SOCK.MSG_NOSIGNAL);
  void body; void iov; void to; void control;
  return r;
}

/**
 * Run `fn` with ckpt's working directory at `dir` (for a unix socket name that
 * is a relative path: the kernel resolves it against the caller's working
 * directory), and put the working directory back.
 */
export function inDirectory<T>(dir: string, fn: () => T): T {
  const here = fs.openSync('.', O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    const d = Buffer.from(dir + '\0');
    sys(`chdir(${dir})`, NR.chdir, addressOf(d));
    try { return fn(); } finally { sys('fchdir (back)', NR.fchdir, here); }
  } finally { fs.closeSync(here); }
}

/** fcntl(fd, F_DUPFD_CLOEXEC, min): a copy of fd in ckpt at the lowest free number from `min`. */
export function dupAbove(fd: number, min: number): number { return sys(`fcntl(F_DUPFD_CLOEXEC, ${min})`, NR.fcntl, fd, F.DUPFD_CLOEXEC, min); }

// ---------------------------------------------------------------- System V shared memory

/** What shmctl(IPC_STAT) tells of a segment (in ckpt's IPC namespace). */
export interface ShmStat {
  key: number; uid: number; gid: number; cuid: number; cgid: number;
  /** Permission bits, with SHM_DEST (removed, lives on while attached) and SHM_LOCKED. */
  mode: number;
  size: number; nattch: number; cpid: number; lpid: number;
}

/** shmctl(id, IPC_STAT); null when there is no segment with that id. */
export function shmStat(id: number): ShmStat | null {
  const b = Buffer.alloc(SHMID_DS.size);
  const r = syscallRaw(NR.shmctl, id, IPC.STAT, addressOf(b));
  if (r === -E.EINVAL || r === -E.EIDRM) return null;
  if (r < 0) throw new SysError(`shmctl(${id}, IPC_STAT)`, -r);
  const v = SHMID_DS.decode(b);
  return { key: v.key, uid: v.uid, gid: v.gid, cuid: v.cuid, cgid: v.cgid, mode: v.mode, size: Number(v.segsz), nattch: Number(v.nattch), cpid: v.cpid, lpid: v.lpid };
}

/** shmget(key, size, IPC_CREAT | IPC_EXCL | flags): the new segment's id, or -errno. `flags`: permission bits, SHM_NORESERVE. */
export function shmCreate(key: number, size: number, flags: number): number {
  return syscallRaw(NR.shmget, key, size, IPC.CREAT | IPC.EXCL | (flags & (0o777 | SHM.NORESERVE)));
}

/** shmctl(id, IPC_SET): owner and permission bits. */
export function shmSetPerm(id: number, uid: number, gid: number, mode: number): void {
  const b = SHMID_DS.encode({ uid, gid, mode: mode & 0o777 });
  sys(`shmctl(${id}, IPC_SET)`, NR.shmctl, id, IPC.SET, addressOf(b));
}

/** shmctl(id, IPC_RMID); returns 0 or -errno. */
export function shmRemove(id: number): number { return syscallRaw(NR.shmctl, id, IPC.RMID, 0); }

/** shmctl(id, SHM_LOCK): keep its pages in memory. */
export function shmLock(id: number): void { sys(`shmctl(${id}, SHM_LOCK)`, NR.shmctl, id, SHM.LOCK, 0); }

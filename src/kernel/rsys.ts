// Typed remote syscalls: what a stopped task is made to do, one call each
// (RemoteTask.call/callRaw, which are also the fault points of the failure
// tests). Modules outside src/kernel import this as `remote` and name no
// syscall number, ioctl code or struct offset: arguments that point to
// memory are put in the task's scratch area here, in a frame of its
// allocator, and results the kernel writes there are read back and decoded.
//
// Each call has a name for its error message ("remote open(/x) in pid 5
// failed: ENOENT"): the syscall, with the object it works on in parentheses
// (`label`, when the caller knows a better one than the arguments).
// Calls that may fail as a matter of course have a `try` form that returns
// the raw result (a negative errno on failure) instead of throwing.

import { RemoteTask } from './remote.js';
import { NR, PR, ARCH, AT_FDCWD, F, FD_CLOEXEC, IOCTL, UFFD, MEMBARRIER_CMD, RSEQ_FLAG_UNREGISTER, SECCOMP, LOCK_TYPE, LOCK_OP, EPOLL, POLL_ALL, SOCK } from './consts.js';
import { sockaddrUn } from './sys.js';
import {
  CLONE_ARGS, PRCTL_MM_MAP, CAP_HEADER, CAP_DATA, CAP_VERSION_3, CAP_U32S_3, ITIMERVAL, SIGINFO, KSIGACTION, KSIGSET_SIZE,
  STACK_T, FLOCK, F_OWNER_EX, EPOLL_EVENT, POLLFD, UFFDIO_API_STRUCT, UFFDIO_REGISTER_STRUCT, UFFDIO_RANGE, iovecArray, StructValues, TILECFG, TILECFG_COLSB, TILECFG_ROWS,
  SIGEVENT, ITIMERSPEC, TIMESPEC, SOCK_FPROG,
} from './structs.js';


const n = Number;
const withLabel = (call: string, label?: string) => (label === undefined ? call : `${call}(${label})`);

// ---------------------------------------------------------------- memory

export function mmap(rt: RemoteTask, addr: bigint | number, len: bigint | number, prot: number, flags: number, fd: number, off: bigint | number, label?: string): bigint {
  return rt.call(withLabel('mmap', label), NR.mmap, addr, len, prot, flags, fd, off);
}
export function munmap(rt: RemoteTask, addr: bigint, len: bigint | number, label?: string): void {
  rt.call(withLabel('munmap', label), NR.munmap, addr, len);
}
export function mremap(rt: RemoteTask, from: bigint, oldLen: bigint | number, newLen: bigint | number, flags: number, to: bigint, label?: string): bigint {
  return rt.call(withLabel('mremap', label), NR.mremap, from, oldLen, newLen, flags, to);
}
/** shmat(2) in the task: attach System V segment `id` at `addr`; returns the address. */
export function shmat(rt: RemoteTask, id: number, addr: bigint, flags: number, label?: string): bigint {
  return rt.call(withLabel('shmat', label ?? String(id)), NR.shmat, id, addr, flags);
}
export function mprotect(rt: RemoteTask, addr: bigint, len: bigint | number, prot: number, label?: string): void {
  rt.call(withLabel('mprotect', label), NR.mprotect, addr, len, prot);
}
export function madvise(rt: RemoteTask, addr: bigint, len: bigint | number, advice: number, label?: string): void {
  rt.call(withLabel('madvise', label), NR.madvise, addr, len, advice);
}
export function mlock(rt: RemoteTask, addr: bigint, len: bigint | number, label?: string): void {
  rt.call(withLabel('mlock', label), NR.mlock, addr, len);
}
export function mlock2(rt: RemoteTask, addr: bigint, len: bigint | number, flags: number, label?: string): void {
  rt.call(withLabel('mlock2', label), NR.mlock2, addr, len, flags);
}
export function mseal(rt: RemoteTask, addr: bigint, len: bigint | number, label?: string): void {
  rt.call(withLabel('mseal', label), NR.mseal, addr, len, 0);
}
/** brk(addr): the program break (brk(0) only asks). */
export function brk(rt: RemoteTask, addr: bigint | number = 0): bigint {
  return rt.call(`brk(${addr})`, NR.brk, addr);
}
/** Name an anonymous area (PR_SET_VMA_ANON_NAME). */
export function prctlSetVmaAnonName(rt: RemoteTask, start: bigint, len: bigint | number, name: string): void {
  rt.withScratch((s) => rt.call('prctl(PR_SET_VMA_ANON_NAME)', NR.prctl, PR.SET_VMA, PR.SET_VMA_ANON_NAME, start, len, s.putString(name)));
}

// ---------------------------------------------------------------- files

/** openat(AT_FDCWD, path, flags, mode): the new fd. */
export function openat(rt: RemoteTask, path: string, flags: number, mode = 0, label = path): number {
  return rt.withScratch((s) => n(rt.call(`open(${label})`, NR.openat, AT_FDCWD, s.putString(path), flags, mode)));
}
/** openat that returns the fd or a negative errno. */
export function tryOpenat(rt: RemoteTask, path: string, flags: number, mode = 0): number {
  return rt.withScratch((s) => n(rt.callRaw(NR.openat, AT_FDCWD, s.putString(path), flags, mode)));
}
export function close(rt: RemoteTask, fd: number, label?: string): void {
  rt.call(withLabel('close', label), NR.close, fd);
}
/** close whose failure does not matter (on the way out of a failure, or an fd ckpt opened and is done with). */
export function closeQuietly(rt: RemoteTask, fd: number): void {
  rt.callRaw(NR.close, fd);
}
export function lseek(rt: RemoteTask, fd: number, off: bigint, whence: number, label?: string): bigint {
  return rt.call(withLabel('lseek', label ?? String(fd)), NR.lseek, fd, off, whence);
}
/** write(fd, data): bytes written. */
export function write(rt: RemoteTask, fd: number, data: Buffer, label?: string): number {
  return rt.withScratch((s) => n(rt.call(withLabel('write', label ?? String(fd)), NR.write, fd, s.put(data), data.length)));
}
/** dup3(from, to, flags). */
export function dup3(rt: RemoteTask, from: number, to: number, flags: number): void {
  rt.call(`dup3(${from}, ${to})`, NR.dup3, from, to, flags);
}
/** fcntl(fd, F_DUPFD_CLOEXEC, min): a close-on-exec copy at the lowest free number from `min`. */
/** close_range(from, to, 0): close every fd from `from` to `to`. */
export function closeRange(rt: RemoteTask, from: number, to: number): void {
  rt.call(`close_range(${from}, ${to})`, NR.close_range, from, to, 0);
}

export function fcntlDupfdCloexec(rt: RemoteTask, fd: number, min: number): number {
  return n(rt.call(`fcntl(${fd}, F_DUPFD_CLOEXEC, ${min})`, NR.fcntl, fd, F.DUPFD_CLOEXEC, min));
}
/** fcntl(fd, F_SETFD): set or clear the close-on-exec flag. */
export function fcntlSetCloexec(rt: RemoteTask, fd: number, cloexec: boolean): void {
  rt.call(`fcntl(${fd}, F_SETFD)`, NR.fcntl, fd, F.SETFD, cloexec ? FD_CLOEXEC : 0);
}
/** fcntl(fd, F_GETFD): the fd's flags (FD_CLOEXEC), or a negative errno (-EBADF: no such fd). */
export function tryFcntlGetfd(rt: RemoteTask, fd: number): number {
  return n(rt.callRaw(NR.fcntl, fd, F.GETFD));
}
/** fcntl(fd, F_SETFL): set the file status flags (O_NONBLOCK, O_APPEND, O_ASYNC...). */
export function fcntlSetfl(rt: RemoteTask, fd: number, flags: number): void {
  rt.call(`fcntl(${fd}, F_SETFL)`, NR.fcntl, fd, F.SETFL, flags);
}
/** poll(2) of one fd with every event asked for, not waiting: the events it is ready for. */
export function pollNow(rt: RemoteTask, fd: number): number {
  return rt.withScratch((s) => {
    const at = s.put(POLLFD.encode({ fd, events: POLL_ALL }));
    rt.call(`poll(${fd})`, NR.poll, at, 1, 0);
    return POLLFD.decode(s.read(at, POLLFD.size)).revents;
  });
}
/** pwritev(fd, iov, off): bytes written. */
export function pwritev(rt: RemoteTask, fd: number, iov: ReadonlyArray<readonly [bigint, number]>, off: number, label?: string): number {
  return rt.withScratch((s) => n(rt.call(withLabel('pwritev', label), NR.pwritev, fd, s.put(iovecArray(iov)), iov.length, off, 0)));
}
/** preadv(fd, iov, off): bytes read. */
export function preadv(rt: RemoteTask, fd: number, iov: ReadonlyArray<readonly [bigint, number]>, off: number, label?: string): number {
  return rt.withScratch((s) => n(rt.call(withLabel('preadv', label), NR.preadv, fd, s.put(iovecArray(iov)), iov.length, off, 0)));
}
/** ioctl(fd, TIOCSPGRP): make `pgrp` the foreground process group of the terminal. */
export function ioctlTiocspgrp(rt: RemoteTask, fd: number, pgrp: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(pgrp, 0);
  rt.withScratch((s) => rt.call('ioctl(TIOCSPGRP)', NR.ioctl, fd, IOCTL.TIOCSPGRP, s.put(b)));
}

// ---------------------------------------------------------------- file locks and leases
// The `try` forms return 0 or a negative errno (a conflicting lock is EAGAIN/EWOULDBLOCK/EACCES).

/** flock(fd, LOCK_SH or LOCK_EX, never blocking). */
export function tryFlock(rt: RemoteTask, fd: number, write: boolean): number {
  return n(rt.callRaw(NR.flock, fd, (write ? LOCK_OP.EX : LOCK_OP.SH) | LOCK_OP.NB));
}
/**
 * A record lock on bytes [start, start + len) of the file (len 0: to the end,
 * however far it grows), taken without blocking: a POSIX lock of the
 * process (F_SETLK) or a lock of the open file description (F_OFD_SETLK).
 */
export function trySetlk(rt: RemoteTask, fd: number, ofd: boolean, write: boolean, start: bigint, len: bigint): number {
  const arg = FLOCK.encode({ type: write ? LOCK_TYPE.WRLCK : LOCK_TYPE.RDLCK, whence: 0, start, len, pid: 0 });
  return rt.withScratch((s) => n(rt.callRaw(NR.fcntl, fd, ofd ? F.OFD_SETLK : F.SETLK, s.put(arg))));
}
/** fcntl(fd, F_SETLEASE, F_RDLCK or F_WRLCK). */
export function trySetlease(rt: RemoteTask, fd: number, write: boolean): number {
  return n(rt.callRaw(NR.fcntl, fd, F.SETLEASE, write ? LOCK_TYPE.WRLCK : LOCK_TYPE.RDLCK));
}
/** fcntl(fd, F_SETSIG, sig): the signal sent for I/O readiness and lease breaks (0: SIGIO). */
export function fcntlSetsig(rt: RemoteTask, fd: number, sig: number): void {
  rt.call(`fcntl(${fd}, F_SETSIG, ${sig})`, NR.fcntl, fd, F.SETSIG, sig);
}
/** fcntl(fd, F_SETOWN_EX): who gets those signals (type 0 a thread, 1 a process, 2 a process group). */
export function fcntlSetownEx(rt: RemoteTask, fd: number, type: number, pid: number): void {
  const arg = F_OWNER_EX.encode({ type, pid });
  rt.withScratch((s) => rt.call(`fcntl(${fd}, F_SETOWN_EX, ${pid})`, NR.fcntl, fd, F.SETOWN_EX, s.put(arg)));
}

/** ioctl(fd, TIOCSCTTY, 0): make the terminal the controlling terminal of the task's session (it leads the session and has none). */
export function ioctlTiocsctty(rt: RemoteTask, fd: number, label = String(fd)): void {
  rt.call(`ioctl(TIOCSCTTY ${label})`, NR.ioctl, fd, IOCTL.TIOCSCTTY, 0);
}
/** ioctl(fd, TIOCNOTTY): a process that does not lead its session gives up its controlling terminal. */
export function ioctlTiocnotty(rt: RemoteTask, fd: number, label = String(fd)): void {
  rt.call(`ioctl(TIOCNOTTY ${label})`, NR.ioctl, fd, IOCTL.TIOCNOTTY, 0);
}
export function chdir(rt: RemoteTask, path: string): void {
  rt.withScratch((s) => rt.call(`chdir(${path})`, NR.chdir, s.putString(path)));
}
export function fchdir(rt: RemoteTask, fd: number, label?: string): void {
  rt.call(withLabel('fchdir', label), NR.fchdir, fd);
}
export function chroot(rt: RemoteTask, path: string): void {
  rt.withScratch((s) => rt.call(`chroot(${path})`, NR.chroot, s.putString(path)));
}

// ---------------------------------------------------------------- epoll

/** epoll_create1(flags): the new epoll instance's fd. */
export function epollCreate1(rt: RemoteTask, flags: number): number {
  return n(rt.call('epoll_create1', NR.epoll_create1, flags));
}
/** epoll_ctl(epfd, EPOLL_CTL_ADD, fd, {events, data}). */
export function epollCtlAdd(rt: RemoteTask, epfd: number, fd: number, events: number, data: bigint, label = String(fd)): void {
  const ev = EPOLL_EVENT.encode({ events, data });
  rt.withScratch((s) => rt.call(`epoll_ctl(${epfd}, EPOLL_CTL_ADD, ${label})`, NR.epoll_ctl, epfd, EPOLL.CTL_ADD, fd, s.put(ev)));
}
/** epoll_wait(epfd, events, max, 0): the events ready now (without waiting), at most `max`. */
export function epollWaitNow(rt: RemoteTask, epfd: number, max: number): Array<{ events: number; data: bigint }> {
  return rt.withScratch((s) => {
    const at = s.zeroed(EPOLL_EVENT.size * max);
    const got = n(rt.call(`epoll_wait(${epfd})`, NR.epoll_wait, epfd, at, max, 0));
    const b = s.read(at, EPOLL_EVENT.size * got);
    return Array.from({ length: got }, (_, i) => EPOLL_EVENT.decode(b, i * EPOLL_EVENT.size));
  });
}
// ---------------------------------------------------------------- sockets
// (made in a process of the tree where the kernel records who made them: the
// peer credentials of socketpair, listen and connect are the caller's)

/** socket(AF_UNIX, type | SOCK_CLOEXEC): its number in the task. */
export function socketUnix(rt: RemoteTask, type: number): number {
  return n(rt.call(`socket(AF_UNIX, ${type})`, NR.socket, SOCK.AF_UNIX, type | SOCK.CLOEXEC, 0));
}
/** socketpair(AF_UNIX, type | SOCK_CLOEXEC): their numbers in the task. */
export function socketpairUnix(rt: RemoteTask, type: number): [number, number] {
  return rt.withScratch((s) => {
    const at = s.alloc(8);
    rt.call(`socketpair(AF_UNIX, ${type})`, NR.socketpair, SOCK.AF_UNIX, type | SOCK.CLOEXEC, 0, at);
    const b = s.read(at, 8);
    return [b.readInt32LE(0), b.readInt32LE(4)];
  });
}
export function listen(rt: RemoteTask, fd: number, backlog: number): void {
  rt.call(`listen(${fd}, ${backlog})`, NR.listen, fd, backlog);
}
/** connect(fd, sockaddr_un of `name`): 0 or a negative errno. */
export function tryConnectUnix(rt: RemoteTask, fd: number, name: Buffer): number {
  const a = sockaddrUn(name);
  return rt.withScratch((s) => n(rt.callRaw(NR.connect, fd, s.put(a), a.length)));
}

// ---------------------------------------------------------------- userfaultfd

export function userfaultfd(rt: RemoteTask, flags: number): number {
  return n(rt.call('userfaultfd', NR.userfaultfd, flags));
}
/** UFFDIO_API: this API version, no features. */
export function uffdioApi(rt: RemoteTask, ufd: number): void {
  const arg = UFFDIO_API_STRUCT.encode({ api: UFFD.API });
  rt.withScratch((s) => rt.call('ioctl(UFFDIO_API)', NR.ioctl, ufd, UFFD.IOC_API, s.put(arg)));
}
/** UFFDIO_REGISTER of [start, start + len) for missing pages. */
export function uffdioRegister(rt: RemoteTask, ufd: number, start: bigint, len: bigint, label = `0x${start.toString(16)}`): void {
  const arg = UFFDIO_REGISTER_STRUCT.encode({ start, len, mode: UFFD.REGISTER_MODE_MISSING });
  rt.withScratch((s) => rt.call(`ioctl(UFFDIO_REGISTER ${label})`, NR.ioctl, ufd, UFFD.IOC_REGISTER, s.put(arg)));
}
export function uffdioUnregister(rt: RemoteTask, ufd: number, start: bigint, len: bigint, label = `0x${start.toString(16)}`): void {
  const arg = UFFDIO_RANGE.encode({ start, len });
  rt.withScratch((s) => rt.call(`ioctl(UFFDIO_UNREGISTER ${label})`, NR.ioctl, ufd, UFFD.IOC_UNREGISTER, s.put(arg)));
}

// ---------------------------------------------------------------- tasks, sessions, groups

export function getpid(rt: RemoteTask): number {
  return n(rt.call('getpid', NR.getpid));
}

export interface Clone3Args {
  flags: number;
  /** The signal the parent gets when the new task ends (0 for none: threads, CLONE_PARENT). */
  exitSignal: number;
  /** The PID (TID) the new task must have, per PID namespace level (set_tid). */
  setTid?: number[];
}
function clone3Raw(rt: RemoteTask, a: Clone3Args, call: (argsAddr: bigint) => bigint): bigint {
  return rt.withScratch((s) => {
    const tids = a.setTid ?? [];
    let tidAt = 0n;
    if (tids.length) {
      const t = Buffer.alloc(4 * tids.length);
      tids.forEach((v, i) => t.writeInt32LE(v, 4 * i));
      tidAt = s.put(t);
    }
    const args = CLONE_ARGS.encode({ flags: a.flags, exitSignal: a.exitSignal, setTid: tidAt, setTidSize: tids.length });
    return call(s.put(args));
  });
}
/** clone3: the new task's PID (in the caller, the parent). */
export function clone3(rt: RemoteTask, a: Clone3Args): number {
  return n(clone3Raw(rt, a, (p) => rt.call('clone3', NR.clone3, p, CLONE_ARGS.size)));
}
/** clone3 that returns the new PID or a negative errno (-EEXIST: the PID asked for is taken). */
export function tryClone3(rt: RemoteTask, a: Clone3Args): number {
  return n(clone3Raw(rt, a, (p) => rt.callRaw(NR.clone3, p, CLONE_ARGS.size)));
}

export function setsid(rt: RemoteTask): void {
  rt.call('setsid', NR.setsid);
}
/** setpgid(pid, pgid); (0, 0) makes the task lead a group of its own. */
export function setpgid(rt: RemoteTask, pid: number, pgid: number): void {
  rt.call(pid === 0 && pgid === 0 ? 'setpgid' : pid === 0 ? `setpgid(${pgid})` : `setpgid(${pid}, ${pgid})`, NR.setpgid, pid, pgid);
}
/** wait4(pid, NULL, options, NULL): the PID reported, or 0 (WNOHANG, nothing to report). */
export function wait4(rt: RemoteTask, pid: number, options: number, label = String(pid)): number {
  return n(rt.call(`wait4(${label})`, NR.wait4, pid, 0, options, 0));
}
/** waitid(idtype, id, &info, options): the siginfo it fills (all zero when WNOHANG found nothing). */
export function waitid(rt: RemoteTask, idtype: number, id: number, options: number, label = String(id)): StructValues<typeof SIGINFO.fields> {
  return rt.withScratch((s) => {
    const at = s.zeroed(SIGINFO.size);
    rt.call(`waitid(${label})`, NR.waitid, idtype, id, at, options, 0);
    return SIGINFO.decode(s.read(at, SIGINFO.size));
  });
}

// ---------------------------------------------------------------- identity

export function umask(rt: RemoteTask, mask: number): void {
  rt.call('umask', NR.umask, mask);
}
export function personality(rt: RemoteTask, p: number): void {
  rt.call('personality', NR.personality, p);
}

/** The bounds of the memory areas, auxv and exe that PR_SET_MM_MAP sets. */
export interface MmMap {
  startCode: bigint; endCode: bigint; startData: bigint; endData: bigint; startBrk: bigint; brk: bigint; startStack: bigint;
  argStart: bigint; argEnd: bigint; envStart: bigint; envEnd: bigint;
  auxv: Buffer;
  /** An fd of the task open on the new /proc/PID/exe, or -1 to leave it. */
  exeFd: number;
}
/** prctl(PR_SET_MM, PR_SET_MM_MAP). */
export function prctlSetMmMap(rt: RemoteTask, m: MmMap): void {
  rt.withScratch((s) => {
    const auxv = s.put(m.auxv);
    const { auxv: _a, exeFd, ...bounds } = m;
    const map = PRCTL_MM_MAP.encode({ ...bounds, auxv, auxvSize: m.auxv.length, exeFd: exeFd >>> 0 });
    rt.call('prctl(PR_SET_MM, PR_SET_MM_MAP)', NR.prctl, PR.SET_MM, PR.SET_MM_MAP, s.put(map), PRCTL_MM_MAP.size, 0);
  });
}
/** prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE): the size of struct prctl_mm_map this kernel takes. */
export function prctlMmMapSize(rt: RemoteTask): number {
  return rt.withScratch((s) => {
    const at = s.alloc(4);
    rt.call('prctl(PR_SET_MM_MAP_SIZE)', NR.prctl, PR.SET_MM, PR.SET_MM_MAP_SIZE, at, 0, 0);
    return s.read(at, 4).readUInt32LE(0);
  });
}

/** The task's name (comm, at most 15 bytes). */
export function prctlSetName(rt: RemoteTask, name: string): void {
  rt.withScratch((s) => rt.call('prctl(PR_SET_NAME)', NR.prctl, PR.SET_NAME, s.putString(name.slice(0, 15))));
}
/** A prctl that writes an int at its second argument. */
function prctlGetInt(rt: RemoteTask, option: number, name: string): number {
  return rt.withScratch((s) => {
    const at = s.alloc(4);
    rt.call(`prctl(${name})`, NR.prctl, option, at);
    return s.read(at, 4).readInt32LE(0);
  });
}
export function prctlGetPdeathsig(rt: RemoteTask): number { return prctlGetInt(rt, PR.GET_PDEATHSIG, 'PR_GET_PDEATHSIG'); }
export function prctlGetChildSubreaper(rt: RemoteTask): number { return prctlGetInt(rt, PR.GET_CHILD_SUBREAPER, 'PR_GET_CHILD_SUBREAPER'); }
export function prctlGetDumpable(rt: RemoteTask): number { return n(rt.call('prctl(PR_GET_DUMPABLE)', NR.prctl, PR.GET_DUMPABLE)); }
export function prctlGetSecurebits(rt: RemoteTask): number { return n(rt.call('prctl(PR_GET_SECUREBITS)', NR.prctl, PR.GET_SECUREBITS)); }
export function prctlGetThpDisable(rt: RemoteTask): number { return n(rt.call('prctl(PR_GET_THP_DISABLE)', NR.prctl, PR.GET_THP_DISABLE, 0, 0, 0, 0)); }
/** PR_SET_THP_DISABLE with the value PR_GET_THP_DISABLE reported (bit 0: disabled; the other bits: its flags). */
export function prctlSetThpDisable(rt: RemoteTask, v: number): void {
  rt.call(`prctl(PR_SET_THP_DISABLE, ${v})`, NR.prctl, PR.SET_THP_DISABLE, v & 1, v & ~1, 0, 0);
}
/** The thread's clear_child_tid address (PR_GET_TID_ADDRESS). */
export function prctlGetTidAddress(rt: RemoteTask): bigint {
  return rt.withScratch((s) => {
    const at = s.alloc(8);
    rt.call('prctl(PR_GET_TID_ADDRESS)', NR.prctl, PR.GET_TID_ADDRESS, at);
    return s.read(at, 8).readBigUInt64LE(0);
  });
}
export function prctlSetPdeathsig(rt: RemoteTask, sig: number): void { rt.call('prctl(PR_SET_PDEATHSIG)', NR.prctl, PR.SET_PDEATHSIG, sig); }
export function prctlSetChildSubreaper(rt: RemoteTask, on: boolean): void { rt.call('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, on ? 1 : 0); }
export function prctlSetDumpable(rt: RemoteTask, v: number): void { rt.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, v); }
export function prctlSetNoNewPrivs(rt: RemoteTask): void { rt.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
export function prctlSetKeepcaps(rt: RemoteTask, v: number): void { rt.call(`prctl(PR_SET_KEEPCAPS, ${v})`, NR.prctl, PR.SET_KEEPCAPS, v); }
export function prctlCapbsetDrop(rt: RemoteTask, cap: number): void { rt.call(`prctl(PR_CAPBSET_DROP, ${cap})`, NR.prctl, PR.CAPBSET_DROP, cap); }
export function prctlCapAmbientRaise(rt: RemoteTask, cap: number): void {
  rt.call(`prctl(PR_CAP_AMBIENT_RAISE, ${cap})`, NR.prctl, PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, cap);
}

/** arch_prctl(ARCH_GET_XCOMP_PERM): the XSAVE features the process may use, or null if the kernel does not say. */
export function archGetXcompPerm(rt: RemoteTask): bigint | null {
  return rt.withScratch((s) => {
    const at = s.alloc(8);
    return rt.callRaw(NR.arch_prctl, ARCH.GET_XCOMP_PERM, at) >= 0n ? s.read(at, 8).readBigUInt64LE(0) : null;
  });
}
/** arch_prctl(ARCH_REQ_XCOMP_PERM, feature): 0 or a negative errno. */
export function tryArchReqXcompPerm(rt: RemoteTask, feature: number): number {
  return n(rt.callRaw(NR.arch_prctl, ARCH.REQ_XCOMP_PERM, feature));
}

/** The membarrier commands the process registered (MEMBARRIER_CMD_GET_REGISTRATIONS; 0 where the kernel cannot tell). */
export function membarrierRegistrations(rt: RemoteTask): number {
  const r = rt.callRaw(NR.membarrier, MEMBARRIER_CMD.GET_REGISTRATIONS, 0, 0);
  return r >= 0n ? n(r) : 0;
}
/** membarrier(cmd) for one of the MEMBARRIER_CMD.REGISTER_* commands. */
export function membarrierRegister(rt: RemoteTask, cmd: number): void {
  rt.call(`membarrier(register ${cmd})`, NR.membarrier, cmd, 0, 0);
}

/** getitimer(which): [interval sec, interval usec, value sec, value usec]. */
export function getitimer(rt: RemoteTask, which: number): [bigint, bigint, bigint, bigint] {
  return rt.withScratch((s) => {
    const at = s.alloc(ITIMERVAL.size);
    rt.call(`getitimer(${which})`, NR.getitimer, which, at);
    const t = ITIMERVAL.decode(s.read(at, ITIMERVAL.size));
    return [t.intervalSec, t.intervalUsec, t.valueSec, t.valueUsec];
  });
}
export function setitimer(rt: RemoteTask, which: number, t: readonly [bigint, bigint, bigint, bigint]): void {
  const b = ITIMERVAL.encode({ intervalSec: t[0], intervalUsec: t[1], valueSec: t[2], valueUsec: t[3] });
  rt.withScratch((s) => rt.call(`setitimer(${which})`, NR.setitimer, which, s.put(b), 0));
}

// ---------------------------------------------------------------- POSIX timers

/** A timer's setting, in nanoseconds: [interval sec, interval nsec, value sec, value nsec]. */
export type TimerSpec = [bigint, bigint, bigint, bigint];
export interface SigEvent { notify: number; signo: number; value: bigint; tid: number }

/**
 * timer_create(clock, &sigevent, &id): the new timer's id. With `reqId`
 * (PR_TIMER_CREATE_RESTORE_IDS on), the kernel gives the timer that id.
 */
export function timerCreate(rt: RemoteTask, clock: number, ev: SigEvent, reqId = 0): number {
  return rt.withScratch((s) => {
    const idBuf = Buffer.alloc(4);
    idBuf.writeInt32LE(reqId, 0);
    const idAt = s.put(idBuf);
    const evAt = s.put(SIGEVENT.encode({ value: ev.value, signo: ev.signo, notify: ev.notify, tid: ev.tid }));
    rt.call(`timer_create(clock ${clock}, id ${reqId})`, NR.timer_create, clock, evAt, idAt);
    return s.read(idAt, 4).readInt32LE(0);
  });
}
export function timerDelete(rt: RemoteTask, id: number): void { rt.call(`timer_delete(${id})`, NR.timer_delete, id); }
export function timerGettime(rt: RemoteTask, id: number): TimerSpec {
  return rt.withScratch((s) => {
    const at = s.alloc(ITIMERSPEC.size);
    rt.call(`timer_gettime(${id})`, NR.timer_gettime, id, at);
    const t = ITIMERSPEC.decode(s.read(at, ITIMERSPEC.size));
    return [t.intervalSec, t.intervalNsec, t.valueSec, t.valueNsec];
  });
}
export function timerSettime(rt: RemoteTask, id: number, flags: number, t: TimerSpec): void {
  const b = ITIMERSPEC.encode({ intervalSec: t[0], intervalNsec: t[1], valueSec: t[2], valueNsec: t[3] });
  rt.withScratch((s) => rt.call(`timer_settime(${id})`, NR.timer_settime, id, flags, s.put(b), 0));
}
/** timer_getoverrun(id): the overrun count of the timer's last delivered signal. */
export function timerGetoverrun(rt: RemoteTask, id: number): number { return n(rt.call(`timer_getoverrun(${id})`, NR.timer_getoverrun, id)); }
/** clock_gettime(clock) in the task, in nanoseconds (CPU clocks are the task's own). */
export function clockGettime(rt: RemoteTask, clock: number): bigint {
  return rt.withScratch((s) => {
    const at = s.alloc(TIMESPEC.size);
    rt.call(`clock_gettime(${clock})`, NR.clock_gettime, clock, at);
    const t = TIMESPEC.decode(s.read(at, TIMESPEC.size));
    return t.sec * 1000000000n + t.nsec;
  });
}
/** prctl(PR_TIMER_CREATE_RESTORE_IDS, on/off): 0, or a negative errno on a kernel without it (before 6.16). */
export function tryPrctlTimerRestoreIds(rt: RemoteTask, on: boolean): number {
  return n(rt.callRaw(NR.prctl, PR.TIMER_CREATE_RESTORE_IDS, on ? 1 : 0, 0, 0, 0));
}
/**
 * Wait up to `timeoutNs` for signal `sig` and take it off the queue
 * (rt_sigtimedwait): the signal number, or a negative errno (-EAGAIN: none came).
 */
export function trySigtimedwait(rt: RemoteTask, sig: number, timeoutNs: bigint): number {
  const b = Buffer.alloc(KSIGSET_SIZE + TIMESPEC.size);
  b.writeBigUInt64LE(1n << BigInt(sig - 1), 0);
  TIMESPEC.encodeInto(b, { sec: timeoutNs / 1000000000n, nsec: timeoutNs % 1000000000n }, KSIGSET_SIZE);
  return rt.withScratch((s) => {
    const at = s.put(b);
    return n(rt.callRaw(NR.rt_sigtimedwait, at, 0, at + BigInt(KSIGSET_SIZE), KSIGSET_SIZE));
  });
}

// ---------------------------------------------------------------- seccomp

/**
 * seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog): install a classic BPF
 * filter in the calling thread. Returns 0, or with SECCOMP_FILTER_FLAG_TSYNC
 * the thread that could not be given it.
 */
export function seccompSetFilter(rt: RemoteTask, flags: number, prog: Buffer, label = ''): number {
  return rt.withScratch((s) => {
    const insns = s.put(prog);
    const fprog = s.put(SOCK_FPROG.encode({ len: prog.length / 8, filter: insns }));
    return n(rt.call(withLabel('seccomp(SET_MODE_FILTER)', label || undefined), NR.seccomp, SECCOMP.SET_MODE_FILTER, flags, fprog));
  });
}
/**
 * Was speculation force-disabled for the thread (PR_GET_SPECULATION_CTRL
 * reports PR_SPEC_FORCE_DISABLE for speculative store bypass or indirect
 * branches)? A seccomp filter installed without SECCOMP_FILTER_FLAG_SPEC_ALLOW
 * does that where the kernel's mitigation mode is "seccomp".
 */
export function speculationForceDisabled(rt: RemoteTask): boolean {
  const FORCE_DISABLE = 8;
  for (const which of [0 /* PR_SPEC_STORE_BYPASS */, 1 /* PR_SPEC_INDIRECT_BRANCH */]) {
    const r = rt.callRaw(NR.prctl, PR.GET_SPECULATION_CTRL, which, 0, 0, 0);
    if (r >= 0n && (Number(r) & FORCE_DISABLE)) return true;
  }
  return false;
}

/** seccomp(SECCOMP_SET_MODE_STRICT): from here on the thread may only read, write, exit and sigreturn. */
export function seccompSetStrict(rt: RemoteTask): void {
  rt.call('seccomp(SET_MODE_STRICT)', NR.seccomp, SECCOMP.SET_MODE_STRICT, 0, 0);
}

// ---------------------------------------------------------------- credentials

export function setgroups(rt: RemoteTask, groups: readonly number[]): void {
  const g = Buffer.alloc(Math.max(4, groups.length * 4));
  groups.forEach((v, i) => g.writeUInt32LE(v, i * 4));
  rt.withScratch((s) => rt.call('setgroups', NR.setgroups, groups.length, s.put(g)));
}
export function setresgid(rt: RemoteTask, r: number, e: number, s: number): void { rt.call('setresgid', NR.setresgid, r, e, s); }
export function setresuid(rt: RemoteTask, r: number, e: number, s: number): void { rt.call('setresuid', NR.setresuid, r, e, s); }
export function setfsgid(rt: RemoteTask, g: number): void { rt.call('setfsgid', NR.setfsgid, g); }
export function setfsuid(rt: RemoteTask, u: number): void { rt.call('setfsuid', NR.setfsuid, u); }
/** capset of the calling thread (version 3: 64 bits of each set). */
export function capset(rt: RemoteTask, c: { effective: bigint; permitted: bigint; inheritable: bigint }): void {
  const hdr = CAP_HEADER.encode({ version: CAP_VERSION_3, pid: 0 });
  const data = Buffer.alloc(CAP_DATA.size * CAP_U32S_3);
  const word = (v: bigint, i: number) => Number((v >> BigInt(32 * i)) & 0xffffffffn);
  for (let i = 0; i < CAP_U32S_3; i++) {
    CAP_DATA.encodeInto(data, { effective: word(c.effective, i), permitted: word(c.permitted, i), inheritable: word(c.inheritable, i) }, i * CAP_DATA.size);
  }
  rt.withScratch((s) => rt.call('capset', NR.capset, s.put(hdr), s.put(data)));
}

// ---------------------------------------------------------------- signals

export type KSigaction = StructValues<typeof KSIGACTION.fields>;
/** rt_sigaction(sig, NULL, &old): the current action. */
export function getSigaction(rt: RemoteTask, sig: number): KSigaction {
  return rt.withScratch((s) => {
    const at = s.alloc(KSIGACTION.size);
    rt.call(`rt_sigaction(${sig})`, NR.rt_sigaction, sig, 0, at, KSIGSET_SIZE);
    return KSIGACTION.decode(s.read(at, KSIGACTION.size));
  });
}
/** rt_sigaction(sig, &act, NULL); `act` null: SIG_DFL, no flags, empty mask. */
export function setSigaction(rt: RemoteTask, sig: number, act: KSigaction | null): void {
  const b = KSIGACTION.encode(act ?? {});
  rt.withScratch((s) => rt.call(`rt_sigaction(${sig})`, NR.rt_sigaction, sig, s.put(b), 0, KSIGSET_SIZE));
}

export type StackT = StructValues<typeof STACK_T.fields>;
/** sigaltstack(NULL, &old): the thread's alternate signal stack. */
export function getSigaltstack(rt: RemoteTask): StackT {
  return rt.withScratch((s) => {
    const at = s.alloc(STACK_T.size);
    rt.call('sigaltstack', NR.sigaltstack, 0, at);
    return STACK_T.decode(s.read(at, STACK_T.size));
  });
}
export function setSigaltstack(rt: RemoteTask, ss: StackT): void {
  const b = STACK_T.encode(ss);
  rt.withScratch((s) => rt.call('sigaltstack', NR.sigaltstack, s.put(b), 0));
}

/** Queue a signal with its siginfo for the process (rt_sigqueueinfo) or, with `tid`, for one thread (rt_tgsigqueueinfo). */
export function queueSiginfo(rt: RemoteTask, tgid: number, tid: number | null, info: Buffer): void {
  if (info.length !== SIGINFO.size) throw new Error('siginfo of wrong size');
  const sig = SIGINFO.get(info, 'signo');
  rt.withScratch((s) => {
    const a = s.put(info);
    if (tid === null) rt.call(`rt_sigqueueinfo(${sig})`, NR.rt_sigqueueinfo, tgid, sig, a);
    else rt.call(`rt_tgsigqueueinfo(${sig})`, NR.rt_tgsigqueueinfo, tgid, tid, sig, a);
  });
}

// ---------------------------------------------------------------- thread attributes

export function setTidAddress(rt: RemoteTask, addr: bigint): void {
  rt.call('set_tid_address', NR.set_tid_address, addr);
}
export function setRobustList(rt: RemoteTask, head: bigint, len: number): void {
  rt.call('set_robust_list', NR.set_robust_list, head, len);
}
export function rseqRegister(rt: RemoteTask, addr: bigint, size: number, signature: number): void {
  rt.call('rseq', NR.rseq, addr, size, 0, signature);
}
export function rseqUnregister(rt: RemoteTask, addr: bigint, size: number, signature: number): void {
  rt.call('rseq(unregister)', NR.rseq, addr, size, RSEQ_FLAG_UNREGISTER, signature);
}

/**
 * Make the task use AMX tile data once (ldtilecfg; tilezero; tilerelease),
 * so that the kernel gives it room for that state: it refuses tile data
 * through ptrace until the task's first AMX instruction.
 */
export function touchAmxTileData(rt: RemoteTask): void {
  const CFG = 64; // where the tile configuration is, in the code page
  const code = Buffer.alloc(CFG + TILECFG.size);
  Buffer.from([
    0xc4, 0xe2, 0x78, 0x49, 0x05, CFG - 9, 0, 0, 0, // ldtilecfg [rip + CFG - 9] (rip is the next instruction, at 9)
    0xc4, 0xe2, 0x7b, 0x49, 0xc0,                  // tilezero tmm0: first use of tile data
    0xc4, 0xe2, 0x78, 0x49, 0xc0,                  // tilerelease
    0xcc,                                          // int3
  ]).copy(code, 0);
  TILECFG.encodeInto(code, { palette: 1 }, CFG);
  code.writeUInt16LE(4, CFG + TILECFG_COLSB); // tmm0: 4 bytes per row
  code[CFG + TILECFG_ROWS] = 1;               // tmm0: 1 row
  rt.runCode(code, 20);
}

// The one module that reaches the kernel through FFI (koffi over libc).
// Everything else in ckpt goes through the typed functions exported here.
// Addresses and 64-bit values travel as bigint; small integers as number.

import koffi from 'koffi';
import { errnoName } from './consts.js';

const libc = koffi.load('libc.so.6');

// syscall(2) is variadic in C; on x86_64 integer arguments are passed the same
// way for variadic and fixed prototypes, so a fixed 7-argument prototype is used
// (the callee may read %al as a vector-register count; it only decides whether
// the prologue spills xmm registers, which is harmless).
const rawSyscall = libc.func('syscall', 'int64_t', ['int64_t', 'int64_t', 'int64_t', 'int64_t', 'int64_t', 'int64_t', 'int64_t']) as
  (nr: number, a: Arg, b: Arg, c: Arg, d: Arg, e: Arg, f: Arg) => number | bigint;
const rawPosixSpawn = libc.func('int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)') as
  (pid: number[], path: string, fa: Buffer | null, attr: Buffer | null, argv: (string | null)[], envp: (string | null)[]) => number;
const rawSpawnAttrInit = libc.func('int posix_spawnattr_init(void *attr)') as (attr: Buffer) => number;
const rawSpawnAttrSetFlags = libc.func('int posix_spawnattr_setflags(void *attr, short flags)') as (attr: Buffer, f: number) => number;
const rawSpawnAttrSetSigmask = libc.func('int posix_spawnattr_setsigmask(void *attr, void *mask)') as (attr: Buffer, m: Buffer) => number;
const rawSpawnAttrSetSigdefault = libc.func('int posix_spawnattr_setsigdefault(void *attr, void *mask)') as (attr: Buffer, m: Buffer) => number;
const rawFaInit = libc.func('int posix_spawn_file_actions_init(void *fa)') as (fa: Buffer) => number;
const rawFaOpen = libc.func('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, int mode)') as
  (fa: Buffer, fd: number, path: string, oflag: number, mode: number) => number;
const rawFaDup2 = libc.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)') as (fa: Buffer, fd: number, nfd: number) => number;
const rawFaChdir = libc.func('int posix_spawn_file_actions_addchdir_np(void *fa, const char *path)') as (fa: Buffer, path: string) => number;

function isOpen(fd: number): boolean {
  return syscallRaw(72 /* fcntl */, fd, 1 /* F_GETFD */) >= 0;
}

const rawMmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
const rawMunmap = libc.func('int munmap(void *addr, size_t len)');

export type Arg = number | bigint;

/** A read-only view of part of a file, mapped into ckpt (no copy). */
export interface FileMapping { addr: bigint; len: number; view: Buffer; unmap(): void }

const PROT_READ = 1;
const MAP_SHARED = 1;
const MAP_POPULATE = 0x8000;
const MAP_FAILED = 0xffffffffffffffffn;

export function mapFile(fd: number, offset: number, len: number, populate = true): FileMapping {
  const ptr = rawMmap(null, len, PROT_READ, MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, offset);
  const addr = koffi.address(ptr) as bigint;
  if (addr === MAP_FAILED || addr === 0n) throw new SysError('mmap(page file)', koffi.errno());
  const view = Buffer.from(koffi.view(ptr, len));
  let mapped = true;
  return {
    addr, len, view,
    unmap() { if (mapped) { mapped = false; rawMunmap(ptr, len); } },
  };
}

const rawShmat = libc.func('void *shmat(int id, void *addr, int flags)');
const rawShmdt = libc.func('int shmdt(void *addr)');

/** A System V shared memory segment attached in ckpt itself (shmat), as a Buffer over its `len` bytes (no copy). */
export interface ShmAttach { addr: bigint; len: number; view: Buffer; detach(): void }

export function attachShm(id: number, len: number, flags: number): ShmAttach {
  const ptr = rawShmat(id, null, flags);
  const addr = koffi.address(ptr) as bigint;
  if (addr === MAP_FAILED || addr === 0n) throw new SysError(`shmat(${id})`, koffi.errno());
  const view = Buffer.from(koffi.view(ptr, len));
  let attached = true;
  return {
    addr, len, view,
    detach() { if (attached) { attached = false; rawShmdt(ptr); } },
  };
}

/** An error from a system call, with the errno and the call that failed. */
export class SysError extends Error {
  constructor(public readonly call: string, public readonly errno: number, detail?: string) {
    super(`${call}: ${errnoName(errno)}${detail ? ` (${detail})` : ''}`);
    this.name = 'SysError';
  }
  get code(): string { return errnoName(this.errno); }
}

export function errno(): number { return koffi.errno(); }

/** Address of a Buffer's memory, for passing inside structures and as a syscall argument. */
export function addressOf(buf: Buffer): bigint {
  return koffi.address(buf) as bigint;
}

/** Raw syscall: returns the result, or -errno (never throws). */
export function syscallRaw(nr: number, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  const r = rawSyscall(nr, a, b, c, d, e, f);
  if (r === -1 || r === -1n) return -koffi.errno();
  return Number(r);
}

/** Syscall that throws SysError on failure. `name` names the call in the error. */
export function sys(name: string, nr: number, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  const r = rawSyscall(nr, a, b, c, d, e, f);
  if (r === -1 || r === -1n) throw new SysError(name, koffi.errno());
  return Number(r);
}


export interface SpawnOptions {
  /** Signals to block in the child (bit n-1 for signal n). */
  sigmask?: bigint;
  /** Start a new session (POSIX_SPAWN_SETSID). */
  setsid?: boolean;
  /** Redirect stdin/stdout/stderr to these paths. */
  stdio?: [string, string, string];
  cwd?: string;
  env?: string[];
  /** Fds of the caller the child gets at the same numbers (even close-on-exec ones). */
  keepFds?: number[];
}

const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSID = 0x80;

/**
 * posix_spawn through libc. Used for processes that ckpt will ptrace: Node's
 * child_process installs a SIGCHLD handler that reaps them behind our back.
 */
export function posixSpawn(path: string, argv: string[], opts: SpawnOptions = {}): number {
  const attr = Buffer.alloc(512);
  const fa = Buffer.alloc(256);
  rawSpawnAttrInit(attr);
  rawFaInit(fa);
  let flags = POSIX_SPAWN_SETSIGDEF;
  const all = Buffer.alloc(128, 0xff);
  rawSpawnAttrSetSigdefault(attr, all);
  const mask = Buffer.alloc(128);
  mask.writeBigUInt64LE(opts.sigmask ?? 0n, 0);
  rawSpawnAttrSetSigmask(attr, mask);
  flags |= POSIX_SPAWN_SETSIGMASK;
  if (opts.setsid) flags |= POSIX_SPAWN_SETSID;
  rawSpawnAttrSetFlags(attr, flags);
  if (opts.cwd) rawFaChdir(fa, opts.cwd);
  if (!opts.stdio) {
    // Give the child our fds 0-2 even when they are close-on-exec here
    // (dup2 onto itself clears FD_CLOEXEC in the child).
    for (let fd = 0; fd < 3; fd++) if (isOpen(fd)) rawFaDup2(fa, fd, fd);
  }
  // Fds to hand down at their own numbers (dup2 onto itself clears FD_CLOEXEC in the child).
  for (const fd of opts.keepFds ?? []) rawFaDup2(fa, fd, fd);
  if (opts.stdio) {
    rawFaOpen(fa, 0, opts.stdio[0], 0 /* O_RDONLY */, 0);
    rawFaOpen(fa, 1, opts.stdio[1], 0o1 | 0o100 | 0o2000, 0o644);
    rawFaOpen(fa, 2, opts.stdio[2], 0o1 | 0o100 | 0o2000, 0o644);
  }
  const env = opts.env ?? Object.entries(process.env).map(([k, v]) => `${k}=${v}`);
  const pid = [0];
  const rc = rawPosixSpawn(pid, path, fa, attr, [...argv, null], [...env, null]);
  if (rc !== 0) throw new SysError(`posix_spawn ${path}`, rc);
  return pid[0];
}

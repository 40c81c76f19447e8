// ptrace primitives: seize, interrupt, wait, registers, extended state, signals.
// All requests must come from the thread that attached: the engine thread of
// the operation (src/engine/worker.ts).

import { sys, syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, PTRACE, PTRACE_EVENT, NT_X86_XSTATE, WALL, WNOHANG, signalName } from './consts.js';
import { CkptError } from '../errors.js';
import { SIGINFO_SIZE, xsaveStateBv, xsaveXcr0, SECCOMP_METADATA, SOCK_FILTER } from './structs.js';

/** Names of user_regs_struct fields, in kernel order (27 x u64). */
export const REG_NAMES = ['r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx',
  'rsi', 'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs'] as const;
export type RegName = typeof REG_NAMES[number];
const REG_INDEX = Object.fromEntries(REG_NAMES.map((n, i) => [n, i])) as Record<RegName, number>;
export const REGS_SIZE = 27 * 8;

/** user_regs_struct as a raw buffer with bigint accessors. */
export class Regs {
  constructor(public readonly buf: Buffer = Buffer.alloc(REGS_SIZE)) {}
  get(name: RegName): bigint { return this.buf.readBigUInt64LE(REG_INDEX[name] * 8); }
  /** Signed view, for rax results and orig_rax. */
  sget(name: RegName): bigint { return this.buf.readBigInt64LE(REG_INDEX[name] * 8); }
  set(name: RegName, v: bigint | number): void {
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), REG_INDEX[name] * 8);
  }
  clone(): Regs { return new Regs(Buffer.from(this.buf)); }
  toJSON(): Record<string, string> {
    const o: Record<string, string> = {};
    for (const n of REG_NAMES) o[n] = '0x' + this.get(n).toString(16);
    return o;
  }
  /** Was the task stopped inside restart_syscall (the kernel's continuation of an interrupted sleep)? */
  inRestartSyscall(): boolean { return this.sget('orig_rax') === BigInt(NR.restart_syscall); }
  static fromJSON(o: Record<string, string>): Regs {
    const r = new Regs();
    for (const n of REG_NAMES) {
      if (o[n] === undefined) throw new Error(`register ${n} missing`);
      r.set(n, BigInt(o[n]));
    }
    return r;
  }
}

function ptrace(name: string, req: number, pid: number, addr: bigint | number = 0, data: bigint | number = 0): number {
  return sys(`${name}(${pid})`, NR.ptrace, req, pid, addr, data);
}

export function seize(pid: number, options = 0): void { ptrace('PTRACE_SEIZE', PTRACE.SEIZE, pid, 0, options); }
export function interrupt(pid: number): void { ptrace('PTRACE_INTERRUPT', PTRACE.INTERRUPT, pid); }
export function cont(pid: number, sig = 0): void { ptrace('PTRACE_CONT', PTRACE.CONT, pid, 0, sig); }
export function singlestep(pid: number, sig = 0): void { ptrace('PTRACE_SINGLESTEP', PTRACE.SINGLESTEP, pid, 0, sig); }
export function syscallStep(pid: number, sig = 0): void { ptrace('PTRACE_SYSCALL', PTRACE.SYSCALL, pid, 0, sig); }
export function detach(pid: number, sig = 0): void { ptrace('PTRACE_DETACH', PTRACE.DETACH, pid, 0, sig); }
/** Detach, ignoring errors: for cleanup paths. */
export function detachQuiet(pid: number, sig = 0): number { return syscallRaw(NR.ptrace, PTRACE.DETACH, pid, 0, sig); }

export function getRegs(pid: number): Regs {
  const r = new Regs();
  ptrace('PTRACE_GETREGS', PTRACE.GETREGS, pid, 0, addressOf(r.buf));
  return r;
}
export function setRegs(pid: number, r: Regs): void {
  ptrace('PTRACE_SETREGS', PTRACE.SETREGS, pid, 0, addressOf(r.buf));
}

const XSTATE_MAX = 64 * 1024;
/** The whole XSAVE area (NT_X86_XSTATE), trimmed to the size the kernel reports. */
export function getXstate(pid: number): Buffer {
  const buf = Buffer.alloc(XSTATE_MAX);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(XSTATE_MAX), 8);
  ptrace('PTRACE_GETREGSET(NT_X86_XSTATE)', PTRACE.GETREGSET, pid, NT_X86_XSTATE, addressOf(iov));
  const len = Number(iov.readBigUInt64LE(8));
  return Buffer.from(buf.subarray(0, len));
}
export function setXstate(pid: number, xs: Buffer): void {
  const buf = Buffer.from(xs);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  ptrace('PTRACE_SETREGSET(NT_X86_XSTATE)', PTRACE.SETREGSET, pid, NT_X86_XSTATE, addressOf(iov));
}
/** The features of an XSAVE area: those enabled (XCR0, which ptrace reports in it) and those present (XSTATE_BV). */
export function xstateFeatures(xs: Buffer): { xcr0: bigint; xstateBv: bigint } {
  return { xcr0: xsaveXcr0(xs), xstateBv: xsaveStateBv(xs) };
}

export function getSigmask(pid: number): bigint {
  const b = Buffer.alloc(8);
  ptrace('PTRACE_GETSIGMASK', PTRACE.GETSIGMASK, pid, 8, addressOf(b));
  return b.readBigUInt64LE(0);
}
export function setSigmask(pid: number, mask: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(mask, 0);
  ptrace('PTRACE_SETSIGMASK', PTRACE.SETSIGMASK, pid, 8, addressOf(b));
}

export { SIGINFO_SIZE };
/** Pending signals' siginfo, without dequeuing them. shared: the process-wide queue. */
export function peekSiginfo(pid: number, shared: boolean): Buffer[] {
  const out: Buffer[] = [];
  const chunk = 32;
  const args = Buffer.alloc(16);
  const data = Buffer.alloc(SIGINFO_SIZE * chunk);
  for (let off = 0; ; off += chunk) {
    args.writeBigUInt64LE(BigInt(off), 0);
    args.writeUInt32LE(shared ? 1 : 0, 8);
    args.writeInt32LE(chunk, 12);
    const n = ptrace('PTRACE_PEEKSIGINFO', PTRACE.PEEKSIGINFO, pid, addressOf(args), addressOf(data));
    for (let i = 0; i < n; i++) out.push(Buffer.from(data.subarray(i * SIGINFO_SIZE, (i + 1) * SIGINFO_SIZE)));
    if (n < chunk) return out;
  }
}

export interface RseqConfig { address: bigint; size: number; signature: number; flags: number }
export function getRseqConfig(pid: number): RseqConfig {
  const b = Buffer.alloc(24);
  ptrace('PTRACE_GET_RSEQ_CONFIGURATION', PTRACE.GET_RSEQ_CONFIGURATION, pid, 24, addressOf(b));
  return { address: b.readBigUInt64LE(0), size: b.readUInt32LE(8), signature: b.readUInt32LE(12), flags: b.readUInt32LE(16) };
}

/** PTRACE_SETOPTIONS: replaces every option of the tracee (those given at seize too). */
export function setOptions(pid: number, options: number): void { ptrace('PTRACE_SETOPTIONS', PTRACE.SETOPTIONS, pid, 0, options); }

/**
 * The classic BPF program of one of a thread's seccomp filters
 * (PTRACE_SECCOMP_GET_FILTER): index 0 is the first one it got (the
 * root of its chain), the last index its newest (the kernel walks back from
 * the newest by count - index - 1). Needs CAP_SYS_ADMIN.
 */
export function seccompGetFilter(pid: number, index: number): Buffer {
  const n = ptrace(`PTRACE_SECCOMP_GET_FILTER(${index})`, PTRACE.SECCOMP_GET_FILTER, pid, index, 0);
  const buf = Buffer.alloc(n * SOCK_FILTER.size);
  const got = ptrace(`PTRACE_SECCOMP_GET_FILTER(${index})`, PTRACE.SECCOMP_GET_FILTER, pid, index, addressOf(buf));
  if (got !== n) throw new Error(`PTRACE_SECCOMP_GET_FILTER(${pid}, ${index}): ${got} instructions, then ${n}`);
  return buf;
}
/** The flags a seccomp filter was installed with, as far as the kernel keeps them (PTRACE_GET_SECCOMP_METADATA: SECCOMP_FILTER_FLAG_LOG). */
export function seccompFilterFlags(pid: number, index: number): number {
  const b = SECCOMP_METADATA.encode({ filterOff: index });
  ptrace(`PTRACE_GET_SECCOMP_METADATA(${index})`, PTRACE.GET_SECCOMP_METADATA, pid, SECCOMP_METADATA.size, addressOf(b));
  return Number(SECCOMP_METADATA.get(b, 'flags'));
}

export function getEventMsg(pid: number): number {
  const b = Buffer.alloc(8);
  ptrace('PTRACE_GETEVENTMSG', PTRACE.GETEVENTMSG, pid, 0, addressOf(b));
  return Number(b.readBigUInt64LE(0));
}

export interface WaitStatus {
  pid: number;
  raw: number;
  exited: boolean;
  exitCode: number;
  signaled: boolean;
  termSig: number;
  stopped: boolean;
  stopSig: number;
  /** PTRACE_EVENT_* for event stops, else 0. */
  event: number;
}

export function decodeStatus(pid: number, st: number): WaitStatus {
  const low = st & 0x7f;
  const stopped = (st & 0xff) === 0x7f;
  return {
    pid, raw: st,
    exited: low === 0,
    exitCode: (st >> 8) & 0xff,
    signaled: !stopped && low !== 0,
    termSig: low,
    stopped,
    stopSig: stopped ? (st >> 8) & 0xff : 0,
    event: stopped ? (st >> 16) & 0xffff : 0,
  };
}

const statusBuf = Buffer.alloc(4);
function wait4Once(pid: number, flags: number): WaitStatus | null {
  for (;;) {
    const r = syscallRaw(NR.wait4, pid, addressOf(statusBuf), flags | WALL, 0);
    if (r === -4) continue; // EINTR
    if (r < 0) throw new SysError(`wait4(${pid})`, -r);
    if (r === 0) return null;
    return decodeStatus(r, statusBuf.readInt32LE(0));
  }
}

// Waits never block: a task that does not stop (a remote call stuck on a
// slow file system, a task in uninterruptible sleep) must not hang ckpt, and
// an interrupt must be able to cut a long wait short. So wait4 is polled
// with WNOHANG: first in a tight loop with sched_yield (a remote syscall
// comes back in microseconds), then sleeping on the interrupt flag in short
// growing intervals (an interrupt wakes it at once), until a deadline.

/** How waits are bounded and interrupted; the engine thread sets it for its operation. */
export interface WaitControl {
  /** Word 0 is nonzero once an interrupt was asked for; the waits sleep on it. */
  flag: Int32Array;
  /** An interrupt not yet acted on, as the error to throw (or null). */
  pending: (what: string, pid: number) => Error | null;
  /** Default deadline of a wait, ms. */
  timeoutMs: number;
  /** Deadline of a wait for a call that moves page data (reads and writes of image files), ms. */
  ioTimeoutMs: number;
}
const waitControl: WaitControl = {
  flag: new Int32Array(new SharedArrayBuffer(8)),
  pending: () => null,
  timeoutMs: 30_000,
  ioTimeoutMs: 600_000,
};
export function configureWaits(c: Partial<WaitControl>): void { Object.assign(waitControl, c); }
export function waitTimeouts(): { timeoutMs: number; ioTimeoutMs: number } {
  return { timeoutMs: waitControl.timeoutMs, ioTimeoutMs: waitControl.ioTimeoutMs };
}

export interface WaitOptions {
  /** What is waited for, for the error messages ("the trap after remote syscall mmap"). */
  what?: string;
  /** Deadline, ms (default: the configured one). */
  timeoutMs?: number;
  /** An interrupt may end the wait (default true; cleanup waits pass false). */
  interruptible?: boolean;
}

const SPIN_MS = 0.2;
const SLEEP_MAX_MS = 1;

/**
 * wait4 on one pid (never -1), with __WALL. With WNOHANG: returns null when
 * nothing changed. Without: waits, up to a deadline, and throws a CkptError
 * naming the pid and what was waited for when it passes or when an interrupt
 * ends the wait (see WaitOptions).
 */
export function waitPid(pid: number, flags = 0, opts: WaitOptions = {}): WaitStatus | null {
  if (flags & WNOHANG) return wait4Once(pid, flags);
  const f = flags | WNOHANG;
  let st = wait4Once(pid, f);
  if (st) return st;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < SPIN_MS) {
    syscallRaw(NR.sched_yield);
    st = wait4Once(pid, f);
    if (st) return st;
    now = performance.now();
  }
  const what = opts.what ?? 'a change of state';
  const timeout = opts.timeoutMs ?? waitControl.timeoutMs;
  const end = t0 + timeout;
  const flag = waitControl.flag;
  for (;;) {
    if (opts.interruptible !== false) {
      const e = waitControl.pending(what, pid);
      if (e) throw e;
    }
    const elapsed = now - t0;
    Atomics.wait(flag, 0, Atomics.load(flag, 0), Math.min(SLEEP_MAX_MS, Math.max(0.02, elapsed / 10)));
    st = wait4Once(pid, f);
    if (st) return st;
    now = performance.now();
    if (now > end) {
      throw new CkptError('failed', `pid ${pid}: ${what} did not come within ${timeout >= 1000 ? `${timeout / 1000} s` : `${timeout} ms`}`, { pid });
    }
  }
}
export function waitNoHang(pid: number): WaitStatus | null { return waitPid(pid, WNOHANG); }

export function describeStatus(s: WaitStatus): string {
  if (s.exited) return `exited with status ${s.exitCode}`;
  if (s.signaled) return `killed by ${signalName(s.termSig)}`;
  if (s.stopped) {
    if (s.event === PTRACE_EVENT.STOP) return `event-stop (${signalName(s.stopSig)})`;
    if (s.event) return `ptrace event ${s.event}`;
    return `stopped by ${signalName(s.stopSig)}`;
  }
  return `status 0x${s.raw.toString(16)}`;
}

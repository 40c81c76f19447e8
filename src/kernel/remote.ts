// Remote syscalls: make a ptrace-stopped task run one syscall at a time.
//
// The task's registers are saved once; each call loads the syscall number and
// arguments, points rip at a `syscall` instruction (found in the task's vDSO),
// single-steps over it and reads rax. restore() puts the saved registers back.

import { faultPoint } from './faults.js';
import fs from 'node:fs';
import { Regs, getRegs, setRegs, setSigmask, singlestep, syscallStep, cont, interrupt, waitPid, getEventMsg, describeStatus, waitTimeouts, WaitStatus, WaitOptions } from './ptrace.js';
import { readStatus } from './proc.js';
import { syscallRaw } from './ffi.js';
import { NR, PTRACE_EVENT, SIG, errnoName, PROT, MAP, PAGE_SIZE, signalName } from './consts.js';
import { CkptError } from '../errors.js';

const NR_NAME = new Map<number, string>(Object.entries(NR).map(([k, v]) => [v, k]));
/** Calls that move page data to or from image files: their waits get the longer deadline. */
const IO_CALLS = new Set<number>([NR.read, NR.write, NR.pread64, NR.pwrite64, NR.readv, NR.writev, NR.sendfile, NR.preadv, NR.pwritev, NR.copy_file_range, NR.preadv2, NR.pwritev2, NR.fsync, NR.fdatasync]);
const callName = (nr: number) => NR_NAME.get(nr) ?? `syscall ${nr}`;
import { ScratchArea, ScratchFrame } from './scratch.js';
import { KSIGACTION, KSIGSET_SIZE, TIMESPEC } from './structs.js';

export class RemoteError extends Error {
  constructor(public readonly pid: number, public readonly call: string, public readonly errno: number) {
    super(`remote ${call} in pid ${pid} failed: ${errnoName(errno)}`);
    this.name = 'RemoteError';
  }
}

export type RArg = number | bigint;

/** Remote syscalls run so far by this thread of ckpt, in every task (for the figures of a restore). */
let callsMade = 0;
export const remoteCallsMade = (): number => callsMade;

/** Locate a `syscall` instruction (0f 05) in a task's vDSO. */
export function findSyscallGadget(pid: number, vdsoStart: bigint, vdsoEnd: bigint): bigint {
  const len = Number(vdsoEnd - vdsoStart);
  const buf = readMem(pid, vdsoStart, len);
  const i = buf.indexOf(Buffer.from([0x0f, 0x05]));
  if (i < 0) throw new Error(`no syscall instruction found in the vDSO of pid ${pid}`);
  return vdsoStart + BigInt(i);
}

/** Read `len` bytes of a task's memory at `addr` from an open /proc/PID/mem. */
function readFully(memFd: number, pid: number, addr: bigint, len: number): Buffer {
  const b = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const n = fs.readSync(memFd, b, done, len - done, Number(addr) + done);
    if (n <= 0) throw new Error(`short read of pid ${pid} memory at 0x${(addr + BigInt(done)).toString(16)}`);
    done += n;
  }
  return b;
}

export function readMem(pid: number, addr: bigint, len: number): Buffer {
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try { return readFully(fd, pid, addr, len); } finally { fs.closeSync(fd); }
}

export class RemoteTask {
  readonly saved: Regs;
  private work: Regs;
  private memFd: number;
  /** The scratch area mapped in the task (shared with the other tasks of its address space), or null. */
  private area: ScratchArea | null = null;
  /** pids created by fork/clone events seen during calls. */
  readonly newChildren: number[] = [];
  calls = 0;
  /** A signal taken off the queue by an unexpected stop; pass it to detach(). */
  interceptedSignal = 0;
  /** Run calls through syscall stops instead of single steps (see callQuietRaw). */
  quiet = false;
  /**
   * ckpt ran calls in the task: it must be resumed once before it is let go
   * (see restoreBegin), for the trap flag of single steps and for the restart
   * of a syscall it was interrupted in.
   */
  private stepped = false;

  /** Signals pending for the thread (SigPnd) when ckpt took it: a signal a call raises that is not here is ckpt's doing. */
  private readonly pendingAtStart: bigint;

  constructor(public readonly pid: number, public gadget: bigint, saved?: Regs) {
    this.saved = saved ?? getRegs(pid);
    this.work = this.saved.clone();
    this.memFd = fs.openSync(`/proc/${pid}/mem`, 'r+');
    let pnd = 0n;
    try { pnd = BigInt('0x' + (readStatus(pid).get('SigPnd') ?? '0')); } catch { /* gone: the first call says so */ }
    this.pendingAtStart = pnd;
  }

  /** The scratch area's address (0 when there is none). */
  get scratch(): bigint { return this.area?.isLive ? this.area.base : 0n; }
  get scratchSize(): number { return this.area?.isLive ? this.area.size : 0; }

  /**
   * Run `fn` with a frame of the scratch area: the blocks it takes
   * (`s.put(buf)`, `s.putString(path)`, `s.alloc(n)`) are given back when
   * it returns. Frames nest; `fn` must be synchronous.
   */
  withScratch<T>(fn: (s: ScratchFrame) => T): T {
    if (!this.area) throw new Error(`internal: pid ${this.pid} has no scratch area`);
    return this.area.withFrame(this, fn);
  }

  /** A context for a task that shares this one's memory (a thread of its process, or a CLONE_VM task): the same scratch area and allocator. */
  taskSharingMemory(tid: number): RemoteTask {
    const t = new RemoteTask(tid, this.gadget);
    t.area = this.area;
    t.quiet = this.quiet;
    return t;
  }
  /** A context for a process forked from this one: its memory is a copy, with the scratch area at the same address, so an allocator of its own. */
  taskWithCopy(pid: number): RemoteTask {
    const t = new RemoteTask(pid, this.gadget);
    t.area = this.area?.isLive ? this.area.copy(` of pid ${pid}`) : null;
    return t;
  }

  /** Run one syscall in the task; returns the raw result (negative errno on failure). */
  callRaw(nr: number, a: RArg = 0, b: RArg = 0, c: RArg = 0, d: RArg = 0, e: RArg = 0, f: RArg = 0): bigint {
    faultPoint(`pid ${this.pid}: syscall ${nr}`);
    return this.quiet ? this.callQuietRaw(`syscall ${nr}`, nr, a, b, c, d, e, f) : this.stepRaw(nr, a, b, c, d, e, f);
  }

  /** Load a syscall into the task's registers, at the gadget, from the saved registers. */
  private load(nr: number, a: RArg = 0, b: RArg = 0, c: RArg = 0, d: RArg = 0, e: RArg = 0, f: RArg = 0): void {
    const r = this.work;
    this.saved.buf.copy(r.buf);
    r.set('rax', nr);
    r.set('orig_rax', -1);
    r.set('rdi', a); r.set('rsi', b); r.set('rdx', c); r.set('r10', d); r.set('r8', e); r.set('r9', f);
    r.set('rip', this.gadget);
    setRegs(this.pid, r);
  }

  private stepRaw(nr: number, a: RArg, b: RArg, c: RArg, d: RArg, e: RArg, f: RArg): bigint {
    this.stepped = true;
    this.load(nr, a, b, c, d, e, f);
    singlestep(this.pid);
    this.calls++;
    callsMade++;
    for (;;) {
      const st = this.waitCall(nr, `the end of remote syscall ${callName(nr)}`);
      if (!st.stopped) throw new Error(`pid ${this.pid} ${describeStatus(st)} during remote syscall ${nr}`);
      if (st.event === PTRACE_EVENT.FORK || st.event === PTRACE_EVENT.CLONE || st.event === PTRACE_EVENT.VFORK) {
        this.newChildren.push(getEventMsg(this.pid));
        singlestep(this.pid);
        continue;
      }
      if (st.event === PTRACE_EVENT.STOP) {
        // A job-control stop (or a pending interrupt) came first. If the
        // syscall has not run yet, step on; if it has, its result is here
        // (the trap for the step stays pending and is recognised below).
        const now = getRegs(this.pid);
        if (now.get('rip') === this.gadget) { singlestep(this.pid); continue; }
        return now.sget('rax');
      }
      if (st.event === 0 && st.stopSig === SIG.STOP) {
        // A SIGSTOP (which no mask holds back) was dequeued: keep it for
        // when the task is let go, and go on as after a job-control stop.
        this.interceptedSignal = SIG.STOP;
        const now = getRegs(this.pid);
        if (now.get('rip') === this.gadget) { singlestep(this.pid); continue; }
        return now.sget('rax');
      }
      if (st.stopSig !== SIG.TRAP || st.event !== 0) {
        // A signal we did not expect was dequeued for delivery: keep it, so
        // that it is delivered when the task is let go.
        if (st.event === 0) this.interceptedSignal = st.stopSig;
        throw new Error(`pid ${this.pid}: unexpected stop (${signalName(st.stopSig)}, event ${st.event}) during remote syscall ${nr}`);
      }
      // A trap left over from an earlier step arrives before this syscall ran.
      if (getRegs(this.pid).get('rip') === this.gadget) { singlestep(this.pid); continue; }
      break;
    }
    const out = getRegs(this.pid);
    return out.sget('rax');
  }

  /**
   * Wait for the stop that ends a remote call (nr -1: a code run). If the
   * wait ends without it (its deadline passed, or an interrupt ended it), the
   * task is interrupted and waited for, so that it is in a ptrace stop again
   * for the cleanup that follows (which puts its registers back).
   */
  private waitCall(nr: number, what: string): WaitStatus {
    const t = waitTimeouts();
    const opts: WaitOptions = { what, timeoutMs: IO_CALLS.has(nr) ? t.ioTimeoutMs : t.timeoutMs };
    try {
      return waitPid(this.pid, 0, opts)!;
    } catch (e) {
      if (e instanceof CkptError) this.stopAfterWait();
      throw e;
    }
  }
  private stopAfterWait(): void {
    try { interrupt(this.pid); } catch { return; /* gone */ }
    let st: WaitStatus;
    try {
      st = waitPid(this.pid, 0, { what: 'its stop after an interrupt', interruptible: false })!;
    } catch { return; /* it does not stop (uninterruptible sleep?): the cleanup will say so */ }
    if (!st.stopped) return;
    if (st.event === PTRACE_EVENT.FORK || st.event === PTRACE_EVENT.CLONE || st.event === PTRACE_EVENT.VFORK) this.newChildren.push(getEventMsg(this.pid));
    // A signal dequeued for delivery: kept, to be delivered when the task is let go.
    else if (st.event === 0 && st.stopSig !== SIG.TRAP && !this.interceptedSignal) this.interceptedSignal = st.stopSig;
  }

  /** Run one syscall; throws RemoteError naming `name` on failure. */
  call(name: string, nr: number, a: RArg = 0, b: RArg = 0, c: RArg = 0, d: RArg = 0, e: RArg = 0, f: RArg = 0): bigint {
    faultPoint(`pid ${this.pid}: ${name}`);
    const r = this.quiet ? this.callQuietRaw(name, nr, a, b, c, d, e, f) : this.stepRaw(nr, a, b, c, d, e, f);
    if (r < 0n && r > -4096n) {
      this.dropRaisedSignal(Number(-r));
      throw new RemoteError(this.pid, name, Number(-r));
    }
    return r;
  }

  /**
   * A write that fails with EFBIG (file size limit) or EPIPE also sends the
   * task SIGXFSZ or SIGPIPE, which would kill or disturb the program once
   * ckpt lets it go. Take such a signal off its queue again, unless it was
   * already pending when ckpt took the task.
   */
  private dropRaisedSignal(errno: number): void {
    const sig = errno === 27 /* EFBIG */ ? 25 /* SIGXFSZ */ : errno === 32 /* EPIPE */ ? SIG.PIPE : 0;
    if (!sig || (this.pendingAtStart >> BigInt(sig - 1)) & 1n || !this.area?.isLive) return;
    this.takeSignal(sig);
  }

  /**
   * Take every instance of `sig` off the task's queues (its own, then the
   * process's) with rt_sigtimedwait and a zero timeout; the signal must be
   * blocked. Returns how many.
   */
  takeSignal(sig: number): number {
    const set = Buffer.alloc(KSIGSET_SIZE + TIMESPEC.size); // the sigset, then a zero timespec
    set.writeBigUInt64LE(1n << BigInt(sig - 1), 0);
    return this.withScratch((s) => {
      const at = s.put(set);
      let n = 0;
      while (this.callRaw(NR.rt_sigtimedwait, at, 0, at + BigInt(KSIGSET_SIZE), KSIGSET_SIZE) === BigInt(sig)) n++;
      return n;
    });
  }

  /**
   * Run one syscall without a single-step trap: through the syscall-entry
   * and syscall-exit stops (PTRACE_SYSCALL). Slower (two stops), and used
   * where a trap would leave a trace: a trap forced on a task whose SIGTRAP
   * is ignored resets it to SIG_DFL, so the call that sets SIGTRAP's action
   * back must be the last one and trap-free.
   */
  private callQuietRaw(name: string, nr: number, a: RArg, b: RArg, c: RArg, d: RArg, e: RArg, f: RArg): bigint {
    this.stepped = true;
    this.load(nr, a, b, c, d, e, f);
    this.calls++;
    callsMade++;
    for (let stops = 0; stops < 2;) {
      syscallStep(this.pid);
      const st = this.waitCall(nr, `${stops ? 'the exit' : 'the entry'} stop of remote syscall ${name}`);
      if (!st.stopped) throw new Error(`pid ${this.pid} ${describeStatus(st)} during remote syscall ${name}`);
      if (st.stopSig === (SIG.TRAP | 0x80)) { stops++; continue; }
      if (st.event === PTRACE_EVENT.FORK || st.event === PTRACE_EVENT.CLONE || st.event === PTRACE_EVENT.VFORK) { this.newChildren.push(getEventMsg(this.pid)); continue; }
      if (st.event === PTRACE_EVENT.STOP) continue;
      if (st.event === 0 && st.stopSig === SIG.TRAP) continue; // a trap left over from an earlier single step: dropped
      // A SIGSTOP dequeued: kept for when the task is let go (as in stepRaw); resuming without it goes on to the call.
      if (st.event === 0 && st.stopSig === SIG.STOP) { this.interceptedSignal = SIG.STOP; continue; }
      // A signal we did not expect was dequeued for delivery: keep it, so that it is delivered when the task is let go.
      if (st.event === 0) this.interceptedSignal = st.stopSig;
      throw new Error(`pid ${this.pid}: unexpected stop (${signalName(st.stopSig)}, event ${st.event}) during remote syscall ${name}`);
    }
    return getRegs(this.pid).sget('rax');
  }

  /** Map a private anonymous scratch area in the task (at `at` if given). */
  mapScratch(size: number, at?: bigint): bigint {
    size = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    const flags = MAP.PRIVATE | MAP.ANONYMOUS | (at ? MAP.FIXED_NOREPLACE : 0);
    // (a hint address taken by another mapping gives EEXIST, reported as an error)
    const base = this.call('mmap(scratch)', NR.mmap, at ?? 0, size, PROT.READ | PROT.WRITE, flags, -1, 0);
    this.area = new ScratchArea(base, size, ` of pid ${this.pid}`);
    return base;
  }
  /** Unmap the scratch area (for every task that shares it). */
  unmapScratch(): void {
    if (this.area?.isLive) {
      this.call('munmap(scratch)', NR.munmap, this.area.base, this.area.size);
      this.area.retire();
    }
    this.area = null;
  }
  /** Forget the scratch area without unmapping it (released already, or given up). */
  forgetScratch(): void {
    this.area?.retire();
    this.area = null;
  }

  write(addr: bigint, data: Buffer): void {
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(this.memFd, data, done, data.length - done, Number(addr) + done);
    }
  }
  read(addr: bigint, len: number): Buffer {
    return readFully(this.memFd, this.pid, addr, len);
  }

  /**
   * Run a few instructions in the task: they are placed (with any data they
   * need after them) in a fresh executable page and must end with int3 (0xcc)
   * at offset stopAt - 1. Used where only an instruction will
   * do, such as a first AMX instruction that makes the kernel enlarge the
   * task's XSAVE buffer.
   */
  runCode(code: Buffer, stopAt = code.length): void {
    const page = this.call('mmap(code page)', NR.mmap, 0, PAGE_SIZE, PROT.READ | PROT.EXEC, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0);
    try {
      this.write(page, code); // /proc/PID/mem writes through page protections
      const r = this.work;
      this.saved.buf.copy(r.buf);
      r.set('orig_rax', -1);
      r.set('rip', page);
      setRegs(this.pid, r);
      cont(this.pid);
      const st = this.waitCall(-1, 'the end of a code run');
      if (!st.stopped || st.stopSig !== SIG.TRAP) throw new Error(`pid ${this.pid}: code run ended with ${describeStatus(st)}`);
      const rip = getRegs(this.pid).get('rip');
      if (rip !== page + BigInt(stopAt)) throw new Error(`pid ${this.pid}: code run stopped at 0x${rip.toString(16)}, not at its end`);
    } finally {
      this.call('munmap(code page)', NR.munmap, page, PAGE_SIZE);
    }
  }

  /** End the task with exit_group(code); returns once it is dead (a zombie for its parent). */
  exitNow(code: number): void {
    this.load(NR.exit_group, code);
    singlestep(this.pid);
    for (;;) {
      const st = waitPid(this.pid, 0, { what: `its exit with status ${code}` })!;
      if (st.exited) return;
      if (!st.stopped) throw new Error(`pid ${this.pid} ${describeStatus(st)} instead of exiting with ${code}`);
      cont(this.pid); // an exit event or a trap on the way out
    }
  }

  /** End the task by signal `sig` with its default action (as if the signal had killed it). */
  killSelfWith(sig: number): void {
    this.quiet = true; // a single-step trap would merge with a SIGTRAP sent here
    if (sig === SIG.KILL) {
      // SIGKILL always has its default action; it ends the task at once, so ckpt sends it.
      syscallRaw(NR.tgkill, this.pid, this.pid, sig);
    } else {
      const dfl = KSIGACTION.encode({}); // SIG_DFL, no flags, no mask
      this.withScratch((s) => this.call(`rt_sigaction(${sig}, SIG_DFL)`, NR.rt_sigaction, sig, s.put(dfl), 0, KSIGSET_SIZE));
      setSigmask(this.pid, 0n);
      this.call(`tgkill(${sig})`, NR.tgkill, this.pid, this.pid, sig);
      setRegs(this.pid, this.saved);
      cont(this.pid);
    }
    for (;;) {
      const st = waitPid(this.pid, 0, { what: `its end by ${signalName(sig)}` })!;
      if (st.signaled || st.exited) return;
      if (!st.stopped) throw new Error(`pid ${this.pid} ${describeStatus(st)}`);
      // The signal-delivery stop for our signal: let it through.
      cont(this.pid, st.event === 0 && st.stopSig === sig ? sig : 0);
    }
  }

  /**
   * Put the saved registers back (the task is left exactly as it was
   * stopped). A task that was single-stepped keeps the trap flag until
   * ptrace resumes it, and a tracer that dies (ckpt killed) does not clear
   * it: the task would die of SIGTRAP. A task left at a syscall-exit stop
   * (quiet calls) would return the saved -ERESTART* code of the syscall it
   * was interrupted in instead of restarting it. So it is resumed once, with
   * an interrupt pending, which stops it again in the kernel (in its signal
   * handling, where the restart is decided) before it runs any of its own
   * code.
   */
  restore(): void {
    this.restoreBegin();
    this.restoreEnd();
  }
  /** The first half of restore(): registers back, and the task resumed under an interrupt if ckpt ran calls in it. */
  restoreBegin(): void {
    setRegs(this.pid, this.saved);
    this.settle();
  }
  /**
   * Resume the task once under an interrupt (if ckpt ran calls in it), with
   * the registers it has now; restoreEnd() waits for it to stop again. Its
   * last stop is then inside signal handling, so that when it is let go the
   * kernel decides on the restart of a syscall it was in (and no trap flag is left).
   */
  settle(): void {
    if (!this.stepped) return;
    interrupt(this.pid);
    cont(this.pid);
  }
  /** The second half: wait until it has stopped again (several tasks can be resumed first, then waited for). */
  restoreEnd(): void {
    if (!this.stepped) return;
    for (;;) {
      // (a cleanup wait: an interrupt does not cut it short)
      const st = waitPid(this.pid, 0, { what: 'its stop after its registers were put back', interruptible: false })!;
      if (!st.stopped) throw new Error(`pid ${this.pid} ${describeStatus(st)} while its registers were put back`);
      if (st.event === PTRACE_EVENT.STOP) break;
      // A signal on its way in first: keep it for when the task is let go (the first one: a second of
      // the same kind would merge with it anyway), and stop it again.
      if (st.event === 0 && st.stopSig !== SIG.TRAP && !this.interceptedSignal) this.interceptedSignal = st.stopSig;
      interrupt(this.pid);
      cont(this.pid);
    }
    this.stepped = false;
  }
  /** Close ckpt's handle on the task's memory (once: a second close could hit a reused fd number). */
  close(): void {
    if (this.memFd < 0) return;
    const fd = this.memFd;
    this.memFd = -1;
    fs.closeSync(fd);
  }
}

// Freezing: PTRACE_SEIZE + PTRACE_INTERRUPT, then wait for the interrupt stop.

import { seize, interrupt, waitPid, cont, describeStatus, detachQuiet } from './kernel/ptrace.js';
import { PTRACE_EVENT, PTRACE_O, SIG, KCMP } from './kernel/consts.js';
import { readStatus, pidExists, taskExists, listTasks, taskState, readChildren } from './kernel/proc.js';
import { WNOHANG } from './kernel/consts.js';
import { SysError, kcmpSame } from './kernel/sys.js';
import { CkptError, refused } from './errors.js';

const FREEZE_TIMEOUT_MS = 5000;
/** The ptrace options freezeThreads seizes every task of a dumped tree with (PTRACE_SETOPTIONS must give them again). */
export const SEIZED_OPTIONS = PTRACE_O.TRACESYSGOOD;
const pause = new Int32Array(new SharedArrayBuffer(4));

/** A stopped task; `stopSig` is the signal of the job-control stop it was in (0 if none). */
export interface Frozen { pid: number; stopSig: number }

export function checkTraceable(pid: number): void {
  if (!pidExists(pid)) throw new CkptError('failed', `pid ${pid} does not exist`);
  if (pid === process.pid) throw new CkptError('failed', 'ckpt cannot checkpoint itself');
  const st = readStatus(pid);
  const tracer = Number(st.get('TracerPid') ?? '0');
  if (tracer) throw refused(`pid ${pid} is being traced by pid ${tracer} (a debugger?); detach it first`);
  const state = (st.get('State') ?? '').charAt(0);
  if (state === 'Z') throw refused(`pid ${pid} is a zombie; there is nothing left to checkpoint`);
  if (st.get('Kthread') === '1' || !st.has('VmSize') && pid !== 1) throw refused(`pid ${pid} is a kernel thread`);
}

/** Seize and stop one task. Signals that arrive meanwhile are delivered as they would have been. */
/** PTRACE_SEIZE + PTRACE_INTERRUPT: the task will stop as soon as it can. */
function seizeAndInterrupt(pid: number, options: number): void {
  try {
    // TRACESYSGOOD: syscall stops (RemoteTask.callQuiet) are told apart from traps.
    seize(pid, options | PTRACE_O.TRACESYSGOOD);
  } catch (e) {
    if (e instanceof SysError && e.code === 'EPERM') throw refused(`pid ${pid} cannot be traced (EPERM): another tracer, or ckpt lacks the rights`);
    if (e instanceof SysError && e.code === 'ESRCH') throw new CkptError('failed', `pid ${pid} does not exist`);
    throw e;
  }
  try { interrupt(pid); } catch (e) { detachQuiet(pid); throw e; }
}

/**
 * Wait for a seized, interrupted task to stop. A task stops only on its way
 * back to user mode: one in uninterruptible sleep (state D) may never come,
 * so ckpt polls and gives up at the deadline. Signals that arrive meanwhile
 * are passed on as if ckpt were not there.
 */
function waitStopped(pid: number, deadline: number): Frozen {
  for (let spins = 0; ; spins++) {
    const st = waitPid(pid, WNOHANG);
    if (!st) {
      if (Date.now() > deadline) {
        throw refused(`pid ${pid} did not stop within ${FREEZE_TIMEOUT_MS / 1000} s (state ${taskState(pid) || '?'}: in uninterruptible sleep?)`);
      }
      if (spins > 20) Atomics.wait(pause, 0, 0, 0.2);
      continue;
    }
    if (!st.stopped) throw new CkptError('failed', `pid ${pid} ${describeStatus(st)} while being frozen`);
    if (st.event === PTRACE_EVENT.STOP) {
      const groupStopped = st.stopSig === SIG.STOP || st.stopSig === SIG.TSTP || st.stopSig === SIG.TTIN || st.stopSig === SIG.TTOU;
      // A SIGSTOP sent just before (it cannot be blocked) would stop the task
      // in the middle of ckpt's work: let it take effect first, as a group stop.
      if (!groupStopped && stopPending(pid)) { cont(pid); continue; }
      return { pid, stopSig: groupStopped ? st.stopSig : 0 };
    }
    cont(pid, st.event ? 0 : st.stopSig);
  }
}

/** Is a SIGSTOP queued for the task (its own queue or its process's)? */
function stopPending(tid: number): boolean {
  const st = readStatus(tid);
  const bit = (k: string) => ((BigInt('0x' + (st.get(k) ?? '0')) >> BigInt(SIG.STOP - 1)) & 1n) === 1n;
  return bit('SigPnd') || bit('ShdPnd');
}

/** Seize and stop one task. */
export function freezeTask(pid: number, options = 0): Frozen {
  seizeAndInterrupt(pid, options);
  try {
    return waitStopped(pid, Date.now() + FREEZE_TIMEOUT_MS);
  } catch (e) {
    detachQuiet(pid);
    throw e;
  }
}

/**
 * A parent in vfork waits, unstoppable, for the child that runs in its
 * memory: say so before trying to stop it. (A diagnosis only: every child's
 * sharing with its parent is checked once the child is frozen, checkSharing.)
 */
function refuseVforkParent(pid: number): void {
  for (const tid of listTasks(pid)) {
    for (const kid of readChildren(pid, tid)) {
      if (kcmpSame(kid, pid, KCMP.VM)) {
        throw refused(`pid ${kid} shares its memory with its parent ${pid} (vfork, or clone with CLONE_VM); such processes are not supported`);
      }
    }
  }
}

/**
 * Children that share per-process state with their parent (clone flags
 * without CLONE_THREAD) would come back with their own copies: refuse them.
 * Both must be frozen, so that the answer cannot change afterwards.
 */
export function checkSharing(kid: number, parent: number): void {
  for (const [type, what] of [[KCMP.VM, 'memory with its parent %P (vfork, or clone with CLONE_VM); such processes are not supported'],
    [KCMP.FILES, 'fd table (CLONE_FILES) with its parent %P; such processes are not supported yet'],
    [KCMP.FS, 'cwd and root (CLONE_FS) with its parent %P; such processes are not supported yet'],
    [KCMP.SIGHAND, 'signal handlers (CLONE_SIGHAND) with its parent %P; such processes are not supported yet']] as const) {
    if (kcmpSame(kid, parent, type)) {
      throw refused(`pid ${kid} shares its ${what.replace('%P', String(parent))}`);
    }
  }
}

/**
 * Threads share the fd table and cwd and root of their process, unless one
 * unshared them (unshare(CLONE_FILES), unshare(CLONE_FS)): such a thread
 * would come back with the process's. Checked once all are frozen.
 */
export function checkThreadSharing(pid: number, tids: number[]): void {
  for (const tid of tids) {
    if (tid === pid) continue;
    if (!kcmpSame(pid, tid, KCMP.FILES)) throw refused(`pid ${pid}: thread ${tid} has an fd table of its own (unshare(CLONE_FILES)); not supported yet`);
    if (!kcmpSame(pid, tid, KCMP.FS)) throw refused(`pid ${pid}: thread ${tid} has a cwd and root of its own (unshare(CLONE_FS)); not supported yet`);
  }
}

/**
 * Seize and stop every thread of a process. Threads created while ckpt
 * attaches are caught too: the thread list is read again until it holds no
 * thread that is not stopped yet. Returns the thread ids, leader first.
 */
export function freezeThreads(pid: number): { tids: number[]; stopSig: number } {
  refuseVforkParent(pid);
  const frozen: number[] = [];
  let stopSig = 0;
  try {
    for (;;) {
      const fresh = listTasks(pid).filter((t) => !frozen.includes(t));
      if (!fresh.length) break;
      // Interrupt them all first, so that they stop at the same time.
      const seized: number[] = [];
      for (const tid of fresh) {
        try {
          seizeAndInterrupt(tid, 0);
          seized.push(tid);
        } catch (e) {
          if (tid !== pid && !taskExists(pid, tid)) continue; // it ended meanwhile
          for (const t of seized) detachQuiet(t);
          throw e;
        }
      }
      const deadline = Date.now() + FREEZE_TIMEOUT_MS;
      for (let i = 0; i < seized.length; i++) {
        try {
          const f = waitStopped(seized[i], deadline);
          stopSig ||= f.stopSig;
          frozen.push(seized[i]);
        } catch (e) {
          if (seized[i] !== pid && !taskExists(pid, seized[i])) continue; // it ended meanwhile
          for (const t of seized.slice(i)) detachQuiet(t);
          throw e;
        }
      }
    }
  } catch (e) {
    for (const t of frozen) detachQuiet(t);
    throw e;
  }
  frozen.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
  return { tids: frozen, stopSig };
}

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
 * Children that share their memory or signal handlers with their parent
 * (clone flags without CLONE_THREAD) would come back with their own copies:
 * refuse them. (Sharing an fd table or cwd and root is recorded: see
 * tableSharing.) Both must be frozen, so that the answer cannot change afterwards.
 */
export function checkSharing(kid: number, parent: number): void {
  for (const [type, what] of [[KCMP.VM, 'memory with its parent %P (vfork, or clone with CLONE_VM); such processes are not supported'],
    [KCMP.SIGHAND, 'signal handlers (CLONE_SIGHAND) with its parent %P; such processes are not supported yet']] as const) {
    if (kcmpSame(kid, parent, type)) {
      throw refused(`pid ${kid} shares its ${what.replace('%P', String(parent))}`);
    }
  }
}

/** How a process or thread holds an fd table (or cwd, root and umask). */
export interface Holding {
  /** A process: the process whose table it shares (its parent, or the one its parent shares); absent: its own. */
  of?: number;
  /** Threads, by TID, whose table is not their process's: 'own', or the earlier thread of the process whose table they share. */
  threads: Map<number, 'own' | number>;
}
export interface Sharing { files: Map<number, Holding>; fs: Map<number, Holding> }

/**
 * Which tasks of the frozen tree share an fd table (CLONE_FILES) and which
 * share cwd, root and umask (CLONE_FS), found with kcmp once every task is
 * frozen (so a child made while its parent was being frozen is checked like
 * every other). Restore recreates what it can make by cloning: a process
 * sharing its parent's (cloned with CLONE_FILES/CLONE_FS), a thread with one
 * of its own (unshare in a thread) or sharing that of an earlier thread of
 * its process. Everything else is refused: sharing with a process outside
 * the tree, or with a process of the tree that is not the parent.
 */
export function tableSharing(procs: Array<{ pid: number; ppid: number; tids: number[] }>, root: number): Sharing {
  const files = sharingOf(procs, root, KCMP.FILES, 'fd table (CLONE_FILES)');
  const fs = sharingOf(procs, root, KCMP.FS, 'cwd, root and umask (CLONE_FS)');
  // A thread is cloned from the thread whose table (or else fs) it shares, or from its leader (threadCloner):
  // what it shares of the other must then be that thread's too.
  for (const p of procs) {
    const ft = files.get(p.pid)!.threads;
    const st = fs.get(p.pid)!.threads;
    for (const tid of p.tids) {
      const c = threadCloner(ft.get(tid), st.get(tid));
      if (c === null) continue;
      for (const [m, what] of [[ft, 'fd table'], [st, 'cwd, root and umask']] as const) {
        const mine = m.get(tid);
        if (mine === undefined ? m.get(c) !== undefined : mine !== 'own' && mine !== c) {
          throw refused(`pid ${p.pid}: thread ${tid} shares its ${what} with another thread than the one whose fd table or cwd it shares; such threads are not supported`);
        }
      }
    }
  }
  return { files, fs };
}

/** The thread a thread is cloned from on restore: the one whose fd table it shares, else whose fs; null: its leader. */
export function threadCloner(files: 'own' | number | undefined, fs: 'own' | number | undefined): number | null {
  return typeof files === 'number' ? files : typeof fs === 'number' ? fs : null;
}

function sharingOf(procs: Array<{ pid: number; ppid: number; tids: number[] }>, root: number, type: typeof KCMP.FILES | typeof KCMP.FS, what: string): Map<number, Holding> {
  const tasks = procs.flatMap((p) => p.tids.map((tid) => ({ tid, proc: p })));
  /** The first task (tree order: processes in order, each leader first) with the same object as task i. */
  const key = new Map<number, number>();
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  tasks.forEach(({ tid, proc }, i) => {
    // The likely one first (the process's leader for a thread, the parent for a process), then all earlier ones.
    const likely = tid !== proc.pid ? proc.pid : proc.ppid;
    if (byPid.has(likely) && likely !== tid && key.has(likely) && kcmpSame(likely, tid, type)) { key.set(tid, key.get(likely)!); return; }
    const same = tasks.slice(0, i).find((t) => kcmpSame(t.tid, tid, type));
    key.set(tid, same ? key.get(same.tid)! : tid);
  });
  const out = new Map<number, Holding>();
  for (const p of procs) {
    const h: Holding = { threads: new Map() };
    out.set(p.pid, h);
    const k = key.get(p.pid)!;
    if (p.pid === root) {
      if (byPid.has(p.ppid) || !kcmpSame(p.pid, p.ppid, type)) { /* its own */ } else {
        throw refused(`pid ${p.pid} shares its ${what} with its parent ${p.ppid}, outside the tree; such processes are not supported`);
      }
    } else if (k !== p.pid) {
      const parent = byPid.get(p.ppid);
      if (!parent || key.get(parent.pid) !== k) {
        const other = tasks.find((t) => t.tid === k)!;
        throw refused(`pid ${p.pid} shares its ${what} with ${other.tid === other.proc.pid ? `pid ${k}` : `thread ${k} of pid ${other.proc.pid}`}, not with its parent ${p.ppid}; such processes are not supported`);
      }
      h.of = k;
    }
    for (const tid of p.tids) {
      if (tid === p.pid) continue;
      const tk = key.get(tid)!;
      if (tk === k) continue;
      if (tk === tid) { h.threads.set(tid, 'own'); continue; }
      if (!p.tids.includes(tk)) throw refused(`pid ${p.pid}: thread ${tid} shares its ${what} with pid ${tk}, another process; such threads are not supported`);
      h.threads.set(tid, tk);
    }
  }
  return out;
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

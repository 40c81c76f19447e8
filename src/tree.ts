// The process tree under a PID: found and frozen top-down, so that a process
// is stopped before its children are listed and none can fork behind ckpt's
// back. Children that end meanwhile are zombies (their parent is stopped and
// cannot reap them) and are recorded as such.

import { freezeThreads, checkSharing } from './freeze.js';
import { detachQuiet } from './kernel/ptrace.js';
import { listTasks, readChildren, readStat, pidExists } from './kernel/proc.js';

export interface TreeProc {
  pid: number;
  ppid: number;
  tids: number[];
  /** The signal of the job-control stop it is in (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), or 0. */
  stopSig: number;
  /** Set for a zombie: its wait status, group and session. */
  zombie?: { status: number; pgid: number; sid: number; exitSignal: number };
}

function zombieInfo(pid: number): TreeProc['zombie'] | undefined {
  let st: string[];
  try { st = readStat(pid); } catch { return undefined; }
  if (st[3] !== 'Z') return undefined;
  return { status: Number(st[52] ?? '0'), pgid: Number(st[5]), sid: Number(st[6]), exitSignal: Number(st[38]) };
}

export function freezeTree(root: number): TreeProc[] {
  const out: TreeProc[] = [];
  try {
    const queue: Array<{ pid: number; ppid: number }> = [{ pid: root, ppid: Number(readStat(root)[4]) }];
    while (queue.length) {
      const { pid, ppid } = queue.shift()!;
      const z = zombieInfo(pid);
      if (z) { out.push({ pid, ppid, tids: [], stopSig: 0, zombie: z }); continue; }
      let frozen: ReturnType<typeof freezeThreads>;
      try {
        frozen = freezeThreads(pid);
      } catch (e) {
        const z2 = pid !== root ? zombieInfo(pid) : undefined; // it ended while we came to it
        if (z2) { out.push({ pid, ppid, tids: [], stopSig: 0, zombie: z2 }); continue; }
        if (pid !== root && !pidExists(pid)) continue;
        throw e;
      }
      out.push({ pid, ppid, tids: frozen.tids, stopSig: frozen.stopSig });
      // Checked once both are frozen: a child found while its parent was being frozen is checked like every other.
      if (pid !== root) checkSharing(pid, ppid);

      const kids = new Set(listTasks(pid).flatMap((tid) => readChildren(pid, tid)));
      for (const k of [...kids].sort((a, b) => a - b)) queue.push({ pid: k, ppid: pid });
    }
  } catch (e) {
    releaseTree(out);
    throw e;
  }
  return out;
}

export function releaseTree(procs: TreeProc[], signals: Map<number, number> = new Map()): void {
  for (const p of procs) for (const tid of p.tids) detachQuiet(tid, signals.get(tid) ?? 0);
}

// The husk: a throwaway process whose address space is turned into the
// root's. Its memory is built, then the root's task is cloned from it with
// the recorded PID (clone3 set_tid), sharing that memory (CLONE_VM), and the
// husk goes.

import fs from 'node:fs';
import { restoreMm } from '../objects/process.js';
import { findHole, areaRanges, clearAndMoveSpecials, restoreAreas, copyInDeferred } from '../objects/memory/index.js';
import { posixSpawn, kill } from '../kernel/sys.js';
import { freezeTask } from '../freeze.js';
import { RemoteTask, findSyscallGadget } from '../kernel/remote.js';
import { readMaps } from '../kernel/proc.js';
import { setSigmask, getRseqConfig, waitPid, describeStatus } from '../kernel/ptrace.js';
import { CALL_SIGMASK, SIG, PTRACE_O, PTRACE_EVENT, CLONE, E } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { CkptError, conflict } from '../errors.js';
import { checkpointYield } from '../cancel.js';
import { log } from '../log.js';
import { ProcessImage } from '../objects/process.js';
import { RestoreCtx, SCRATCH_SIZE } from './context.js';

const HUSKS = ['/usr/bin/sleep', '/bin/sleep'];

/** Kill a task ckpt traces and is the parent of, and reap it. */
export function killAndReap(pid: number): void {
  kill(pid, SIG.KILL);
  try {
    for (;;) {
      const st = waitPid(pid);
      if (!st) break;
      if (!st.stopped) {
        // As tracer we may see the death before it becomes reapable; reap as parent too.
        try { waitPid(pid); } catch { /* already reaped */ }
        break;
      }
    }
  } catch { /* not ours to wait for */ }
}

/** clone3 in `parent` with a recorded PID/TID; waits for the new task's first stop. */
export function cloneIn(parent: RemoteTask, flags: number, exitSignal: number, pid: number, what: string, made: number[]): number {
  const r = remote.tryClone3(parent, { flags, exitSignal, setTid: [pid] });
  if (r === -E.EEXIST) throw conflict(`${what} ${pid} is already in use; it must get its number back`);
  if (r < 0) throw new CkptError('failed', `clone3 for ${what} ${pid} failed: errno ${-r}`);
  const task = r;
  made.push(task);
  for (;;) {
    const st = waitPid(task)!;
    if (st.stopped && st.event === PTRACE_EVENT.STOP) return task;
    if (!st.stopped) throw new CkptError('failed', `new task ${task} ${describeStatus(st)}`);
  }
}

/** The ptrace options of the husk, which every task it makes inherits (freezeTask adds TRACESYSGOOD). */
export const HUSK_OPTIONS = PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.TRACEVFORK | PTRACE_O.EXITKILL;

/** The husk, traced, with the restore socket at its own number; `made` gets its PID at once. */
function spawnHusk(channelFd: number, made: { husk: number }): number {
  const husk = HUSKS.find((h) => fs.existsSync(h));
  if (!husk) throw new CkptError('failed', `no husk program found (tried ${HUSKS.join(', ')})`);
  made.husk = posixSpawn(husk, ['ckpt-husk', '1000000'], { sigmask: CALL_SIGMASK, keepFds: [channelFd] });
  freezeTask(made.husk, HUSK_OPTIONS);
  return made.husk;
}

/**
 * Build the root's address space in a husk and clone the root's task from
 * it. Returns the root's remote-call context; the husk is gone by then.
 * `made.husk` is the husk while it lives (for the caller's cleanup).
 */
export async function buildRoot(ctx: RestoreCtx, p: ProcessImage, made: { husk: number }): Promise<RemoteTask> {
  const { procs, pool } = ctx;
  ctx.step = 'husk';
  const husk = spawnHusk(ctx.channel.remote, made);
  const huskMaps = readMaps(husk);
  const vdso = huskMaps.find((mm) => mm.path === '[vdso]');
  if (!vdso) throw new CkptError('failed', 'the husk has no vDSO');
  const gadget = findSyscallGadget(husk, vdso.start, vdso.end);
  // The scratch area is inherited by every process of the tree: it must fit in all of them.
  const hole = findHole([...procs.flatMap((q) => areaRanges(q.memory)), ...huskMaps.map((mm) => ({ start: mm.start, end: mm.end }))], SCRATCH_SIZE);
  ctx.scratch = { start: hole, end: hole + BigInt(SCRATCH_SIZE) };
  const hrt = new RemoteTask(husk, gadget);
  hrt.mapScratch(SCRATCH_SIZE, hole);
  setSigmask(husk, CALL_SIGMASK);
  ctx.lap('husk');

  // Memory, built in the husk.
  ctx.step = 'memory';
  const rs = getRseqConfig(husk);
  if (rs.size) remote.rseqUnregister(hrt, rs.address, rs.size, rs.signature);
  clearAndMoveSpecials(hrt, p.memory, ctx.scratch, gadget - vdso.start);
  const deferred = restoreAreas(hrt, p.memory, ctx.pages, pool !== null, ctx.shm, p.pid);
  restoreMm(hrt, p, ctx.inodes);
  ctx.lap('memory');
  await checkpointYield('restore:memory');
  if (pool) {
    // Pages of anonymous areas are copied in by ckpt (UFFDIO_COPY: no
    // zeroing), on this thread and a worker at once, and the whole page file
    // is checked on the way. A bad checksum ends the restore here, before
    // any process of the image exists.
    ctx.step = 'pages';
    const results = await copyInDeferred(hrt, deferred);
    log.debug(`pages loaded: ${results.map((r) => `${(r.bytes / 1048576).toFixed(0)} MiB copied in ${r.ms.toFixed(0)} ms`).join(', ')}`);
    ctx.lap('pages');
  }

  // The root's task: cloned from the husk with its recorded PID, sharing
  // the address space just built (CLONE_VM), as ckpt's child (CLONE_PARENT,
  // whose exit signal must be 0: it takes the husk's SIGCHLD). Then the husk
  // goes and the task owns the memory alone.
  ctx.step = 'clone';
  const task = cloneIn(hrt, CLONE.PARENT | CLONE.VM, 0, p.pid, 'PID', ctx.tasksMade);
  const rt = hrt.taskSharingMemory(task); // (the scratch area too)
  hrt.close();
  killAndReap(husk);
  made.husk = -1;
  ctx.lap('clone');
  return rt;
}

// The tasks phase: every process, thread and zombie of the tree exists, with
// its PID, memory, session and group. The root comes from the husk; each
// other process is forked from its restored parent (keeping the memory they
// share copy-on-write) and gets its own memory; zombies are made by their
// parents; a session or group whose leader has exited is led by a helper
// with that number while its members join it.

import { ProcessImage, restoreMm } from '../objects/process.js';
import { clearAndMoveSpecials, restoreAreas, copyInDeferred } from '../objects/memory/index.js';
import { setRlimit } from '../kernel/sys.js';
import { RemoteTask } from '../kernel/remote.js';
import { readMaps, readStat } from '../kernel/proc.js';
import { setSigmask, getRseqConfig } from '../kernel/ptrace.js';
import { CALL_SIGMASK, BLOCKABLE_SIGNALS, SIG, CLONE, WALL, RLIMIT } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { pendingSigno } from '../objects/signals.js';
import { badImage } from '../errors.js';
import { log } from '../log.js';
import { cloneIn } from './husk.js';
import { threadCloner } from '../freeze.js';
import { Built, RestoreCtx } from './context.js';

const CHILD_UFFD_MIN = 16 << 20;

interface Helper { rt: RemoteTask; parent: Built; kind: 'session' | 'group' }

/** Make every task of the tree, from the root's (made from the husk). Returns the processes in the manifest's order. */
export async function buildTree(ctx: RestoreCtx, root: ProcessImage, rootRt: RemoteTask): Promise<Built[]> {
  const { img, procs } = ctx;
  const m = img.manifest;
  const inTree = new Set(m.processes.map((x) => x.pid));
  const built: Built[] = [makeTask(ctx, root, rootRt, true)];
  const helpers = new Map<number, Helper>();
  for (const entry of m.processes) {
    if (entry.pid === root.pid) continue;
    const parent = built.find((b) => b.p.pid === entry.ppid);
    if (!parent) throw badImage(`image file manifest.json: process ${entry.pid} comes before its parent ${entry.ppid}`);
    ctx.step = `fork ${entry.pid}`;
    // A process (or zombie) in a session whose leader is gone is made by a
    // helper that leads a new session with that number (CLONE_PARENT keeps
    // the real parent); one in a group whose leader is gone joins a group helper.
    const { sid, pgid } = entry.zombie ?? procs.find((x) => x.pid === entry.pid)!;
    const helper = (num: number, kind: 'session' | 'group') => {
      const h = helpers.get(num) ?? makeHelper(ctx, parent, num, kind);
      helpers.set(num, h);
      return h;
    };
    const sessionHelper = sid !== entry.pid && sid !== parent.p.sid ? helper(sid, 'session') : null;
    if (entry.zombie) {
      if (!sessionHelper && pgid !== entry.pid && pgid !== parent.p.pgid && !inTree.has(pgid)) helper(pgid, 'group');
      makeZombie(ctx, sessionHelper?.rt ?? parent.rt, entry.pid, entry.zombie, sessionHelper !== null, parent.rt);
      continue;
    }
    const q = procs.find((x) => x.pid === entry.pid)!;
    // (a process sharing its parent's fd table or cwd and root is cloned sharing them: checkSharingRefs)
    const shares = (q.filesOf !== undefined ? CLONE.FILES : 0) | (q.fsOf !== undefined ? CLONE.FS : 0);
    const cpid = sessionHelper
      ? cloneIn(sessionHelper.rt, CLONE.PARENT, 0, q.pid, 'PID', ctx.tasksMade)
      : cloneIn(parent.rt, shares, q.misc.exitSignal ?? SIG.CHLD, q.pid, 'PID', ctx.tasksMade);
    setSigmask(cpid, CALL_SIGMASK); // (its parent may have had SIGTRAP blocked, see makeTask)
    const crt = parent.rt.taskWithCopy(cpid);
    await childMemory(ctx, q, crt);
    built.push(makeTask(ctx, q, crt, false));
  }
  // Groups led by another process of the tree are joined once all exist; a
  // group whose leader is gone gets a helper with that number to lead it.
  for (const b of built) {
    const parentPgid = built.find((x) => x.p.pid === b.p.ppid)?.p.pgid;
    if (b.p.pid === root.pid || b.p.pgid === b.p.pid || b.p.pgid === parentPgid || b.p.pgid === Number(readStat(b.p.pid)[5])) continue;
    if (!built.some((x) => x.p.pid === b.p.pgid) && !helpers.has(b.p.pgid)) {
      const parent = built.find((x) => x.p.pid === b.p.ppid)!;
      helpers.set(b.p.pgid, makeHelper(ctx, parent, b.p.pgid, 'group'));
    }
    remote.setpgid(b.rt, 0, b.p.pgid);
  }
  // The helpers go: each ends and its parent reaps it.
  for (const h of helpers.values()) endHelper(h);
  return built;
}

/** A forked child's own memory: what it does not share with its parent is rebuilt from its page file. */
async function childMemory(ctx: RestoreCtx, q: ProcessImage, crt: RemoteTask): Promise<void> {
  const { pool } = ctx;
  ctx.step = `memory of ${q.pid}`;
  const crs = getRseqConfig(q.pid); // a fork keeps its parent's registration
  if (crs.size) remote.rseqUnregister(crt, crs.address, crs.size, crs.signature);
  const vd = readMaps(q.pid).find((mm) => mm.path === '[vdso]')!;
  clearAndMoveSpecials(crt, q.memory, ctx.scratch, crt.gadget - vd.start);
  // A child with much memory of its own gets it copied in like the root's (UFFDIO_COPY, two threads).
  const cdeferred = restoreAreas(crt, q.memory, ctx.pages, pool !== null && q.memory.pageBytes >= CHILD_UFFD_MIN, ctx.shm, q.pid);
  if (pool && cdeferred.segs.length) {
    await copyInDeferred(crt, cdeferred);
    log.debug(`pid ${q.pid}: ${(cdeferred.bytes / 1048576).toFixed(0)} MiB of pages copied in`);
  }
  restoreMm(crt, q, ctx.inodes);
}

/** A process whose memory is in place: its session or group, and its threads. */
function makeTask(ctx: RestoreCtx, p: ProcessImage, rt: RemoteTask, isRoot: boolean): Built {
  const leader = p.threads.find((th) => th.tid === p.pid) ?? p.threads[0];
  // A SIGTRAP the image has pending would merge with the next single-step
  // trap and be lost: from here on such a process runs its calls through
  // syscall stops, with SIGTRAP blocked (its threads are cloned with this mask).
  const isTrap = (b64: string) => pendingSigno(b64) === SIG.TRAP;
  if (p.pendingShared.some(isTrap) || p.threads.some((th) => th.pending.some(isTrap))) {
    rt.quiet = true;
    setSigmask(rt.pid, BLOCKABLE_SIGNALS);
  }
  ctx.step = `session of ${p.pid}`;
  if (isRoot) {
    // A shell job stays in the caller's session, whose terminal it is given;
    // otherwise a session leader gets its session back.
    if (p.sid === p.pid && !ctx.opts.shellJob) remote.setsid(rt);
    else if (p.pgid === p.pid) remote.setpgid(rt, 0, 0);
  } else if (p.sid === p.pid) {
    remote.setsid(rt);
  } else if (p.pgid === p.pid) {
    remote.setpgid(rt, 0, 0);
  }
  // The other threads: cloned with their recorded TIDs, sharing the
  // process's memory and signal handlers, and its fd table and fs unless
  // they had their own (a copy, to be set) or an earlier thread's (cloned from that one).
  ctx.step = `threads of ${p.pid}`;
  const threads: Built['threads'] = [{ rt, t: leader }];
  for (const th of p.threads) {
    if (th === leader) continue;
    const clonerTid = threadCloner(th.fds ? 'own' : th.filesOf, th.fs ? 'own' : th.fsOf);
    const from = clonerTid === null ? leader : p.threads.find((x) => x.tid === clonerTid)!;
    const fromRt = threads.find((x) => x.t === from)!.rt;
    // What the cloner holds is shared when the thread holds the same: the cloner's own, or (both) the process's.
    const same = (mine: unknown, of: number | undefined, fromOwn: unknown, fromOf: number | undefined) =>
      (of !== undefined && of === from.tid) || (mine === undefined && of === undefined && fromOwn === undefined && fromOf === undefined);
    const flags = (same(th.fds, th.filesOf, from.fds, from.filesOf) ? CLONE.FILES : 0) | (same(th.fs, th.fsOf, from.fs, from.fsOf) ? CLONE.FS : 0);
    const tid = cloneIn(fromRt, CLONE.VM | flags | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM, 0, th.tid, `TID (a thread of pid ${p.pid})`, ctx.tasksMade);
    const trt = rt.taskSharingMemory(tid); // (quiet like the leader)
    threads.push({ rt: trt, t: th });
  }
  return { p, rt, threads };
}

/**
 * A helper with the number of a session or group whose leader has exited:
 * forked from `parent`, it starts the session (setsid) or group (setpgid) that
 * members then join; it ends once they have. A group helper has no exit
 * signal; a session helper must have SIGCHLD, which the members it creates
 * with CLONE_PARENT take as theirs.
 */
function makeHelper(ctx: RestoreCtx, parent: Built, num: number, kind: 'session' | 'group'): Helper {
  const hpid = cloneIn(parent.rt, 0, kind === 'session' ? SIG.CHLD : 0, num, `PID (to lead ${kind} ${num})`, ctx.tasksMade);
  const rt = parent.rt.taskWithCopy(hpid);
  if (kind === 'session') remote.setsid(rt);
  else remote.setpgid(rt, 0, 0);
  log.debug(`helper ${hpid} leads ${kind} ${num}`);
  return { rt, parent, kind };
}

function endHelper(h: Helper): void {
  const hpid = h.rt.pid;
  h.rt.exitNow(0);
  h.rt.close();
  remote.wait4(h.parent.rt, hpid, WALL, `helper ${hpid}`);
}

/**
 * A zombie: forked from its parent with its PID, put in its group or
 * session, then ended with its recorded status. Its parent, stopped, does not
 * reap it: it stays a zombie until the parent waits for it, as before.
 */
function makeZombie(ctx: RestoreCtx, maker: RemoteTask, pid: number, z: { status: number; pgid: number; sid: number; exitSignal: number },
  viaHelper: boolean, parent: RemoteTask): void {
  const made = ctx.tasksMade;
  // Made by a session helper, it is created with CLONE_PARENT: its parent is the helper's, and its exit signal the helper's (SIGCHLD).
  const zpid = viaHelper ? cloneIn(maker, CLONE.PARENT, 0, pid, 'PID (a zombie)', made) : cloneIn(maker, 0, z.exitSignal || SIG.CHLD, pid, 'PID (a zombie)', made);
  const zrt = parent.taskWithCopy(zpid);
  if (z.sid === pid) remote.setsid(zrt);
  else if (z.pgid === pid) remote.setpgid(zrt, 0, 0);
  else if (z.pgid !== Number(readStat(zpid)[5])) remote.setpgid(zrt, 0, z.pgid);
  const sig = z.status & 0x7f;
  if (sig === 0) {
    zrt.exitNow((z.status >> 8) & 0xff);
  } else {
    // Killed by a signal: no core file, the default action, nothing blocked, then the signal.
    setRlimit(zpid, RLIMIT.CORE, 0n, 0n, 'RLIMIT_CORE');
    zrt.killSelfWith(sig);
  }
  zrt.close();
}

/**
 * What the process documents say of shared fd tables and fs must be what
 * restore can make: a process sharing another's is forked from its parent
 * sharing them, so the one it names is its parent or the one its parent
 * shares, which holds its own; and it is forked by its parent itself (no
 * session helper). (Threads are checked by the schema.)
 */
export function checkSharingRefs(procs: ProcessImage[]): void {
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  for (const q of procs) {
    for (const [of, name] of [[q.filesOf, 'filesOf'], [q.fsOf, 'fsOf']] as const) {
      if (of === undefined) continue;
      const owner = byPid.get(of);
      const parent = byPid.get(q.ppid);
      const parentOf = name === 'filesOf' ? parent?.filesOf : parent?.fsOf;
      const ownerOf = name === 'filesOf' ? owner?.filesOf : owner?.fsOf;
      if (!owner || ownerOf !== undefined || !parent || (parent.pid !== of && parentOf !== of)) {
        throw badImage(`image file process-${q.pid}.json: field ${name}: ${of} is neither its parent nor the process whose ${name === 'filesOf' ? 'fd table' : 'cwd and root'} its parent shares`);
      }
      if (q.sid !== q.pid && q.sid !== parent.sid) throw badImage(`image file process-${q.pid}.json: field ${name}: a process in a session its parent is not in cannot share its parent's ${name === 'filesOf' ? 'fd table' : 'cwd and root'}`);
    }
  }
}

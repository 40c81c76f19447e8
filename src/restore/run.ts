// The run phase: the tree is let go. A stopped child of a process of the
// tree is let go first and stops again by its signal, so that its parent,
// still held, can take back the report of the stop if it had taken it before
// the dump; then every other process is finished and released, and without
// --restore-detached ckpt waits for the root to end.

import fs from 'node:fs';
import { kill } from '../kernel/sys.js';
import { readStat, taskState } from '../kernel/proc.js';
import { detach, waitNoHang } from '../kernel/ptrace.js';
import { SIG, WAIT, signalName } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { CkptError } from '../errors.js';
import { checkpointYield, wasInterrupted } from '../cancel.js';
import { log } from '../log.js';
import { finishProcess, resetChld } from './process.js';
import { Built, RestoreCtx } from './context.js';

/** Finish every process and let the tree go. Returns the root's PID. */
export async function release(ctx: RestoreCtx, built: Built[]): Promise<number> {
  const root = built[0];
  ctx.step = 'limits and credentials';
  const byPid = new Map(built.map((b) => [b.p.pid, b]));
  // Deepest first: a stopped child's parent is still held when the child is done, even if it is stopped too.
  const stoppedKids = built.filter((b) => b.p.stopped && byPid.has(b.p.ppid)).reverse();
  for (const b of stoppedKids) {
    finishProcess(ctx, b, false);
    kill(b.p.pid, stopSignalFor(b, byPid));
    for (const th of b.threads) detach(th.rt.pid, th.rt.interceptedSignal);
    await waitStopped(b);
    const parent = byPid.get(b.p.ppid)!;
    if (b.p.stopReported) {
      const got = remote.wait4(parent.rt, b.p.pid, WAIT.UNTRACED | WAIT.NOHANG, `${b.p.pid}, WUNTRACED`);
      if (got !== b.p.pid) throw new CkptError('failed', `pid ${b.p.ppid}: the report that its child ${b.p.pid} stopped could not be taken back`);
    }
    resetChld(parent);
  }
  for (const b of built) if (!stoppedKids.includes(b)) finishProcess(ctx, b, b === root);
  ctx.lap('state');
  await checkpointYield();

  if (ctx.opts.pidfile) fs.writeFileSync(ctx.opts.pidfile, `${root.p.pid}\n`);
  // A stopped process gets its stop signal queued: it stops again before running any of its code.
  for (const b of built) if (b.p.stopped && !stoppedKids.includes(b)) kill(b.p.pid, stopSignalFor(b, byPid));
  for (const b of built) if (!stoppedKids.includes(b)) for (const th of b.threads) detach(th.rt.pid, th.rt.interceptedSignal);
  log.info(`pid ${root.p.pid} restored and running${built.length > 1 ? `, with ${built.length - 1} descendants` : ''}`);
  return root.p.pid;
}

/**
 * The signal that stops a restored process again: the one that stopped it.
 * SIGTSTP, SIGTTIN and SIGTTOU are discarded for a process group that is
 * orphaned (no member has a parent in another group of its session); there
 * only SIGSTOP stops, and the stop is reported as such.
 */
function stopSignalFor(b: Built, byPid: Map<number, Built>): number {
  const sig = b.p.stopSignal ?? SIG.STOP;
  if (sig === SIG.STOP) return sig;
  // (as the processes are now: the root may have joined ckpt's session and group)
  const now = (pid: number) => { const st = readStat(pid); return { ppid: Number(st[4]), pgid: Number(st[5]), sid: Number(st[6]) }; };
  let anchored = false;
  try {
    const me = now(b.p.pid);
    anchored = [...byPid.keys()].map((pid) => ({ pid, ...now(pid) })).filter((m) => m.pgid === me.pgid).some((m) => {
      const parent = now(m.ppid);
      return parent.pgid !== m.pgid && parent.sid === m.sid;
    });
  } catch { anchored = false; }
  if (anchored) return sig;
  log.warn(`pid ${b.p.pid} was stopped by ${signalName(sig)}, but its process group is orphaned here: it is stopped by SIGSTOP instead`);
  return SIG.STOP;
}

/** Wait (up to 5 s) until every thread of a released process is in its job-control stop. */
async function waitStopped(b: Built): Promise<void> {
  const end = Date.now() + 5000;
  for (;;) {
    if (b.threads.every((th) => taskState(th.rt.pid) === 'T')) return;
    if (Date.now() > end) throw new CkptError('failed', `pid ${b.p.pid} did not stop again by ${signalName(b.p.stopSignal ?? SIG.STOP)}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Wait for the restored process (ckpt is its parent), passing on SIGINT/SIGTERM. */
export async function waitForExit(pid: number): Promise<number> {
  let forwarded: string | null = null;
  for (;;) {
    const st = waitNoHang(pid);
    if (st && st.exited) return st.exitCode;
    if (st && st.signaled) {
      log.info(`pid ${pid} was killed by ${signalName(st.termSig)}`);
      return 128 + st.termSig;
    }
    const sig = wasInterrupted();
    if (sig && sig !== forwarded) {
      forwarded = sig;
      kill(pid, sig === 'SIGINT' ? SIG.INT : sig === 'SIGHUP' ? SIG.HUP : SIG.TERM);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

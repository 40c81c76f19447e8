// The process phase: once every task exists and holds its files, each
// process gets its identity, signal handlers, and each thread its own state;
// then, last, what takes away rights restore needs (limits, credentials) and
// the registers.

import { restoreIdentityCalls, restoreMiscLast, restoreRlimits, restoreRootAndCwd, restoreMmSettings } from '../objects/process.js';
import { restoreActions, queueSignals, pendingSigno } from '../objects/signals.js';
import { restoreThreadCalls, finalRegs, setThreadState } from '../objects/thread.js';
import { restoreCreds } from '../objects/creds.js';
import { sealAreas } from '../objects/memory/index.js';
import { restoreSched, restoreOomScoreAdj } from '../objects/sched.js';
import { RemoteTask } from '../kernel/remote.js';
import { SIG, PTRACE_O } from '../kernel/consts.js';
import { xsaveStateBv } from '../kernel/structs.js';
import * as remote from '../kernel/rsys.js';
import { log } from '../log.js';
import { Built, RestoreCtx } from './context.js';
import { terminalFd } from '../objects/files.js';
import { restoreTimers, withoutTimerSignals } from '../objects/timers.js';
import { restoreSeccomp, restoreStrict } from '../objects/seccomp.js';
import { HUSK_OPTIONS } from './husk.js';

/** Identity, signals and thread state of a process whose tasks and files are in place. */
export function restoreProcess(ctx: RestoreCtx, b: Built, isRoot: boolean): void {
  const { p, rt } = b;
  ctx.step = `identity of ${p.pid}`;
  restoreMmSettings(rt, p);
  if (isRoot && ctx.opts.shellJob && p.foreground && p.pgid === p.pid) {
    // It was in the foreground of its terminal: make its group the foreground of the caller's.
    const tty = terminalFd(ctx.files, p.fds);
    if (tty) remote.ioctlTiocspgrp(rt, tty.fd, p.pid);
  }
  restoreIdentityCalls(rt, p);
  ctx.step = `signals of ${p.pid}`;
  restoreActions(rt, p.sigactions);
  // (before the pending signals: a timer whose signal was pending queues it itself)
  if (p.timers?.length) ctx.step = `POSIX timers of ${p.pid}`;
  restoreTimers(rt, b.threads.map((x) => x.rt), p.timers);
  ctx.step = `threads of ${p.pid}`;
  for (const { rt: trt, t: th } of b.threads) {
    if (th.comm !== undefined && trt !== rt) remote.prctlSetName(trt, th.comm);
    if (th.fs) remote.umask(trt, th.fs.umask); // (a thread with cwd, root and umask of its own)
    prepareXstate(trt, th);
    restoreThreadCalls(trt, { ...th, pending: withoutTimerSignals(th.pending, p.timers, th.tid) }, p.pid);
  }
  queueSignals(rt, p.pid, null, withoutTimerSignals(p.pendingShared, p.timers, null));
}

/** Take every SIGCHLD off a process's queues, then queue again those the image had. */
export function resetChld(b: Built): void {
  const { p, rt } = b;
  for (const th of b.threads) th.rt.takeSignal(SIG.CHLD);
  const isChld = (b64: string) => pendingSigno(b64) === SIG.CHLD;
  queueSignals(rt, p.pid, null, p.pendingShared.filter(isChld));
  for (const th of b.threads) queueSignals(th.rt, p.pid, th.t.tid, th.t.pending.filter(isChld));
}

/** Limits, credentials, seals and registers: the last of a process, after which it is only let go. */
export function finishProcess(ctx: RestoreCtx, b: Built, isRoot: boolean): void {
  const { p, rt, threads } = b;
  // Every trap of a remote call resets an ignored SIGTRAP to SIG_DFL: from here on the calls make none,
  // and the last one sets SIGTRAP's action again.
  const trap = p.sigactions.find((a) => a.sig === SIG.TRAP && a.handler === '0x1');
  if (trap) for (const th of threads) th.rt.quiet = true;
  sealAreas(rt, p.memory);
  // (cwd and root shared with another process are that one's to set; a thread's own are set in it)
  if (p.fsOf === undefined) restoreRootAndCwd(rt, p, ctx.inodes);
  for (const { rt: trt, t: th } of threads) if (th.fs) restoreRootAndCwd(trt, th.fs);
  restoreRlimits(p.pid, p.rlimits);
  // seccomp filters, while ckpt is still root (installing one needs CAP_SYS_ADMIN or no_new_privs);
  // they are suspended for ckpt's own calls until the tree is let go.
  restoreSeccomp(threads.map((x) => x.rt), p.seccomp, HUSK_OPTIONS | PTRACE_O.TRACESYSGOOD, `pid ${p.pid}`);
  // Credentials belong to each thread.
  for (const { rt: trt } of threads) restoreCreds(trt, p.creds);
  restoreMiscLast(rt, p, !(isRoot && ctx.opts.detached));
  if (p.misc.oomScoreAdj !== undefined) restoreOomScoreAdj(p.pid, p.misc.oomScoreAdj);
  for (const { rt: trt, t: th } of threads) {
    if (th.sched) restoreSched(trt.pid, th.sched);
    if (trt !== rt && p.misc.noNewPrivs) remote.prctlSetNoNewPrivs(trt);
  }
  if (trap) restoreActions(rt, [trap], [SIG.TRAP]);
  // A POSIX timer whose signal is ignored: its expiries while ckpt held the process were queued (a
  // traced task's ignored signals are), where the kernel would have parked the timer. Setting SIG_IGN
  // again parks it, without delivering the queued signal (which would reset its overrun count).
  const ignoredTimerSigs = [...new Set((p.timers ?? []).map((t) => t.signo))].filter((sig) => sig !== SIG.TRAP && p.sigactions.some((a) => a.sig === sig && a.handler === '0x1'));
  if (ignoredTimerSigs.length) restoreActions(rt, p.sigactions, ignoredTimerSigs);
  rt.unmapScratch();
  for (const { rt: trt } of threads) restoreStrict(trt, p.seccomp);
  for (const { rt: trt, t: th } of threads) {
    const fin = finalRegs(th);
    if (fin.note) log.warn(fin.note);
    setThreadState(trt.pid, th, fin.regs);
    trt.settle();
  }
  for (const { rt: trt } of threads) {
    trt.restoreEnd();
    trt.close();
  }
}

/**
 * The kernel gives a task room for AMX tile data only after its first AMX
 * instruction, and refuses such state through ptrace before. Run one in the
 * task when the image holds tile data (XSAVE feature 18, XTILEDATA).
 */
function prepareXstate(rt: RemoteTask, t: { xstate: string }): void {
  const bv = xsaveStateBv(Buffer.from(t.xstate, 'base64'));
  if ((bv >> 18n) & 1n) remote.touchAmxTileData(rt);
}

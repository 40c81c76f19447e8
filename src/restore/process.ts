// The process phase: once every task exists and holds its files, each
// process gets its identity, signal handlers, and each thread its own state;
// then, last, what takes away rights restore needs (limits, credentials) and
// the registers.

import { restoreIdentityCalls, restoreMiscLast, restoreRlimits, restoreRootAndCwd, restoreMmSettings } from '../objects/process.js';
import { restoreActions, queueSignals } from '../objects/signals.js';
import { restoreThreadCalls, finalRegs, setThreadState } from '../objects/thread.js';
import { restoreCreds } from '../objects/creds.js';
import { sealAreas } from '../objects/memory/index.js';
import { restoreSched, restoreOomScoreAdj } from '../objects/sched.js';
import { RemoteTask } from '../kernel/remote.js';
import { IOCTL, NR, PR, SIG } from '../kernel/consts.js';
import { log } from '../log.js';
import { Built, RestoreCtx } from './context.js';

/** Identity, signals and thread state of a process whose tasks and files are in place. */
export function restoreProcess(ctx: RestoreCtx, b: Built, isRoot: boolean): void {
  const { p, rt } = b;
  const off = ctx.off;
  ctx.step = `identity of ${p.pid}`;
  restoreMmSettings(rt, p, off);
  if (isRoot && ctx.opts.shellJob && p.foreground && p.pgid === p.pid) {
    // It was in the foreground of its terminal: make its group the foreground of the caller's.
    const ttyIds = new Set(ctx.files.files.filter((f) => f.kind === 'tty').map((f) => f.id));
    const tty = p.fds.find((f) => ttyIds.has(f.file));
    if (tty) {
      const pg = Buffer.alloc(4);
      pg.writeInt32LE(p.pid, 0);
      rt.call('ioctl(TIOCSPGRP)', NR.ioctl, tty.fd, IOCTL.TIOCSPGRP, rt.put(pg, off));
    }
  }
  restoreIdentityCalls(rt, p, off);
  ctx.step = `signals of ${p.pid}`;
  restoreActions(rt, p.sigactions, off);
  ctx.step = `threads of ${p.pid}`;
  for (const { rt: trt, t: th } of b.threads) {
    if (th.comm !== undefined && trt !== rt) trt.call('prctl(PR_SET_NAME)', NR.prctl, PR.SET_NAME, trt.putString(th.comm.slice(0, 15), off));
    prepareXstate(trt, th);
    restoreThreadCalls(trt, th, p.pid, off);
  }
  queueSignals(rt, p.pid, null, p.pendingShared, off);
}

/** Take every SIGCHLD off a process's queues, then queue again those the image had. */
export function resetChld(b: Built, off: number): void {
  const { p, rt } = b;
  for (const th of b.threads) th.rt.takeSignal(SIG.CHLD);
  const isChld = (b64: string) => Buffer.from(b64, 'base64').readInt32LE(0) === SIG.CHLD;
  queueSignals(rt, p.pid, null, p.pendingShared.filter(isChld), off);
  for (const th of b.threads) queueSignals(th.rt, p.pid, th.t.tid, th.t.pending.filter(isChld), off);
}

/** Limits, credentials, seals and registers: the last of a process, after which it is only let go. */
export function finishProcess(ctx: RestoreCtx, b: Built, isRoot: boolean): void {
  const { p, rt, threads } = b;
  const off = ctx.off;
  // Every trap of a remote call resets an ignored SIGTRAP to SIG_DFL: from here on the calls make none,
  // and the last one sets SIGTRAP's action again.
  const trap = p.sigactions.find((a) => a.sig === SIG.TRAP && a.handler === '0x1');
  if (trap) for (const th of threads) th.rt.quiet = true;
  sealAreas(rt, p.memory);
  restoreRootAndCwd(rt, p, off);
  restoreRlimits(p.pid, p.rlimits);
  // Credentials belong to each thread.
  for (const { rt: trt } of threads) restoreCreds(trt, p.creds, off);
  restoreMiscLast(rt, p, !(isRoot && ctx.opts.detached));
  if (p.misc.oomScoreAdj !== undefined) restoreOomScoreAdj(p.pid, p.misc.oomScoreAdj);
  for (const { rt: trt, t: th } of threads) {
    if (th.sched) restoreSched(trt.pid, th.sched);
    if (trt !== rt && p.misc.noNewPrivs) trt.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  }
  if (trap) restoreActions(rt, [trap], off, [SIG.TRAP]);
  rt.unmapScratch();
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
 * instruction, and refuses such state through ptrace before. Run one
 * (tilerelease) in the task when the image holds tile data.
 */
function prepareXstate(rt: RemoteTask, t: { xstate: string }): void {
  const xs = Buffer.from(t.xstate, 'base64');
  const bv = xs.length >= 520 ? xs.readBigUInt64LE(512) : 0n;
  if (!((bv >> 18n) & 1n)) return;
  const code = Buffer.alloc(128);
  Buffer.from([
    0xc4, 0xe2, 0x78, 0x49, 0x05, 55, 0, 0, 0, // ldtilecfg [rip+55] (the config at offset 64)
    0xc4, 0xe2, 0x7b, 0x49, 0xc0,             // tilezero tmm0: first use of tile data
    0xc4, 0xe2, 0x78, 0x49, 0xc0,             // tilerelease
    0xcc,                                     // int3
  ]).copy(code, 0);
  code[64] = 1;       // palette 1
  code[64 + 16] = 4;  // tmm0: 4 bytes per row
  code[64 + 48] = 1;  // tmm0: 1 row
  rt.runCode(code, 20);
}

// POSIX timers (timer_create): per process, each with its id, clock, how it
// notifies (signal, thread-directed signal, none), its setting and the
// overrun count of its last signal. Dumped from /proc/PID/timers and
// timer_gettime/timer_getoverrun run in the stopped process; restored in
// the restored process with the same ids (PR_TIMER_CREATE_RESTORE_IDS, or
// creating and deleting fillers on kernels before 6.16).
//
// A timer's setting is kept as time left, relative: the time the program
// spent checkpointed does not count (as for the itimers). A timer whose
// signal was pending at dump is not queued again as a plain siginfo (the
// kernel would then send a second one at the next expiry, and count no
// overruns): the restored timer itself is made to fire at once, so that its
// own signal is pending, in phase with the time it had left.

import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { readPosixTimers, ProcTimer } from '../kernel/proc.js';
import { peekSiginfo } from '../kernel/ptrace.js';
import { siginfoTimer } from '../kernel/structs.js';
import { SIGEV, SI_TIMER, TIMER_ABSTIME, CLOCK, SIG, E } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { RemoteError } from '../kernel/remote.js';
import { refused, conflict, CkptError } from '../errors.js';
import { hex64, int, pid, dec63, regex, superRefine } from '../image/schema.js';
import { log } from '../log.js';

const nsec = z.string().check(regex(/^(0|[1-9][0-9]{0,8})$/, 'expected nanoseconds, 0-999999999'));

export const PosixTimer = z.object({
  id: int(0, 0x7fffffff),
  /** The clock as the kernel keeps it: 0-11, or a CPU clock (negative: pid << 3 | kind, pid 0 for the caller). */
  clock: int(-0x80000000, 0x7fffffff),
  /** SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD (a signal, to the kernel) or SIGEV_THREAD_ID (a signal to one thread). */
  notify: z.union([z.literal('signal'), z.literal('none'), z.literal('thread'), z.literal('thread-id')]),
  signo: int(0, 64),
  /** sigev_value (sival_ptr, 64 bits). */
  value: hex64,
  /** The thread that gets the signal (SIGEV_THREAD_ID). */
  tid: z.optional(pid),
  /** The thread whose CPU time a CLOCK_THREAD_CPUTIME_ID timer measures (the one that created it). */
  owner: z.optional(pid),
  /** interval sec/nsec, time left sec/nsec (timer_gettime). */
  setting: z.tuple([dec63, nsec, dec63, nsec]),
  /** timer_getoverrun: the overrun count of its last signal. */
  overrun: z.optional(int(0, 0x7fffffff)),
  /** Its own signal was pending (the siginfo is in the pending list of the process, or of `tid`). */
  pending: z.optional(z.boolean()),
  /**
   * A signal of it is in the pending list, but one the kernel drops when it
   * comes: the timer was set again after it was queued (a one-shot timer
   * armed with its signal pending). It is not queued again.
   */
  staleSignal: z.optional(z.boolean()),
}).check(superRefine((t, ctx) => {
  if (t.notify === 'thread-id' && t.tid === undefined) ctx.addIssue({ code: 'custom', message: 'a SIGEV_THREAD_ID timer names its thread', path: ['tid'], input: t.tid });
  if (t.notify !== 'none' && (t.signo < 1 || t.signo === SIG.KILL || t.signo === SIG.STOP)) ctx.addIssue({ code: 'custom', message: `signal ${t.signo} is not one a timer can send`, path: ['signo'], input: t.signo });
  if (t.pending && t.staleSignal) ctx.addIssue({ code: 'custom', message: 'a timer\'s pending signal is live or stale, not both', path: ['staleSignal'], input: t.staleSignal });
  if (t.pending && t.notify === 'none') ctx.addIssue({ code: 'custom', message: 'a SIGEV_NONE timer has no signal to be pending', path: ['pending'], input: t.pending });
}));
export type PosixTimer = z.infer<typeof PosixTimer>;
export const PosixTimers = z.array(PosixTimer).check(superRefine((ts, ctx) => {
  const ids = new Set<number>();
  ts.forEach((t, i) => {
    if (ids.has(t.id)) ctx.addIssue({ code: 'custom', message: `timer ${t.id} is listed twice`, path: [i, 'id'], input: t.id });
    ids.add(t.id);
  });
}));

// CPU clocks (kernel facts): a negative clock id is ~pid << 3 | perthread (4) | which (0 PROF, 1 VIRT, 2 SCHED; 3 is a clock fd).
const cpuPid = (clock: number) => ~(clock >> 3);
const isCpu = (clock: number) => clock < 0;
const perThread = (clock: number) => (clock & 4) !== 0;
const cpuWhich = (clock: number) => clock & 3;
const CPU_SCHED = 2;
const HRTIMER_CLOCKS = new Set<number>([CLOCK.REALTIME, CLOCK.MONOTONIC, CLOCK.BOOTTIME, CLOCK.TAI, CLOCK.REALTIME_ALARM, CLOCK.BOOTTIME_ALARM]);

const NOTIFY: Record<ProcTimer['notify'], PosixTimer['notify']> = { signal: 'signal', none: 'none', thread: 'thread' };
const NS = 1000000000n;
const toNs = (sec: string | bigint, ns: string | bigint) => BigInt(sec) * NS + BigInt(ns);

const CLOCK_NAMES: Record<number, string> = { 0: 'CLOCK_REALTIME', 1: 'CLOCK_MONOTONIC', 7: 'CLOCK_BOOTTIME', 8: 'CLOCK_REALTIME_ALARM', 9: 'CLOCK_BOOTTIME_ALARM', 11: 'CLOCK_TAI' };
export function describeClock(clock: number): string {
  if (!isCpu(clock)) return CLOCK_NAMES[clock] ?? `clock ${clock}`;
  const who = cpuPid(clock) === 0 ? (perThread(clock) ? 'its own thread' : 'its own process') : `${perThread(clock) ? 'thread' : 'process'} ${cpuPid(clock)}`;
  return `the ${['PROF', 'VIRT', 'SCHED', 'FD'][cpuWhich(clock)]} CPU clock of ${who}`;
}

/**
 * Every POSIX timer of a stopped process. `rts`: the remote-call context of
 * each thread (leader first); `pending`: the siginfos pending for the
 * process (tid null) and each thread, as the dump read them.
 */
export function dumpTimers(rts: RemoteTask[], pendingShared: string[], pendingOf: Map<number, string[]>, treePids: Set<number>): PosixTimer[] {
  const leader = rts[0];
  const pid = leader.pid;
  const where = (what: string) => `pid ${pid}: ${what}`;
  const listed = readPosixTimers(pid);
  if (!listed.length) return [];
  const tids = new Set(rts.map((r) => r.pid));
  const out: PosixTimer[] = [];
  for (const t of [...listed].sort((a, b) => a.id - b.id)) {
    const tw = (what: string) => where(`its POSIX timer ${t.id} ${what}`);
    if (isCpu(t.clock)) {
      if (cpuWhich(t.clock) === 3) throw refused(tw('is on a dynamic clock (a clock fd); not supported'));
      const cp = cpuPid(t.clock);
      if (cp !== 0 && perThread(t.clock) && !tids.has(cp)) throw refused(tw(`measures the CPU time of thread ${cp}, which is not one of its threads`));
      if (cp !== 0 && !perThread(t.clock) && !treePids.has(cp)) throw refused(tw(`measures the CPU time of pid ${cp}, which is outside the checkpointed tree`));
    }
    if (t.toThread && !tids.has(t.target)) throw refused(tw(`signals thread ${t.target}, which is not one of its threads`));
    if (!t.toThread && t.target !== pid) throw refused(tw(`signals pid ${t.target}, not its own process`));
    const setting = remote.timerGettime(leader, t.id);
    const armed = setting[2] !== 0n || setting[3] !== 0n;
    if (t.notify !== 'none' && t.signo === SIG.TRAP && armed) throw refused(tw('sends SIGTRAP, which ckpt needs for its own work in the process'));
    const overrun = t.notify === 'none' ? 0 : remote.timerGetoverrun(leader, t.id);
    const timer: PosixTimer = {
      id: t.id, clock: t.clock, notify: t.toThread ? 'thread-id' : NOTIFY[t.notify], signo: t.signo, value: '0x' + t.value.toString(16),
      setting: setting.map(String) as PosixTimer['setting'],
    };
    if (t.toThread) timer.tid = t.target;
    if (overrun) timer.overrun = overrun;
    if (isCpu(t.clock) && perThread(t.clock) && cpuPid(t.clock) === 0) timer.owner = ownerThread(rts, t, armed, tw);
    // Its own signal pending: a SI_TIMER siginfo with its id and signal, in the queue it sends to.
    if (t.notify !== 'none') {
      const queue = t.toThread ? (pendingOf.get(t.target) ?? []) : pendingShared;
      if (queue.some((b64) => isSignalOf(b64, timer))) {
        if (t.signo === SIG.CHLD) throw refused(tw('sends SIGCHLD and its signal is pending; not supported'));
        // A one-shot timer is disarmed when it fires: armed again, it was set after its signal was queued.
        // (A periodic one, or one disarmed by timer_settime, cannot be told apart from one whose signal is live.)
        if (armed && setting[0] === 0n && setting[1] === 0n) timer.staleSignal = true;
        else timer.pending = true;
      }
    }
    out.push(timer);
  }
  return out;
}

/** Is this pending siginfo (base64) the signal of this timer? */
function isSignalOf(b64: string, t: Pick<PosixTimer, 'id' | 'signo'>): boolean {
  const s = siginfoTimer(Buffer.from(b64, 'base64'), SI_TIMER);
  return s !== null && s.timerId === t.id && s.signo === t.signo;
}

/**
 * The thread whose CPU clock a CLOCK_THREAD_CPUTIME_ID timer of its creator
 * measures: the kernel shows it as "the caller". With one thread it is that
 * one. Otherwise, of all the stopped threads only the one ckpt runs calls in
 * uses CPU time: an armed timer whose time left shrinks between two
 * timer_gettime calls in a thread belongs to that thread.
 */
function ownerThread(rts: RemoteTask[], t: ProcTimer, armed: boolean, tw: (what: string) => string): number {
  if (rts.length === 1) return rts[0].pid;
  if (!armed) throw refused(tw('measures the CPU time of the thread that created it, which ckpt cannot tell while the timer is disarmed in a process of several threads'));
  if (cpuWhich(t.clock) !== CPU_SCHED) throw refused(tw(`measures a thread's ${cpuWhich(t.clock) ? 'user' : 'user and system'} CPU time (sampled at ticks), and ckpt cannot tell which thread's in a process of several threads`));
  for (const r of rts) {
    const a = remote.timerGettime(r, t.id);
    const b = remote.timerGettime(r, t.id);
    if (toNs(b[2], b[3]) < toNs(a[2], a[3])) return r.pid;
  }
  throw refused(tw('measures the CPU time of a thread that has ended'));
}

/** The siginfos of `infos` that are not the pending signal of a timer (those are made again by the timer itself). */
export function withoutTimerSignals(infos: string[], timers: PosixTimer[] | undefined, tid: number | null): string[] {
  const mine = (timers ?? []).filter((t) => (t.pending || t.staleSignal) && (t.notify === 'thread-id' ? t.tid === tid : tid === null));
  if (!mine.length) return infos;
  const left = [...mine];
  return infos.filter((b64) => {
    const i = left.findIndex((t) => isSignalOf(b64, t));
    if (i < 0) return true;
    left.splice(i, 1); // (one siginfo per timer: its sigqueue is queued at most once)
    return false;
  });
}

/** The task that creates a timer: the thread whose CPU clock it measures, else the leader. */
function creatorOf(t: PosixTimer, leader: RemoteTask, byTid: Map<number, RemoteTask>): RemoteTask {
  return t.owner !== undefined ? byTid.get(t.owner) ?? leader : leader;
}

const sigevent = (t: PosixTimer): remote.SigEvent => ({
  notify: t.notify === 'signal' ? SIGEV.SIGNAL : t.notify === 'none' ? SIGEV.NONE : t.notify === 'thread' ? SIGEV.THREAD : SIGEV.SIGNAL | SIGEV.THREAD_ID,
  signo: t.signo, value: BigInt(t.value), tid: t.tid ?? 0,
});

/**
 * Create every timer of the process with its id, then arm it. The restored
 * tasks have every signal blocked (but SIGTRAP) while this runs, so a timer
 * that fires now queues its signal. Runs before the pending signals are queued.
 */
export function restoreTimers(leader: RemoteTask, threads: RemoteTask[], timers: PosixTimer[] | undefined): void {
  if (!timers?.length) return;
  const byTid = new Map(threads.map((r) => [r.pid, r]));
  const where = `pid ${leader.pid}`;
  createWithIds(leader, timers, byTid, where);
  // Overrun counts first (their signal is taken again at once), then the timers whose signal was pending, then the others.
  for (const t of timers) if (!t.pending && t.overrun && t.notify !== 'none') armWithOverrun(leader, t, byTid, where);
  for (const t of timers) if (t.pending) fireNow(leader, t, byTid, where);
  for (const t of timers) {
    if (t.pending || (t.overrun && t.notify !== 'none')) continue;
    const s = t.setting.map(BigInt) as remote.TimerSpec;
    if (s[2] !== 0n || s[3] !== 0n) remote.timerSettime(leader, t.id, 0, s);
  }
}

function createWithIds(leader: RemoteTask, timers: PosixTimer[], byTid: Map<number, RemoteTask>, where: string): void {
  const create = (t: PosixTimer, reqId: number): number => {
    try {
      return remote.timerCreate(creatorOf(t, leader, byTid), t.clock, sigevent(t), reqId);
    } catch (e) {
      if (e instanceof RemoteError && (e.errno === E.ENOTSUP || e.errno === 524 /* ENOTSUPP, the kernel's own */)) {
        throw conflict(`${where}: its POSIX timer ${t.id} is on ${describeClock(t.clock)}, which this host does not support (alarm clocks need an RTC)`);
      }
      throw e;
    }
  };
  if (remote.tryPrctlTimerRestoreIds(leader, true) === 0) {
    try {
      for (const t of timers) {
        const got = create(t, t.id);
        if (got !== t.id) throw new CkptError('failed', `${where}: timer ${t.id} was created with id ${got}`);
      }
    } finally { remote.tryPrctlTimerRestoreIds(leader, false); }
    return;
  }
  // Before Linux 6.16: a new process hands out ids 0, 1, 2... in order; the ones not wanted are deleted again.
  const want = new Map(timers.map((t) => [t.id, t]));
  const last = Math.max(...timers.map((t) => t.id));
  if (last > 65536) throw conflict(`${where}: its POSIX timer ${last} has an id this kernel cannot be asked for (no PR_TIMER_CREATE_RESTORE_IDS) without creating ${last} others first`);
  const filler: PosixTimer = { id: 0, clock: CLOCK.MONOTONIC, notify: 'none', signo: 0, value: '0x0', setting: ['0', '0', '0', '0'] };
  const fillers: number[] = [];
  try {
    for (let id = 0; id <= last; id++) {
      const t = want.get(id);
      const got = create(t ?? filler, 0);
      if (got !== id) throw new CkptError('failed', `${where}: the kernel gave timer id ${got} where ${id} was next`);
      if (!t) fillers.push(got);
    }
  } finally {
    for (const id of fillers) remote.timerDelete(leader, id);
  }
}

/** The clock's time now, as the task that created the timer sees it (CPU clocks are per task). */
function clockNow(leader: RemoteTask, t: PosixTimer, byTid: Map<number, RemoteTask>): bigint {
  return remote.clockGettime(creatorOf(t, leader, byTid), t.clock);
}
const spec = (intervalNs: bigint, valueNs: bigint): remote.TimerSpec => [intervalNs / NS, intervalNs % NS, valueNs / NS, valueNs % NS];
/** The task whose queue gets the timer's signal, where it can be taken with rt_sigtimedwait. */
const receiver = (leader: RemoteTask, t: PosixTimer, byTid: Map<number, RemoteTask>) => (t.tid !== undefined ? byTid.get(t.tid) ?? leader : leader);

/**
 * The overrun count timer_getoverrun reports is the one of the timer's last
 * signal, set when that signal is taken. So the timer is set to have expired
 * `overrun` + 1 periods ago, its signal is taken off the queue at once
 * (which rearms it and sets the count), and its next expiry is the time it
 * had left. The count depends on when the signal is taken: when ckpt is
 * slower than the time left (a loaded host), it comes out one more, and the
 * whole is done again.
 */
function armWithOverrun(leader: RemoteTask, t: PosixTimer, byTid: Map<number, RemoteTask>, where: string): void {
  const interval = toNs(t.setting[0], t.setting[1]);
  const left = toNs(t.setting[2], t.setting[3]);
  const s = t.setting.map(BigInt) as remote.TimerSpec;
  for (let attempt = 0; ; attempt++) {
    const start = interval ? clockNow(leader, t, byTid) + left - BigInt(t.overrun! + 1) * interval : -1n;
    if (!interval || start <= 0n || attempt === 20) {
      // (a CPU clock of a new task has not counted enough time for that; or ckpt is always too slow for the period)
      log.warn(`${where}: the overrun count (${t.overrun}) of its POSIX timer ${t.id} is not kept`);
      remote.timerSettime(leader, t.id, 0, s);
      return;
    }
    remote.timerSettime(leader, t.id, TIMER_ABSTIME, spec(interval, start));
    const got = remote.trySigtimedwait(receiver(leader, t, byTid), t.signo, NS);
    if (got !== t.signo) throw new CkptError('failed', `${where}: the signal of POSIX timer ${t.id} did not come (${got})`);
    if (remote.timerGetoverrun(leader, t.id) === t.overrun) return;
  }
}

/**
 * A timer whose signal was pending: set to have expired just now (for a
 * periodic one, one period before its next expiry), so that its own signal
 * is queued; wait until it is.
 */
function fireNow(leader: RemoteTask, t: PosixTimer, byTid: Map<number, RemoteTask>, where: string): void {
  const interval = toNs(t.setting[0], t.setting[1]);
  const left = toNs(t.setting[2], t.setting[3]);
  let at = 1n; // an absolute time long past on every clock
  if (interval) {
    at = clockNow(leader, t, byTid) + left - interval;
    if (at < 1n) {
      at = 1n;
      if (HRTIMER_CLOCKS.has(t.clock)) throw new CkptError('failed', `${where}: the clock of POSIX timer ${t.id} is too early for its period`);
      log.debug(`${where}: POSIX timer ${t.id} (on ${describeClock(t.clock)}) keeps its period but not its phase`);
    }
  }
  const to = receiver(leader, t, byTid);
  const before = countQueued(to, t);
  remote.timerSettime(leader, t.id, TIMER_ABSTIME, spec(interval, at));
  const end = Date.now() + 2000;
  while (countQueued(to, t) <= before) {
    if (Date.now() > end) throw new CkptError('failed', `${where}: the signal of POSIX timer ${t.id} was not queued`);
    Atomics.wait(PAUSE, 0, 0, 0.2);
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));
function countQueued(to: RemoteTask, t: PosixTimer): number {
  const infos = peekSiginfo(to.pid, t.tid === undefined);
  return infos.filter((b) => isSignalOf(b.toString('base64'), t)).length;
}

// timerfd: a timer on one clock (REALTIME, MONOTONIC, BOOTTIME and their
// _ALARM variants), one-shot or periodic, relative or absolute
// (TFD_TIMER_ABSTIME, with TFD_TIMER_CANCEL_ON_SET), armed or not, with the
// expirations that fired but were not read yet ("ticks").
//
// What time means across a checkpoint:
// - A relative timer keeps the time that was left at dump: it fires that
//   long after restore, as if the program's time had stood still while it
//   was checkpointed (as ckpt does for itimers). Its period is kept.
// - An absolute timer keeps its expiry on its clock. One that expired while
//   the program was checkpointed fires at once after restore, and its
//   expirations are counted as the kernel counts them: for a periodic
//   timer one for each period that passed since the first expiry.
// - The expirations not yet read are added on restore (TFD_IOC_SET_TICKS,
//   CONFIG_CHECKPOINT_RESTORE).
// - A TFD_TIMER_CANCEL_ON_SET timer with expirations unread is refused: a
//   change of the clock counts one too and makes the next read give
//   ECANCELED, and nothing shows which of the two happened.
//
// At dump ckpt reads the timer through a duplicate of the fd (pidfd_getfd):
// timerfd_gettime gives the time to the next expiry (and brings a periodic
// timer's count of expirations up to date, as the program's next read or
// gettime would), fdinfo the clock, the settime flags and the ticks.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { holdsWithin } from '../cancel.js';
import { O, CLOCK, TFD } from '../kernel/consts.js';
import { pidfdGetfd, timerfdCreate, timerfdSettime, timerfdGettime, timerfdSetTicks, clockNow, setFl, TimerSpec } from '../kernel/sys.js';
import { fdinfoLines } from '../kernel/proc.js';
import { refused, badImage, conflict } from '../errors.js';
import { fileId, u32, regex } from '../image/schema.js';
import { defineKind } from './kind.js';
import { refuseOutside } from './outside.js';

const CLOCKS = [CLOCK.REALTIME, CLOCK.MONOTONIC, CLOCK.BOOTTIME, CLOCK.REALTIME_ALARM, CLOCK.BOOTTIME_ALARM] as const;
const CLOCK_NAMES: Record<number, string> = { 0: 'REALTIME', 1: 'MONOTONIC', 7: 'BOOTTIME', 8: 'REALTIME_ALARM', 9: 'BOOTTIME_ALARM' };
/** The clock ckpt reads for a timer's clock (an alarm clock runs as its base clock). */
const baseClock = (c: number) => (c === CLOCK.REALTIME_ALARM ? CLOCK.REALTIME : c === CLOCK.BOOTTIME_ALARM ? CLOCK.BOOTTIME : c);

const ns = z.string().check(regex(/^(0|[1-9][0-9]{0,18})$/, 'expected a decimal number of nanoseconds'),
  z.refine((s) => BigInt(s) < 1n << 63n, 'too big for a time in nanoseconds'));
const ticksSchema = z.string().check(regex(/^(0|[1-9][0-9]{0,19})$/, 'expected a decimal number'),
  z.refine((s) => BigInt(s) < 1n << 64n, 'too big for a count of expirations'));

export const TimerfdFile = z.object({
  id: fileId,
  kind: z.literal('timerfd'),
  clock: z.union(CLOCKS.map((c) => z.literal(c)) as unknown as [z.ZodMiniLiteral<number>, z.ZodMiniLiteral<number>]),
  /** timerfd_settime flags: TFD_TIMER_ABSTIME (1), TFD_TIMER_CANCEL_ON_SET (2) */
  settimeFlags: z.int().check(z.gte(0), z.lte(3)),
  /**
   * Nanoseconds: for a relative timer the time that was left to its next
   * expiry, for an absolute one (TFD_TIMER_ABSTIME) the time of that expiry
   * on its clock; "0": disarmed.
   */
  value: ns,
  /** The period in nanoseconds ("0": one-shot). */
  interval: ns,
  /** Expirations that fired but were not read yet. */
  ticks: ticksSchema,
  /** status flags (O_NONBLOCK...), without O_CLOEXEC and the access mode */
  flags: u32,
});
export type TimerfdFile = z.infer<typeof TimerfdFile>;

/** The unread expirations of a timerfd, from fdinfo. */
function ticksOf(pid: number | 'self', fd: number): bigint {
  const line = fdinfoLines(pid, fd).find((l) => l.startsWith('ticks:'));
  if (!line) throw new Error(`/proc/${pid}/fdinfo/${fd} has no ticks line`);
  return BigInt(line.slice(6).trim());
}

const MAX_TRIES = 50;

function dumpTimer(pid: number, fd: number, dup: number): { spec: TimerSpec; ticks: bigint; now: bigint; clock: number } {
  const info = fdinfoLines(pid, fd);
  const clock = Number(info.find((l) => l.startsWith('clockid:'))?.slice(8).trim());
  // A reading is consistent when no expiry came between the two looks.
  for (let i = 0; i < MAX_TRIES; i++) {
    const a = timerfdGettime(dup);
    const t1 = ticksOf(pid, fd);
    const now = clockNow(baseClock(clock));
    const b = timerfdGettime(dup);
    const t2 = ticksOf(pid, fd);
    if (t1 === t2 && b.value <= a.value && !(a.value > 0n && b.value === 0n)) return { spec: b, ticks: t2, now, clock };
  }
  throw new Error(`the timer fired on every one of ${MAX_TRIES} looks; its period is too short to read it`);
}

export const timerfdKind = defineKind<TimerfdFile>({
  kind: 'timerfd',
  schema: TimerfdFile,
  takes: (f) => f.object.type === 'timerfd',
  dump(f, ctx) {
    const where = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
    const clock = Number(f.info.get('clockid'));
    const sf = f.info.get('settime flags');
    if (!(CLOCKS as readonly number[]).includes(clock)) throw refused(`${where}: a timerfd on clock ${f.info.get('clockid')}, which this ckpt does not know`);
    if (sf === undefined || !/^[0-7]+$/.test(sf) || (parseInt(sf, 8) & ~3) !== 0) throw refused(`${where}: its fdinfo has no settime flags this ckpt can read (${sf})`);
    refuseOutside(f, ctx, 'timerfd', refused);
    const settimeFlags = parseInt(sf, 8);
    const dup = pidfdGetfd(f.pid, f.fd);
    let r: ReturnType<typeof dumpTimer>;
    try { r = dumpTimer(f.pid, f.fd, dup); } catch (e) { throw refused(`${where}: ${(e as Error).message}`); } finally { fs.closeSync(dup); }
    const abs = (settimeFlags & TFD.TIMER_ABSTIME) !== 0;
    if (abs && (settimeFlags & TFD.TIMER_CANCEL_ON_SET) && r.ticks > 0n && baseClock(clock) === CLOCK.REALTIME) {
      // A change of the clock cancels such a timer and counts one: its next read gives ECANCELED. fdinfo does not tell the two apart.
      throw refused(`${where}: a TFD_TIMER_CANCEL_ON_SET timer with ${r.ticks} expirations not yet read; whether the clock was set meanwhile (its next read would give ECANCELED) cannot be seen, so it is not supported (dump again once the program has read it)`);
    }
    const value = r.spec.value === 0n ? 0n : abs ? r.now + r.spec.value : r.spec.value;
    return {
      kind: 'timerfd', clock, settimeFlags, value: value.toString(), interval: r.spec.interval.toString(), ticks: r.ticks.toString(),
      flags: f.flags & ~(O.CLOEXEC | O.ACCMODE),
    };
  },
  describe(t) {
    const abs = t.settimeFlags & TFD.TIMER_ABSTIME;
    const sec = (v: string) => `${(Number(BigInt(v)) / 1e9).toFixed(6)} s`;
    const when = t.value === '0' ? 'disarmed' : abs ? `expiring at ${sec(t.value)}` : `${sec(t.value)} left`;
    return `timerfd on ${CLOCK_NAMES[t.clock]}, ${when}${t.interval !== '0' ? `, every ${sec(t.interval)}` : ''}${t.ticks !== '0' ? `, ${t.ticks} expirations unread` : ''}${t.settimeFlags & TFD.TIMER_CANCEL_ON_SET ? ', cancel on set' : ''}`;
  },
  check(t) {
    if (t.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${t.id}: the status flags of a timerfd hold an access mode`);
  },
  phase: 'objects',
  create(t) {
    const fd = timerfdCreate(t.clock, O.CLOEXEC | O.NONBLOCK);
    try {
      armTimer(fd, t);
      setFl(fd, t.flags);
    } catch (e) { fs.closeSync(fd); throw e; }
    return { local: fd, closeAfter: true };
  },
});

/** Arm the new timer as the image says, and give it its unread expirations. */
function armTimer(fd: number, t: TimerfdFile): void {
  const abs = (t.settimeFlags & TFD.TIMER_ABSTIME) !== 0;
  const value = BigInt(t.value), interval = BigInt(t.interval), unread = BigInt(t.ticks);
  const clock = baseClock(t.clock);
  const before = clockNow(clock);
  const err = timerfdSettime(fd, t.settimeFlags, { value, interval });
  if (err < 0) throw conflict(`open file ${t.id}: timerfd_settime failed (errno ${-err})`);
  if (value === 0n) { // disarmed: nothing can fire
    if (unread > 0n) timerfdSetTicks(fd, unread);
    return;
  }
  // The first expiry as armed, on the clock.
  const first = abs ? value : before + value;
  const expiredWhileCheckpointed = abs && value <= before;
  if (unread === 0n && !expiredWhileCheckpointed) return;
  if (expiredWhileCheckpointed) {
    // It fires at once: wait until the kernel has counted that expiry.
    if (!holdsWithin(2000, () => ticksOf('self', fd) !== 0n)) throw new Error('the timer, armed at a time already past, did not fire');
  }
  timerfdGettime(fd); // brings the count of a periodic timer up to date
  const counted = ticksOf('self', fd);
  timerfdSetTicks(fd, unread + counted);
  // An expiry between the count and the ioctl was overwritten by it: count
  // the expiries since `first` from where the timer stands now, and put
  // back what is missing. (Periods below 1 ms are too short to count this
  // way: the reading of the clock is not that exact.)
  const g = timerfdGettime(fd);
  const now = clockNow(clock);
  let fired: bigint;
  if (interval === 0n) fired = g.value === 0n ? 1n : 0n;
  else if (interval >= 1000000n) fired = (now + g.value - first + interval / 2n) / interval;
  else return;
  if (ticksOf('self', fd) < unread + fired) timerfdSetTicks(fd, unread + fired);
}

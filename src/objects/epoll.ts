// epoll instances. An instance is its interest list: each registration is
// a file and the fd number it was registered under (the kernel keys them by
// both: the same file under two numbers is two registrations, and a
// registration outlives the fd when the file lives on elsewhere), with its
// events, its mode (EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE, EPOLLWAKEUP) and
// its 64-bit data. /proc/PID/fdinfo lists them; which open file of the tree
// each one is, kcmp(KCMP_EPOLL_TFD) tells. A registered file no fd of the
// tree holds cannot be recreated: refused.
//
// Restore is in the 'refs' phase: the instance is made in its first holder
// once every file it watches exists (an epoll instance it watches first),
// and each registration is made again with epoll_ctl(EPOLL_CTL_ADD) while
// its file is at its original number in that process (files.ts puts it
// there for the call and puts back what was there).
//
// What the program can observe besides the list: which events are pending.
// A level-triggered registration reports whenever its file is ready, so
// re-registering it is exact. An edge-triggered one reports once per
// change; the kernel does not show whether a change was collected. After
// restore an edge-triggered registration whose file is ready reports once
// more, unless ckpt knows at dump that its event was collected: the instance
// was not readable (poll(2) of it, which consumes nothing, says whether any
// registration has an event pending). Then restore collects that event
// itself. (One report too many is what an edge-triggered reader
// tolerates: it reads until EAGAIN; one too few would leave it waiting.)
// A one-shot registration that fired is disabled (it keeps only its mode
// bits); epoll_ctl cannot make one disabled, so restore lets it fire once:
// it is registered for the events its file is ready for and the event is
// collected. A disabled one whose file is ready for nothing is refused.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, EPOLL, EPOLL_PRIVATE_BITS, RLIMIT } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { kcmpEpollTarget, pidfdGetfd, pollNow, getRlimit } from '../kernel/sys.js';
import { parseEpollFdinfo, EpollTfdLine } from '../kernel/proc.js';
import { devFromKernel } from '../kernel/fdtype.js';
import { refused, conflict, badImage } from '../errors.js';
import { fileId, u32, fdNum, hex64, superRefine } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx } from './kind.js';

const Registration = z.object({
  /** The fd number the file was registered under. */
  tfd: fdNum,
  /** The open file registered (a description of files.json). */
  file: fileId,
  /** Its events and mode bits as the kernel keeps them (EPOLLERR|EPOLLHUP included; a one-shot registration that fired keeps only its mode bits). */
  events: u32,
  /** Its data (epoll_data, 64 bits). */
  data: hex64,
  /** Edge-triggered, and its last event was collected: restore collects the one re-registering reports. */
  collected: z.optional(z.literal(true)),
});
type Registration = z.infer<typeof Registration>;

export const EpollFile = z.object({
  id: fileId,
  kind: z.literal('epoll'),
  /** status flags (O_NONBLOCK...), without O_CLOEXEC and the access mode */
  flags: u32,
  /** The interest list, in the kernel's order. */
  targets: z.array(Registration).check(superRefine((ts, ctx) => {
    const seen = new Set<string>();
    ts.forEach((t, i) => {
      const key = `${t.file}:${t.tfd}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `open file ${t.file} is registered under fd ${t.tfd} twice`, path: [i], input: t });
      seen.add(key);
    });
  })),
});
export type EpollFile = z.infer<typeof EpollFile>;

/** The event bits of a registration (what is left is its mode). */
const EVENT_BITS = (~EPOLL_PRIVATE_BITS) >>> 0;
/** A one-shot registration that fired: only its mode bits are left. */
const disabled = (events: number) => (events & EPOLL.ONESHOT) !== 0 && ((events & EVENT_BITS) >>> 0) === 0;
const edgeOnly = (events: number) => (events & EPOLL.ET) !== 0 && (events & EPOLL.ONESHOT) === 0;

const BIT_NAMES: Array<[number, string]> = [
  [EPOLL.IN, 'IN'], [EPOLL.PRI, 'PRI'], [EPOLL.OUT, 'OUT'], [EPOLL.ERR, 'ERR'], [EPOLL.HUP, 'HUP'], [EPOLL.RDNORM, 'RDNORM'],
  [EPOLL.RDBAND, 'RDBAND'], [EPOLL.WRNORM, 'WRNORM'], [EPOLL.WRBAND, 'WRBAND'], [EPOLL.MSG, 'MSG'], [EPOLL.RDHUP, 'RDHUP'],
  [EPOLL.EXCLUSIVE, 'EXCLUSIVE'], [EPOLL.WAKEUP, 'WAKEUP'], [EPOLL.ONESHOT, 'ONESHOT'], [EPOLL.ET, 'ET'],
];
function eventNames(events: number): string {
  const names = BIT_NAMES.filter(([b]) => (events & b) !== 0).map(([, n]) => n);
  const rest = BIT_NAMES.reduce((r, [b]) => (r & ~b) >>> 0, events >>> 0);
  if (rest) names.push(`0x${rest.toString(16)}`);
  return names.join('|') || '0';
}

/** What dump() saw of an instance, for finish(): where it is and its fdinfo lines. */
interface Seen { pid: number; fd: number; lines: EpollTfdLine[]; readable: boolean }

/** The events the file at fd `fd` of `pid` is ready for now (polled through a copy of ckpt's own: nothing is consumed). */
function readyNow(pid: number, fd: number): number {
  const dup = pidfdGetfd(pid, fd);
  try { return pollNow(dup); } finally { fs.closeSync(dup); }
}

function dumpEpoll(f: FdFacts, ctx: DumpFileCtx): Omit<EpollFile, 'id'> {
  const lines = parseEpollFdinfo(fs.readFileSync(`/proc/${f.pid}/fdinfo/${f.fd}`, 'utf8'));
  // (`file` and `collected` are filled in by finish(), once every fd of the tree is known)
  const targets: Registration[] = lines.map((l) => ({ tfd: l.tfd, file: 1, events: l.events, data: `0x${l.data.toString(16)}` }));
  const seen = (ctx.state.get('epoll') ?? new Map()) as Map<Registration[], Seen>;
  ctx.state.set('epoll', seen);
  seen.set(targets, { pid: f.pid, fd: f.fd, lines, readable: (readyNow(f.pid, f.fd) & EPOLL.IN) !== 0 });
  return { kind: 'epoll', flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), targets };
}

/** Which description each registration is of, and which edge-triggered events were collected. */
function finishEpolls(descs: EpollFile[], ctx: DumpFileCtx): void {
  const seen = (ctx.state.get('epoll') ?? new Map()) as Map<Registration[], Seen>;
  for (const d of descs) {
    const s = seen.get(d.targets);
    if (!s) continue; // (the same description met again through another fd)
    const where = `pid ${s.pid}: fd ${s.fd} (an epoll instance)`;
    const toff = new Map<number, number>();
    const ready: boolean[] = [];
    s.lines.forEach((l, i) => {
      const nth = toff.get(l.tfd) ?? 0;
      toff.set(l.tfd, nth + 1);
      const found = ctx.findFile((pid, fd) => kcmpEpollTarget(pid, fd, s.pid, s.fd, l.tfd, nth), { dev: devFromKernel(l.sdev), ino: l.ino });
      if (!found) {
        throw refused(`${where}: its registration of fd ${l.tfd} (events ${eventNames(l.events)}) is of a file that no process of the tree holds open (inode ${l.ino}); ckpt cannot recreate a file it cannot reach`);
      }
      d.targets[i].file = found.id;
      const mask = readyNow(found.pid, found.fd);
      if (disabled(l.events) && (mask & EVENT_BITS) === 0) {
        throw refused(`${where}: its one-shot registration of fd ${l.tfd} has fired and is disabled, and its file is ready for no event now; ckpt can recreate a disabled registration only by letting it fire once, so this state is not supported yet`);
      }
      ready.push((mask & l.events & EVENT_BITS) !== 0);
    });
    // Nothing pending at all: the events of the edge-triggered registrations whose files are ready were collected.
    if (!s.readable) d.targets.forEach((t, i) => { if (edgeOnly(t.events) && ready[i]) t.collected = true; });
  }
}

export const epollKind = defineKind<EpollFile>({
  kind: 'epoll',
  schema: EpollFile,
  takes: (f) => f.object.type === 'epoll',
  dump: dumpEpoll,
  finish: finishEpolls,
  describe: (e) => `epoll instance, ${e.targets.length} registration${e.targets.length === 1 ? '' : 's'}${e.targets.length ? ': ' : ''}${e.targets.map((t) => `fd ${t.tfd} (file ${t.file}) ${eventNames(t.events)}${disabled(t.events) ? ' (fired, disabled)' : ''} data ${t.data}`).join(', ')}`,
  check(e) {
    const self = e.targets.find((t) => t.file === e.id);
    if (self) throw badImage(`image file files.json: open file ${e.id}, an epoll instance, is registered in itself (fd ${self.tfd})`);
    // Each registered file is put at its number in a process of the tree, whose limit is ckpt's until the end.
    const [soft] = getRlimit(process.pid, RLIMIT.NOFILE, 'RLIMIT_NOFILE');
    const big = e.targets.find((t) => BigInt(t.tfd) >= soft);
    if (big) throw conflict(`open file ${e.id} (an epoll instance): its registration of fd ${big.tfd} is above what this host allows ckpt (RLIMIT_NOFILE ${soft})`);
  },
  phase: 'refs',
  refs: (e) => [...new Set(e.targets.map((t) => t.file))],
  create(e, rt, ctx) {
    let fd = remote.epollCreate1(rt, EPOLL.CLOEXEC);
    // Each registered file is put at its number for its epoll_ctl: the instance must not sit at one of them.
    const numbers = new Set(e.targets.map((t) => t.tfd));
    while (numbers.has(fd)) {
      const next = remote.fcntlDupfdCloexec(rt, fd, fd + 1);
      remote.close(rt, fd);
      fd = next;
    }
    if (e.flags) remote.fcntlSetfl(rt, fd, e.flags);
    const add = (t: Registration, events: number) => remote.epollCtlAdd(rt, fd, t.tfd, events >>> 0, BigInt(t.data), `fd ${t.tfd}`);
    const what = (t: Registration) => `open file ${e.id} (an epoll instance): its registration of fd ${t.tfd}`;
    // 1. One-shot registrations that fired: registered for what their file is ready for, and let fire.
    for (const t of e.targets.filter((x) => disabled(x.events))) {
      ctx.withFileAt(rt, t.file, t.tfd, () => {
        const mask = remote.pollNow(rt, t.tfd) & EVENT_BITS;
        if (!mask) throw conflict(`${what(t)} had fired (disabled); its file is ready for no event now, so it cannot be made to fire`);
        add(t, t.events | mask);
        const got = remote.epollWaitNow(rt, fd, 1);
        if (got.length !== 1 || got[0].data !== BigInt(t.data)) throw new Error(`${what(t)}: letting it fire gave ${got.length} events`);
      });
    }
    // 2. Edge-triggered ones whose event was collected: registered, and the event they report collected.
    const collected = e.targets.filter((x) => x.collected && !disabled(x.events));
    for (const t of collected) ctx.withFileAt(rt, t.file, t.tfd, () => add(t, t.events));
    if (collected.length) {
      const got = remote.epollWaitNow(rt, fd, collected.length);
      const known = new Set(collected.map((t) => BigInt(t.data)));
      const odd = got.find((g) => !known.has(g.data));
      if (odd) throw new Error(`open file ${e.id} (an epoll instance): collecting reported data 0x${odd.data.toString(16)}`);
    }
    // 3. The others.
    for (const t of e.targets.filter((x) => !x.collected && !disabled(x.events))) ctx.withFileAt(rt, t.file, t.tfd, () => add(t, t.events));
    // The kernel may drop a bit it does not grant here (EPOLLWAKEUP without CONFIG_PM_SLEEP or CAP_BLOCK_SUSPEND): compare.
    const key = (l: { tfd: number; events: number; data: bigint }) => `fd ${l.tfd} ${eventNames(l.events)} data 0x${l.data.toString(16)}`;
    const want = e.targets.map((t) => key({ tfd: t.tfd, events: t.events, data: BigInt(t.data) })).sort();
    const have = parseEpollFdinfo(fs.readFileSync(`/proc/${rt.pid}/fdinfo/${fd}`, 'utf8')).map(key).sort();
    const missing = want.filter((w) => !have.includes(w));
    if (missing.length || have.length !== want.length) {
      throw conflict(`open file ${e.id} (an epoll instance): this host made its registrations differently: wanted ${missing.join(', ')}; got ${have.filter((h) => !want.includes(h)).join(', ') || 'fewer'}`);
    }
    return { remote: fd };
  },
});

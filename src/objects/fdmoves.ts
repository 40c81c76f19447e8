// Putting open files at their numbers in a target. The files a process must
// have are open in it at numbers of their own (sources); each must end at its
// number (target) with its close-on-exec flag, and nothing else may stay
// open. A source may sit where another file must go: this plans the dup3
// calls in an order that overwrites no source still needed, parking a source
// at a free number that is no target when the moves form a cycle (the
// lowest: a number above everything can be beyond RLIMIT_NOFILE when the
// image has an fd at the limit's last number). Pure: the plan is carried out
// by the caller.

export interface FdMove { src: number; dst: number; cloexec: boolean }

export type FdOp =
  | { op: 'dup3'; src: number; dst: number; cloexec: boolean }
  /** fcntl(src, F_DUPFD_CLOEXEC, at): `at` is free, so the copy lands at `at`. */
  | { op: 'park'; src: number; at: number }
  /** fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0) */
  | { op: 'setfd'; fd: number; cloexec: boolean }
  | { op: 'close'; fd: number };

/**
 * `moves`: one per target number (targets distinct). Every source is
 * close-on-exec. `open`: every fd open in the target now (sources included).
 */
export function planFdMoves(moves: FdMove[], open: Iterable<number>): FdOp[] {
  const dsts = new Set<number>();
  for (const m of moves) {
    if (dsts.has(m.dst)) throw new Error(`internal: fd ${m.dst} is a target twice`);
    dsts.add(m.dst);
  }
  const present = new Set(open);
  for (const m of moves) if (!present.has(m.src)) throw new Error(`internal: source fd ${m.src} is not open`);
  let spare = 0; // numbers below it are open or targets
  const freeNumber = () => {
    while (present.has(spare) || dsts.has(spare)) spare++;
    return spare;
  };
  const ops: FdOp[] = [];
  let pending: FdMove[] = [];
  for (const m of moves) {
    if (m.src !== m.dst) pending.push({ ...m });
    else if (!m.cloexec) ops.push({ op: 'setfd', fd: m.dst, cloexec: false });
  }
  while (pending.length) {
    const srcs = new Set(pending.map((m) => m.src));
    const free = pending.find((m) => !srcs.has(m.dst));
    if (free) {
      ops.push({ op: 'dup3', src: free.src, dst: free.dst, cloexec: free.cloexec });
      pending = pending.filter((m) => m !== free);
      continue;
    }
    // Every pending target holds a source still needed: a cycle. Park one source.
    const from = pending[0].src;
    const at = freeNumber();
    ops.push({ op: 'park', src: from, at });
    present.add(at);
    pending = pending.map((m) => (m.src === from ? { ...m, src: at } : m));
  }
  for (const fd of [...present].sort((a, b) => a - b)) if (!dsts.has(fd)) ops.push({ op: 'close', fd });
  return ops;
}

/** Carry out a plan on a table of fd -> file (for tests): returns the table after it. */
export function simulateFdOps<T>(table: Map<number, { file: T; cloexec: boolean }>, ops: FdOp[]): Map<number, { file: T; cloexec: boolean }> {
  const t = new Map(table);
  for (const o of ops) {
    if (o.op === 'dup3') {
      const f = t.get(o.src);
      if (!f) throw new Error(`dup3 from closed fd ${o.src}`);
      t.set(o.dst, { file: f.file, cloexec: o.cloexec });
    } else if (o.op === 'park') {
      const f = t.get(o.src);
      if (!f || t.has(o.at)) throw new Error(`bad park of ${o.src} at ${o.at}`);
      t.set(o.at, { file: f.file, cloexec: true });
    } else if (o.op === 'setfd') {
      const f = t.get(o.fd);
      if (!f) throw new Error(`setfd on closed fd ${o.fd}`);
      t.set(o.fd, { file: f.file, cloexec: o.cloexec });
    } else {
      if (!t.delete(o.fd)) throw new Error(`close of closed fd ${o.fd}`);
    }
  }
  return t;
}

// ---- installing a whole fd table with as few remote calls as possible ----

/** One fd a process must end with: its number, the description it refers to, its close-on-exec flag. */
export interface WantedFd { dst: number; file: number; cloexec: boolean }

/** A slot of a received message that carries no wanted file: ckpt sends any fd there, closed again after. */
export const FILLER = -1;

export interface InstallPlan {
  /**
   * The messages the target receives, in order, each with or without
   * MSG_CMSG_CLOEXEC: per slot the description to send (or FILLER) and the
   * number it lands at (received fds take the lowest free numbers, in order).
   */
  receives: Array<{ files: number[]; at: number[]; cloexec: boolean }>;
  /** Then, in order: copies onto numbers that were taken, flags of files already in place, and the closing of everything else. */
  ops: Array<{ op: 'dup3'; src: number; dst: number; cloexec: boolean } | { op: 'setfd'; fd: number; cloexec: boolean } | { op: 'closeRange'; from: number; to: number }>;
}

/**
 * Plan how a process gets its fd table. `open`: what it has open now;
 * `inPlace`: the open numbers that hold a wanted description already (made
 * in the process), with their flag; `keep`: numbers to leave open.
 *
 * The received fds land at the lowest free numbers, so the files are sent in
 * the order of their numbers, and most land where they belong: free gaps of
 * at most `maxGap` numbers among them are filled with fillers (closed
 * after). A file whose number is taken, or lies beyond a bigger gap, is
 * received at a free number and copied to its own (dup3). Everything else is
 * closed by ranges (close_range). So each fd costs at most one remote call,
 * and a dense table a few calls in all.
 */
export function planInstall(fds: WantedFd[], open: Iterable<number>, inPlace: Map<number, { file: number; cloexec: boolean }>, opts: { keep?: number[]; maxPerMessage: number; maxGap?: number }): InstallPlan {
  const maxGap = opts.maxGap ?? 16;
  const present = new Set(open);
  const want = new Map<number, WantedFd>();
  for (const f of fds) {
    if (want.has(f.dst)) throw new Error(`internal: fd ${f.dst} is a target twice`);
    want.set(f.dst, f);
  }
  const keep = new Set(opts.keep ?? []);
  for (const k of keep) if (want.has(k)) throw new Error(`internal: fd ${k} is to be kept and is a target`);
  const setfds: InstallPlan['ops'] = [];
  const free: number[] = [];    // free targets, ascending: each received at its own number or copied there
  const taken: WantedFd[] = []; // targets whose number is taken now: received elsewhere, then copied
  for (const f of [...fds].sort((a, b) => a.dst - b.dst)) {
    const here = inPlace.get(f.dst);
    if (present.has(f.dst) && here?.file === f.file) {
      if (here.cloexec !== f.cloexec) setfds.push({ op: 'setfd', fd: f.dst, cloexec: f.cloexec });
    } else if (present.has(f.dst)) taken.push(f);
    else free.push(f.dst);
  }
  // The received fds, slot by slot at the free numbers ascending: a free
  // target gets its own file; else a file to copy (a taken target, or the
  // highest free target when the next one lies beyond a gap bigger than
  // maxGap), else a filler.
  const slots: Array<{ file: number; at: number; cloexec: boolean | null }> = [];
  const copyAt = new Map<number, number>(); // target -> the number its file is received at, to be copied from
  let lo = 0, hi = free.length; // free[lo..hi) are neither received nor to be copied yet
  for (let x = 0; lo < hi || taken.length; x++) {
    if (present.has(x)) continue;
    const w = want.get(x);
    if (w) {
      // A free target: its file lands here (a copy planned for it is dropped: that slot is just closed).
      slots.push({ file: w.file, at: x, cloexec: w.cloexec });
      copyAt.delete(x);
      if (free[lo] === x) lo++;
      continue;
    }
    const t = taken.pop();
    if (t) { slots.push({ file: t.file, at: x, cloexec: null }); copyAt.set(t.dst, x); continue; }
    let gap = 0;
    for (let y = x; y < free[lo] && gap <= maxGap; y++) if (!present.has(y)) gap++;
    if (gap <= maxGap) { slots.push({ file: FILLER, at: x, cloexec: null }); continue; }
    const top = free[--hi];
    slots.push({ file: want.get(top)!.file, at: x, cloexec: null });
    copyAt.set(top, x);
  }
  // Messages: a new one where the flag of a target received in place changes (fillers and copies take any), at most maxPerMessage fds each.
  const receives: InstallPlan['receives'] = [];
  let fixed = false;
  for (const s of slots) {
    let m = receives[receives.length - 1];
    if (!m || m.files.length >= opts.maxPerMessage || (s.cloexec !== null && fixed && s.cloexec !== m.cloexec)) {
      m = { files: [], at: [], cloexec: true };
      receives.push(m);
      fixed = false;
    }
    if (s.cloexec !== null && !fixed) { m.cloexec = s.cloexec; fixed = true; }
    m.files.push(s.file);
    m.at.push(s.at);
  }
  const ops: InstallPlan['ops'] = [];
  for (const [dst, at] of copyAt) ops.push({ op: 'dup3', src: at, dst, cloexec: want.get(dst)!.cloexec });
  ops.push(...setfds);
  // Close everything that is no target and not kept, by runs that hold no target or kept number.
  const after = new Set([...present, ...slots.map((s) => s.at)]);
  const close = [...after].filter((fd) => !want.has(fd) && !keep.has(fd)).sort((a, b) => a - b);
  const barriers = [...want.keys(), ...keep].sort((a, b) => a - b);
  let bi = 0;
  for (let i = 0; i < close.length;) {
    const from = close[i];
    while (bi < barriers.length && barriers[bi] < from) bi++;
    const limit = bi < barriers.length ? barriers[bi] : Infinity;
    let j = i;
    while (j + 1 < close.length && close[j + 1] < limit) j++;
    ops.push({ op: 'closeRange', from, to: close[j] });
    i = j + 1;
  }
  return { receives, ops };
}

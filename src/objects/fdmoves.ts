// Putting open files at their numbers in a target, with as few remote calls
// as possible. ckpt holds every description the process must have; it sends
// them over the restore socket (SCM_RIGHTS) and the target receives them at
// its lowest free numbers, in the order sent. So the plan sends them in the
// order of their numbers, with fillers in small gaps, and only files whose
// number is taken (or lies far beyond the others) are copied to it after.
// Pure: the plan is carried out by the caller (files.ts) and checked there
// (each fd must land where planned).

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
  // Messages: each received with or without MSG_CMSG_CLOEXEC. A target received
  // under the other flag than its own needs an F_SETFD after; a new message
  // costs a call too: choose the flags per slot for the fewest calls (fillers
  // and copies take any), then split messages at maxPerMessage.
  const flags = chooseFlags(slots.map((s) => s.cloexec));
  const receives: InstallPlan['receives'] = [];
  slots.forEach((s, i) => {
    let m = receives[receives.length - 1];
    if (!m || m.files.length >= opts.maxPerMessage || m.cloexec !== flags[i]) {
      m = { files: [], at: [], cloexec: flags[i] };
      receives.push(m);
    }
    m.files.push(s.file);
    m.at.push(s.at);
    if (s.cloexec !== null && s.cloexec !== flags[i]) setfds.push({ op: 'setfd', fd: s.at, cloexec: s.cloexec });
  });
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

/**
 * The flag each slot is received with, for the fewest calls: a message per
 * change of flag, plus an F_SETFD per slot whose own flag (null: any)
 * differs from the one it is received with. (Dynamic programming over the
 * slots, with the flag of the message in progress as the state.)
 */
export function chooseFlags(want: Array<boolean | null>): boolean[] {
  if (!want.length) return [];
  const INF = Number.MAX_SAFE_INTEGER;
  // cost[f]: fewest calls for the slots so far with the last received under flag f (0: false, 1: true)
  const mismatch = (w: boolean | null, f: number) => (w === null || Number(w) === f ? 0 : 1);
  const from: Array<[number, number]> = []; // per slot and flag: the flag of the slot before
  let cost = [mismatch(want[0], 0) + 1, mismatch(want[0], 1) + 1];
  from.push([0, 1]);
  for (let i = 1; i < want.length; i++) {
    const next = [INF, INF];
    const back: [number, number] = [0, 0];
    for (const f of [0, 1]) {
      const stay = cost[f], change = cost[1 - f] + 1;
      next[f] = Math.min(stay, change) + mismatch(want[i], f);
      back[f] = stay <= change ? f : 1 - f;
    }
    cost = next;
    from.push(back);
  }
  const out: boolean[] = new Array(want.length);
  let f = cost[1] <= cost[0] ? 1 : 0;
  for (let i = want.length - 1; i >= 0; i--) {
    out[i] = f === 1;
    f = from[i][f];
  }
  return out;
}

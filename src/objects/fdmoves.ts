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

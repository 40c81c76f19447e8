// Unit tests of the pure logic: page runs, batching of page transfers,
// I/O vectors (kernel/structs.ts), free address ranges, register fix-ups after an interrupted
// syscall, and the image field schemas. No root, no traced processes, no
// ptrace calls. Property tests (fast-check) compare each function with a
// simple reference model.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planInstall, InstallPlan, chooseFlags } from '../src/objects/fdmoves.js';

import {
  Run, normalizeRuns, runsWhere, intersectRuns, subtractRuns, countPages, batches, trimIov,
  runSegments, findHole, Segment, Batch, Range, TASK_TOP, IOV_MAX, MAX_CALL_BYTES,
} from '../src/objects/memory/runs.js';
import { hex64, pageAddr, dec63, base64Bytes, int } from '../src/image/schema.js';
import { Regs, REG_NAMES, RegName, REGS_SIZE } from '../src/kernel/ptrace.js';
import { iovecArray as iovBuffer } from '../src/kernel/structs.js';
import { finalRegs, Thread } from '../src/objects/thread.js';

import * as mem from '../src/objects/memory/index.js';

const P = 4096;
const PAGES = 2000;

// ---------------------------------------------------------------------------
// Reference model for run lists: sets of page numbers.

function pagesOf(runs: Run[]): Set<number> {
  const s = new Set<number>();
  for (const [first, n] of runs) for (let i = 0; i < n; i++) s.add(first + i);
  return s;
}
/** The normalized run list (sorted, maximal runs) of a set of pages. */
function runsOf(pages: Iterable<number>): Run[] {
  const sorted = [...new Set(pages)].sort((a, b) => a - b);
  const out: Run[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === p) last[1]++;
    else out.push([p, 1]);
  }
  return out;
}
const sortedPages = (s: Set<number>) => [...s].sort((a, b) => a - b);

/** Sorted, non-overlapping, every run non-empty. */
function assertWellFormed(runs: Run[], what: string): void {
  let next = -Infinity;
  for (const [s, n] of runs) {
    assert.ok(Number.isInteger(s) && Number.isInteger(n) && n >= 1, `${what}: bad run [${s}, ${n}] in ${JSON.stringify(runs)}`);
    assert.ok(s >= next, `${what}: runs out of order or overlapping: ${JSON.stringify(runs)}`);
    next = s + n;
  }
}
/** Well formed and no two runs adjacent. */
function assertNormalized(runs: Run[], what: string): void {
  assertWellFormed(runs, what);
  for (let i = 1; i < runs.length; i++) {
    assert.ok(runs[i][0] > runs[i - 1][0] + runs[i - 1][1], `${what}: adjacent runs not merged: ${JSON.stringify(runs)}`);
  }
}

/** Sorted, non-overlapping run lists over pages 0..PAGES-1; adjacent runs allowed (not normalized). */
const runListArb: fc.Arbitrary<Run[]> = fc.array(fc.tuple(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 1, max: 80 })), { maxLength: 40 })
  .map((pairs) => {
    const out: Run[] = [];
    let next = 0;
    for (const [gap, len] of pairs) {
      const s = next + gap;
      if (s >= PAGES) break;
      const n = Math.min(len, PAGES - s);
      out.push([s, n]);
      next = s + n;
    }
    return out;
  });
/** The same lists, normalized (by the reference model, not by the code under test). */
const normRunListArb = runListArb.map((r) => runsOf(pagesOf(r)));
const anyRunListArb = fc.oneof(runListArb, normRunListArb);

const clone = <T>(v: T): T => structuredClone(v);

describe('page runs', () => {
  test('normalizeRuns: examples', () => {
    assert.deepEqual(normalizeRuns([]), []);
    assert.deepEqual(normalizeRuns([[0, 1], [1, 1], [2, 3]]), [[0, 5]]);
    assert.deepEqual(normalizeRuns([[0, 4], [1, 1], [3, 2], [10, 0], [10, 1]]), [[0, 5], [10, 1]]);
    assert.deepEqual(normalizeRuns([[5, 0], [7, 2]]), [[7, 2]]);
  });

  test('normalizeRuns: sorted (possibly overlapping, possibly empty) runs give the normalized runs of the same pages', () => {
    const arb = fc.array(fc.tuple(fc.integer({ min: 0, max: PAGES }), fc.integer({ min: 0, max: 80 })), { maxLength: 40 })
      .map((rs) => rs.sort((a, b) => a[0] - b[0]) as Run[]);
    fc.assert(fc.property(arb, (runs) => {
      const before = clone(runs);
      const out = normalizeRuns(runs);
      assert.deepEqual(runs, before, 'input modified');
      assertNormalized(out, 'normalizeRuns');
      assert.deepEqual(out, runsOf(pagesOf(runs)));
    }), { numRuns: 300 });
  });

  test('runsWhere: the normalized runs of the regions whose categories are kept', () => {
    const regionsArb = runListArb.chain((runs) => fc.tuple(
      fc.constant(runs), fc.array(fc.integer({ min: 0, max: 15 }), { minLength: runs.length, maxLength: runs.length })))
      .map(([runs, cats]) => runs.map(([s, n], i) => [s, n, cats[i]] as [number, number, number]));
    fc.assert(fc.property(regionsArb, fc.integer({ min: 0, max: 15 }), (regions, mask) => {
      const keep = (c: number) => (c & mask) !== 0;
      const out = runsWhere(regions, keep);
      assertNormalized(out, 'runsWhere');
      assert.deepEqual(out, runsOf(pagesOf(regions.filter((r) => keep(r[2])).map(([s, n]) => [s, n] as Run))));
    }), { numRuns: 300 });
    assert.deepEqual(runsWhere([[0, 2, 1], [2, 3, 1], [5, 1, 2], [6, 1, 1]], (c) => c === 1), [[0, 5], [6, 1]]);
  });

  test('intersectRuns: examples', () => {
    assert.deepEqual(intersectRuns([], [[0, 10]]), []);
    assert.deepEqual(intersectRuns([[0, 10]], [[2, 3], [8, 5]]), [[2, 3], [8, 2]]);
    assert.deepEqual(intersectRuns([[0, 2], [4, 2]], [[2, 2]]), []);
    assert.deepEqual(intersectRuns([[0, 3], [5, 5]], [[1, 6]]), [[1, 2], [5, 2]]);
  });

  test('intersectRuns: the pages in both lists, sorted and non-overlapping; normalized for normalized inputs', () => {
    fc.assert(fc.property(anyRunListArb, anyRunListArb, (a, b) => {
      const a0 = clone(a), b0 = clone(b);
      const out = intersectRuns(a, b);
      assert.deepEqual([a, b], [a0, b0], 'input modified');
      assertWellFormed(out, 'intersectRuns');
      const pb = pagesOf(b);
      assert.deepEqual(sortedPages(pagesOf(out)), sortedPages(pagesOf(a)).filter((p) => pb.has(p)));
    }), { numRuns: 300 });
    fc.assert(fc.property(normRunListArb, normRunListArb, (a, b) => {
      assertNormalized(intersectRuns(a, b), 'intersectRuns');
    }), { numRuns: 200 });
  });

  test('subtractRuns: examples', () => {
    assert.deepEqual(subtractRuns([[0, 10]], []), [[0, 10]]);
    assert.deepEqual(subtractRuns([[0, 10]], [[0, 10]]), []);
    assert.deepEqual(subtractRuns([[0, 10]], [[2, 1], [3, 1], [9, 4]]), [[0, 2], [4, 5]]);
    assert.deepEqual(subtractRuns([[0, 2], [5, 5], [20, 1]], [[1, 5], [8, 1]]), [[0, 1], [6, 2], [9, 1], [20, 1]]);
  });

  test('subtractRuns: the pages of a not in b, sorted and non-overlapping; normalized for normalized inputs', () => {
    fc.assert(fc.property(anyRunListArb, anyRunListArb, (a, b) => {
      const a0 = clone(a), b0 = clone(b);
      const out = subtractRuns(a, b);
      assert.deepEqual([a, b], [a0, b0], 'input modified');
      assertWellFormed(out, 'subtractRuns');
      const pb = pagesOf(b);
      assert.deepEqual(sortedPages(pagesOf(out)), sortedPages(pagesOf(a)).filter((p) => !pb.has(p)));
    }), { numRuns: 300 });
    fc.assert(fc.property(normRunListArb, normRunListArb, (a, b) => {
      assertNormalized(subtractRuns(a, b), 'subtractRuns');
    }), { numRuns: 200 });
  });

  test('countPages: the number of pages of a non-overlapping list', () => {
    assert.equal(countPages([]), 0);
    assert.equal(countPages([[3, 4], [10, 1]]), 5);
    fc.assert(fc.property(anyRunListArb, (runs) => countPages(runs) === pagesOf(runs).size), { numRuns: 200 });
  });

  test('intersect and subtract partition a: |a| = |a ∩ b| + |a \\ b|', () => {
    fc.assert(fc.property(anyRunListArb, anyRunListArb, (a, b) =>
      countPages(a) === countPages(intersectRuns(a, b)) + countPages(subtractRuns(a, b))), { numRuns: 200 });
  });
});

// ---------------------------------------------------------------------------
// Batches of page transfers.

interface Unit { addr: bigint; off: number }
/** Input segments as a sequence of transfer units (one per `unit` bytes): memory address and file offset. */
function unitsOfSegments(segs: Segment[], unit: number): Unit[] {
  const out: Unit[] = [];
  for (const g of segs) {
    assert.equal(g.len % unit, 0);
    for (let i = 0; i < g.len; i += unit) out.push({ addr: g.addr + BigInt(i), off: g.fileOff + i });
  }
  return out;
}
/** The same for batches: each batch's iov laid out in the file from its fileOff. Checks the per-batch invariants. */
function unitsOfBatches(bs: Batch[], unit: number, maxBytes: number, maxIov: number): Unit[] {
  const out: Unit[] = [];
  for (const b of bs) {
    assert.ok(b.iov.length >= 1, 'empty batch');
    assert.ok(b.iov.length <= maxIov, `batch of ${b.iov.length} vectors > ${maxIov}`);
    assert.ok(b.bytes >= 1 && b.bytes <= maxBytes, `batch of ${b.bytes} bytes (max ${maxBytes})`);
    assert.equal(Math.floor(b.fileOff / maxBytes), Math.floor((b.fileOff + b.bytes - 1) / maxBytes),
      `batch [${b.fileOff}, +${b.bytes}) crosses a multiple of ${maxBytes}`);
    let off = b.fileOff;
    for (const [a, l] of b.iov) {
      assert.ok(l > 0, 'zero-length vector');
      assert.equal(l % unit, 0);
      for (let i = 0; i < l; i += unit) out.push({ addr: a + BigInt(i), off: off + i });
      off += l;
    }
    assert.equal(off - b.fileOff, b.bytes, 'sum of vector lengths != bytes');
  }
  return out;
}
/** Batches are not split more than needed: a batch followed by one continuing it in the file is full or ends at a boundary. */
function assertMaximal(bs: Batch[], maxBytes: number, maxIov: number): void {
  for (let i = 1; i < bs.length; i++) {
    const p = bs[i - 1];
    if (bs[i].fileOff === p.fileOff + p.bytes) {
      assert.ok(p.iov.length === maxIov || (p.fileOff + p.bytes) % maxBytes === 0,
        `batch ${i - 1} (${p.iov.length} vectors, [${p.fileOff}, +${p.bytes})) was cut short`);
    }
  }
}

/** Segments in page-file order (fileOff ascending, contiguous or with gaps) or in any order. */
function segmentsArb(unit: number, maxUnits: number, inOrder: boolean, minUnits = 0): fc.Arbitrary<Segment[]> {
  return fc.tuple(
    fc.integer({ min: 0, max: 40 }),
    fc.array(fc.record({
      addr: fc.bigInt({ min: 0n, max: 1n << 36n }),
      units: fc.integer({ min: minUnits, max: maxUnits }),
      gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 40 })),
    }), { maxLength: 30 }),
  ).map(([base, raw]) => {
    let next = base * unit;
    return raw.map(({ addr, units, gap }) => {
      const fileOff = inOrder ? next + gap * unit : gap * unit;
      const g = { addr: addr * BigInt(unit), len: units * unit, fileOff };
      next = fileOff + g.len;
      return g;
    });
  });
}

describe('batches', () => {
  for (const inOrder of [true, false]) {
    test(`page segments (${inOrder ? 'in file order' : 'any file order'}): batches reproduce the input, within the limits`, () => {
      fc.assert(fc.property(segmentsArb(P, 12, inOrder), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 5 }),
        (segs, maxPages, maxIov) => {
          const maxBytes = maxPages * P;
          const before = clone(segs);
          const bs = [...batches(segs, maxBytes, maxIov)];
          assert.deepEqual(segs, before, 'input modified');
          assert.deepEqual(unitsOfBatches(bs, P, maxBytes, maxIov), unitsOfSegments(segs, P));
        }), { numRuns: 400 });
    });
  }

  test('4-page calls of at most 3 vectors: batches reproduce the input, within the limits, cut only where needed', () => {
    fc.assert(fc.property(segmentsArb(P, 12, true, 1), (segs) => {
      const bs = [...batches(segs, 4 * P, 3)];
      assert.deepEqual(unitsOfBatches(bs, P, 4 * P, 3), unitsOfSegments(segs, P));
      assertMaximal(bs, 4 * P, 3);
    }), { numRuns: 400 });
  });

  test('byte granularity (any lengths, any maxBytes): batches reproduce the input, within the limits', () => {
    fc.assert(fc.property(segmentsArb(1, 40, true), fc.integer({ min: 1, max: 32 }), fc.integer({ min: 1, max: 5 }),
      (segs, maxBytes, maxIov) => {
        const bs = [...batches(segs, maxBytes, maxIov)];
        assert.deepEqual(unitsOfBatches(bs, 1, maxBytes, maxIov), unitsOfSegments(segs, 1));
      }), { numRuns: 300 });
  });

  test('examples', () => {
    assert.deepEqual([...batches([])], []);
    // Contiguous in the file, scattered in memory: one call per 2 vectors.
    const segs: Segment[] = [
      { addr: 0x10000n, len: P, fileOff: 0 },
      { addr: 0x30000n, len: 2 * P, fileOff: P },
      { addr: 0x50000n, len: P, fileOff: 3 * P },
    ];
    assert.deepEqual([...batches(segs, 16 * P, 2)], [
      { iov: [[0x10000n, P], [0x30000n, 2 * P]], bytes: 3 * P, fileOff: 0 },
      { iov: [[0x50000n, P]], bytes: P, fileOff: 3 * P },
    ]);
    // A segment split at a multiple of maxBytes; a gap in the file starts a new call.
    assert.deepEqual([...batches([{ addr: 0x1000n, len: 6 * P, fileOff: 2 * P }, { addr: 0x100000n, len: P, fileOff: 20 * P }], 4 * P, 8)], [
      { iov: [[0x1000n, 2 * P]], bytes: 2 * P, fileOff: 2 * P },
      { iov: [[0x3000n, 4 * P]], bytes: 4 * P, fileOff: 4 * P },
      { iov: [[0x100000n, P]], bytes: P, fileOff: 20 * P },
    ]);
  });

  test('defaults: MAX_CALL_BYTES and IOV_MAX', () => {
    const big = [...batches([{ addr: 0x7f0000000000n, len: 200 << 20, fileOff: 0 }])];
    assert.deepEqual(big.map((b) => [b.fileOff, b.bytes]), [[0, 64 << 20], [64 << 20, 64 << 20], [128 << 20, 64 << 20], [192 << 20, 8 << 20]]);
    assert.deepEqual(big.map((b) => b.iov[0][0]), [0n, 64n << 20n, 128n << 20n, 192n << 20n].map((d) => 0x7f0000000000n + d));
    const across = [...batches([{ addr: 0n, len: 8 << 20, fileOff: 60 << 20 }])];
    assert.deepEqual(across.map((b) => [b.fileOff, b.bytes]), [[60 << 20, 4 << 20], [MAX_CALL_BYTES, 4 << 20]]);
    const many: Segment[] = Array.from({ length: 2000 }, (_, i) => ({ addr: BigInt(i) * 2n * BigInt(P), len: P, fileOff: i * P }));
    const bs = [...batches(many)];
    assert.deepEqual(bs.map((b) => b.iov.length), [IOV_MAX, 2000 - IOV_MAX]);
    assert.deepEqual(bs.map((b) => b.fileOff), [0, IOV_MAX * P]);
  });
});

// ---------------------------------------------------------------------------
// I/O vectors.

type Iov = Array<[bigint, number]>;
const bytesOfIov = (iov: Iov): bigint[] => iov.flatMap(([a, l]) => Array.from({ length: l }, (_, i) => a + BigInt(i)));
const iovArb: fc.Arbitrary<Iov> = fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 1n << 47n }), fc.integer({ min: 0, max: 50 })), { maxLength: 12 });

describe('I/O vectors', () => {
  test('trimIov: the input byte sequence without its first `skip` bytes', () => {
    const arb = iovArb.chain((iov) => fc.tuple(fc.constant(iov), fc.integer({ min: 0, max: iov.reduce((s, [, l]) => s + l, 0) })));
    fc.assert(fc.property(arb, ([iov, skip]) => {
      const before = clone(iov);
      const out = trimIov(iov, skip);
      assert.deepEqual(iov, before, 'input modified');
      assert.deepEqual(bytesOfIov(out), bytesOfIov(iov).slice(skip));
      if (skip > 0) assert.ok(out.every(([, l]) => l > 0), 'zero-length vector left');
    }), { numRuns: 400 });
  });

  test('trimIov: examples', () => {
    const iov: Iov = [[0x1000n, 4096], [0x9000n, 8192]];
    assert.deepEqual(trimIov(iov, 0), iov);
    assert.deepEqual(trimIov(iov, 100), [[0x1064n, 3996], [0x9000n, 8192]]);
    assert.deepEqual(trimIov(iov, 4096), [[0x9000n, 8192]]);
    assert.deepEqual(trimIov(iov, 5000), [[0x9000n + 904n, 7288]]);
    assert.deepEqual(trimIov(iov, 12288), []);
  });

  test('iovecArray: 16 bytes per vector, address then length, little endian', () => {
    assert.equal(iovBuffer([]).length, 0);
    assert.equal(iovBuffer([[0x1122334455667788n, 0x10], [0xffffffffffffffffn, 1]]).toString('hex'),
      '8877665544332211' + '1000000000000000' + 'ffffffffffffffff' + '0100000000000000');
    fc.assert(fc.property(fc.array(fc.tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.maxSafeNat()), { maxLength: 20 }), (iov) => {
      const b = iovBuffer(iov);
      assert.equal(b.length, 16 * iov.length);
      iov.forEach(([a, l], i) => {
        assert.equal(b.readBigUInt64LE(16 * i), a);
        assert.equal(b.readBigUInt64LE(16 * i + 8), BigInt(l));
      });
    }));
  });

  test('runSegments: addresses start + page*4096, file offsets consecutive from dataOffset', () => {
    assert.deepEqual(runSegments(0x400000n, [[0, 1], [3, 2]], 8192), [
      { addr: 0x400000n, len: 4096, fileOff: 8192 },
      { addr: 0x403000n, len: 8192, fileOff: 12288 },
    ]);
    assert.deepEqual(runSegments(0x1000n, [], 0), []);
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 35n) - 1n }), anyRunListArb, fc.integer({ min: 0, max: 1 << 20 }),
      (startPage, runs, dataPage) => {
        const start = startPage * BigInt(P);
        const segs = runSegments(start, runs, dataPage * P);
        assert.equal(segs.length, runs.length);
        let off = dataPage * P;
        segs.forEach((g, i) => {
          assert.deepEqual(g, { addr: start + BigInt(runs[i][0] * P), len: runs[i][1] * P, fileOff: off });
          off += g.len;
        });
        assert.equal(off - dataPage * P, countPages(runs) * P);
      }));
  });
});

// ---------------------------------------------------------------------------
// Free address ranges.

const overlaps = (a: bigint, size: bigint, r: Range) => a < r.end && r.start < a + size;

describe('findHole', () => {
  test('the lowest free range at or above `above` and below `top` (reference search over a page grid)', () => {
    const pg = BigInt(P);
    const arb = fc.record({
      used: fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 12 })), { maxLength: 10 })
        .map((rs) => rs.map(([s, n]) => ({ start: BigInt(s) * pg, end: BigInt(s + n) * pg }))),
      // mostly whole pages, sometimes any byte count
      size: fc.oneof(fc.integer({ min: 1, max: 12 }).map((n) => n * P), fc.integer({ min: 1, max: 12 * P })),
      above: fc.integer({ min: 0, max: 40 }),
      span: fc.integer({ min: 0, max: 50 }),
    });
    fc.assert(fc.property(arb, ({ used, size, above, span }) => {
      const lo = BigInt(above) * pg, top = BigInt(above + span) * pg, sz = BigInt(size);
      // The lowest free start is `above` or the end of a used range, so a page grid search finds it.
      let want: bigint | undefined;
      for (let a = lo; a + sz <= top; a += pg) if (!used.some((r) => overlaps(a, sz, r))) { want = a; break; }
      const before = clone(used);
      if (want === undefined) {
        assert.throws(() => findHole(used, size, lo, top), /no free address range/);
      } else {
        const got = findHole(used, size, lo, top);
        assert.equal(got, want);
        assert.ok(got >= lo && got + sz <= top && !used.some((r) => overlaps(got, sz, r)));
      }
      assert.deepEqual(used, before, 'input modified');
    }), { numRuns: 1000 });
  });

  test('examples', () => {
    assert.equal(findHole([], 4096), 0x100000000n);
    assert.equal(findHole([{ start: 0x100000000n, end: 0x100002000n }], 4096), 0x100002000n);
    // Unsorted input; a gap too small is skipped; overlapping used ranges.
    const used: Range[] = [
      { start: 0x5000n, end: 0x8000n }, { start: 0x1000n, end: 0x3000n }, { start: 0x3800n, end: 0x4000n }, { start: 0x2000n, end: 0x3400n },
    ];
    assert.equal(findHole(used, 0x1000, 0x1000n, 0x100000n), 0x4000n);
    assert.equal(findHole(used, 0x1001, 0x1000n, 0x100000n), 0x8000n);
    assert.equal(findHole(used, 0x1000, 0n, 0x100000n), 0n);
    assert.equal(findHole([], 4096, TASK_TOP - 4096n), TASK_TOP - 4096n);
    assert.throws(() => findHole([], 4096, TASK_TOP - 4095n), /no free address range of 4096 bytes/);
    assert.throws(() => findHole([{ start: 0x1000n, end: 0x9000n }], 0x1000, 0x1000n, 0x9000n), /no free address range/);
  });
});

// ---------------------------------------------------------------------------
// Registers of a thread stopped in a syscall.

const U64 = (1n << 64n) - 1n;
const ERESTART = [512n, 513n, 514n, 516n]; // ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK
const NR_RESTART_SYSCALL = 219n;

function mkThread(regs: Partial<Record<RegName, bigint>>, tid = 4242): Thread {
  const r = Object.fromEntries(REG_NAMES.map((n) => [n, '0x' + BigInt.asUintN(64, regs[n] ?? 0n).toString(16)]));
  return {
    tid, regs: r as Thread['regs'], xstate: Buffer.alloc(576).toString('base64'), sigmask: '0x0', pending: [],
    altstack: { sp: '0x0', flags: 2, size: '0x0' }, rseq: null, tidAddress: '0x0', robustList: { head: '0x0', len: 0 },
  };
}

/**
 * What finalRegs must do, on unsigned 64-bit register values: a thread in a
 * syscall with a restart code keeps it for the kernel to decide (orig_rax
 * kept), -ERESTART_RESTARTBLOCK becoming -ERESTARTNOHAND; in restart_syscall
 * it gets EINTR; otherwise orig_rax = -1 and nothing else changes.
 */
function expectedFinal(regs: Record<RegName, bigint>): { regs: Record<RegName, bigint>; note: boolean } {
  const out = { ...regs };
  const orig = BigInt.asIntN(64, regs.orig_rax);
  const rax = BigInt.asIntN(64, regs.rax);
  let note = false;
  if (orig >= 0n && ERESTART.includes(-rax)) {
    if (orig === NR_RESTART_SYSCALL) { out.rax = BigInt.asUintN(64, -4n); out.orig_rax = U64; note = true; }
    else if (-rax === 516n) out.rax = BigInt.asUintN(64, -514n);
  } else out.orig_rax = U64;
  return { regs: out, note };
}

describe('finalRegs', () => {
  test('registers: REG_NAMES is user_regs_struct; Regs round-trips through JSON', () => {
    assert.equal(REG_NAMES.length, 27);
    assert.equal(REGS_SIZE, 27 * 8);
    assert.equal(new Set(REG_NAMES).size, 27);
    fc.assert(fc.property(fc.array(fc.bigInt({ min: 0n, max: U64 }), { minLength: 27, maxLength: 27 }), (vals) => {
      const r = new Regs();
      REG_NAMES.forEach((n, i) => r.set(n, vals[i]));
      const back = Regs.fromJSON(r.toJSON());
      assert.ok(back.buf.equals(r.buf));
      REG_NAMES.forEach((n, i) => { assert.equal(back.get(n), vals[i]); assert.equal(back.sget(n), BigInt.asIntN(64, vals[i])); });
    }));
    assert.throws(() => Regs.fromJSON({ rax: '0x0' }), /register r15 missing/);
  });

  test('the thread fixture is a valid Thread', () => {
    const r = Thread.safeParse(mkThread({ rip: 0x401000n, orig_rax: U64 }));
    assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues));
  });

  test('not in a syscall (orig_rax = -1): rax and rip unchanged', () => {
    for (const rax of [0n, -512n, -516n, -4n, 12345n]) {
      const { regs, note } = finalRegs(mkThread({ orig_rax: -1n, rax, rip: 0x401234n }));
      assert.equal(regs.sget('rax'), rax);
      assert.equal(regs.get('rip'), 0x401234n);
      assert.equal(regs.sget('orig_rax'), -1n);
      assert.equal(note, undefined);
    }
  });

  test('interrupted with a restart code: left for the kernel to restart (orig_rax and rip kept; RESTARTBLOCK as NOHAND)', () => {
    for (const code of ERESTART) {
      for (const nr of [0n, 7n, 35n, 230n, 461n]) {
        const { regs, note } = finalRegs(mkThread({ orig_rax: nr, rax: -code, rip: 0x7f0000001235n }));
        assert.equal(regs.sget('rax'), code === 516n ? -514n : -code, `code ${code}, nr ${nr}`);
        assert.equal(regs.get('rip'), 0x7f0000001235n);
        assert.equal(regs.sget('orig_rax'), nr);
        assert.equal(note, undefined);
      }
    }
  });

  test('in restart_syscall with a restart code: EINTR, rip unchanged, a note', () => {
    for (const code of ERESTART) {
      const { regs, note } = finalRegs(mkThread({ orig_rax: NR_RESTART_SYSCALL, rax: -code, rip: 0x401000n }, 777));
      assert.equal(regs.sget('rax'), -4n);
      assert.equal(regs.get('rip'), 0x401000n);
      assert.equal(regs.sget('orig_rax'), -1n);
      assert.equal(typeof note, 'string');
      assert.match(note!, /777/);
    }
  });

  test('a syscall that returned (a result, -EINTR, another error): rax and rip unchanged', () => {
    for (const rax of [0n, 1n, 4096n, -4n, -1n, -11n, -511n, -515n, -517n, 512n, 0x7f0012340000n]) {
      for (const nr of [0n, 1n, NR_RESTART_SYSCALL]) {
        const { regs, note } = finalRegs(mkThread({ orig_rax: nr, rax, rip: 0x401002n }));
        assert.equal(regs.sget('rax'), rax, `rax ${rax}, nr ${nr}`);
        assert.equal(regs.get('rip'), 0x401002n);
        assert.equal(regs.sget('orig_rax'), -1n);
        assert.equal(note, undefined);
      }
    }
  });

  test('property: the rules hold for random registers, syscall numbers and results', () => {
    const reg = fc.bigInt({ min: 0n, max: U64 });
    const arb = fc.record({
      others: fc.array(reg, { minLength: 27, maxLength: 27 }),
      orig: fc.oneof(fc.constant(U64), fc.bigInt({ min: 0n, max: 500n }), fc.constant(NR_RESTART_SYSCALL),
        fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }), reg),
      rax: fc.oneof(fc.constantFrom(...ERESTART).map((c) => BigInt.asUintN(64, -c)), fc.constant(BigInt.asUintN(64, -4n)),
        fc.bigInt({ min: -4095n, max: 4095n }).map((v) => BigInt.asUintN(64, v)), reg),
      rip: fc.oneof(reg, fc.bigInt({ min: 0n, max: 3n })),
    });
    fc.assert(fc.property(arb, ({ others, orig, rax, rip }) => {
      const input = Object.fromEntries(REG_NAMES.map((n, i) => [n, others[i]])) as Record<RegName, bigint>;
      Object.assign(input, { orig_rax: orig, rax, rip });
      const t = mkThread(input);
      const regsBefore = clone(t.regs);
      const { regs, note } = finalRegs(t);
      assert.deepEqual(t.regs, regsBefore, 'thread modified');
      const want = expectedFinal(input);
      for (const n of REG_NAMES) assert.equal(regs.get(n), want.regs[n], n);
      assert.equal(note !== undefined, want.note);
    }), { numRuns: 500 });
  });
});

// ---------------------------------------------------------------------------
// Field schemas.

/** safeParse that reports a thrown exception as a failure of the test, not of the value. */
function accepts(schema: { safeParse(v: unknown): { success: boolean } }, v: unknown): boolean {
  return schema.safeParse(v).success;
}
function assertAccepts(schema: { safeParse(v: unknown): { success: boolean } }, good: unknown[], bad: unknown[], what: string): void {
  for (const v of good) assert.equal(accepts(schema, v), true, `${what} should accept ${JSON.stringify(v)}`);
  for (const v of bad) assert.equal(accepts(schema, v), false, `${what} should reject ${typeof v === 'bigint' ? `${v}n` : JSON.stringify(v)}`);
}

describe('schemas', () => {
  test('hex64', () => {
    assertAccepts(hex64, ['0x0', '0x7f00', '0xffffffffffffffff', '0x0000000000000001'],
      ['0x', 'zz', '0X10', '0xABC', '0x' + '1'.repeat(17), '10', ' 0x1', '0x1 ', '-0x1', 16, 16n, null, undefined], 'hex64');
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: U64 }), (v) => accepts(hex64, '0x' + v.toString(16))));
    fc.assert(fc.property(fc.bigInt({ min: 1n << 64n, max: 1n << 80n }), (v) => !accepts(hex64, '0x' + v.toString(16))));
  });

  test('pageAddr', () => {
    assertAccepts(pageAddr, ['0x0', '0x1000', '0x7ffffffff000', '0x400000', '0xfffff000', '0x100000000'],
      ['0x1001', '0x800000000000', '0xfffffffff000', 'zz', '0x', '-0x1000', '0x01000', '0x1000 ', '0xA000', 4096, 4096n], 'pageAddr');
    // Every page-aligned user address, written as ckpt writes it.
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 35n) - 1n }), (p) => accepts(pageAddr, '0x' + (p * 4096n).toString(16))));
    // Not page-aligned, or not below 2^47.
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 1n << 47n }), fc.integer({ min: 1, max: 4095 }),
      (p, r) => !accepts(pageAddr, '0x' + (p * 4096n + BigInt(r)).toString(16))));
    fc.assert(fc.property(fc.bigInt({ min: 1n << 35n, max: 1n << 52n }), (p) => !accepts(pageAddr, '0x' + (p * 4096n).toString(16))));
  });

  test('dec63', () => {
    assertAccepts(dec63, ['0', '1', '4096', '9223372036854775807'],
      ['', '-1', '01', '+1', '9223372036854775808', '99999999999999999999', 4096, null], 'dec63');
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }), (v) => accepts(dec63, v.toString())));
    fc.assert(fc.property(fc.bigInt({ min: 1n << 63n, max: 10n ** 25n }), (v) => !accepts(dec63, v.toString())));
  });

  // A refinement that runs on a string the regex already rejected must not throw (BigInt('zz')).
  test('dec63: non-numeric strings are rejected, not thrown on', () => {
    for (const v of ['zz', '1.5', '1e3', '0x1g', '-']) {
      assert.doesNotThrow(() => dec63.safeParse(v), `dec63 ${v}`);
      assert.equal(accepts(dec63, v), false);
    }
  });

  test('base64Bytes', () => {
    const b64 = (n: number) => Buffer.alloc(n, 0xa5).toString('base64');
    const exact = base64Bytes(16);
    assertAccepts(exact, [b64(16)], [b64(15), b64(17), '', b64(16).slice(0, -1), b64(16) + '=', b64(16).replace(/=+$/, ''), 16], 'base64Bytes(16)');
    const range = base64Bytes(576, 1 << 16);
    assertAccepts(range, [b64(576), b64(1 << 16), b64(1000)], [b64(575), b64((1 << 16) + 1)], 'base64Bytes(576, 65536)');
    const any = base64Bytes(0, 64);
    assertAccepts(any, ['', 'AA==', 'AAA=', 'AAAA', '+/+/'],
      ['A', 'AA', 'AAA', 'A===', 'AA=A', '====', 'AA-_', 'AA AA', 'AA==AA==', '*AAA'], 'base64Bytes(0, 64)');
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }),
      (bytes, lo, extra) => accepts(base64Bytes(lo, lo + extra), Buffer.from(bytes).toString('base64')) ===
        (bytes.length >= lo && bytes.length <= lo + extra)));
  });

  test('int', () => {
    const s = int(-5, 10);
    assertAccepts(s, [-5, 0, 10], [-6, 11, 1.5, NaN, Infinity, '1', 1n, null], 'int(-5, 10)');
    fc.assert(fc.property(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: -1100, max: 1100 }),
      (a, b, x) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        return accepts(int(lo, hi), x) === (x >= lo && x <= hi);
      }));
    assert.equal(accepts(int(0, Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER), true);
    assert.equal(accepts(int(0, Number.MAX_SAFE_INTEGER), 2 ** 60), false);
  });
});

// ---------------------------------------------------------------------------
// Memory image schemas.

describe('Area and MemoryImage', () => {
  const area = (over: Record<string, unknown> = {}) => ({
    start: '0x400000', end: '0x404000', prot: 'rw-', shared: false, kind: 'anon', name: '', offset: '0x0',
    vmflags: ['rd', 'wr', 'mr', 'mw', 'me', 'ac'], dataOffset: 0, runs: [[0, 1], [2, 2]], ...over,
  });

  test('Area: valid areas pass', () => {
    const { Area } = mem;
    assertAccepts(Area, [
      area(),
      area({ runs: [] }),
      area({ runs: [[0, 4]] }),
      area({ runs: [[0, 1], [1, 1]] }), // adjacent runs
      area({ kind: 'file', name: '/usr/lib/libc.so.6', offset: '0x2000', prot: 'r-x', fileSize: 100000, fileMtime: 1700000000 }),
      area({ inherit: true, drop: [[1, 1]] }),
      area({ kind: 'shmem', shared: true, runs: [], shmem: '801:1a2b:0' }),
      area({ dataOffset: 8192 }),
    ], [], 'Area');
  });

  test('Area: invalid areas fail', () => {
    const { Area } = mem;
    assertAccepts(Area, [], [
      area({ end: '0x3ff000' }),                 // ends before it starts
      area({ end: '0x400000' }),                 // empty
      area({ runs: [[3, 2]] }),                  // past the end of the area
      area({ runs: [[4, 1]] }),
      area({ runs: [[2, 1], [0, 1]] }),          // out of order
      area({ runs: [[0, 2], [1, 1]] }),          // overlapping
      area({ runs: [[0, 0]] }),                  // empty run
      area({ runs: [[-1, 1]] }),
      area({ drop: [[0, 5]] }),
      area({ dataOffset: 100 }),                 // unaligned dataOffset
      area({ dataOffset: -4096 }),
      area({ offset: '0x10' }),                  // unaligned file offset
      area({ start: '0x400001' }),
      area({ prot: 'rwz' }),
      area({ kind: 'heap' }),
      area({ vmflags: ['read'] }),
      area({ shmem: '801:1a2b:0' }),             // shmem on a private area
      area({ kind: 'anon', shared: true, runs: [], shmem: '801:1a2b:0' }), // an anon area naming an object
      area({ kind: 'shmem', shared: true, runs: [] }),  // a shmem area without its object
      area({ shared: true, kind: 'shmem', shmem: '801:1a2b:0' }), // with runs of its own
    ], 'Area');
  });

  test('Area: runs are accepted exactly when sorted, non-overlapping and inside the area', () => {
    const { Area } = mem;
    fc.assert(fc.property(fc.integer({ min: 1, max: 40 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 45 }), fc.integer({ min: 1, max: 10 })), { maxLength: 6 }),
      (pages, runs) => {
        let next = 0, ok = true;
        for (const [s, n] of runs) { if (s < next || s + n > pages) ok = false; next = s + n; }
        const a = area({ end: '0x' + (0x400000 + pages * P).toString(16), runs });
        return accepts(Area, a) === ok;
      }), { numRuns: 300 });
  });

  // The object-level refinements read fields whose own check may have failed: they must not throw.
  test('Area: a malformed address or offset is rejected, not thrown on', () => {
    const { Area } = mem;
    for (const over of [{ start: 'zz' }, { end: '0x' }, { offset: 'nothex' }]) {
      assert.doesNotThrow(() => Area.safeParse(area(over)), JSON.stringify(over));
      assert.equal(accepts(Area, area(over)), false);
    }
  });

  test('MemoryImage: ordered areas laid out one after another in the page file pass; overlapping, unordered, gaps or no vDSO fail', () => {
    const { MemoryImage } = mem;
    const a1 = area();                                                                   // 3 pages at dataOffset 0
    const a2 = area({ start: '0x404000', end: '0x406000', runs: [[0, 2]], dataOffset: 3 * P }); // adjacent to a1
    const vdso = (dataOffset: number) => area({ start: '0x7fff00000000', end: '0x7fff00002000', prot: 'r-x', kind: 'special', name: '[vdso]', runs: [], dataOffset });
    const img = (over: Record<string, unknown>) => ({ pagesFile: 'pages-123.img', pageBytes: 5 * P, areas: [a1, a2, vdso(5 * P)], ...over });
    assertAccepts(MemoryImage, [
      img({}),
      img({ areas: [vdso(0)], pageBytes: 0 }),
    ], [
      img({ areas: [a2, a1, vdso(5 * P)] }),                                            // out of order
      img({ areas: [a1, { ...a2, start: '0x403000' }, vdso(5 * P)] }),                  // overlapping
      img({ areas: [a1, area({ start: '0x400000', end: '0x401000', runs: [], dataOffset: 3 * P }), vdso(3 * P)], pageBytes: 3 * P }), // same start
      img({ pageBytes: 4 * P }),                                                         // a2's pages past pageBytes
      img({ pageBytes: 6 * P }),                                                         // pages nobody holds
      img({ areas: [a1, { ...a2, dataOffset: 4 * P }, vdso(6 * P)], pageBytes: 6 * P }), // a gap in the page file
      img({ areas: [a1, { ...a2, dataOffset: 3 * P + 1 }, vdso(5 * P)] }),              // unaligned dataOffset
      img({ areas: [a1, a2] }),                                                          // no vDSO
      img({ areas: [], pageBytes: 0 }),
      img({ pageBytes: 5 * P + 1 }),
      img({ pagesFile: 'pages.img' }),
      img({ pagesFile: '../pages-1.img' }),
      img({ areas: [{ ...a1, end: '0x3ff000' }, vdso(3 * P)], pageBytes: 3 * P }),     // an invalid area
    ], 'MemoryImage');
  });
});

// ---- installing an fd table (objects/fdmoves.ts planInstall) ----

/** Carry out an install plan the way the kernel would: received fds take the lowest free numbers. */
function simulateInstall(table: Map<number, { file: number; cloexec: boolean }>, plan: InstallPlan): Map<number, { file: number; cloexec: boolean }> {
  const t = new Map(table);
  for (const m of plan.receives) {
    m.files.forEach((file, i) => {
      let fd = 0;
      while (t.has(fd)) fd++;
      assert.equal(fd, m.at[i], `slot ${i} lands at ${fd}, planned ${m.at[i]}`);
      t.set(fd, { file, cloexec: m.cloexec });
    });
  }
  for (const o of plan.ops) {
    if (o.op === 'dup3') {
      const f = t.get(o.src);
      assert.ok(f, `dup3 from closed fd ${o.src}`);
      t.set(o.dst, { file: f.file, cloexec: o.cloexec });
    } else if (o.op === 'setfd') {
      const f = t.get(o.fd);
      assert.ok(f, `setfd on closed fd ${o.fd}`);
      t.set(o.fd, { file: f.file, cloexec: o.cloexec });
    } else {
      for (const fd of [...t.keys()]) if (fd >= o.from && fd <= o.to) t.delete(fd);
    }
  }
  return t;
}

test('fd install: every target ends with its file and flag, only kept numbers stay besides, received fds land where planned', () => {
  fc.assert(fc.property(
    fc.uniqueArray(fc.integer({ min: 0, max: 60 }), { maxLength: 12 }), // numbers open now
    fc.uniqueArray(fc.integer({ min: 0, max: 80 }), { maxLength: 30 }), // targets
    fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 30 }),         // their files
    fc.array(fc.boolean(), { maxLength: 30 }),
    fc.integer({ min: 1, max: 8 }),                                      // per message
    fc.integer({ min: 0, max: 20 }),                                     // max gap
    (open, dsts, files, flags, perMsg, maxGap) => {
      const fds = dsts.map((dst, i) => ({ dst, file: files[i] ?? 1, cloexec: flags[i] ?? true }));
      // Some open numbers hold a wanted file already (made in the process), others junk (file 100+).
      const table = new Map(open.map((fd, i) => [fd, { file: i % 3 === 0 ? (files[i] ?? 1) : 100 + fd, cloexec: true }]));
      const keep = open.filter((fd, i) => i % 5 === 4 && !dsts.includes(fd));
      const inPlace = new Map([...table].filter(([, v]) => v.file < 100));
      const plan = planInstall(fds, open, inPlace, { keep, maxPerMessage: perMsg, maxGap });
      for (const m of plan.receives) assert.ok(m.files.length >= 1 && m.files.length <= perMsg);
      const after = simulateInstall(table, plan);
      const expected = new Map(fds.map((f) => [f.dst, { file: f.file, cloexec: f.cloexec }]));
      for (const k of keep) expected.set(k, table.get(k)!);
      assert.deepEqual(new Map([...after].sort((a, b) => a[0] - b[0])), new Map([...expected].sort((a, b) => a[0] - b[0])));
    }), { numRuns: 3000, seed: 11 });
});

test('fd install: a dense table of 1,000 fds with mixed flags costs at most one remote call per fd; a lone high fd costs one copy', () => {
  const fds = Array.from({ length: 1000 }, (_, i) => ({ dst: i, file: i + 1, cloexec: (i * 7919) % 3 === 0 }));
  const plan = planInstall(fds, [1000], new Map(), { keep: [1000], maxPerMessage: 253 });
  const calls = plan.receives.length + plan.ops.length;
  assert.ok(calls <= 340, `${calls} calls (a third of the fds need another flag than the rest)`);
  assert.equal(plan.ops.filter((o) => o.op === 'dup3').length, 0);
  const high = planInstall([{ dst: 0, file: 1, cloexec: false }, { dst: 19999, file: 2, cloexec: false }], [5], new Map(), { maxPerMessage: 253 });
  assert.deepEqual(high.receives.map((m) => m.files), [[1, 2]]);
  assert.deepEqual(high.ops, [{ op: 'dup3', src: 1, dst: 19999, cloexec: false }, { op: 'closeRange', from: 1, to: 5 }]);
});

test('fd install: the receive flags chosen cost the fewest calls (against every choice, for short tables)', () => {
  const cost = (want: Array<boolean | null>, got: boolean[]) =>
    got.reduce((n, f, i) => n + (i === 0 || f !== got[i - 1] ? 1 : 0) + (want[i] !== null && want[i] !== f ? 1 : 0), 0);
  fc.assert(fc.property(fc.array(fc.constantFrom(true, false, null), { minLength: 1, maxLength: 10 }), (want) => {
    let best = Infinity;
    for (let m = 0; m < 1 << want.length; m++) best = Math.min(best, cost(want, want.map((_, i) => ((m >> i) & 1) === 1)));
    assert.equal(cost(want, chooseFlags(want)), best);
  }), { numRuns: 500, seed: 5 });
});

// Pure logic on page runs and I/O vectors, shared by dump and restore (and
// unit-tested without root): run lists, batching of page transfers into
// system calls, trimming a partly done vector, finding a free address range.

import { PAGE_SIZE } from '../../kernel/consts.js';

/** A run of pages: [first page index, page count]. Run lists are sorted and do not overlap. */
export type Run = [number, number];

/** Merge adjacent or overlapping runs of a sorted list. */
export function normalizeRuns(runs: Run[]): Run[] {
  const out: Run[] = [];
  for (const [s, n] of runs) {
    if (n <= 0) continue;
    const last = out[out.length - 1];
    if (last && s <= last[0] + last[1]) last[1] = Math.max(last[1], s + n - last[0]);
    else out.push([s, n]);
  }
  return out;
}

/** Runs covering the pages of `regions` ([first, count, categories]) whose categories satisfy `keep`. */
export function runsWhere(regions: Array<[number, number, number]>, keep: (categories: number) => boolean): Run[] {
  return normalizeRuns(regions.filter((r) => keep(r[2])).map(([s, n]) => [s, n] as Run));
}

/** Pages in both run lists. */
export function intersectRuns(a: Run[], b: Run[]): Run[] {
  const out: Run[] = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    const s = Math.max(a[i][0], b[j][0]);
    const e = Math.min(a[i][0] + a[i][1], b[j][0] + b[j][1]);
    if (e > s) out.push([s, e - s]);
    if (a[i][0] + a[i][1] < b[j][0] + b[j][1]) i++; else j++;
  }
  return out;
}

/** Pages of `a` that are not in `b`. */
export function subtractRuns(a: Run[], b: Run[]): Run[] {
  const out: Run[] = [];
  let j = 0;
  for (const [s0, n0] of a) {
    let s = s0;
    const e = s0 + n0;
    while (j < b.length && b[j][0] + b[j][1] <= s) j++;
    let k = j;
    while (s < e && k < b.length && b[k][0] < e) {
      if (b[k][0] > s) out.push([s, b[k][0] - s]);
      s = Math.max(s, b[k][0] + b[k][1]);
      k++;
    }
    if (s < e) out.push([s, e - s]);
  }
  return out;
}

export const countPages = (runs: Run[]) => runs.reduce((s, r) => s + r[1], 0);

/** A stretch of memory and where it goes in (or comes from) a page file. */
export interface Segment { addr: bigint; len: number; fileOff: number }

export const IOV_MAX = 1024;
/** Bytes per transfer call: one checksum chunk (64 MiB), so each call completes one. */
export const MAX_CALL_BYTES = 64 << 20;

export interface Batch { iov: Array<[bigint, number]>; bytes: number; fileOff: number }

/**
 * Group segments (in page-file order) into calls of at most IOV_MAX vectors
 * and MAX_CALL_BYTES, each covering one contiguous stretch of the file and
 * never crossing a MAX_CALL_BYTES boundary of it; segments are split where needed.
 */
export function* batches(segments: Segment[], maxBytes = MAX_CALL_BYTES, maxIov = IOV_MAX): Generator<Batch> {
  let iov: Array<[bigint, number]> = [];
  let bytes = 0;
  let fileOff = 0;
  for (const g of segments) {
    let { addr, len } = g;
    let off = g.fileOff;
    if (iov.length && fileOff + bytes !== off) { yield { iov, bytes, fileOff }; iov = []; bytes = 0; }
    while (len > 0) {
      if (!iov.length) fileOff = off;
      const room = maxBytes - (fileOff + bytes) % maxBytes;
      const take = Math.min(len, room);
      iov.push([addr, take]);
      bytes += take; addr += BigInt(take); len -= take; off += take;
      if (iov.length === maxIov || (fileOff + bytes) % maxBytes === 0) { yield { iov, bytes, fileOff }; iov = []; bytes = 0; }
    }
  }
  if (iov.length) yield { iov, bytes, fileOff };
}

/** Drop the first `skip` bytes of an I/O vector (after a short transfer). */
export function trimIov(iov: Array<[bigint, number]>, skip: number): Array<[bigint, number]> {
  if (skip === 0) return iov;
  const out: Array<[bigint, number]> = [];
  for (const [a, l] of iov) {
    if (skip >= l) { skip -= l; continue; }
    out.push([a + BigInt(skip), l - skip]);
    skip = 0;
  }
  return out;
}

/** Segments for the runs of an area at `start` whose pages begin at `dataOffset` in the page file. */
export function runSegments(start: bigint, runs: Run[], dataOffset: number): Segment[] {
  let off = dataOffset;
  return runs.map(([i, n]) => {
    const g = { addr: start + BigInt(i * PAGE_SIZE), len: n * PAGE_SIZE, fileOff: off };
    off += g.len;
    return g;
  });
}

export interface Range { start: bigint; end: bigint }
export const TASK_TOP = 0x7ffffffff000n;

/** The lowest free range of `size` bytes at or above `above` that overlaps none of `used`. */
export function findHole(used: Range[], size: number, above = 0x100000000n, top = TASK_TOP): bigint {
  const sorted = [...used].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let cand = above;
  for (const r of sorted) {
    if (r.end <= cand) continue;
    if (r.start >= cand + BigInt(size)) break;
    cand = r.end;
  }
  if (cand + BigInt(size) > top) throw new Error(`no free address range of ${size} bytes`);
  return cand;
}

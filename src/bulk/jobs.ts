// Bulk data jobs: moving and checksumming page data in large pieces. They run
// in worker threads (src/bulk/worker.ts) when there is enough data to share
// between both cores, or inline on the main thread when there is little.

import fs from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import { mapFile, uffdCopy } from '../kernel/sys.js';

/** Files are checksummed in chunks, so that chunks can be checked in parallel. */
export const CHUNK = 64 << 20;

/**
 * Jobs with `claim` share their list of items between threads: each thread
 * takes the next item with an atomic counter, so whoever is free works on.
 */
export interface CrcJob { op: 'crc'; path: string; size: number; chunks: number[]; claim?: SharedArrayBuffer }
/** Copy memory of a stopped process (`pid`, through /proc/PID/mem) or of an open file (`fd`, offsets as addresses) into a page file. */
export interface CopyJob { op: 'copy-out'; pid?: number; fd?: number; path: string; segs: Array<{ addr: string; len: number; fileOff: number }> }
/**
 * Check a page file chunk by chunk and, while each piece of it is mapped and
 * hot in the cache, copy the pages that belong to anonymous areas into the
 * process that owns `uffd` (UFFDIO_COPY). One read of the data does both.
 */
export interface LoadJob { op: 'load'; uffd: number; path: string; size: number; chunks: number[]; segs: Array<{ addr: string; len: number; fileOff: number }>; claim?: SharedArrayBuffer }
export type Job = CrcJob | CopyJob | LoadJob;
export type JobResult = { sums?: Array<[number, string]>; bytes?: number; ms?: number };

const hex = (n: number) => n.toString(16).padStart(8, '0');

/** The items of a list this thread takes: all of them, or one at a time from a shared counter. */
function* claimed<T>(items: T[], claim?: SharedArrayBuffer): Generator<T> {
  if (!claim) { yield* items; return; }
  const counter = new Int32Array(claim);
  for (;;) {
    const i = Atomics.add(counter, 0, 1);
    if (i >= items.length) return;
    yield items[i];
  }
}

/** crc32c of the given chunks of a file, read through a mapping (no copy). */
export function crcChunks(job: CrcJob): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  if (job.size === 0) return job.chunks.map((c) => [c, hex(crc32c(Buffer.alloc(0)))]);
  const fd = fs.openSync(job.path, 'r');
  try {
    for (const c of claimed(job.chunks, job.claim)) {
      const off = c * CHUNK;
      const len = Math.min(CHUNK, job.size - off);
      if (len <= 0) { out.push([c, hex(crc32c(Buffer.alloc(0)))]); continue; }
      if (len < 1 << 20) {
        const b = Buffer.allocUnsafe(len);
        fs.readSync(fd, b, 0, len, off);
        out.push([c, hex(crc32c(b))]);
        continue;
      }
      const m = mapFile(fd, off, len);
      try { out.push([c, hex(crc32c(m.view))]); } finally { m.unmap(); }
    }
  } finally { fs.closeSync(fd); }
  return out;
}

/**
 * Copy pages of a stopped process into the page file from outside (read
 * through /proc/PID/mem, which also reads pages the process itself may not,
 * then pwrite), checksumming whole chunks on the way when the job covers them
 * from their start.
 */
export function copyOut(job: CopyJob): Array<[number, string]> {
  const fd = fs.openSync(job.path, 'r+');
  const mem = job.fd ?? fs.openSync(`/proc/${job.pid}/mem`, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  const sums: Array<[number, string]> = [];
  let crcChunk = -1;
  let crc = 0;
  let crcNext = -1; // file offset the running crc has reached
  try {
    for (const g of job.segs) {
      for (let o = 0; o < g.len; o += buf.length) {
        const n = Math.min(buf.length, g.len - o);
        const off = g.fileOff + o;
        const got = fs.readSync(mem, buf, 0, n, Number(BigInt(g.addr) + BigInt(o)));
        if (got !== n) throw new Error(`short read of ${job.fd !== undefined ? 'shared memory' : `pid ${job.pid} memory`} at 0x${(BigInt(g.addr) + BigInt(o)).toString(16)}`);
        const data = buf.subarray(0, n);
        let w = 0;
        while (w < n) w += fs.writeSync(fd, data, w, n - w, off + w);
        // Running checksum of the chunk this data falls in, when it is written in order from the chunk's start.
        const c = Math.floor(off / CHUNK);
        if (off % CHUNK === 0) { crcChunk = c; crc = 0; crcNext = off; }
        if (c === crcChunk && off === crcNext) {
          crc = crc32c(data, crc);
          crcNext = off + n;
          if (crcNext % CHUNK === 0) { sums.push([c, hex(crc)]); crcChunk = -1; }
        } else crcChunk = -1;
      }
    }
  } finally { fs.closeSync(fd); if (job.fd === undefined) fs.closeSync(mem); }
  // A last chunk that ends at the end of the job's data is complete only if the file ends there: the caller decides.
  if (crcChunk >= 0) sums.push([crcChunk, `partial:${crcNext}:${hex(crc)}`]);
  return sums;
}

export function loadChunks(job: LoadJob): { sums: Array<[number, string]>; bytes: number } {
  const fd = fs.openSync(job.path, 'r');
  // One small buffer, read into and copied from while it is in the cache:
  // page cache -> buffer (read), buffer -> new pages of the process (UFFDIO_COPY),
  // and the checksum from the same buffer.
  const buf = Buffer.allocUnsafeSlow(STEP);
  const sums: Array<[number, string]> = [];
  let bytes = 0;
  try {
    for (const c of claimed(job.chunks, job.claim)) {
      const cStart = c * CHUNK;
      const cEnd = Math.min(job.size, cStart + CHUNK);
      let crc = 0;
      for (let off = cStart; off < cEnd; off += STEP) {
        const len = Math.min(STEP, cEnd - off);
        let got = 0;
        while (got < len) {
          const n = fs.readSync(fd, buf, got, len - got, off + got);
          if (n <= 0) throw new Error(`${job.path} ends at ${off + got}, before ${cEnd}`);
          got += n;
        }
        for (const g of overlapping(job.segs, off, off + len)) {
          const from = Math.max(off, g.fileOff);
          const to = Math.min(off + len, g.fileOff + g.len);
          uffdCopy(job.uffd, BigInt(g.addr) + BigInt(from - g.fileOff), buf, from - off, to - from);
          bytes += to - from;
        }
        crc = crc32c(len === STEP ? buf : buf.subarray(0, len), crc);
      }
      sums.push([c, hex(crc)]);
    }
  } finally { fs.closeSync(fd); }
  return { sums, bytes };
}
const STEP = 512 << 10;

/** Segments (sorted by file offset) that overlap [from, to). */
function overlapping<T extends { fileOff: number; len: number }>(segs: T[], from: number, to: number): T[] {
  let lo = 0, hi = segs.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (segs[mid].fileOff + segs[mid].len <= from) lo = mid + 1; else hi = mid; }
  const out: T[] = [];
  for (let i = lo; i < segs.length && segs[i].fileOff < to; i++) out.push(segs[i]);
  return out;
}

export function runJob(job: Job): JobResult {
  switch (job.op) {
    case 'crc': return { sums: crcChunks(job) };
    case 'copy-out': return { sums: copyOut(job) };
    case 'load': {
      const t0 = performance.now();
      const r = loadChunks(job);
      return { ...r, ms: performance.now() - t0 };
    }
  }
}

/**
 * Run a job on this thread and, when a pool is given, on its worker at the
 * same time, the two sharing the job's items. Returns both threads' results.
 */
export async function shareJob(job: CrcJob | LoadJob, pool: { run(j: Job, w?: number): Promise<JobResult> } | null): Promise<JobResult[]> {
  if (!pool) return [runJob(job)];
  const claim = new SharedArrayBuffer(4);
  const shared = { ...job, claim };
  const other = pool.run(shared, 0);
  let mine: JobResult;
  try { mine = runJob(shared); } catch (e) { await other.catch(() => undefined); throw e; }
  return [mine, await other];
}

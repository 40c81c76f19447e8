// Moving page data between a process and its page files: at dump, the
// target writes its own pages (remote pwritev) with a worker checksumming
// behind it, or ckpt copies them from outside; at restore, the task reads
// its pages itself (remote preadv) or ckpt writes them from outside.

import fs from 'node:fs';
import { RemoteTask } from '../../kernel/remote.js';
import { NR, O, AT_FDCWD, PAGE_SIZE } from '../../kernel/consts.js';
import { dataExtents } from '../../kernel/mm.js';
import { CkptError } from '../../errors.js';
import { log } from '../../log.js';
import { Pool } from '../../bulk/pool.js';
import { CHUNK, crcChunks, runJob } from '../../bulk/jobs.js';
import { Run, countPages, batches, trimIov, iovBuffer, runSegments, IOV_MAX } from './runs.js';
import { Area, ShmemObject, big, toHex } from './areas.js';
import { MemoryPlan, Segment } from './plan.js';

/**
 * Store a shared memory object whole: its data extents (SEEK_DATA, which
 * also finds pages that are swapped out) read from the object itself
 * through /proc/PID/map_files, with their checksums.
 */
export function dumpShmem(pid: number, o: MemoryPlan['shmem'][number], pagesPath: string): { obj: Omit<ShmemObject, 'pagesFile'>; sums: string[] } {
  const src = fs.openSync(`/proc/${pid}/map_files/${o.start.toString(16)}-${o.end.toString(16)}`, 'r');
  try {
    const size = fs.fstatSync(src).size;
    const runs = dataExtents(src, size);
    const segs = runSegments(0n, runs, 0).map((g) => ({ addr: toHex(g.addr), len: g.len, fileOff: g.fileOff }));
    const sums = chunkSums(countPages(runs) * PAGE_SIZE);
    sums.take(runJob({ op: 'copy-out', fd: src, path: pagesPath, segs }));
    sums.take({ sums: crcChunks({ op: 'crc', path: pagesPath, size: countPages(runs) * PAGE_SIZE, chunks: sums.missing() }) });
    return { obj: { id: o.id, size: Math.max(size, PAGE_SIZE), runs }, sums: sums.all(pagesPath) };
  } finally { fs.closeSync(src); }
}

/**
 * The chunk checksums of a page file of `total` bytes, gathered from the
 * results of the jobs that wrote or read it; a job's final partial chunk
 * counts when it ends where the file ends.
 */
function chunkSums(total: number) {
  const sums: Array<string | undefined> = new Array(Math.max(1, Math.ceil(total / CHUNK)));
  return {
    take(r: { sums?: Array<[number, string]> }): void {
      for (const [c, v] of r.sums ?? []) {
        if (!v.startsWith('partial:')) sums[c] = v;
        else if (Number(v.split(':')[1]) === total) sums[c] = v.split(':')[2];
      }
    },
    missing: (): number[] => range(0, sums.length).filter((c) => sums[c] === undefined),
    all(path: string): string[] {
      return sums.map((v, c) => { if (v === undefined) throw new Error(`no checksum for chunk ${c} of ${path}`); return v; });
    },
  };
}

export const IOV_SCRATCH = IOV_MAX * 16;

/**
 * Write the planned pages into `pagesPath` and return the checksum of each
 * chunk of it. The target writes its own memory (pwritev from its address
 * space: one copy, in 64 MiB steps); with a pool, a worker checksums each
 * chunk as soon as the target has finished it, on the other core. Pages the
 * target cannot read (no PROT_READ), or all when it cannot open the file (it
 * may run with other credentials), are copied from outside.
 * (Copying part of the pages from outside at the same time was tried: with
 * two copies per byte it only slowed the whole down on two cores.)
 */
export async function writePages(rt: RemoteTask, plan: MemoryPlan, pagesPath: string, pool: Pool | null, insideOk: boolean, progress?: (done: number, total: number) => void): Promise<string[]> {
  const total = plan.pageBytes;
  const sums = chunkSums(total);
  const take = (r: { sums?: Array<[number, string]> }) => sums.take(r);
  const jobs: Array<Promise<void>> = [];
  const outsideJob = (segs: Segment[], worker?: number) => {
    const job = { op: 'copy-out' as const, pid: rt.pid, path: pagesPath, segs: segs.map((g) => ({ addr: toHex(g.addr), len: g.len, fileOff: g.fileOff })) };
    if (pool) jobs.push(pool.run(job, worker).then(take));
    else take(runJob(job));
  };

  if (total > 0) {
    // (insideOk is false when a limit of the target, such as RLIMIT_FSIZE,
    // would make its own writes fail: then ckpt copies every page itself.)
    const fdr = insideOk ? rt.callRaw(NR.openat, AT_FDCWD, rt.putString(pagesPath, IOV_SCRATCH), O.WRONLY | O.CLOEXEC, 0) : -1n;
    if (fdr < 0n) log.info(`pid ${rt.pid} ${insideOk ? `cannot open the page file itself (errno ${-fdr})` : 'has a file size limit'}; copying pages from outside`);
    const split = fdr < 0n ? 0 : total;
    const inside: Segment[] = [];
    const outside: Segment[] = [];
    for (const g of plan.segments) {
      if (!g.readable || fdr < 0n) { outside.push(g); continue; }
      if (g.fileOff + g.len <= split) inside.push(g);
      else if (g.fileOff >= split) outside.push(g);
      else {
        const head = split - g.fileOff;
        inside.push({ ...g, len: head });
        outside.push({ ...g, addr: g.addr + BigInt(head), len: g.len - head, fileOff: split });
      }
    }
    if (outside.length) outsideJob(outside, 0);
    if (fdr >= 0n) {
      const fd = Number(fdr);
      let done = 0;
      let hashedUpTo = 0;
      try {
        for (const b of batches(inside)) {
          let at = 0;
          while (at < b.bytes) {
            const iov = trimIov(b.iov, at);
            const iovAddr = rt.put(iovBuffer(iov), 0);
            const n = Number(rt.call('pwritev(pages)', NR.pwritev, fd, iovAddr, iov.length, b.fileOff + at, 0));
            if (n <= 0) throw new CkptError('failed', `pid ${rt.pid}: writing pages at 0x${iov[0][0].toString(16)} made no progress: is the image file system full?`);
            at += n;
          }
          done += b.bytes;
          progress?.(done, total);
          // Chunks the target has finished (and that hold no outside data) can be checksummed now.
          const upTo = Math.floor((b.fileOff + b.bytes) / CHUNK);
          if (pool && upTo > hashedUpTo) {
            const chunks = range(hashedUpTo, upTo).filter((c) => !outside.some((g) => overlapsChunk(g, c)));
            if (chunks.length) jobs.push(pool.run({ op: 'crc', path: pagesPath, size: total, chunks }, pool.size - 1).then(take));
            hashedUpTo = upTo;
          }
        }
      } finally {
        rt.callRaw(NR.close, fd);
      }
    }
  }
  await Promise.all(jobs);
  const missing = sums.missing();
  if (missing.length) {
    if (pool && missing.length > 1) {
      const parts = range(0, pool.size).map((w) => missing.filter((_, i) => i % pool.size === w));
      await Promise.all(parts.map((chunks, w) => (chunks.length ? pool.run({ op: 'crc', path: pagesPath, size: total, chunks }, w).then(take) : null)));
    } else take({ sums: crcChunks({ op: 'crc', path: pagesPath, size: total, chunks: missing }) });
  }
  progress?.(total, total);
  return sums.all(pagesPath);
}

const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
const overlapsChunk = (g: Segment, c: number) => g.fileOff < (c + 1) * CHUNK && g.fileOff + g.len > c * CHUNK;

// ---------------------------------------------------------------- restore

/** Read pages from an image file open in the task into its memory at `base` (preadv, one call per batch). */
export function readPages(rt: RemoteTask, fd: number, base: bigint, runs: Run[], dataOffset: number, what: string): void {
  for (const b of batches(runSegments(base, runs, dataOffset))) {
    const iovAddr = rt.put(iovBuffer(b.iov), 0);
    const n = rt.call(`preadv(${what})`, NR.preadv, fd, iovAddr, b.iov.length, b.fileOff, 0);
    if (Number(n) !== b.bytes) throw new CkptError('bad-image', `page file is short: ${what} wanted ${b.bytes} bytes at offset ${b.fileOff}, got ${n}`);
  }
}

/** Write an area's pages from outside (/proc/PID/mem), 1 MiB at a time. */
export function writeAreaFromOutside(rt: RemoteTask, a: Area, pagesPath: string): void {
  const fd = fs.openSync(pagesPath, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (const g of runSegments(big(a.start), a.runs as Run[], a.dataOffset)) {
      for (let o = 0; o < g.len; o += buf.length) {
        const n = Math.min(buf.length, g.len - o);
        if (fs.readSync(fd, buf, 0, n, g.fileOff + o) !== n) throw new CkptError('bad-image', `page file ${pagesPath} is short at offset ${g.fileOff + o}`);
        rt.write(g.addr + BigInt(o), buf.subarray(0, n));
      }
    }
  } finally { fs.closeSync(fd); }
}


// Moving page data between a process and a page sink or source
// (pages-io.ts): at dump, the target writes its own pages (remote pwritev)
// into what the sink gives it, or the sink copies them from outside; at
// restore, the task reads its pages itself (remote preadv) or ckpt writes
// them from outside, as the source hands them over.

import { openSync, fstatSync, closeSync } from 'node:fs';
import { RemoteTask } from '../../kernel/remote.js';
import { O, PAGE_SIZE } from '../../kernel/consts.js';
import * as remote from '../../kernel/rsys.js';
import { dataExtents } from '../../kernel/mm.js';
import { CkptError } from '../../errors.js';
import { log } from '../../log.js';
import { Run, countPages, batches, trimIov, runSegments } from './runs.js';
import { ShmemObject } from './areas.js';
import { MemoryPlan } from './plan.js';
import { PageSink, PageReader, PageRun, StoredPages } from './pages-io.js';

/**
 * Store a shared memory object whole: its data extents (SEEK_DATA, which
 * also finds pages that are swapped out), read by ckpt from the object
 * itself through /proc/PID/map_files, into the sink.
 */
export async function dumpShmem(pid: number, o: MemoryPlan['shmem'][number], sink: PageSink): Promise<{ obj: ShmemObject; sums: string[] }> {
  const src = openSync(`/proc/${pid}/map_files/${o.start.toString(16)}-${o.end.toString(16)}`, 'r');
  try {
    const size = fstatSync(src).size;
    const runs = dataExtents(src, size);
    const out = sink.open({ kind: 'shmem', id: o.ino, runs: runSegments(0n, runs, 0), bytes: countPages(runs) * PAGE_SIZE });
    out.copy({ fd: src }, out.runs);
    const stored = await out.finish();
    return { obj: { id: o.id, size: Math.max(size, PAGE_SIZE), runs, pagesFile: stored.file }, sums: stored.sums };
  } finally { closeSync(src); }
}

/**
 * Move the planned pages of a process into the sink; returns what the image
 * records. When the sink can take it, the target writes its own memory
 * (pwritev from its address space: one copy, in 64 MiB steps), and the sink
 * hears of each step (the image directory checksums each chunk as soon as
 * the target has finished it, on the other core). Pages the target cannot
 * read (no PROT_READ), or all when it cannot open the file (it may run with
 * other credentials) or must not write it (`insideOk` false: a limit such
 * as RLIMIT_FSIZE would make its writes fail), are copied by ckpt.
 * (Copying part of the pages from outside at the same time was tried: with
 * two copies per byte it only slowed the whole down on two cores.)
 */
export async function writePages(rt: RemoteTask, plan: MemoryPlan, sink: PageSink, insideOk: boolean, progress?: (done: number, total: number) => void): Promise<StoredPages> {
  const out = sink.open({ kind: 'process', id: rt.pid, runs: plan.segments, bytes: plan.pageBytes });
  const total = out.bytes;
  if (total > 0) {
    const path = insideOk ? out.targetPath : null;
    const fdr = path !== null ? remote.tryOpenat(rt, path, O.WRONLY | O.CLOEXEC) : -1;
    if (fdr < 0) log.info(`pid ${rt.pid} ${!insideOk ? 'has a file size limit' : path === null ? 'cannot write its pages into this sink itself' : `cannot open the page file itself (errno ${-fdr})`}; copying pages from outside`);
    const inside: PageRun[] = [];
    const outside: PageRun[] = [];
    for (const g of out.runs) (fdr >= 0 && g.readable ? inside : outside).push(g);
    if (outside.length) out.copy({ pid: rt.pid }, outside);
    if (fdr >= 0) {
      const fd = fdr;
      let done = 0;
      try {
        for (const b of batches(inside)) {
          let at = 0;
          while (at < b.bytes) {
            const iov = trimIov(b.iov, at);
            const n = remote.pwritev(rt, fd, iov, b.fileOff + at, 'pages');
            if (n <= 0) throw new CkptError('failed', `pid ${rt.pid}: writing pages at 0x${iov[0][0].toString(16)} made no progress: is the image file system full?`);
            at += n;
          }
          done += b.bytes;
          progress?.(done, total);
          out.written(b.fileOff, b.fileOff + b.bytes);
        }
      } finally {
        remote.closeQuietly(rt, fd);
      }
    }
  }
  const stored = await out.finish();
  progress?.(total, total);
  return stored;
}

// ---------------------------------------------------------------- restore

/** Read pages from an image file open in the task into its memory at `base` (preadv, one call per batch). */
export function readPages(rt: RemoteTask, fd: number, base: bigint, runs: Run[], dataOffset: number, what: string): void {
  for (const b of batches(runSegments(base, runs, dataOffset))) {
    const n = remote.preadv(rt, fd, b.iov, b.fileOff, what);
    if (n !== b.bytes) throw new CkptError('bad-image', `page file is short: ${what} wanted ${b.bytes} bytes at offset ${b.fileOff}, got ${n}`);
  }
}

/** Write pages into the task from outside (/proc/PID/mem), as the reader hands them over. */
export function writeFromOutside(rt: RemoteTask, pages: PageReader, base: bigint, runs: Run[], dataOffset: number): void {
  pages.each(runSegments(base, runs, dataOffset), (addr, data) => rt.write(addr, data));
}

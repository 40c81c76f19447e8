// Page data in the image directory: the page sink and page source of
// objects/memory/pages-io.ts for files of the image. At dump, a process's
// pages go to pages-PID.img and a shared memory object's to
// shmem-INODE.img, in the staging directory: the process writes its own
// pages into the file, and a worker thread checksums each 64 MiB chunk as
// soon as it is complete; pages ckpt copies itself are checksummed on the
// way. At restore, the task reads its pages from the file, or ckpt copies
// them in through a userfaultfd, checking the whole file on the way.

import { openSync, readSync, closeSync } from 'node:fs';
import { CkptError } from '../errors.js';
import { Pool } from '../bulk/pool.js';
import { CHUNK, CopyJob, crcChunks, runJob, shareJob } from '../bulk/jobs.js';
import type { ImageReader, ImageWriter } from './store.js';
import { chunkCount } from './store.js';
import type {
  PageSink, PageSet, PageStream, PageOrigin, PageRun, StoredPages, PageSource, PageReader,
} from '../objects/memory/pages-io.js';
import type { MemoryImage, ShmemObject } from '../objects/memory/areas.js';

const toHex = (v: bigint) => '0x' + v.toString(16);
const hexRuns = (runs: PageRun[]) => runs.map((g) => ({ addr: toHex(g.addr), len: g.len, fileOff: g.fileOff }));
const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
const overlapsChunk = (g: PageRun, c: number) => g.fileOff < (c + 1) * CHUNK && g.fileOff + g.len > c * CHUNK;

/** The file of the image directory that holds a set of pages. */
export function pagesFileName(set: Pick<PageSet, 'kind' | 'id'>): string {
  return set.kind === 'process' ? `pages-${set.id}.img` : set.kind === 'sysvshm' ? `sysvshm-${set.id}.img` : `shmem-${set.id}.img`;
}

/**
 * Pages into files of the image being written. `pool` (a worker thread)
 * checksums and copies for the streams of processes with `poolMin` bytes of
 * pages or more; smaller streams, and shared memory objects, are done on
 * this thread.
 */
export class ImageDirSink implements PageSink {
  constructor(private readonly image: ImageWriter, private readonly pool: Pool | null = null, private readonly poolMin = 0) {}

  open(set: PageSet): PageStream {
    const file = pagesFileName(set);
    const pool = set.kind === 'process' && set.bytes >= this.poolMin ? this.pool : null;
    return new FileStream(file, this.image.createRaw(file), set, pool);
  }
}

class FileStream implements PageStream {
  readonly runs: PageSet['runs'];
  readonly bytes: number;
  private readonly sums: ReturnType<typeof chunkSums>;
  private readonly jobs: Array<Promise<void>> = [];
  private readonly copied: PageRun[] = [];
  private hashedUpTo = 0;

  constructor(private readonly file: string, readonly targetPath: string, set: PageSet, private readonly pool: Pool | null) {
    this.runs = set.runs;
    this.bytes = set.bytes;
    this.sums = chunkSums(set.bytes);
  }

  private take = (r: { sums?: Array<[number, string]> }): void => this.sums.take(r);

  copy(origin: PageOrigin, runs: PageRun[]): void {
    this.copied.push(...runs);
    const job: CopyJob = { op: 'copy-out', ...origin, path: this.targetPath, segs: hexRuns(runs) };
    if (this.pool) this.jobs.push(this.pool.run(job, 0).then(this.take));
    else this.take(runJob(job));
  }

  written(_from: number, to: number): void {
    // Chunks the process has finished (and that hold no data ckpt copies) can be checksummed now.
    const upTo = Math.floor(to / CHUNK);
    const pool = this.pool;
    if (pool && upTo > this.hashedUpTo) {
      const chunks = range(this.hashedUpTo, upTo).filter((c) => !this.copied.some((g) => overlapsChunk(g, c)));
      if (chunks.length) this.jobs.push(pool.run({ op: 'crc', path: this.targetPath, size: this.bytes, chunks }, pool.size - 1).then(this.take));
      this.hashedUpTo = upTo;
    }
  }

  async finish(): Promise<StoredPages> {
    const pool = this.pool;
    const path = this.targetPath;
    const total = this.bytes;
    await Promise.all(this.jobs);
    const missing = this.sums.missing();
    if (missing.length) {
      if (pool && missing.length > 1) {
        const parts = range(0, pool.size).map((w) => missing.filter((_, i) => i % pool.size === w));
        await Promise.all(parts.map((chunks, w) => (chunks.length ? pool.run({ op: 'crc', path, size: total, chunks }, w).then(this.take) : null)));
      } else this.take({ sums: crcChunks({ op: 'crc', path, size: total, chunks: missing }) });
    }
    return { file: this.file, sums: this.sums.all(path) };
  }
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

/**
 * Pages from the files of an image being restored. With a pool, pages
 * copied in through a userfaultfd are shared between this thread and the
 * worker, chunk by chunk.
 */
export class ImageDirSource implements PageSource {
  constructor(private readonly img: ImageReader, private readonly pool: Pool | null = null) {}
  process(_pid: number, mem: MemoryImage): PageReader { return new FileReader(this.img, mem.pagesFile, this.pool); }
  shmem(obj: ShmemObject): PageReader { return new FileReader(this.img, obj.pagesFile, this.pool); }
}

class FileReader implements PageReader {
  readonly targetPath: string;
  constructor(private readonly img: ImageReader, readonly name: string, private readonly pool: Pool | null) {
    this.targetPath = img.path(name);
  }

  /** 1 MiB at a time, through one buffer. */
  each(runs: PageRun[], put: (addr: bigint, data: Buffer) => void): void {
    const fd = openSync(this.targetPath, 'r');
    const buf = Buffer.allocUnsafe(1 << 20);
    try {
      for (const g of runs) {
        for (let o = 0; o < g.len; o += buf.length) {
          const n = Math.min(buf.length, g.len - o);
          if (readSync(fd, buf, 0, n, g.fileOff + o) !== n) throw new CkptError('bad-image', `page file ${this.targetPath} is short at offset ${g.fileOff + o}`);
          put(g.addr + BigInt(o), buf.subarray(0, n));
        }
      }
    } finally { closeSync(fd); }
  }

  /** The whole file is read in chunks (both threads taking the next one), copied from and checksummed against the manifest. */
  async copyIn(uffd: number, runs: PageRun[]): Promise<Array<{ bytes: number; ms: number }>> {
    const size = this.img.manifest.files[this.name].size;
    const results = await shareJob({
      op: 'load', uffd, path: this.targetPath, size, chunks: range(0, chunkCount(size)), segs: hexRuns(runs),
    }, this.pool);
    this.img.checkSums(this.name, results.flatMap((r) => r.sums ?? []));
    return results.map((r) => ({ bytes: r.bytes ?? 0, ms: r.ms ?? 0 }));
  }
}

// Where pages go at dump and where they come from at restore. The memory
// code plans and maps; a page sink takes the pages of a process (or of a
// shared memory object) and a page source gives them back. The image
// directory is the first implementation of both (image/pages.ts); the
// interfaces leave room for others: a socket to another host (migration), a
// parent image (incremental dumps: only pages changed since it are stored;
// at restore a page is looked up along the chain of images) and lazy
// restore (pages faulted in on demand through the userfaultfd).

import type { Segment } from './runs.js';
import type { MemoryImage, ShmemObject } from './areas.js';

/**
 * A run of pages: its address in the process (for a shared memory object:
 * its offset in the object), its length in bytes, and where it is in the
 * stream of pages it belongs to (`fileOff`: the offset in the page file of
 * the image directory).
 */
export type PageRun = Segment;

/** The pages of one process or shared memory object, as the dump plan chose them. */
export interface PageSet {
  kind: 'process' | 'shmem' | 'sysvshm';
  /** The PID, the inode number of the shared memory object, or the id of the System V segment. */
  id: number;
  /**
   * Runs in stream order, at offsets 0 to `bytes` one after another;
   * `readable`: the process can read the run itself, and so can write it.
   */
  runs: Array<PageRun & { readable?: boolean }>;
  bytes: number;
}

/** Where ckpt reads pages from when it moves them itself. */
export type PageOrigin =
  | { pid: number } // a stopped process, through /proc/PID/mem
  | { fd: number }; // an open shared memory object (offsets in it as addresses)

/** What the image records for a stream of pages: the file that holds it and the checksum of each chunk. */
export interface StoredPages { file: string; sums: string[] }

/** Dump: where pages go. */
export interface PageSink {
  /** Open the stream for a set of pages. */
  open(set: PageSet): PageStream;
}

/**
 * The pages of one process or object on their way out. The transfer
 * (transfer.ts) gives every run either to the process to write itself, into
 * `targetPath`, or to `copy`; then it calls `finish`.
 */
export interface PageStream {
  /**
   * The runs to move, at their offsets in this stream. The image directory
   * takes every run of the set as given; a sink that stores fewer pages (a
   * parent-image sink) gives back fewer.
   */
  readonly runs: PageSet['runs'];
  readonly bytes: number;
  /**
   * A file the process may open (write-only) and write its own pages into,
   * at their offsets: the fast path, one copy from its address space to the
   * page cache. Null when this sink cannot take such writes: then every
   * run comes through `copy`.
   */
  readonly targetPath: string | null;
  /**
   * Runs that ckpt moves itself, from `origin`; the sink chooses how
   * (a worker thread, buffers). Given before the process writes anything.
   */
  copy(origin: PageOrigin, runs: PageRun[]): void;
  /** The process has written bytes [from, to) of the stream through `targetPath` (called in stream order). */
  written(from: number, to: number): void;
  /** Every run has been handed over: wait until all is stored; what the image records. */
  finish(): Promise<StoredPages>;
}

/** Restore: where pages come from. */
export interface PageSource {
  /** The pages of process `pid`, as its memory document lists them (the runs and data offsets of its areas). */
  process(pid: number, mem: MemoryImage): PageReader;
  /** The pages of a shared memory object. */
  shmem(obj: ShmemObject): PageReader;
}

/** The pages of one process or object, for the restore to put in place. */
export interface PageReader {
  /** What the pages are, for messages (a file of the image). */
  readonly name: string;
  /**
   * A file the task may open (read-only) and read its pages from itself,
   * at their offsets (preadv): the fast path. Null when there is none: ckpt
   * then writes the pages into the task from outside, through `each`.
   */
  readonly targetPath: string | null;
  /** Hand the bytes of `runs` to `put`, in order, a piece at a time. */
  each(runs: PageRun[], put: (addr: bigint, data: Buffer) => void): void;
  /**
   * Copy `runs` into the process that owns `uffd` (ckpt's duplicate of its
   * userfaultfd, the runs' areas registered with it; -1 when nothing is
   * deferred) with UFFDIO_COPY, checking the whole stream on the way.
   * Resolves once every page is in, with what each thread did. (A lazy
   * source would instead serve the faults as they come.)
   */
  copyIn(uffd: number, runs: PageRun[]): Promise<Array<{ bytes: number; ms: number }>>;
}

// What the phases of a restore share: the image, the options, and what has
// been made so far (so that a failure at any step can take it all away).

import { ImageReader } from '../image/store.js';
import { ProcessImage } from '../objects/process.js';
import { FilesImage, OpenFiles } from '../objects/files.js';
import { MadeInodes } from '../objects/inodes.js';
import { ShmemCtx } from '../objects/memory/index.js';
import { PageSource } from '../objects/memory/pages-io.js';
import { Pool } from '../bulk/pool.js';
import { RemoteTask } from '../kernel/remote.js';
import { ProgressFn } from '../progress.js';
import type { NetworkLockMode } from '../api.js';

export interface RestoreOptions {
  dir: string;
  detached?: boolean;
  pidfile?: string;
  shellJob?: boolean;
  /** --ext-unix-sk: sockets the image says were connected outside the tree are connected again by name. */
  extUnixSk?: boolean;
  fileLocks?: boolean;
  /** --tcp-close: established TCP connections come back reset. */
  tcpClose?: boolean;
  networkLock?: NetworkLockMode;
  onProgress?: ProgressFn;
}
/** What a restore gives back (the library's result too: api.ts). */
export interface RestoreResult {
  /** The restored root process. */
  pid: number;
  /** Without `detached`: its exit status (128+signal if a signal ended it). */
  exitCode?: number;
  timings: Record<string, number>;
  /** Remote syscalls run in the tree: in all, and for the open files (create and install); and the fds installed. */
  counts: { remoteCalls: number; remoteCallsFiles: number; fds: number };
}

export const SCRATCH_SIZE = 64 * 1024;
export const POOL_THRESHOLD = 128 << 20;

/** A process of the tree, made: its leader's remote-call context and its threads. */
export interface Built {
  p: ProcessImage;
  rt: RemoteTask;
  threads: Array<{ rt: RemoteTask; t: ProcessImage['threads'][number] }>;
}

export interface RestoreCtx {
  opts: RestoreOptions;
  img: ImageReader;
  procs: ProcessImage[];
  files: FilesImage;
  shm: ShmemCtx;
  /** Deleted files and memfds of the image, made by ckpt before any task and held until the restore ends. */
  inodes: MadeInodes;
  /** Where pages come from (the image directory). */
  pages: PageSource;
  pool: Pool | null;
  /** The scratch area, at the same address in every process of the tree. */
  scratch: { start: bigint; end: bigint };
  /** Every task made so far (killed if the restore fails). */
  tasksMade: number[];
  /** Record the time since the last lap under `name`. */
  lap: (name: string) => void;
  /** The step now running, for the error message. */
  step: string;
  /** The open-file table (its kinds' hooks run while the tasks are made). */
  open: OpenFiles;
  /** The restore socket: ckpt's end, and the number of the tree's end in every process. */
  channel: { local: number; remote: number };
}

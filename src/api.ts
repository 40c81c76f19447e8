// ckpt as a library:
//
//   import { dump, restore, info, check } from 'ckpt';
//   const d = await dump({ pid, dir, leaveRunning: true, onProgress: (e) => {}, signal });
//   const r = await restore({ dir, detached: true, onProgress: (e) => {}, signal });
//   const i = await info({ dir });   // the same data as `ckpt info --json`
//   const c = await check();         // the same data as `ckpt check --json`
//
// A dump, restore or check runs in a thread of its own (the engine thread,
// src/engine/worker.ts), which is the tracer of the processes it works on:
// the caller's event loop goes on meanwhile. Everything an operation needs is
// in its options: there is no process-wide state, so several operations can
// run at once (on different processes). See docs/library.md.

import path from 'node:path';
import { runInEngine, engineModule, RunHooks } from './engine/host.js';
import type { UpgradeResult } from './image/upgrade.js';
import type { RestoreResult } from './restore/context.js';
import { CkptError, errorFromJSON } from './errors.js';
import type { ProgressFn } from './progress.js';
import type { DebugSwitches } from './cancel.js';
import type { CheckReport } from './check.js';
import type { imageInfo } from './info.js';

export type { ProgressEvent, ProgressPhase, ProgressUnit, ProgressFn } from './progress.js';
export type { CheckReport, CheckItem } from './check.js';
export type { DebugSwitches } from './cancel.js';
export {
  CkptError, FailedError, UsageError, RefusedError, BadImageError, ConflictError, MissingError, InterruptedError, EXIT,
} from './errors.js';
export type { ErrorKind, ErrorFields } from './errors.js';

/** Options every operation takes. */
export interface OperationOptions {
  /**
   * Aborting it interrupts the operation as Ctrl-C does the command: between
   * steps (or in a wait for a process), the cleanup puts everything back and
   * the promise rejects with an InterruptedError. A reason 'SIGINT',
   * 'SIGTERM' or 'SIGHUP' is taken as that signal (the command line's
   * handlers use that).
   */
  signal?: AbortSignal;
  /** Progress events: phase, done/total, unit. */
  onProgress?: ProgressFn;
  /** Log level 0-4 as the command's -v (default 2: warnings). */
  logLevel?: number;
  /** Write the log (at logLevel) to this file too (appended). */
  logFile?: string;
  /**
   * Lines meant for stderr: warnings (and info and debug lines from level 3
   * on, when there is no logFile). Default: written to process.stderr.
   */
  onLog?: (text: string) => void;
  /** Bounds of each wait for a traced process, in ms (defaults 30 s; 600 s for calls that write or read page data). */
  timeouts?: { waitMs?: number; ioWaitMs?: number };
  /** For tests: pause, fail or crash at a named point (see docs/usage.md, "Debug switches"). */
  debug?: DebugSwitches;
}

export interface DumpOptions extends OperationOptions {
  /** The process to checkpoint, with its descendants. */
  pid: number;
  /** The image directory (created if missing). */
  dir: string;
  /** Let the processes go on after the dump (default: they are ended). */
  leaveRunning?: boolean;
  /** The process uses the terminal of the shell that started it. */
  shellJob?: boolean;
  /** Unix datagram sockets connected to a named socket outside the tree are dumped, to be connected to that name again on restore; sockets outside connected to the tree's are let go (see docs/support.md). */
  extUnixSk?: boolean;
  /** Keep the file locks and leases (flock, POSIX and OFD record locks, leases); without it a lock is refused. */
  fileLocks?: boolean;
  /** Dump established TCP connections (TCP repair); without it one is refused. */
  tcpEstablished?: boolean;
  /** Leave out connections a listener holds that the program has not accepted yet (their clients see a reset); without it they are refused. */
  skipInFlight?: boolean;
  /** How peers' packets are held back while sockets are dumped and until restore: 'nftables', 'iptables' (default: whichever is present), or 'skip'. */
  networkLock?: NetworkLockMode;
}

export type NetworkLockMode = 'nftables' | 'iptables' | 'skip';

export interface DumpResult {
  pid: number;
  /** The image directory, absolute. */
  dir: string;
  /** Bytes of page data stored. */
  pageBytes: number;
  leftRunning: boolean;
  /** The PIDs in the image (the root first) and whether each is a zombie. */
  processes: Array<{ pid: number; ppid: number; threads: number; zombie: boolean }>;
  /** Milliseconds per step. */
  timings: Record<string, number>;
}

export interface RestoreOptions extends OperationOptions {
  /** The image directory. */
  dir: string;
  /**
   * Return once the process runs, leaving it running (as `restore -d`); it
   * is then a child of this process. Without it the promise resolves when
   * the process ends, with its exit status; SIGINT, SIGTERM and SIGHUP of
   * an abort are passed on to it.
   */
  detached?: boolean;
  /** Write the restored PID to this file. */
  pidfile?: string;
  /** Give the process the terminal this process runs on. */
  shellJob?: boolean;
  /** Connect again the unix sockets the image says were connected outside the tree (the image was dumped with extUnixSk). */
  extUnixSk?: boolean;
  /** Take the image's file locks and leases again (an image that holds some needs it). */
  fileLocks?: boolean;
  /** Restore established TCP connections closed: the program sees them reset (for a host the peers will not follow to). */
  tcpClose?: boolean;
  /** The network lock, as for dump. */
  networkLock?: NetworkLockMode;
}

/** The restored root, its exit status (without `detached`), timings and remote-call counts. */
export type { RestoreResult };

/** What `ckpt info --json` prints. */
export type ImageInfo = ReturnType<typeof imageInfo>;
export type { CheckReport as CheckResult };

function hooks(o: OperationOptions): RunHooks {
  return { signal: o.signal, onProgress: o.onProgress, onLog: o.onLog, logLevel: o.logLevel, logFile: o.logFile, debug: o.debug, timeouts: o.timeouts };
}

interface EngineDumpResult {
  manifest: { root: number; processes: Array<{ pid: number; ppid: number; threads: number; zombie?: unknown }> };
  pageBytes: number;
  timings: Record<string, number>;
}

/**
 * What the engine thread gets of an operation's options: all but those of
 * the caller's side (OperationOptions: signal, log, progress, waits, debug,
 * which go as hooks), so that a new option reaches dump() or restore() as it
 * is.
 */
function operationFields(opts: OperationOptions & object): Record<string, unknown> {
  const { signal: _s, onProgress: _p, logLevel: _l, logFile: _f, onLog: _o, timeouts: _t, debug: _d, ...fields } = opts;
  return fields;
}

/** Checkpoint a process and its descendants into an image directory. */
export async function dump(opts: DumpOptions): Promise<DumpResult> {
  const r = await runInEngine<EngineDumpResult>('dump', operationFields(opts), hooks(opts));
  return {
    pid: opts.pid, dir: path.resolve(opts.dir), pageBytes: r.pageBytes, leftRunning: !!opts.leaveRunning,
    processes: r.manifest.processes.map((p) => ({ pid: p.pid, ppid: p.ppid, threads: p.threads, zombie: !!p.zombie })),
    timings: r.timings,
  };
}

/** Recreate the processes of an image. */
export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  return runInEngine<RestoreResult>('restore', operationFields(opts), hooks(opts));
}

/** What an image holds: the same data as `ckpt info --json`. Reads files only (no thread, no tracing). */
export async function info(opts: { dir: string }): Promise<ImageInfo> {
  const engine = await engineModule();
  try {
    return engine.imageInfo(opts.dir);
  } catch (e) {
    // The engine's own copy of the error classes: give the caller this module's.
    if (e instanceof CkptError) throw errorFromJSON({ ...e.toJSON(), stack: e.stack });
    throw e;
  }
}

export type { UpgradeResult } from './image/upgrade.js';

/**
 * Rewrite an image of an older format version in the current one (`ckpt
 * image upgrade`): the old image is replaced only once the new one is
 * complete. It reads the whole image, so it runs in an engine thread.
 */
export async function upgrade(opts: { dir: string } & Pick<OperationOptions, 'signal' | 'logLevel' | 'logFile' | 'onLog' | 'debug'>): Promise<UpgradeResult> {
  return runInEngine<UpgradeResult>('upgrade', { dir: opts.dir }, hooks(opts));
}

/**
 * Whether this kernel and CPU offer everything ckpt relies on: the same data
 * as `ckpt check --json` (ok is false when a required item is missing). It
 * tries them on a throwaway traced process, so it runs in an engine thread.
 */
export async function check(opts: Pick<OperationOptions, 'signal' | 'logLevel' | 'logFile' | 'onLog' | 'timeouts'> = {}): Promise<CheckReport> {
  return runInEngine<CheckReport>('check', {}, hooks(opts));
}

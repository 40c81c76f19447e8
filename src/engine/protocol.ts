// Messages between the caller's thread (src/engine/host.ts) and the engine
// thread that runs one operation (src/engine/worker.ts).

import type { ProgressEvent } from '../progress.js';
import type { DebugSwitches } from '../cancel.js';
import type { ErrorKind } from '../errors.js';

export type EngineOp = 'dump' | 'restore' | 'check' | 'upgrade';

/** What the engine thread is started with (workerData). */
export interface EngineData {
  ckptEngine: true;
  /** The interrupt flag (src/cancel.ts), shared with the caller. */
  flag: Int32Array;
  /** The engine's file (the bundle, loaded with its code cache). */
  engineFile: string;
}

/** Caller -> engine: the one operation this thread runs. */
export interface RunMessage {
  t: 'run';
  op: EngineOp;
  /** The operation's options, without the caller's functions and signal. */
  opts: Record<string, unknown>;
  log: { level: number; file?: string };
  debug: DebugSwitches;
  timeouts: { waitMs?: number; ioWaitMs?: number };
  /** Progress events are wanted. */
  progress: boolean;
}

export interface SerializedError {
  /** A CkptError's kind; absent for other errors (ckpt's own bugs). */
  kind?: ErrorKind;
  name: string;
  message: string;
  stack?: string;
  step?: string;
  pid?: number;
  resource?: string;
}

/** Engine -> caller. */
export type EngineMessage =
  | { t: 'progress'; e: ProgressEvent }
  | { t: 'log'; text: string }
  | { t: 'done'; result: unknown }
  | { t: 'error'; error: SerializedError };

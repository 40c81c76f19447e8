// The caller's side of an operation: starts the engine thread
// (src/engine/worker.ts), sends it the operation, passes its progress events
// and log lines on, turns an AbortSignal into the shared interrupt flag, and
// rebuilds its errors as the same classes with the same fields.

import type { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CkptError, FailedError, InterruptedError, errorFromJSON } from '../errors.js';
import { newInterruptFlag, raiseInterrupt, InterruptName } from '../cancel.js';
import type { DebugSwitches } from '../cancel.js';
import type { ProgressFn } from '../progress.js';
import type { EngineData, EngineMessage, EngineOp, RunMessage, SerializedError } from './protocol.js';

// Bundled (dist/*.cjs), the engine is dist/engine.cjs; in build/ it is engine/worker.js.
const BUNDLED = import.meta.url.endsWith('.cjs');
const ENGINE_URL = new URL(BUNDLED ? './engine.cjs' : './worker.js', import.meta.url);

let workerThreads: typeof import('node:worker_threads') | null = null;
function wt(): typeof import('node:worker_threads') {
  return (workerThreads ??= createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads'));
}

/** The engine module itself, for what runs on the caller's thread (info, the text renderings). */
export async function engineModule(): Promise<typeof import('./worker.js')> {
  if (BUNDLED) return createRequire(import.meta.url)(fileURLToPath(ENGINE_URL)) as typeof import('./worker.js');
  const spec = './worker.js'; // (not a literal: a bundle of the caller must not take the engine in)
  return import(spec) as Promise<typeof import('./worker.js')>;
}

export interface Engine { worker: Worker; flag: Int32Array; failed: Error | null; exited: number | null; ending?: ReturnType<typeof setTimeout> }

/**
 * The bundled engine is loaded with its V8 code cache (dist/engine.cjs.cache),
 * as a CommonJS module: no parsing and compiling again in every engine
 * thread. The build makes the cache from loading the bundle; the first run
 * of each kind of operation (dump, restore, check) then adds to it what it
 * compiled (the functions of that operation), writing it anew next to the
 * bundle (atomically; not at all if the directory is read-only), and notes
 * the kind in dist/engine.cjs.cache-ops. A cache this Node cannot use is
 * ignored, and replaced by the next run.
 */
const BOOT = `'use strict';
const vm = require('node:vm'), fs = require('node:fs'), path = require('node:path'), { createRequire } = require('node:module');
const file = require('node:worker_threads').workerData.engineFile;
let cachedData;
try { cachedData = fs.readFileSync(file + '.cache'); } catch {}
const src = fs.readFileSync(file, 'utf8');
const script = new vm.Script('(function (exports, require, module, __filename, __dirname) {' + src + '\\n})', { filename: file, cachedData });
const m = { exports: {} };
script.runInThisContext()(m.exports, createRequire(file), m, file, path.dirname(file));
m.exports.useCodeCacheSaver((op) => {
  const opsFile = file + '.cache-ops';
  let ops = [];
  if (cachedData && !script.cachedDataRejected) { try { ops = fs.readFileSync(opsFile, 'utf8').split(/\\s+/).filter(Boolean); } catch {} }
  if (ops.includes(op)) return;
  const tmp = file + '.cache.' + process.pid + '-' + require('node:worker_threads').threadId + '.tmp';
  try {
    fs.writeFileSync(tmp, script.createCachedData());
    fs.renameSync(tmp, file + '.cache');
    fs.writeFileSync(opsFile, [...ops, op].join(' ') + '\\n');
  } catch { try { fs.unlinkSync(tmp); } catch {} }
});`;

function startEngine(): Engine {
  const flag = newInterruptFlag();
  const data: EngineData = { ckptEngine: true, flag, engineFile: fileURLToPath(ENGINE_URL) };
  // (stdout/stderr: true: not piped to this thread's at once, which would
  // create those streams here before the thread starts; see runInEngine)
  const options = { workerData: data, stdout: true, stderr: true, trackUnmanagedFds: false };
  const worker = BUNDLED ? new (wt().Worker)(BOOT, { ...options, eval: true }) : new (wt().Worker)(ENGINE_URL, options);
  const e: Engine = { worker, flag, failed: null, exited: null };
  // Until an operation takes it, an engine thread must not keep the process alive.
  worker.unref();
  worker.on('error', (err) => { e.failed = err; });
  worker.on('exit', (code) => { e.exited = code; });
  return e;
}

let spare: Engine | null = null;
/** The engine thread of the last operation, done, until it is ended. */
let last: Engine | null = null;

/**
 * For the command: end the process with `code` now, through the engine
 * thread of the last operation (which calls exit_group): Node's own exit
 * would first tear down that thread's heap, and its own, for nothing.
 * Returns false when there is no such thread (then exit as usual).
 */
export function exitThroughEngine(code: number): boolean {
  const e = last;
  if (!e || e.exited !== null || e.failed) return false;
  clearTimeout(e.ending);
  e.worker.postMessage({ t: 'exit', code });
  // (should the thread not do it, Node's exit does, a moment later)
  setTimeout(() => process.exit(code), 200);
  return true;
}

/**
 * Start an engine thread now, for the next operation of this thread: it
 * loads while the caller does other work (the command line parses its
 * arguments meanwhile).
 */
export function prewarmEngine(): Engine {
  return (spare ??= startEngine());
}

/** Take an engine thread another copy of this module started (the command's entry bundle does). */
export function adoptEngine(e: Engine): void {
  if (!spare) spare = e;
}

export interface RunHooks {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /** Lines meant for stderr (warnings; info and debug from level 3 on); default: process.stderr. */
  onLog?: (text: string) => void;
  logLevel?: number;
  logFile?: string;
  debug?: DebugSwitches;
  timeouts?: { waitMs?: number; ioWaitMs?: number };
}

/** What an AbortSignal's reason says: a signal name is taken as that signal, anything else as an abort. */
function reasonName(reason: unknown): InterruptName {
  return reason === 'SIGINT' || reason === 'SIGTERM' || reason === 'SIGHUP' ? reason : 'abort';
}

function rebuild(s: SerializedError): Error {
  if (s.kind) return errorFromJSON({ kind: s.kind, message: s.message, step: s.step, pid: s.pid, resource: s.resource, stack: s.stack });
  // ckpt's own failure (a bug): a FailedError that says so, with the engine's stack.
  const e = new FailedError(`internal error: ${s.name}: ${s.message}`);
  if (s.stack) e.stack = `FailedError: internal error: ${s.stack}`;
  return e;
}

/** Run one operation in an engine thread of its own. */
export function runInEngine<R>(op: EngineOp, opts: Record<string, unknown>, hooks: RunHooks): Promise<R> {
  if (hooks.signal?.aborted) {
    const n = reasonName(hooks.signal.reason);
    return Promise.reject(new InterruptedError(n === 'abort' ? 'interrupted: aborted by the caller before it started' : `interrupted by ${n}`));
  }
  const engine = spare ?? startEngine();
  spare = null;
  const { worker, flag } = engine;
  // What the engine thread itself would write (it sends its log as messages) reaches this thread's streams.
  worker.stdout.pipe(process.stdout);
  worker.stderr.pipe(process.stderr);
  const onLog = hooks.onLog ?? ((text: string) => { process.stderr.write(text); });
  return new Promise<R>((resolve, reject) => {
    let settled = false;
    const onAbort = () => raiseInterrupt(flag, reasonName(hooks.signal!.reason));
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      hooks.signal?.removeEventListener('abort', onAbort);
      worker.removeAllListeners('message');
      worker.unref();
      // The engine thread has done its one operation. It is ended a moment
      // later (a command that exits at once ends it faster itself).
      engine.ending = setTimeout(() => { void worker.terminate(); }, 0).unref();
      last = engine;
      f();
    };
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: EngineMessage) => {
      switch (m.t) {
        case 'progress': try { hooks.onProgress?.(m.e); } catch { /* the caller's callback: not ours to fail on */ } break;
        case 'log': onLog(m.text); break;
        case 'done': finish(() => resolve(m.result as R)); break;
        case 'error': finish(() => reject(rebuild(m.error))); break;
      }
    });
    const lost = (why: string) => finish(() => reject(new FailedError(`the engine thread ${why} before the ${op} finished`)));
    worker.on('error', (err) => finish(() => reject(err instanceof CkptError ? err : new FailedError(`internal error in the engine thread: ${err.stack ?? err.message}`))));
    worker.on('exit', (code) => lost(`exited (code ${code})`));
    if (engine.failed) { const err = engine.failed; finish(() => reject(new FailedError(`internal error in the engine thread: ${err.stack ?? err.message}`))); return; }
    if (engine.exited !== null) { lost(`exited (code ${engine.exited})`); return; }
    worker.ref();
    const msg: RunMessage = {
      t: 'run', op, opts,
      log: { level: hooks.logLevel ?? 2, file: hooks.logFile },
      debug: hooks.debug ?? {},
      timeouts: hooks.timeouts ?? {},
      progress: !!hooks.onProgress,
    };
    worker.postMessage(msg);
  });
}

// SIGINT/SIGTERM/SIGHUP to ckpt, or the library caller's AbortSignal, must
// not stop it in the middle of work on a stopped target: they set a flag that
// is checked between steps, and the step's cleanup runs before the operation
// ends with an InterruptedError.
//
// The flag is an Int32Array over a SharedArrayBuffer: the caller's thread
// sets it (src/engine/host.ts), the engine thread that runs the operation
// reads it here, and the kernel layer's waits sleep on it (Atomics.wait), so
// that setting it (with Atomics.notify) also wakes a wait.

import { CkptError } from './errors.js';
import { log } from './log.js';

/** Values of the flag's word 0. */
export const INTERRUPT = { none: 0, SIGHUP: 1, SIGINT: 2, SIGTERM: 15, abort: 256 } as const;
export type InterruptName = Exclude<keyof typeof INTERRUPT, 'none'>;

export function interruptCode(name: InterruptName): number { return INTERRUPT[name]; }
function nameOf(code: number): InterruptName | null {
  for (const [k, v] of Object.entries(INTERRUPT)) if (v === code && k !== 'none') return k as InterruptName;
  return code ? 'abort' : null;
}

/** A fresh flag (two words: the interrupt, and a spare). */
export function newInterruptFlag(): Int32Array { return new Int32Array(new SharedArrayBuffer(8)); }

/** Set a flag (from any thread) and wake whoever sleeps on it. The first interrupt stays. */
export function raiseInterrupt(flag: Int32Array, name: InterruptName): void {
  Atomics.compareExchange(flag, 0, 0, INTERRUPT[name]);
  Atomics.notify(flag, 0);
}

let flag: Int32Array = newInterruptFlag();
/** An interrupt was acted on (thrown as an error): later waits (the cleanup's) are not cut short by it. */
let taken = false;

/** The flag this thread's operation obeys (the engine thread gets its caller's). */
export function useInterruptFlag(f: Int32Array): void { flag = f; taken = false; }
export function interruptFlag(): Int32Array { return flag; }

/** Sleep `ms` milliseconds (an interrupt raised meanwhile wakes it). */
export function napMs(ms: number): void { Atomics.wait(flag, 0, Atomics.load(flag, 0), ms); }

/** Check `cond` every `stepMs` until it holds (true) or `timeoutMs` has passed (false): for a change the kernel makes on its own, soon. */
export function holdsWithin(timeoutMs: number, cond: () => boolean, stepMs = 1): boolean {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (performance.now() > end) return false;
    napMs(stepMs);
  }
}

let installed = false;
/** For a process that runs an operation on its own thread: signals set this thread's flag. */
export function installCancelHandlers(): void {
  if (installed) return;
  installed = true;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => raiseInterrupt(flag, s));
}

/** Debug switches of this operation (tests): see docs/usage.md. */
export interface DebugSwitches {
  /** Wait 10 s at this pause point (dump:state, dump:pages, restore:memory), saying so. */
  pause?: string;
  /** Make the step at this point fail. */
  fail?: string;
  /** Kill the whole process at this commit step (commit:N). */
  crash?: string;
  /** Fail the N-th fault point (a number), or count them ('count'): src/kernel/faults.ts. */
  failAt?: string;
}
let debug: DebugSwitches = {};
export function setDebugSwitches(d: DebugSwitches): void { debug = { ...d }; }
export function debugSwitches(): Readonly<DebugSwitches> { return debug; }

function interruptedError(name: InterruptName, what?: string, pid?: number): CkptError {
  taken = true;
  const by = name === 'abort' ? 'interrupted: aborted by the caller' : `interrupted by ${name}`;
  return new CkptError('interrupted', what ? `${by} while waiting for ${what}` : by, { pid });
}

/**
 * Let pending callbacks run, then throw if the operation was asked to stop.
 * The debug switch `pause` makes it wait 10 s at that point (saying so),
 * so that a signal can be sent at a known moment.
 */
export async function checkpointYield(point = ''): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  if (point && debug.pause === point) {
    log.note(`ckpt: debug pause at ${point}\n`);
    const end = Date.now() + 10000;
    while (!Atomics.load(flag, 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }
  const n = nameOf(Atomics.load(flag, 0));
  if (n) throw interruptedError(n);
}

/**
 * The signal ckpt was interrupted by, if any. An abort by the caller reads
 * as SIGINT (it is to behave as Ctrl-C does): a restore that waits for its
 * process passes that on.
 */
export function wasInterrupted(): string | null {
  const n = nameOf(Atomics.load(flag, 0));
  return n === 'abort' ? 'SIGINT' : n;
}

/**
 * For the kernel layer's waits: an interrupt that no step has acted on yet,
 * as the error to throw (which marks it acted on), or null.
 */
export function pendingInterrupt(what: string, pid: number): CkptError | null {
  if (taken) return null;
  const n = nameOf(Atomics.load(flag, 0));
  return n ? interruptedError(n, what, pid) : null;
}

/**
 * For tests: the debug switch `fail` makes the step at that point fail, so
 * that the cleanup after it can be checked.
 */
export function debugFail(point: string): void {
  if (debugOn(point)) throw new Error(`debug failure at ${point}`);
}
export function debugOn(point: string): boolean {
  return debug.fail === point;
}

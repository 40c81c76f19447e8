// SIGINT/SIGTERM/SIGHUP to ckpt must not kill it in the middle of work on a
// stopped target: they set a flag that is checked between steps, and the
// step's cleanup runs before ckpt exits.

import { CkptError } from './errors.js';

let interrupted: string | null = null;
let installed = false;

export function installCancelHandlers(): void {
  if (installed) return;
  installed = true;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(s, () => { interrupted = s; });
  }
}

/**
 * Let pending signal callbacks run, then throw if ckpt was asked to stop.
 * For tests, CKPT_DEBUG_PAUSE=<point> makes ckpt wait 10 s at that point
 * (saying so on stderr), so that a signal can be sent at a known moment.
 */
export async function checkpointYield(point = ''): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  if (point && process.env.CKPT_DEBUG_PAUSE === point) {
    process.stderr.write(`ckpt: debug pause at ${point}\n`);
    const end = Date.now() + 10000;
    while (!interrupted && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }
  if (interrupted) throw new CkptError('interrupted', `interrupted by ${interrupted}`);
}

export function wasInterrupted(): string | null { return interrupted; }

/**
 * For tests: CKPT_DEBUG_FAIL=<point> makes the step at that point fail, so
 * that the cleanup after it can be checked.
 */
export function debugFail(point: string): void {
  if (debugOn(point)) throw new Error(`debug failure at ${point}`);
}
export function debugOn(point: string): boolean {
  return process.env.CKPT_DEBUG_FAIL === point;
}

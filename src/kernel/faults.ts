// Failure at every step, for tests. With the debug switch failAt = N
// (CKPT_DEBUG_FAIL_AT=N for the command), the N-th fault point (counting
// from 0) of a dump or restore fails, once: every remote call is a fault
// point, and so is the start of every named step. A test walks N from 0
// to the count, and checks after each failure that nothing was changed or
// left behind. failAt = 'count' reports the number of fault points passed
// on stderr when the operation ends.
// (The state below is the operation's: each runs in an engine thread of its own.)

import { writeSync } from 'node:fs';

let failAt = -1;
let counting = false;
let passed = 0;
let fired = false;

/** Set up the fault points of this operation (from its debug switches). */
export function configureFaults(spec: string | undefined): void {
  failAt = spec && /^\d+$/.test(spec) ? Number(spec) : -1;
  counting = spec === 'count';
  passed = 0;
  fired = false;
}

/** When counting: say how many fault points the operation passed. */
export function reportFaults(): void {
  if (counting) writeSync(2, `ckpt: ${passed} fault points\n`);
}

/** A fault point: throws the injected failure when its number comes up. */
export function faultPoint(what: string): void {
  if (failAt < 0 && !counting) return;
  const n = passed++;
  if (n === failAt && !fired) {
    fired = true;
    throw new Error(`debug failure at fault point ${n} (${what})`);
  }
}

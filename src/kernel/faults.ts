// Failure at every step, for tests. CKPT_DEBUG_FAIL_AT=N makes the N-th
// fault point (counting from 0) of a dump or restore fail, once: every remote
// call is a fault point, and so is the start of every named step. A test
// walks N from 0 until the operation succeeds, and checks after each
// failure that nothing was changed or left behind. CKPT_DEBUG_FAIL_AT=count
// reports the number of fault points passed on stderr at exit.
// (Each dump or restore runs on its own, so the count is the operation's.)

const spec = process.env.CKPT_DEBUG_FAIL_AT ?? '';
const failAt = /^\d+$/.test(spec) ? Number(spec) : -1;
let passed = 0;
let fired = false;

if (spec === 'count') process.on('exit', () => process.stderr.write(`ckpt: ${passed} fault points\n`));

/** A fault point: throws the injected failure when its number comes up. */
export function faultPoint(what: string): void {
  if (failAt < 0 && spec !== 'count') return;
  const n = passed++;
  if (n === failAt && !fired) {
    fired = true;
    throw new Error(`debug failure at fault point ${n} (${what})`);
  }
}

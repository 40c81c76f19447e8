// Field schemas shared by the image documents. Everything restore relies on
// is checked when an image is loaded, before any process is created: numbers
// are integers in their kernel ranges, hex strings are hex and fit in 64
// bits, addresses are page-aligned user addresses, base64 decodes to the
// size the kernel structure has.

import * as z from 'zod/mini';
import { en } from 'zod/locales';

z.config(en()); // readable messages ("Too big: expected number to be <=64")

// Checks that stop at the first failure and never throw: a refinement that
// cannot even examine a value (a hex string that is not hex) fails it, and
// the issue that is reported is the first one, which says why.
type Params = string | { message: string; path?: PropertyKey[] };
const withAbort = (p: Params) => (typeof p === 'string' ? { message: p, abort: true } : { ...p, abort: true });
export const regex = (re: RegExp, message: string) => z.regex(re, { message, abort: true });
export function refine<T>(fn: (v: T) => boolean, params: Params) {
  return z.refine<T>((v) => { try { return fn(v); } catch { return false; } }, withAbort(params));
}
/** A refinement over a whole object: skipped when an exception shows a field is already wrong (its own issue is reported). */
export function superRefine<T>(fn: (v: T, ctx: z.core.$RefinementCtx<T>) => void) {
  return z.superRefine<T>((v, ctx) => { try { fn(v, ctx); } catch { /* a field's own check failed */ } });
}

export const int = (lo: number, hi: number) => z.int().check(z.gte(lo), z.lte(hi));
export const u32 = int(0, 0xffffffff);
export const i32 = int(-0x80000000, 0x7fffffff);
export const count = int(0, Number.MAX_SAFE_INTEGER);

/** A 64-bit value as written by ckpt: 0x followed by 1-16 lower-case hex digits. */
export const hex64 = z.string().check(regex(/^0x[0-9a-f]{1,16}$/, 'expected a 64-bit hex number such as 0x7f00'));
/** A hex value of at most `bits` bits. */
export const hexBits = (bits: number) => z.string().check(regex(new RegExp(`^0x[0-9a-f]{1,${Math.ceil(bits / 4)}}$`), `expected a hex number of at most ${bits} bits`));
/** A hex mask as /proc prints it (no 0x), e.g. capability sets. */
export const hexMask = z.string().check(regex(/^[0-9a-f]{1,16}$/, 'expected a hex mask of at most 64 bits'));
/** A page-aligned user-space address (below 2^47). */
export const pageAddr = z.string().check(
  regex(/^0x(0|[1-7][0-9a-f]{8}000|[1-9a-f][0-9a-f]{0,7}000)$/, 'expected a page-aligned user address (0x...000, below 0x800000000000)'),
);
/** A decimal non-negative 64-bit signed value (file offsets). */
export const dec63 = z.string().check(regex(/^(0|[1-9][0-9]{0,18})$/, 'expected a decimal number'),
  refine((s) => BigInt(s) < 1n << 63n, 'too big for a file offset'));

/** base64 of exactly `len` bytes, or of `min`..`max` bytes. */
export const base64Bytes = (min: number, max = min) => z.string().check(
  regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64'),
  refine((s) => s.length % 4 === 0, 'expected base64 (length not a multiple of 4)'),
  refine((s) => { const n = Buffer.byteLength(s, 'base64'); return n >= min && n <= max; },
    min === max ? `expected ${min} bytes of base64 data` : `expected ${min}-${max} bytes of base64 data`),
);

/** A path or name the kernel takes: no NUL byte, at most PATH_MAX. */
export const noNul = z.string().check(regex(/^[^\0]*$/, 'contains a NUL byte'), z.maxLength(4096));
/** An absolute path. */
export const absPath = z.string().check(regex(/^\/[^\0]*$/, 'expected an absolute path (without NUL bytes)'), z.maxLength(4096));
/** A task's name: at most 15 bytes (TASK_COMM_LEN). */
export const commName = z.string().check(z.maxLength(15), refine((s) => Buffer.byteLength(s) <= 15 * 3 && !s.includes('\0'), 'not a task name'));

export const PID_MAX = 4194304; // PID_MAX_LIMIT on 64-bit
export const pid = int(1, PID_MAX);
export const fdNum = int(0, 0x7fffffff);
/** An open file description of the image (files.json). */
export const fileId = int(1, 0x7fffffff);
export const sigNum = int(1, 64);
export const PAGE = 4096;

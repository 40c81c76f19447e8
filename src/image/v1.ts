// Image format version 1, frozen: the schemas of what version 2 changed (the
// per-process fd kinds `path`, `tty`, `dup` and `inherit`). The converter
// (upgrade.ts) reads a version 1 image with these and passes everything else
// through; the result is checked with the current schemas. Never edit this
// file: a version 1 image is what ckpt 0.1.0 wrote.

import * as z from 'zod/mini';
import { fdNum, u32, dec63, count, pid, absPath, int, PID_MAX } from './schema.js';

const statNum = z.number().check(z.gte(0), z.lt(2 ** 64));

export const PathFdV1 = z.object({
  fd: fdNum, kind: z.literal('path'), type: z.enum(['reg', 'dir', 'chr', 'fifo']), path: absPath,
  flags: u32, pos: dec63, mode: u32, size: count, dev: statNum, ino: statNum, rdev: count,
  procPid: z.optional(pid),
});
export const TtyFdV1 = z.object({ fd: fdNum, kind: z.literal('tty'), path: absPath, flags: u32, rdev: count });
export const DupFdV1 = z.object({ fd: fdNum, kind: z.literal('dup'), of: fdNum, cloexec: z.boolean() });
export const InheritFdV1 = z.object({ fd: fdNum, kind: z.literal('inherit'), parentFd: fdNum, cloexec: z.boolean() });
export const FdImageV1 = z.discriminatedUnion('kind', [PathFdV1, TtyFdV1, DupFdV1, InheritFdV1]);
export type FdImageV1 = z.infer<typeof FdImageV1>;

/** A version 1 process document: what the converter changes is checked, the rest passes through. */
export const ProcessImageV1 = z.looseObject({ pid, ppid: int(0, PID_MAX), fds: z.array(FdImageV1) });
export type ProcessImageV1 = z.infer<typeof ProcessImageV1>;

/** A version 1 manifest, as far as the converter reads it. */
export const ManifestV1 = z.looseObject({
  format: z.literal('ckpt-image'),
  version: z.literal(1),
  root: pid,
  processes: z.array(z.looseObject({ pid, ppid: int(0, PID_MAX), zombie: z.optional(z.unknown()) })),
  chunkSize: z.int(),
  files: z.record(z.string(), z.object({ size: count, crc32c: z.array(z.string()) })),
});
export type ManifestV1 = z.infer<typeof ManifestV1>;

// memfds (memfd_create): anonymous files in memory. The inode, with its
// name, contents (holes kept), size, mode and seals, is stored once in the
// image (inodes.ts), whoever holds or maps it; each open file description
// is a new open of it with its own flags and offset. MFD_CLOEXEC is the
// close-on-exec flag of each fd (the fd table keeps it); MFD_ALLOW_SEALING
// and MFD_NOEXEC_SEAL show in the seals and mode; memfds of huge pages
// (MFD_HUGETLB) are refused.

import * as z from 'zod/mini';
import { O } from '../kernel/consts.js';
import { fileId, u32, dec63 } from '../image/schema.js';
import { defineKind } from './kind.js';

export const MemfdFile = z.object({
  id: fileId,
  kind: z.literal('memfd'),
  /** The stored inode (files.json `inodes`). */
  inode: fileId,
  /** open flags, without O_CLOEXEC (a property of each fd) */
  flags: u32,
  pos: dec63,
});
export type MemfdFile = z.infer<typeof MemfdFile>;

export const memfdKind = defineKind<MemfdFile>({
  kind: 'memfd',
  schema: MemfdFile,
  takes: (f) => f.object.type === 'memfd',
  dump(f, ctx) {
    const inode = ctx.inodes.add(`/proc/${f.pid}/fd/${f.fd}`, f.link, `pid ${f.pid}: fd ${f.fd} (${f.link})`);
    return { kind: 'memfd', inode, flags: f.flags & ~O.CLOEXEC, pos: f.pos.toString() };
  },
  describe: (f) => `memfd (inode ${f.inode}) flags 0${f.flags.toString(8)} pos ${f.pos}`,
  check: () => {},
  phase: 'objects',
  create: (f, _rt, ctx) => ({ local: ctx.inodes.reopen(f.inode, f.flags, f.pos), closeAfter: true }),
});

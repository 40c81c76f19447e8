// signalfd: a file that reads the signals of its mask pending for the
// process (or thread) that reads it. Only the mask and the status flags
// belong to the object; the pending signals belong to the tasks and are
// kept with them. On restore ckpt makes the signalfd itself and hands it to
// every fd that held it.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, signalName } from '../kernel/consts.js';
import { signalfd, setFl } from '../kernel/sys.js';
import { refused, badImage } from '../errors.js';
import { fileId, u32, hexMask } from '../image/schema.js';
import { defineKind } from './kind.js';
import { refuseOutside } from './outside.js';

export const SignalfdFile = z.object({
  id: fileId,
  kind: z.literal('signalfd'),
  /** The signals it reads, as fdinfo prints them (hex, bit n-1 for signal n). */
  sigmask: hexMask,
  /** status flags (O_NONBLOCK...), without O_CLOEXEC and the access mode */
  flags: u32,
});
export type SignalfdFile = z.infer<typeof SignalfdFile>;

function names(mask: bigint): string {
  const out: string[] = [];
  for (let s = 1; s <= 64; s++) if (mask & (1n << BigInt(s - 1))) out.push(signalName(s));
  return out.length ? out.join(' ') : 'no signal';
}

export const signalfdKind = defineKind<SignalfdFile>({
  kind: 'signalfd',
  schema: SignalfdFile,
  takes: (f) => f.object.type === 'signalfd',
  dump(f, ctx) {
    const m = f.info.get('sigmask');
    if (m === undefined || !/^[0-9a-f]{1,16}$/.test(m)) throw refused(`pid ${f.pid}: fd ${f.fd} (${f.link}): its fdinfo has no sigmask line this ckpt can read`);
    refuseOutside(f, ctx, 'signalfd', refused);
    return { kind: 'signalfd', sigmask: BigInt('0x' + m).toString(16), flags: f.flags & ~(O.CLOEXEC | O.ACCMODE) };
  },
  describe: (s) => `signalfd for ${names(BigInt('0x' + s.sigmask))}${s.flags & O.NONBLOCK ? ', non-blocking' : ''}`,
  check(s) {
    if (s.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${s.id}: the status flags of a signalfd hold an access mode`);
  },
  phase: 'objects',
  create(s) {
    const fd = signalfd(BigInt('0x' + s.sigmask), O.CLOEXEC);
    try { setFl(fd, s.flags); } catch (e) { fs.closeSync(fd); throw e; }
    return { local: fd, closeAfter: true };
  },
});

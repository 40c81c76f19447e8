// eventfd: a 64-bit counter, in counting or semaphore mode (EFD_SEMAPHORE).
// The counter is read from fdinfo (the process is frozen; nothing is read
// from the object, so a dump with --leave-running leaves it as it was). On
// restore ckpt makes the eventfd itself, adds the counter with a write, sets
// the status flags (O_NONBLOCK) and hands it to every fd that held it.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, EFD } from '../kernel/consts.js';
import { eventfd, eventfdAdd, setFl } from '../kernel/sys.js';
import { refused, badImage } from '../errors.js';
import { fileId, u32, regex } from '../image/schema.js';
import { defineKind } from './kind.js';
import { refuseOutside } from './outside.js';

/** The largest value an eventfd counter holds (a write that would pass it blocks). */
const EVENTFD_MAX = 0xfffffffffffffffen;

export const EventfdFile = z.object({
  id: fileId,
  kind: z.literal('eventfd'),
  /** The counter, in decimal (0 to 2^64-2). */
  count: z.string().check(regex(/^(0|[1-9][0-9]{0,19})$/, 'expected a decimal number'),
    z.refine((s) => BigInt(s) <= EVENTFD_MAX, 'above the largest eventfd counter (2^64-2)')),
  /** EFD_SEMAPHORE: each read takes 1. */
  semaphore: z.boolean(),
  /** status flags (O_NONBLOCK...), without O_CLOEXEC and the access mode */
  flags: u32,
});
export type EventfdFile = z.infer<typeof EventfdFile>;

export const eventfdKind = defineKind<EventfdFile>({
  kind: 'eventfd',
  schema: EventfdFile,
  takes: (f) => f.object.type === 'eventfd',
  dump(f, ctx) {
    const where = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
    const cnt = f.info.get('eventfd-count');
    const sem = f.info.get('eventfd-semaphore');
    if (cnt === undefined || !/^[0-9a-f]+$/.test(cnt) || (sem !== '0' && sem !== '1')) throw refused(`${where}: its fdinfo has no eventfd-count and eventfd-semaphore lines this ckpt can read`);
    refuseOutside(f, ctx, 'eventfd', refused);
    return { kind: 'eventfd', count: BigInt('0x' + cnt).toString(), semaphore: sem === '1', flags: f.flags & ~(O.CLOEXEC | O.ACCMODE) };
  },
  describe: (e) => `eventfd, counter ${e.count}${e.semaphore ? ', semaphore' : ''}${e.flags & O.NONBLOCK ? ', non-blocking' : ''}`,
  check(e) {
    if (e.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${e.id}: the status flags of an eventfd hold an access mode`);
  },
  phase: 'objects',
  create(e) {
    const fd = eventfd(O.CLOEXEC | O.NONBLOCK | (e.semaphore ? EFD.SEMAPHORE : 0));
    try {
      const n = BigInt(e.count);
      if (n > 0n) eventfdAdd(fd, n);
      setFl(fd, e.flags);
    } catch (err) { closeQuiet(fd); throw err; }
    return { local: fd, closeAfter: true };
  },
});

function closeQuiet(fd: number): void { try { fs.closeSync(fd); } catch { /* closed */ } }

// Scheduling: policy and priority, nice value and CPU affinity (all per
// thread), and the process's oom_score_adj. Read and set from ckpt, by TID.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { getSched, setSched } from '../kernel/sys.js';
import { log } from '../log.js';
import { refused } from '../errors.js';
import { int, hexBits, refine } from '../image/schema.js';

// SCHED_OTHER, FIFO, RR, BATCH, IDLE (SCHED_DEADLINE needs sched_setattr: not supported), with SCHED_RESET_ON_FORK when set
const POLICIES = [0, 1, 2, 3, 5];
export const Sched = z.object({
  policy: int(0, 0x40000007).check(refine((p) => POLICIES.includes(p & ~0x40000000) && (p & 0x3ffffff8) === 0, 'expected a scheduling policy (0, 1, 2, 3 or 5, with SCHED_RESET_ON_FORK 0x40000000)')),
  priority: int(0, 99),  // sched_priority (real-time policies)
  nice: int(-20, 19),
  affinity: hexBits(1024).check(refine((s) => BigInt(s) !== 0n, 'an empty CPU mask')), // lowest CPU in the lowest bit
}).check(refine((s) => ((s.policy & 7) === 1 || (s.policy & 7) === 2 ? s.priority >= 1 : s.priority === 0),
  { message: 'a real-time policy takes a priority of 1-99, the others 0', path: ['priority'] }));
export type Sched = z.infer<typeof Sched>;

const MASK_BYTES = 128; // 1024 CPUs

export function readSched(tid: number): Sched {
  const { policy, priority, nice, mask } = getSched(tid, MASK_BYTES);
  if ((policy & 7) === 6) throw refused(`thread ${tid}: it runs under SCHED_DEADLINE, which restore cannot set yet`);
  let bits = 0n;
  for (let i = mask.length - 1; i >= 0; i--) bits = (bits << 8n) | BigInt(mask[i]);
  return { policy, priority, nice, affinity: '0x' + bits.toString(16) };
}

export function restoreSched(tid: number, s: Sched): void {
  const mask = Buffer.alloc(MASK_BYTES);
  let bits = BigInt(s.affinity);
  for (let i = 0; i < MASK_BYTES && bits; i++, bits >>= 8n) mask[i] = Number(bits & 0xffn);
  const err = setSched(tid, s.policy, s.priority, s.nice, mask);
  if (err) {
    // The CPUs it was bound to may not exist on this host: say so, keep the host's mask.
    log.warn(`thread ${tid}: CPU affinity ${s.affinity} cannot be set here (errno ${err}); it runs on any CPU`);
  }
}

export function readOomScoreAdj(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim());
}

export function restoreOomScoreAdj(pid: number, v: number): void {
  fs.writeFileSync(`/proc/${pid}/oom_score_adj`, `${v}\n`);
}

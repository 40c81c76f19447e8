// Scheduling: policy and priority, nice value and CPU affinity (all per
// thread), and the process's oom_score_adj. Read and set from ckpt, by TID.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { sys, syscallRaw, addressOf } from '../kernel/ffi.js';
import { NR } from '../kernel/consts.js';
import { log } from '../log.js';
import { int, hexBits, refine } from '../image/schema.js';

export const Sched = z.object({
  policy: z.union([int(0, 7), int(0x40000000, 0x40000007)]), // with SCHED_RESET_ON_FORK when set
  priority: int(0, 99),  // sched_priority (real-time policies)
  nice: int(-20, 19),
  affinity: hexBits(1024).check(refine((s) => BigInt(s) !== 0n, 'an empty CPU mask')), // lowest CPU in the lowest bit
});
export type Sched = z.infer<typeof Sched>;

const PRIO_PROCESS = 0;
const MASK_BYTES = 128; // 1024 CPUs

export function readSched(tid: number): Sched {
  const policy = sys(`sched_getscheduler(${tid})`, NR.sched_getscheduler, tid);
  const param = Buffer.alloc(4);
  sys(`sched_getparam(${tid})`, NR.sched_getparam, tid, addressOf(param));
  // The raw getpriority returns 20 - nice, so that it is never negative.
  const nice = 20 - sys(`getpriority(${tid})`, NR.getpriority, PRIO_PROCESS, tid);
  const mask = Buffer.alloc(MASK_BYTES);
  const n = sys(`sched_getaffinity(${tid})`, NR.sched_getaffinity, tid, MASK_BYTES, addressOf(mask));
  let bits = 0n;
  for (let i = n - 1; i >= 0; i--) bits = (bits << 8n) | BigInt(mask[i]);
  return { policy, priority: param.readInt32LE(0), nice, affinity: '0x' + bits.toString(16) };
}

export function restoreSched(tid: number, s: Sched): void {
  const param = Buffer.alloc(4);
  param.writeInt32LE(s.priority, 0);
  sys(`sched_setscheduler(${tid}, ${s.policy})`, NR.sched_setscheduler, tid, s.policy, addressOf(param));
  sys(`setpriority(${tid}, ${s.nice})`, NR.setpriority, PRIO_PROCESS, tid, s.nice);
  const mask = Buffer.alloc(MASK_BYTES);
  let bits = BigInt(s.affinity);
  for (let i = 0; i < MASK_BYTES && bits; i++, bits >>= 8n) mask[i] = Number(bits & 0xffn);
  const r = syscallRaw(NR.sched_setaffinity, tid, MASK_BYTES, addressOf(mask));
  if (r < 0) {
    // The CPUs it was bound to may not exist on this host: say so, keep the host's mask.
    log.warn(`thread ${tid}: CPU affinity ${s.affinity} cannot be set here (errno ${-r}); it runs on any CPU`);
  }
}

export function readOomScoreAdj(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim());
}

export function restoreOomScoreAdj(pid: number, v: number): void {
  fs.writeFileSync(`/proc/${pid}/oom_score_adj`, `${v}\n`);
}

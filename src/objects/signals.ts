// Signal dispositions (one per process) and pending signals.

import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { NR, NSIG, SIG } from '../kernel/consts.js';
import { readStatus } from '../kernel/proc.js';
import { SIGINFO_SIZE } from '../kernel/ptrace.js';
import { hex64, sigNum, base64Bytes, refine } from '../image/schema.js';

export const SigAction = z.object({ sig: sigNum, handler: hex64, flags: hex64, restorer: hex64, mask: hex64 });
/** A pending signal: the kernel's siginfo, 128 bytes, base64; its first field is the signal number. */
export const Siginfo = base64Bytes(SIGINFO_SIZE).check(refine((s) => { const n = Buffer.from(s, 'base64').readInt32LE(0); return n >= 1 && n <= 64 && n !== 9 && n !== 19; }, 'the siginfo does not hold a signal number that can be pending (1-64, not SIGKILL or SIGSTOP)'));
export type SigAction = z.infer<typeof SigAction>;

const hex = (v: bigint) => '0x' + v.toString(16);

/** Signals whose disposition is not the default, from /proc/PID/status. */
function nonDefault(pid: number): number[] {
  const st = readStatus(pid);
  const bits = BigInt('0x' + (st.get('SigCgt') ?? '0')) | BigInt('0x' + (st.get('SigIgn') ?? '0'));
  const out: number[] = [];
  for (let s = 1; s <= NSIG; s++) if ((bits >> BigInt(s - 1)) & 1n) out.push(s);
  return out;
}

/** Read every non-default sigaction with rt_sigaction in the target (kernel struct: handler, flags, restorer, mask). */
export function dumpActions(rt: RemoteTask, pid: number, scratchOff: number): SigAction[] {
  const out: SigAction[] = [];
  const addr = rt.scratch + BigInt(scratchOff);
  for (const sig of nonDefault(pid)) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    rt.call(`rt_sigaction(${sig})`, NR.rt_sigaction, sig, 0, addr, 8);
    const b = rt.read(addr, 32);
    out.push({ sig, handler: hex(b.readBigUInt64LE(0)), flags: hex(b.readBigUInt64LE(8)), restorer: hex(b.readBigUInt64LE(16)), mask: hex(b.readBigUInt64LE(24)) });
  }
  return out;
}

/** Set the actions of the image (`only`: of these signals alone), and the default for every other signal that has none. */
export function restoreActions(rt: RemoteTask, actions: SigAction[], scratchOff: number, only?: number[]): void {
  const want = new Map(actions.map((a) => [a.sig, a]));
  const sigs = only ?? new Set([...want.keys(), ...nonDefault(rt.pid)]);
  for (const sig of sigs) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    const a = want.get(sig);
    const b = Buffer.alloc(32);
    if (a) {
      b.writeBigUInt64LE(BigInt(a.handler), 0); b.writeBigUInt64LE(BigInt(a.flags), 8);
      b.writeBigUInt64LE(BigInt(a.restorer), 16); b.writeBigUInt64LE(BigInt(a.mask), 24);
    }
    rt.call(`rt_sigaction(${sig})`, NR.rt_sigaction, sig, rt.put(b, scratchOff), 0, 8);
  }
}

/** Queue pending signals again; the task must have every signal blocked meanwhile. */
export function queueSignals(rt: RemoteTask, tgid: number, tid: number | null, infos: string[], scratchOff: number): void {
  for (const b64 of infos) {
    const info = Buffer.from(b64, 'base64');
    if (info.length !== SIGINFO_SIZE) throw new Error('siginfo of wrong size');
    const sig = info.readInt32LE(0);
    const a = rt.put(info, scratchOff);
    if (tid === null) rt.call(`rt_sigqueueinfo(${sig})`, NR.rt_sigqueueinfo, tgid, sig, a);
    else rt.call(`rt_tgsigqueueinfo(${sig})`, NR.rt_tgsigqueueinfo, tgid, tid, sig, a);
  }
}

// Signal dispositions (one per process) and pending signals.

import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { NSIG, SIG } from '../kernel/consts.js';
import { readStatus } from '../kernel/proc.js';
import { SIGINFO_SIZE, siginfoSigno } from '../kernel/structs.js';
import * as remote from '../kernel/rsys.js';
import { hex64, sigNum, base64Bytes, refine } from '../image/schema.js';

export const SigAction = z.object({ sig: sigNum, handler: hex64, flags: hex64, restorer: hex64, mask: hex64 });
/** A pending signal: the kernel's siginfo, 128 bytes, base64; its first field is the signal number. */
export const Siginfo = base64Bytes(SIGINFO_SIZE).check(refine((s) => { const n = siginfoSigno(Buffer.from(s, 'base64')); return n >= 1 && n <= 64 && n !== 9 && n !== 19; }, 'the siginfo does not hold a signal number that can be pending (1-64, not SIGKILL or SIGSTOP)'));
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
export function dumpActions(rt: RemoteTask, pid: number): SigAction[] {
  const out: SigAction[] = [];
  for (const sig of nonDefault(pid)) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    const a = remote.getSigaction(rt, sig);
    out.push({ sig, handler: hex(a.handler), flags: hex(a.flags), restorer: hex(a.restorer), mask: hex(a.mask) });
  }
  return out;
}

/** Set the actions of the image (`only`: of these signals alone), and the default for every other signal that has none. */
export function restoreActions(rt: RemoteTask, actions: SigAction[], only?: number[]): void {
  const want = new Map(actions.map((a) => [a.sig, a]));
  const sigs = only ?? new Set([...want.keys(), ...nonDefault(rt.pid)]);
  for (const sig of sigs) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    const a = want.get(sig);
    remote.setSigaction(rt, sig, a ? { handler: BigInt(a.handler), flags: BigInt(a.flags), restorer: BigInt(a.restorer), mask: BigInt(a.mask) } : null);
  }
}

/** Queue pending signals again; the task must have every signal blocked meanwhile. */
export function queueSignals(rt: RemoteTask, tgid: number, tid: number | null, infos: string[]): void {
  for (const b64 of infos) remote.queueSiginfo(rt, tgid, tid, Buffer.from(b64, 'base64'));
}

/** The signal number of one of the image's pending signals (a base64 siginfo). */
export function pendingSigno(b64: string): number {
  return siginfoSigno(Buffer.from(b64, 'base64'));
}

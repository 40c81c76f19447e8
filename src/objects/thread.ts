// Per-thread state: registers, XSAVE area, signal mask, pending signals,
// sigaltstack, rseq registration, clear_child_tid address, robust futex list.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { Regs, REG_NAMES, RegName, getXstate, peekSiginfo, getRseqConfig, setXstate, setRegs, setSigmask } from '../kernel/ptrace.js';
import { NR, PR, ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK, EINTR } from '../kernel/consts.js';
import { getRobustList } from '../kernel/sys.js';
import { queueSignals, Siginfo } from './signals.js';
import { hex64, base64Bytes, int, u32, pid, refine, commName } from '../image/schema.js';
import { Sched, readSched } from './sched.js';

/**
 * What the kernel checks of an XSAVE area set through ptrace (in the standard
 * format): the features present (xstate_bv) are among those enabled (XCR0,
 * which ptrace puts at offset 464), the compaction word is 0, the rest of
 * the header is 0, and MXCSR has no reserved bit set.
 */
function xsaveHeaderOk(b64: string): boolean {
  const b = Buffer.from(b64, 'base64');
  const xcr0 = b.readBigUInt64LE(464);
  const bv = b.readBigUInt64LE(512);
  if ((bv & ~xcr0) !== 0n || b.readBigUInt64LE(520) !== 0n) return false;
  for (let o = 528; o < 576; o += 8) if (b.readBigUInt64LE(o) !== 0n) return false;
  return (b.readUInt32LE(24) & 0xffff0000) === 0;
}

/** user_regs_struct: every register, each a 64-bit hex value, nothing else. */
export const RegSet = z.strictObject(Object.fromEntries(REG_NAMES.map((n) => [n, hex64])) as Record<RegName, typeof hex64>);

export const Thread = z.object({
  tid: pid,
  comm: z.optional(commName), // the thread's name (per thread; the leader's is the process's)
  regs: RegSet,
  xstate: base64Bytes(576, 1 << 16).check(refine(xsaveHeaderOk, 'not an XSAVE area the kernel takes (its header: features outside XCR0, compacted format or reserved bits)')), // the XSAVE area (NT_X86_XSTATE): 512 legacy bytes, the 64-byte header, the rest
  sigmask: hex64,
  pending: z.array(Siginfo),       // thread-directed
  altstack: z.object({ sp: hex64, flags: u32, size: hex64 }),
  rseq: z.nullable(z.object({ address: hex64, size: int(32, 4096), signature: u32 })), // struct rseq is at least 32 bytes
  tidAddress: hex64,
  robustList: z.object({ head: hex64, len: int(0, 4096) }).check(refine((r) => BigInt(r.head) === 0n || r.len === 24, { message: 'a robust list head is 24 bytes (struct robust_list_head)', path: ['len'] })),
  sched: z.optional(Sched),
});
export type Thread = z.infer<typeof Thread>;

const hex = (v: bigint) => '0x' + v.toString(16);

export function dumpThread(rt: RemoteTask, tid: number, sigmask: bigint, scratchOff: number): Thread {
  const xs = getXstate(tid);
  const pending = peekSiginfo(tid, false).map((b) => b.toString('base64'));
  const a = rt.scratch + BigInt(scratchOff);
  rt.call('sigaltstack', NR.sigaltstack, 0, a);
  const ss = rt.read(a, 24);
  rt.call('prctl(PR_GET_TID_ADDRESS)', NR.prctl, PR.GET_TID_ADDRESS, a);
  const tidAddress = rt.read(a, 8).readBigUInt64LE(0);
  const rs = getRseqConfig(tid);
  const robust = getRobustList(tid);
  let comm: string | undefined;
  try { comm = fs.readFileSync(`/proc/${tid}/comm`, 'utf8').replace(/\n$/, ''); } catch { /* gone: caught later */ }
  return {
    tid, comm, regs: rt.saved.toJSON() as Thread['regs'], xstate: xs.toString('base64'), sigmask: hex(sigmask), pending,
    altstack: { sp: hex(ss.readBigUInt64LE(0)), flags: ss.readUInt32LE(8), size: hex(ss.readBigUInt64LE(16)) },
    rseq: rs.size ? { address: hex(rs.address), size: rs.size, signature: rs.signature } : null,
    tidAddress: hex(tidAddress),
    robustList: { head: hex(robust.head), len: robust.len },
    sched: readSched(tid),
  };
}

/** Thread attributes set by the thread itself (remote syscalls), memory being in place. */
export function restoreThreadCalls(rt: RemoteTask, t: Thread, tgid: number, scratchOff: number): void {
  const SS_DISABLE = 2;
  const SS_AUTODISARM = 1 << 31;
  const ss = Buffer.alloc(24);
  ss.writeBigUInt64LE(BigInt(t.altstack.sp), 0);
  ss.writeUInt32LE((t.altstack.flags & (SS_DISABLE | SS_AUTODISARM)) >>> 0, 8); // SS_ONSTACK is a state, not a setting
  ss.writeBigUInt64LE(BigInt(t.altstack.size), 16);
  if (!(t.altstack.flags & SS_DISABLE)) rt.call('sigaltstack', NR.sigaltstack, rt.put(ss, scratchOff), 0);
  rt.call('set_tid_address', NR.set_tid_address, BigInt(t.tidAddress));
  if (BigInt(t.robustList.head) !== 0n) rt.call('set_robust_list', NR.set_robust_list, BigInt(t.robustList.head), t.robustList.len);
  if (t.rseq) rt.call('rseq', NR.rseq, BigInt(t.rseq.address), t.rseq.size, 0, t.rseq.signature);
  queueSignals(rt, tgid, t.tid, t.pending, scratchOff);
}

/**
 * Registers for a restored thread. A thread stopped inside an interrupted
 * syscall keeps the kernel's restart code, so that the kernel itself decides,
 * as the thread leaves its last ptrace stop (which is inside signal handling,
 * see RemoteTask.settle), whether the call is issued again or ends with
 * EINTR for a signal that arrives first, as it would have without ckpt.
 * -ERESTART_RESTARTBLOCK becomes -ERESTARTNOHAND: the restart block (the
 * time left of a nanosleep...) lived in the kernel, so the call is issued
 * again in full. A thread that was inside restart_syscall itself sees EINTR.
 */
export function finalRegs(t: Thread): { regs: Regs; note?: string } {
  const r = Regs.fromJSON(t.regs);
  const orig = r.sget('orig_rax');
  const e = -Number(r.sget('rax'));
  let note: string | undefined;
  const restarting = orig >= 0n && (e === ERESTARTSYS || e === ERESTARTNOINTR || e === ERESTARTNOHAND || e === ERESTART_RESTARTBLOCK);
  if (!restarting) {
    r.set('orig_rax', -1);
  } else if (orig === BigInt(NR.restart_syscall)) {
    r.set('rax', -EINTR);
    r.set('orig_rax', -1);
    note = `thread ${t.tid} was in restart_syscall; it sees EINTR`;
  } else if (e === ERESTART_RESTARTBLOCK) {
    r.set('rax', -ERESTARTNOHAND);
  }
  return { regs: r, note };
}

export function setThreadState(tid: number, t: Thread, regs: Regs): void {
  setXstate(tid, Buffer.from(t.xstate, 'base64'));
  setRegs(tid, regs);
  setSigmask(tid, BigInt(t.sigmask));
}


// Per-thread state: registers, XSAVE area, signal mask, pending signals,
// sigaltstack, rseq registration, clear_child_tid address, robust futex list.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { Regs, REG_NAMES, RegName, getXstate, peekSiginfo, getRseqConfig, setXstate, setRegs, setSigmask } from '../kernel/ptrace.js';
import { SS, ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK, EINTR } from '../kernel/consts.js';
import { xsaveHeaderOk } from '../kernel/structs.js';
import * as remote from '../kernel/rsys.js';
import { getRobustList } from '../kernel/sys.js';
import { queueSignals, Siginfo } from './signals.js';
import { hex64, base64Bytes, int, u32, pid, refine, commName } from '../image/schema.js';
import { Sched, readSched } from './sched.js';

/** user_regs_struct: every register, each a 64-bit hex value, nothing else. */
export const RegSet = z.strictObject(Object.fromEntries(REG_NAMES.map((n) => [n, hex64])) as Record<RegName, typeof hex64>);

export const Thread = z.object({
  tid: pid,
  comm: z.optional(commName), // the thread's name (per thread; the leader's is the process's)
  regs: RegSet,
  xstate: base64Bytes(576, 1 << 16).check(refine((s) => xsaveHeaderOk(Buffer.from(s, 'base64')), 'not an XSAVE area the kernel takes (its header: features outside XCR0, compacted format or reserved bits)')), // the XSAVE area (NT_X86_XSTATE): 512 legacy bytes, the 64-byte header, the rest
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

export function dumpThread(rt: RemoteTask, tid: number, sigmask: bigint): Thread {
  const xs = getXstate(tid);
  const pending = peekSiginfo(tid, false).map((b) => b.toString('base64'));
  const ss = remote.getSigaltstack(rt);
  const tidAddress = remote.prctlGetTidAddress(rt);
  const rs = getRseqConfig(tid);
  const robust = getRobustList(tid);
  let comm: string | undefined;
  try { comm = fs.readFileSync(`/proc/${tid}/comm`, 'utf8').replace(/\n$/, ''); } catch { /* gone: caught later */ }
  return {
    tid, comm, regs: rt.saved.toJSON() as Thread['regs'], xstate: xs.toString('base64'), sigmask: hex(sigmask), pending,
    altstack: { sp: hex(ss.sp), flags: ss.flags >>> 0, size: hex(ss.size) },
    rseq: rs.size ? { address: hex(rs.address), size: rs.size, signature: rs.signature } : null,
    tidAddress: hex(tidAddress),
    robustList: { head: hex(robust.head), len: robust.len },
    sched: readSched(tid),
  };
}

/** Thread attributes set by the thread itself (remote syscalls), memory being in place. */
export function restoreThreadCalls(rt: RemoteTask, t: Thread, tgid: number): void {
  if (!(t.altstack.flags & SS.DISABLE)) {
    // SS_ONSTACK is a state, not a setting
    remote.setSigaltstack(rt, { sp: BigInt(t.altstack.sp), flags: (t.altstack.flags & (SS.DISABLE | SS.AUTODISARM)) | 0, size: BigInt(t.altstack.size) });
  }
  remote.setTidAddress(rt, BigInt(t.tidAddress));
  if (BigInt(t.robustList.head) !== 0n) remote.setRobustList(rt, BigInt(t.robustList.head), t.robustList.len);
  if (t.rseq) remote.rseqRegister(rt, BigInt(t.rseq.address), t.rseq.size, t.rseq.signature);
  queueSignals(rt, tgid, t.tid, t.pending);
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
  } else if (r.inRestartSyscall()) {
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


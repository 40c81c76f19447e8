// seccomp: each thread's mode (strict, or a stack of classic BPF filters).
// A thread's filters form a chain from the one it installed last back to
// the first, and chains are shared: a filter installed before a clone or
// fork belongs to both tasks, and SECCOMP_FILTER_FLAG_TSYNC gives one to
// every thread of the process. The image keeps the filters of a process
// once each, as a tree (each with its parent), and each thread's place in it.
//
// The filters are read with PTRACE_SECCOMP_GET_FILTER and their flags with
// PTRACE_GET_SECCOMP_METADATA (the kernel keeps SECCOMP_FILTER_FLAG_LOG; the
// other flags act when a filter is installed and leave nothing to read).
// While ckpt works in such a thread, at dump and at restore, its filters are
// suspended (PTRACE_O_SUSPEND_SECCOMP), so that the calls ckpt makes in it
// are not filtered; they apply again as soon as ckpt lets it go.

import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { readStatus } from '../kernel/proc.js';
import { seccompGetFilter, seccompFilterFlags, setOptions } from '../kernel/ptrace.js';
import { SysError } from '../kernel/sys.js';
import { SECCOMP, BPF, PTRACE_O } from '../kernel/consts.js';
import { SOCK_FILTER } from '../kernel/structs.js';
import * as remote from '../kernel/rsys.js';
import { refused, CkptError } from '../errors.js';
import { base64Bytes, int, pid, refine, superRefine } from '../image/schema.js';

const BPF_MAXINSNS = 4096;

export const SeccompFilter = z.object({
  /** The filter below it in the stack (an index into `filters`, always a smaller one), if any. */
  parent: z.optional(int(0, 1 << 20)),
  /** The classic BPF program: struct sock_filter[], 8 bytes each. */
  prog: base64Bytes(8, 8 * BPF_MAXINSNS).check(refine((s) => Buffer.byteLength(s, 'base64') % 8 === 0, 'expected whole BPF instructions (8 bytes each)')),
  /** Installed with SECCOMP_FILTER_FLAG_LOG. */
  log: z.optional(z.boolean()),
});
export const SeccompThread = z.object({
  tid: pid,
  mode: z.union([z.literal('strict'), z.literal('filter')]),
  /** In filter mode: the last filter it installed (an index into `filters`). */
  filter: z.optional(int(0, 1 << 20)),
  /**
   * Its speculation was not force-disabled: its filters were installed with
   * SECCOMP_FILTER_FLAG_SPEC_ALLOW, or the kernel does not mitigate through
   * seccomp (absent: they are installed without it, as by default).
   */
  specAllow: z.optional(z.boolean()),
});
export const SeccompImage = z.object({
  filters: z.array(SeccompFilter),
  threads: z.array(SeccompThread),
}).check(superRefine((s, ctx) => {
  s.filters.forEach((f, i) => {
    if (f.parent !== undefined && f.parent >= i) ctx.addIssue({ code: 'custom', message: 'a filter\'s parent comes before it', path: ['filters', i, 'parent'], input: f.parent });
  });
  s.threads.forEach((t, i) => {
    if (t.mode === 'filter' && (t.filter === undefined || t.filter >= s.filters.length)) ctx.addIssue({ code: 'custom', message: 'a thread in filter mode names one of the filters', path: ['threads', i, 'filter'], input: t.filter });
    if (t.mode === 'strict' && t.filter !== undefined) ctx.addIssue({ code: 'custom', message: 'a thread in strict mode has no filter', path: ['threads', i, 'filter'], input: t.filter });
  });
}));
export type SeccompImage = z.infer<typeof SeccompImage>;

/** The seccomp mode of a task (/proc/TID/status), 0 if it has none. */
export function seccompMode(tid: number): number {
  try { return Number(readStatus(tid).get('Seccomp') ?? '0'); } catch { return 0; }
}

/**
 * Suspend the seccomp filters of a stopped task for as long as ckpt traces
 * it. `options`: the ptrace options it was seized with (SETOPTIONS replaces them all).
 */
export function suspendSeccomp(tid: number, options: number, where: string): void {
  try {
    setOptions(tid, options | PTRACE_O.SUSPEND_SECCOMP);
  } catch (e) {
    if (e instanceof SysError && (e.code === 'EPERM' || e.code === 'EINVAL')) {
      throw refused(`${where}: thread ${tid} is under seccomp, and ckpt cannot suspend its filters for its own calls (PTRACE_O_SUSPEND_SECCOMP: ${e.code}; it needs CAP_SYS_ADMIN, a kernel with CONFIG_CHECKPOINT_RESTORE, and ckpt itself not under seccomp)`);
    }
    throw e;
  }
}

/** A BPF program that can hand a syscall to a user-space supervisor (a return of SECCOMP_RET_USER_NOTIF). */
function notifies(prog: Buffer): boolean {
  for (let at = 0; at < prog.length; at += SOCK_FILTER.size) {
    const i = SOCK_FILTER.decode(prog, at);
    if ((i.code & BPF.CLASS_MASK) === BPF.RET && (i.code & BPF.SRC_MASK) === BPF.K && ((i.k & SECCOMP.RET_ACTION_FULL) >>> 0) === SECCOMP.RET_USER_NOTIF) return true;
  }
  return false;
}

/** The seccomp state of every thread of a stopped process (undefined when none has any). `rts`: their remote-call contexts. */
export function dumpSeccomp(pid: number, rts: RemoteTask[]): SeccompImage | undefined {
  const tids = rts.map((r) => r.pid);
  const modes = tids.map((tid) => ({ tid, mode: seccompMode(tid) }));
  if (modes.every((m) => m.mode === SECCOMP.MODE_DISABLED)) return undefined;
  const img: SeccompImage = { filters: [], threads: [] };
  const index = new Map<string, number>(); // parent index + flags + program -> filter index
  for (const { tid, mode } of modes) {
    if (mode === SECCOMP.MODE_DISABLED) continue;
    if (mode === SECCOMP.MODE_STRICT) { img.threads.push({ tid, mode: 'strict' }); continue; }
    if (mode !== SECCOMP.MODE_FILTER) throw refused(`pid ${pid}: thread ${tid} is in seccomp mode ${mode}, which ckpt does not know`);
    const count = Number(readStatus(tid).get('Seccomp_filters') ?? '0');
    // (index 0 is the first filter the thread got, whatever the man page says: the kernel counts from the oldest)
    const chain: Array<{ prog: Buffer; log: boolean }> = [];
    for (let i = 0; ; i++) {
      let prog: Buffer;
      try {
        prog = seccompGetFilter(tid, i);
      } catch (e) {
        if (e instanceof SysError && e.code === 'ENOENT' && i > 0) break;
        if (e instanceof SysError && (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EIO')) {
          throw refused(`pid ${pid}: thread ${tid} has seccomp filters, and ckpt cannot read them (PTRACE_SECCOMP_GET_FILTER: ${e.code}; it needs CAP_SYS_ADMIN and a kernel with CONFIG_CHECKPOINT_RESTORE)`);
        }
        throw e;
      }
      if (notifies(prog)) throw refused(`pid ${pid}: thread ${tid} has a seccomp filter that hands syscalls to a supervisor (SECCOMP_RET_USER_NOTIF); not supported`);
      chain.push({ prog, log: (seccompFilterFlags(tid, i) & SECCOMP.FILTER_FLAG_LOG) !== 0 });
    }
    if (count && chain.length !== count) throw new CkptError('failed', `pid ${pid}: thread ${tid} has ${count} seccomp filters, but ${chain.length} could be read`);
    let parent: number | undefined;
    for (const f of chain) {
      const key = `${parent ?? '-'}/${f.log ? 'L' : ''}/${f.prog.toString('base64')}`;
      let at = index.get(key);
      if (at === undefined) {
        at = img.filters.length;
        img.filters.push({ ...(parent !== undefined ? { parent } : {}), prog: f.prog.toString('base64'), ...(f.log ? { log: true } : {}) });
        index.set(key, at);
      }
      parent = at;
    }
    const specAllow = !remote.speculationForceDisabled(rts.find((r) => r.pid === tid)!);
    img.threads.push({ tid, mode: 'filter', filter: parent, ...(specAllow ? { specAllow } : {}) });
  }
  return img;
}

/** A thread's filters, first installed first. */
function chainOf(s: SeccompImage, top: number | undefined): number[] {
  const out: number[] = [];
  for (let f = top; f !== undefined; f = s.filters[f].parent) out.unshift(f);
  return out;
}

/**
 * Install every thread's filters (strict mode comes last, restoreStrict).
 * The filters that every thread of the process has are installed once, with
 * SECCOMP_FILTER_FLAG_TSYNC, so that they are shared as the kernel allows;
 * each thread then installs the rest of its own. The threads' filters are
 * suspended first (`options`: the ptrace options they were seized with),
 * so that the calls ckpt still makes in them are not filtered.
 */
export function restoreSeccomp(threads: RemoteTask[], s: SeccompImage | undefined, options: number, where: string): void {
  if (!s?.threads.length) return;
  const byTid = new Map(threads.map((r) => [r.pid, r]));
  for (const t of s.threads) if (!byTid.has(t.tid)) throw new CkptError('failed', `${where}: seccomp names thread ${t.tid}, which it does not have`);
  for (const r of threads) suspendSeccomp(r.pid, options, where);
  const chains = new Map(threads.map((r) => {
    const t = s.threads.find((x) => x.tid === r.pid);
    return [r.pid, t?.mode === 'filter' ? chainOf(s, t.filter) : []] as const;
  }));
  const all = [...chains.values()];
  let shared = 0;
  if (threads.length > 1) while (all.every((c) => c.length > shared && c[shared] === all[0][shared])) shared++;
  // (a filter given to every thread lets speculation be only if no thread had it force-disabled)
  const specAllow = (tids: number[]) => tids.every((tid) => s.threads.find((x) => x.tid === tid)?.specAllow);
  const install = (r: RemoteTask, f: number, tsync: boolean) => {
    const flt = s.filters[f];
    const flags = (flt.log ? SECCOMP.FILTER_FLAG_LOG : 0) | (tsync ? SECCOMP.FILTER_FLAG_TSYNC : 0)
      | (specAllow(tsync ? threads.map((x) => x.pid) : [r.pid]) ? SECCOMP.FILTER_FLAG_SPEC_ALLOW : 0);
    const got = remote.seccompSetFilter(r, flags, Buffer.from(flt.prog, 'base64'), `filter ${f}`);
    if (got !== 0) throw new CkptError('failed', `${where}: seccomp filter ${f} could not be given to every thread: thread ${got} has other filters`);
  };
  const leader = threads[0];
  for (let i = 0; i < shared; i++) install(leader, all[0][i], true);
  for (const r of threads) for (const f of chains.get(r.pid)!.slice(shared)) install(r, f, false);
}

/** Strict mode, for the threads that had it: the very last call ckpt makes in such a thread. */
export function restoreStrict(r: RemoteTask, s: SeccompImage | undefined): void {
  if (s?.threads.some((t) => t.tid === r.pid && t.mode === 'strict')) remote.seccompSetStrict(r);
}

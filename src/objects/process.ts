// Process-wide identity and environment: ids, exe, cwd/root, umask,
// personality, rlimits, mm fields, itimers, prctl attributes. The process
// document (process-PID.json) gathers these with the other kinds' images.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { NR, PR, ARCH, RLIMIT_NAMES, AT_FDCWD, O } from '../kernel/consts.js';
import { readStat, readStatus } from '../kernel/proc.js';
import { getRlimit, setRlimit } from '../kernel/sys.js';
import { refused, conflict } from '../errors.js';
import { hex64, base64Bytes, dec63, int, u32, pid, PID_MAX, regex, refine, superRefine, absPath, commName } from '../image/schema.js';
import { log } from '../log.js';
import { MemoryImage } from './memory/index.js';
import { FdTable } from './files.js';
import { SigAction, Siginfo } from './signals.js';
import { Thread } from './thread.js';
import { Creds } from './creds.js';

export const MmFields = z.object({
  startCode: hex64, endCode: hex64, startData: hex64, endData: hex64,
  startBrk: hex64, brk: hex64, startStack: hex64, argStart: hex64, argEnd: hex64,
  envStart: hex64, envEnd: hex64, auxv: base64Bytes(16, 8192).check(refine((s) => Buffer.byteLength(s, 'base64') % 16 === 0, 'expected whole auxv entries (16 bytes each)')),
});
export type MmFields = z.infer<typeof MmFields>;
const MM_PAIRS = [['startCode', 'endCode'], ['startData', 'endData'], ['startBrk', 'brk'], ['argStart', 'argEnd'], ['envStart', 'envEnd']] as const;
const MmChecked = MmFields.check(superRefine((m, ctx) => {
  for (const [lo, hi] of MM_PAIRS) {
    if (BigInt(m[lo]) > BigInt(m[hi])) ctx.addIssue({ code: 'custom', message: `${lo} is above ${hi}`, path: [hi], input: m[hi] });
  }
}));

const usec = z.string().check(regex(/^(0|[1-9][0-9]{0,5})$/, 'expected microseconds, 0-999999'));
const Timer = z.tuple([dec63, usec, dec63, usec]); // interval sec/usec, value sec/usec
const limitValue = z.string().check(regex(/^(unlimited|0|[1-9][0-9]{0,19})$/, 'expected "unlimited" or a decimal number'),
  refine((s) => s === 'unlimited' || BigInt(s) < 0xffffffffffffffffn, 'too big for a limit'));
const limitBig = (s: string) => (s === 'unlimited' ? 0xffffffffffffffffn : BigInt(s));
const Rlimit = z.tuple([limitValue, limitValue]).check(refine(([soft, hard]) => limitBig(soft) <= limitBig(hard), 'the soft limit is above the hard one'));

export const ProcessImage = z.object({
  pid, ppid: int(0, PID_MAX), pgid: pid, sid: pid,
  /** Its process group was the foreground group of its controlling terminal. */
  foreground: z.optional(z.boolean()),
  /** It was stopped (SIGSTOP, job control). */
  stopped: z.optional(z.boolean()),
  /** The signal that stopped it (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU). */
  stopSignal: z.optional(z.union([z.literal(19), z.literal(20), z.literal(21), z.literal(22)])),
  /** Its parent had already been told of the stop (waitpid WUNTRACED). */
  stopReported: z.optional(z.boolean()),
  comm: commName, exe: absPath, cwd: absPath, root: absPath,
  umask: int(0, 0o777), personality: u32,
  rlimits: z.array(Rlimit).check(z.length(RLIMIT_NAMES.length)),
  creds: Creds,
  misc: z.object({
    dumpable: int(0, 2), pdeathsig: int(0, 64), noNewPrivs: int(0, 1), subreaper: int(0, 1), xcompPerm: hex64,
    oomScoreAdj: z.optional(int(-1000, 1000)),
    exitSignal: z.optional(int(0, 64)), // the signal its parent gets when it ends (usually SIGCHLD)
    thpDisable: z.optional(z.union([z.literal(0), z.literal(1), z.literal(3)])), // PR_GET_THP_DISABLE: 1, with PR_THP_DISABLE_EXCEPT_ADVISED 3
    membarrier: z.optional(int(0, 0x7fffffff)), // MEMBARRIER_CMD_GET_REGISTRATIONS
    loginuid: z.optional(u32),             // /proc/PID/loginuid (4294967295: unset)
  }),
  itimers: z.array(Timer).check(z.length(3)),
  mm: MmChecked,
  memory: MemoryImage,
  fds: FdTable,
  sigactions: z.array(SigAction),
  pendingShared: z.array(Siginfo),
  threads: z.array(Thread).check(z.minLength(1)),
}).check(superRefine((p, ctx) => {
  const tids = new Set<number>();
  p.threads.forEach((t, i) => {
    if (tids.has(t.tid)) ctx.addIssue({ code: 'custom', message: `thread ${t.tid} is listed twice`, path: ['threads', i, 'tid'], input: t.tid });
    tids.add(t.tid);
  });
  if (p.threads[0]?.tid !== p.pid) ctx.addIssue({ code: 'custom', message: `the first thread is not the leader ${p.pid}`, path: ['threads', 0, 'tid'], input: p.threads[0]?.tid });
  const sigs = new Set<number>();
  p.sigactions.forEach((a, i) => {
    if (sigs.has(a.sig) || a.sig === 9 || a.sig === 19) ctx.addIssue({ code: 'custom', message: `signal ${a.sig} cannot have this action listed`, path: ['sigactions', i, 'sig'], input: a.sig });
    sigs.add(a.sig);
  });
}));
export type ProcessImage = z.infer<typeof ProcessImage>;

const MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9;
/** Each registration command, by the bit GET_REGISTRATIONS reports it with (the command's own value). */
const MEMBARRIER_REGISTER_CMDS = [1 << 2 /* GLOBAL_EXPEDITED */, 1 << 4 /* PRIVATE_EXPEDITED */, 1 << 6 /* PRIVATE_EXPEDITED_SYNC_CORE */, 1 << 8 /* PRIVATE_EXPEDITED_RSEQ */];
const NAMESPACES = ['pid', 'pid_for_children', 'mnt', 'net', 'ipc', 'uts', 'user', 'cgroup', 'time', 'time_for_children'];
const hex = (v: bigint | number | string) => '0x' + BigInt(v).toString(16);
const INF = 0xffffffffffffffffn;

export function readRlimits(pid: number): Array<[string, string]> {
  const fmt = (v: bigint) => (v === INF ? 'unlimited' : v.toString());
  return RLIMIT_NAMES.map((name, r) => getRlimit(pid, r, `RLIMIT_${name}`).map(fmt) as [string, string]);
}
const parseLimit = (s: string) => (s === 'unlimited' ? INF : BigInt(s));

/** Identity fields readable from /proc without touching the task. */
export function readIdentity(pid: number) {
  const stat = readStat(pid);
  const where = (what: string) => `pid ${pid}: ${what}`;
  const link = (p: string) => fs.readlinkSync(`/proc/${pid}/${p}`);
  const exe = link('exe');
  if (exe.endsWith(' (deleted)')) throw refused(where(`its executable ${exe} was deleted; not supported yet`));
  const cwd = link('cwd');
  if (cwd.endsWith(' (deleted)')) throw refused(where(`its working directory ${cwd} was deleted`));
  const root = link('root');
  const status = readStatus(pid);
  if (status.get('Seccomp') && status.get('Seccomp') !== '0') throw refused(where('seccomp filters are not supported yet'));
  // Namespaces other than ckpt's would come back as ckpt's: refuse them (containers come later).
  for (const ns of NAMESPACES) {
    let theirs = '';
    try { theirs = fs.readlinkSync(`/proc/${pid}/ns/${ns}`); } catch { continue; }
    if (theirs !== fs.readlinkSync(`/proc/self/ns/${ns}`)) {
      throw refused(where(`it is in another ${ns.replace('_for_children', ' (for its children)')} namespace than ckpt (${theirs}); namespaces are not supported yet`));
    }
  }
  let loginuid: number | undefined;
  try { loginuid = Number(fs.readFileSync(`/proc/${pid}/loginuid`, 'utf8').trim()); } catch { /* no audit support */ }
  const timers = fs.readFileSync(`/proc/${pid}/timers`, 'utf8');
  if (timers.trim()) throw refused(where('POSIX timers (timer_create) are not supported yet'));
  return {
    pid, ppid: Number(stat[4]), pgid: Number(stat[5]), sid: Number(stat[6]), comm: stat[2],
    foreground: Number(stat[7]) !== 0 && Number(stat[8]) === Number(stat[5]),
    exitSignal: Number(stat[38]),
    exe, cwd, root, umask: parseInt(status.get('Umask') ?? '22', 8),
    personality: parseInt(fs.readFileSync(`/proc/${pid}/personality`, 'utf8').trim(), 16),
    rlimits: readRlimits(pid),
    loginuid,
    noNewPrivs: Number(status.get('NoNewPrivs') ?? '0'),
    mmStat: {
      startCode: hex(stat[26]), endCode: hex(stat[27]), startStack: hex(stat[28]),
      startData: hex(stat[45]), endData: hex(stat[46]), startBrk: hex(stat[47]),
      argStart: hex(stat[48]), argEnd: hex(stat[49]), envStart: hex(stat[50]), envEnd: hex(stat[51]),
    },
    auxv: fs.readFileSync(`/proc/${pid}/auxv`).toString('base64'),
  };
}

/** Values only the task itself can report (remote syscalls). */
export function readTaskValues(rt: RemoteTask, scratchOff: number) {
  const a = rt.scratch + BigInt(scratchOff);
  const brk = rt.call('brk(0)', NR.brk, 0);
  rt.call('prctl(PR_GET_PDEATHSIG)', NR.prctl, PR.GET_PDEATHSIG, a);
  const pdeathsig = rt.read(a, 4).readInt32LE(0);
  const dumpable = rt.callN('prctl(PR_GET_DUMPABLE)', NR.prctl, PR.GET_DUMPABLE);
  rt.call('prctl(PR_GET_CHILD_SUBREAPER)', NR.prctl, PR.GET_CHILD_SUBREAPER, a);
  const subreaper = rt.read(a, 4).readInt32LE(0);
  const securebits = rt.callN('prctl(PR_GET_SECUREBITS)', NR.prctl, PR.GET_SECUREBITS);
  const xr = rt.callRaw(NR.arch_prctl, ARCH.GET_XCOMP_PERM, a);
  const xcompPerm = xr >= 0n ? rt.read(a, 8).readBigUInt64LE(0) : 0n;
  const thp = rt.callN('prctl(PR_GET_THP_DISABLE)', NR.prctl, PR.GET_THP_DISABLE, 0, 0, 0, 0);
  if (thp !== 0 && thp !== 1 && thp !== 3) throw refused(`pid ${rt.pid}: PR_GET_THP_DISABLE says ${thp}, a setting ckpt does not know`);
  const thpDisable = thp as 0 | 1 | 3;
  // Registered membarrier commands (MEMBARRIER_CMD_GET_REGISTRATIONS, Linux 6.3+).
  const mb = rt.callRaw(NR.membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
  const membarrier = mb >= 0n ? Number(mb) : 0;
  const itimers: Array<[string, string, string, string]> = [];
  for (let which = 0; which < 3; which++) {
    rt.call(`getitimer(${which})`, NR.getitimer, which, a);
    const b = rt.read(a, 32);
    itimers.push([0, 8, 16, 24].map((o) => b.readBigInt64LE(o).toString()) as [string, string, string, string]);
  }
  return { brk: hex(brk), pdeathsig, dumpable, subreaper, securebits, xcompPerm: hex(xcompPerm), itimers, thpDisable, membarrier };
}

/** Before any process is created: can this host give the process its limits? */
export function checkRlimits(p: ProcessImage): void {
  const mine = readRlimits(process.pid);
  const capEff = BigInt('0x' + (readStatus(process.pid).get('CapEff') ?? '0'));
  const hasSysResource = ((capEff >> 24n) & 1n) === 1n;
  if (hasSysResource) return;
  p.rlimits.forEach(([, max], r) => {
    if (parseLimit(max) > parseLimit(mine[r][1])) {
      throw conflict(`pid ${p.pid}: its hard limit RLIMIT_${RLIMIT_NAMES[r]} is ${max}, above this host's ${mine[r][1]}, and ckpt lacks CAP_SYS_RESOURCE to raise it`);
    }
  });
}

export function restoreRlimits(pid: number, limits: Array<[string, string]>): void {
  const cur = readRlimits(pid);
  limits.forEach(([soft, hard], r) => {
    if (cur[r][0] === soft && cur[r][1] === hard) return;
    setRlimit(pid, r, parseLimit(soft), parseLimit(hard), `RLIMIT_${RLIMIT_NAMES[r]}`);
  });
}

/** PR_SET_MM_MAP: code/data/brk/stack/args/env bounds, auxv and /proc/PID/exe in one call. */
export function restoreMm(rt: RemoteTask, p: ProcessImage, scratchOff: number): void {
  const auxv = Buffer.from(p.mm.auxv, 'base64');
  const auxvAddr = rt.put(auxv, scratchOff + 256);
  // /proc/PID/exe is changed only when it differs (a forked child already has
  // its parent's, and the kernel refuses to change it while the file is mapped).
  let same = false;
  try { same = fs.readlinkSync(`/proc/${rt.pid}/exe`) === p.exe; } catch { /* no exe yet */ }
  const exePath = rt.putString(p.exe, scratchOff + 256 + auxv.length + 16);
  const exeFd = same ? -1 : Number(rt.call(`open(${p.exe})`, NR.openat, AT_FDCWD, exePath, O.RDONLY | O.CLOEXEC, 0));
  const m = p.mm;
  const b = Buffer.alloc(104);
  const vals = [m.startCode, m.endCode, m.startData, m.endData, m.startBrk, m.brk, m.startStack, m.argStart, m.argEnd, m.envStart, m.envEnd];
  vals.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
  b.writeBigUInt64LE(auxvAddr, 88);
  b.writeUInt32LE(auxv.length, 96);
  b.writeUInt32LE(exeFd >>> 0, 100);
  try {
    rt.call('prctl(PR_SET_MM, PR_SET_MM_MAP)', NR.prctl, PR.SET_MM, PR.SET_MM_MAP, rt.put(b, scratchOff), 104, 0);
  } finally {
    if (exeFd >= 0) rt.callRaw(NR.close, exeFd);
  }
}

export function restoreIdentityCalls(rt: RemoteTask, p: ProcessImage, scratchOff: number): void {
  rt.call('umask', NR.umask, p.umask);
  rt.call('personality', NR.personality, p.personality);
  rt.call('prctl(PR_SET_NAME)', NR.prctl, PR.SET_NAME, rt.putString(p.comm.slice(0, 15), scratchOff));
  const perm = BigInt(p.misc.xcompPerm);
  // Ask for every dynamically enabled XSAVE feature the process had (AMX tile data is bit 18).
  for (let bit = 17; bit < 64; bit++) {
    if ((perm >> BigInt(bit)) & 1n) {
      const r = rt.callRaw(NR.arch_prctl, ARCH.REQ_XCOMP_PERM, bit);
      if (r < 0n && bit === 18) throw conflict(`pid ${p.pid} uses AMX (XTILEDATA) but this host refuses it`);
    }
  }
  p.itimers.forEach((t, which) => {
    if (t.every((v) => v === '0')) return;
    const b = Buffer.alloc(32);
    t.forEach((v, i) => b.writeBigInt64LE(BigInt(v), i * 8));
    rt.call(`setitimer(${which})`, NR.setitimer, which, rt.put(b, scratchOff), 0);
  });
}

/**
 * The working directory and root, after everything else that opens a path
 * (files, mapped files, the page files: all resolved from ckpt's root) and
 * after the children were forked: chdir to the cwd as ckpt sees it, then
 * chroot, which leaves the cwd where it is (also outside the new root, as
 * a process can have it).
 */
export function restoreRootAndCwd(rt: RemoteTask, p: ProcessImage, scratchOff: number): void {
  rt.call(`chdir(${p.cwd})`, NR.chdir, rt.putString(p.cwd, scratchOff));
  if (p.root !== '/') rt.call(`chroot(${p.root})`, NR.chroot, rt.putString(p.root, scratchOff));
}

/** Per-process kernel settings: transparent huge pages, membarrier registrations, the audit login uid. */
export function restoreMmSettings(rt: RemoteTask, p: ProcessImage, scratchOff: number): void {
  // (a child forked from a restored parent has the parent's setting until set here)
  const thp = p.misc.thpDisable ?? 0;
  if (rt.callN('prctl(PR_GET_THP_DISABLE)', NR.prctl, PR.GET_THP_DISABLE, 0, 0, 0, 0) !== thp) {
    rt.call(`prctl(PR_SET_THP_DISABLE, ${thp})`, NR.prctl, PR.SET_THP_DISABLE, thp & 1, thp & ~1, 0, 0);
  }
  for (const cmd of MEMBARRIER_REGISTER_CMDS) {
    if ((p.misc.membarrier ?? 0) & cmd) rt.call(`membarrier(register ${cmd})`, NR.membarrier, cmd, 0, 0);
  }
  if (p.misc.loginuid !== undefined) {
    let cur = -1;
    try { cur = Number(fs.readFileSync(`/proc/${rt.pid}/loginuid`, 'utf8').trim()); } catch { /* no audit support here */ }
    if (cur !== p.misc.loginuid) {
      // Only the task itself may write its loginuid.
      const path = rt.putString('/proc/self/loginuid', scratchOff);
      const fd = rt.callN('open(/proc/self/loginuid)', NR.openat, AT_FDCWD, path, O.WRONLY | O.CLOEXEC, 0);
      try {
        const v = Buffer.from(String(p.misc.loginuid));
        rt.call(`write(loginuid ${p.misc.loginuid})`, NR.write, fd, rt.put(v, scratchOff + 64), v.length);
      } finally { rt.callRaw(NR.close, fd); }
    }
  }
}

export function restoreMiscLast(rt: RemoteTask, p: ProcessImage, parentStays: boolean): void {
  // The parent-death signal fires when the parent goes. A process whose
  // parent is ckpt restore -d, which ends right away, would get it at once.
  if (p.misc.pdeathsig && parentStays) rt.call('prctl(PR_SET_PDEATHSIG)', NR.prctl, PR.SET_PDEATHSIG, p.misc.pdeathsig);
  else if (p.misc.pdeathsig) log.warn(`pid ${p.pid}: its parent-death signal (${p.misc.pdeathsig}) is not set again: its parent now is ckpt restore -d, which ends at once`);
  if (p.misc.subreaper) rt.call('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);
  if (p.misc.dumpable === 0 || p.misc.dumpable === 1) rt.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, p.misc.dumpable);
  if (p.misc.noNewPrivs) rt.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

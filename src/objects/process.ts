// Process-wide identity and environment: ids, exe, cwd/root, umask,
// personality, rlimits, mm fields, itimers, prctl attributes. The process
// document (process-PID.json) gathers these with the other kinds' images.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { RemoteTask } from '../kernel/remote.js';
import { RLIMIT_NAMES, O, MEMBARRIER_CMD } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { readStat, readStatus, readLimits } from '../kernel/proc.js';
import { setRlimit } from '../kernel/sys.js';
import { refused, conflict } from '../errors.js';
import { hex64, base64Bytes, dec63, int, u32, pid, PID_MAX, regex, refine, superRefine, absPath, commName, fileId } from '../image/schema.js';
import { log } from '../log.js';
import { MemoryImage } from './memory/index.js';
import { FdTable } from './files.js';
import { SigAction, Siginfo } from './signals.js';
import { Thread } from './thread.js';
import { Creds } from './creds.js';
import { PosixTimers } from './timers.js';
import { SeccompImage } from './seccomp.js';

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

/** cwd, root and umask (a thread that has them of its own: unshare(CLONE_FS)). */
export const FsState = z.object({ cwd: absPath, root: absPath, umask: int(0, 0o777) });
export type FsState = z.infer<typeof FsState>;

/**
 * A thread, with how it holds an fd table and cwd, root and umask: its
 * process's (no field), its own (`fds`, `fs`: it unshared them), or those of
 * an earlier thread of the process that has them of its own (`filesOf`, `fsOf`: a TID).
 */
export const ThreadDoc = z.extend(Thread, {
  fds: z.optional(FdTable),
  filesOf: z.optional(pid),
  fs: z.optional(FsState),
  fsOf: z.optional(pid),
});
export type ThreadDoc = z.infer<typeof ThreadDoc>;

/** A thread's own cwd, root and umask (from /proc/PID/task/TID). */
export function readFsState(pid: number, tid: number): FsState {
  const dir = `/proc/${pid}/task/${tid}`;
  const where = `pid ${pid}: thread ${tid}`;
  const cwd = fs.readlinkSync(`${dir}/cwd`);
  if (cwd.endsWith(' (deleted)')) throw refused(`${where}: its working directory ${cwd} was deleted`);
  const root = fs.readlinkSync(`${dir}/root`);
  if (root.endsWith(' (deleted)')) throw refused(`${where}: its root ${root} was deleted`);
  return { cwd, root, umask: parseInt(readStatus(tid).get('Umask') ?? '22', 8) };
}

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
  /** Its working directory was deleted: the stored inode (files.json `inodes`) it is (`cwd` is what the kernel showed). */
  cwdInode: z.optional(fileId),
  /** Its executable was deleted (or replaced): the stored inode it is (`exe` is what the kernel showed). */
  exeInode: z.optional(fileId),
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
  /** POSIX timers (timer_create), by id. */
  timers: z.optional(PosixTimers),
  /** The seccomp mode and filters of its threads (absent: none has any). */
  seccomp: z.optional(SeccompImage),
  mm: MmChecked,
  memory: MemoryImage,
  fds: FdTable,
  /** It shares the fd table of this process (its parent, or the one its parent shares: clone with CLONE_FILES); its own `fds` is then empty. */
  filesOf: z.optional(pid),
  /** It shares cwd, root and umask with this process (CLONE_FS), as filesOf. */
  fsOf: z.optional(pid),
  sigactions: z.array(SigAction),
  pendingShared: z.array(Siginfo),
  threads: z.array(ThreadDoc).check(z.minLength(1)),
}).check(superRefine((p, ctx) => {
  const tids = new Set<number>();
  p.threads.forEach((t, i) => {
    if (tids.has(t.tid)) ctx.addIssue({ code: 'custom', message: `thread ${t.tid} is listed twice`, path: ['threads', i, 'tid'], input: t.tid });
    tids.add(t.tid);
  });
  if (p.threads[0]?.tid !== p.pid) ctx.addIssue({ code: 'custom', message: `the first thread is not the leader ${p.pid}`, path: ['threads', 0, 'tid'], input: p.threads[0]?.tid });
  if (p.filesOf !== undefined && p.fds.length) ctx.addIssue({ code: 'custom', message: 'a process sharing another\'s fd table lists no fds of its own', path: ['fds'], input: p.fds });
  if (p.filesOf === p.pid || p.fsOf === p.pid) ctx.addIssue({ code: 'custom', message: 'a process shares nothing with itself', path: ['filesOf'], input: p.pid });
  // A thread holds its table (and fs) as its process's, its own, or an earlier thread's that has its own.
  p.threads.forEach((t, i) => {
    for (const [own, of, name] of [[t.fds, t.filesOf, 'filesOf'], [t.fs, t.fsOf, 'fsOf']] as const) {
      if (own !== undefined && of !== undefined) ctx.addIssue({ code: 'custom', message: `thread ${t.tid} has its own and another's`, path: ['threads', i, name], input: of });
      if (i === 0 && (own !== undefined || of !== undefined)) ctx.addIssue({ code: 'custom', message: 'the leader holds the process\'s', path: ['threads', 0, name], input: of });
      if (of !== undefined) {
        const j = p.threads.findIndex((x) => x.tid === of);
        const ok = j > 0 && j < i && (name === 'filesOf' ? p.threads[j].fds : p.threads[j].fs) !== undefined;
        if (!ok) ctx.addIssue({ code: 'custom', message: `thread ${of} is no earlier thread of the process with one of its own`, path: ['threads', i, name], input: of });
      }
    }
  });
  const sigs = new Set<number>();
  p.sigactions.forEach((a, i) => {
    if (sigs.has(a.sig) || a.sig === 9 || a.sig === 19) ctx.addIssue({ code: 'custom', message: `signal ${a.sig} cannot have this action listed`, path: ['sigactions', i, 'sig'], input: a.sig });
    sigs.add(a.sig);
  });
}));
export type ProcessImage = z.infer<typeof ProcessImage>;

/** Each registration command, by the bit GET_REGISTRATIONS reports it with (the command's own value). */
const MEMBARRIER_REGISTER_CMDS = [
  MEMBARRIER_CMD.REGISTER_GLOBAL_EXPEDITED, MEMBARRIER_CMD.REGISTER_PRIVATE_EXPEDITED,
  MEMBARRIER_CMD.REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD.REGISTER_PRIVATE_EXPEDITED_RSEQ,
];
const NAMESPACES = ['pid', 'pid_for_children', 'mnt', 'net', 'ipc', 'uts', 'user', 'cgroup', 'time', 'time_for_children'];
const hex = (v: bigint | number | string) => '0x' + BigInt(v).toString(16);
const INF = 0xffffffffffffffffn;

export function readRlimits(pid: number): Array<[string, string]> {
  const fmt = (v: bigint) => (v === INF ? 'unlimited' : v.toString());
  const limits = readLimits(pid);
  if (limits.length !== RLIMIT_NAMES.length) throw new Error(`pid ${pid}: /proc/${pid}/limits has ${limits.length} limits, not ${RLIMIT_NAMES.length}`);
  return limits.map((l) => l.map(fmt) as [string, string]);
}
const parseLimit = (s: string) => (s === 'unlimited' ? INF : BigInt(s));

/**
 * Identity fields readable from /proc without touching the task. A deleted
 * working directory is stored in `inodes` (and refused without).
 */
export function readIdentity(pid: number, inodes?: { add(open: string, shown: string, what: string, privateMapping?: boolean): number }) {
  const stat = readStat(pid);
  const where = (what: string) => `pid ${pid}: ${what}`;
  const link = (p: string) => fs.readlinkSync(`/proc/${pid}/${p}`);
  const exe = link('exe');
  let exeInode: number | undefined;
  if (exe.endsWith(' (deleted)')) {
    if (!inodes) throw refused(where(`its executable ${exe} was deleted; not supported here`));
    exeInode = inodes.add(`/proc/${pid}/exe`, exe, where('its executable'), true);
  }
  const cwd = link('cwd');
  let cwdInode: number | undefined;
  if (cwd.endsWith(' (deleted)')) {
    if (!inodes) throw refused(where(`its working directory ${cwd} was deleted`));
    cwdInode = inodes.add(`/proc/${pid}/cwd`, cwd, where('its working directory'));
  }
  const root = link('root');
  if (root.endsWith(' (deleted)')) throw refused(where(`its root directory ${root} was deleted; not supported yet`));
  const status = readStatus(pid);
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
  return {
    pid, ppid: Number(stat[4]), pgid: Number(stat[5]), sid: Number(stat[6]), comm: stat[2],
    foreground: Number(stat[7]) !== 0 && Number(stat[8]) === Number(stat[5]),
    exitSignal: Number(stat[38]),
    exe, exeInode, cwd, cwdInode, root, umask: parseInt(status.get('Umask') ?? '22', 8),
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
export function readTaskValues(rt: RemoteTask) {
  const brk = remote.brk(rt, 0);
  const pdeathsig = remote.prctlGetPdeathsig(rt);
  const dumpable = remote.prctlGetDumpable(rt);
  const subreaper = remote.prctlGetChildSubreaper(rt);
  const securebits = remote.prctlGetSecurebits(rt);
  const xcompPerm = remote.archGetXcompPerm(rt) ?? 0n;
  const thp = remote.prctlGetThpDisable(rt);
  if (thp !== 0 && thp !== 1 && thp !== 3) throw refused(`pid ${rt.pid}: PR_GET_THP_DISABLE says ${thp}, a setting ckpt does not know`);
  const thpDisable = thp as 0 | 1 | 3;
  // Registered membarrier commands (MEMBARRIER_CMD_GET_REGISTRATIONS, Linux 6.3+).
  const membarrier = remote.membarrierRegistrations(rt);
  const itimers: Array<[string, string, string, string]> = [];
  for (let which = 0; which < 3; which++) {
    itimers.push(remote.getitimer(rt, which).map((v) => v.toString()) as [string, string, string, string]);
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
export function restoreMm(rt: RemoteTask, p: ProcessImage, inodes?: { procPath(id: number): string }): void {
  // /proc/PID/exe is changed only when it differs (a forked child already has
  // its parent's, and the kernel refuses to change it while the file is mapped).
  // A deleted executable is the inode ckpt made again (and holds).
  const exePath = p.exeInode !== undefined && inodes ? inodes.procPath(p.exeInode) : p.exe;
  let same = false;
  try {
    const cur = fs.statSync(`/proc/${rt.pid}/exe`);
    const want = fs.statSync(exePath);
    same = cur.dev === want.dev && cur.ino === want.ino;
  } catch { /* no exe yet */ }
  const exeFd = same ? -1 : remote.openat(rt, exePath, O.RDONLY | O.CLOEXEC, 0, p.exe);
  const m = p.mm;
  try {
    remote.prctlSetMmMap(rt, {
      startCode: BigInt(m.startCode), endCode: BigInt(m.endCode), startData: BigInt(m.startData), endData: BigInt(m.endData),
      startBrk: BigInt(m.startBrk), brk: BigInt(m.brk), startStack: BigInt(m.startStack), argStart: BigInt(m.argStart),
      argEnd: BigInt(m.argEnd), envStart: BigInt(m.envStart), envEnd: BigInt(m.envEnd),
      auxv: Buffer.from(m.auxv, 'base64'), exeFd,
    });
  } finally {
    if (exeFd >= 0) remote.closeQuietly(rt, exeFd);
  }
}

export function restoreIdentityCalls(rt: RemoteTask, p: ProcessImage): void {
  remote.umask(rt, p.umask);
  remote.personality(rt, p.personality);
  remote.prctlSetName(rt, p.comm);
  const perm = BigInt(p.misc.xcompPerm);
  // Ask for every dynamically enabled XSAVE feature the process had (AMX tile data is bit 18).
  for (let bit = 17; bit < 64; bit++) {
    if ((perm >> BigInt(bit)) & 1n) {
      const r = remote.tryArchReqXcompPerm(rt, bit);
      if (r < 0 && bit === 18) throw conflict(`pid ${p.pid} uses AMX (XTILEDATA) but this host refuses it`);
    }
  }
  p.itimers.forEach((t, which) => {
    if (t.every((v) => v === '0')) return;
    remote.setitimer(rt, which, t.map((v) => BigInt(v)) as [bigint, bigint, bigint, bigint]);
  });
}

/**
 * The working directory and root, after everything else that opens a path
 * (files, mapped files, the page files: all resolved from ckpt's root) and
 * after the children were forked: chdir to the cwd as ckpt sees it, then
 * chroot, which leaves the cwd where it is (also outside the new root, as
 * a process can have it).
 */
export function restoreRootAndCwd(rt: RemoteTask, p: { cwd: string; root: string; cwdInode?: number }, inodes?: { procPath(id: number): string }): void {
  if (p.cwdInode !== undefined && inodes) {
    // A deleted working directory: the one ckpt made again (and holds), through /proc.
    const fd = remote.openat(rt, inodes.procPath(p.cwdInode), O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0, `deleted working directory ${p.cwd}`);
    try { remote.fchdir(rt, fd, p.cwd); } finally { remote.closeQuietly(rt, fd); }
  } else remote.chdir(rt, p.cwd);
  if (p.root !== '/') remote.chroot(rt, p.root);
}

/** Per-process kernel settings: transparent huge pages, membarrier registrations, the audit login uid. */
export function restoreMmSettings(rt: RemoteTask, p: ProcessImage): void {
  // (a child forked from a restored parent has the parent's setting until set here)
  const thp = p.misc.thpDisable ?? 0;
  if (remote.prctlGetThpDisable(rt) !== thp) remote.prctlSetThpDisable(rt, thp);
  for (const cmd of MEMBARRIER_REGISTER_CMDS) {
    if ((p.misc.membarrier ?? 0) & cmd) remote.membarrierRegister(rt, cmd);
  }
  if (p.misc.loginuid !== undefined) {
    let cur = -1;
    try { cur = Number(fs.readFileSync(`/proc/${rt.pid}/loginuid`, 'utf8').trim()); } catch { /* no audit support here */ }
    if (cur !== p.misc.loginuid) {
      // Only the task itself may write its loginuid.
      const fd = remote.openat(rt, '/proc/self/loginuid', O.WRONLY | O.CLOEXEC);
      try {
        remote.write(rt, fd, Buffer.from(String(p.misc.loginuid)), `loginuid ${p.misc.loginuid}`);
      } finally { remote.closeQuietly(rt, fd); }
    }
  }
}

export function restoreMiscLast(rt: RemoteTask, p: ProcessImage, parentStays: boolean): void {
  // The parent-death signal fires when the parent goes. A process whose
  // parent is ckpt restore -d, which ends right away, would get it at once.
  if (p.misc.pdeathsig && parentStays) remote.prctlSetPdeathsig(rt, p.misc.pdeathsig);
  else if (p.misc.pdeathsig) log.warn(`pid ${p.pid}: its parent-death signal (${p.misc.pdeathsig}) is not set again: its parent now is ckpt restore -d, which ends at once`);
  if (p.misc.subreaper) remote.prctlSetChildSubreaper(rt, true);
  if (p.misc.dumpable === 0 || p.misc.dumpable === 1) remote.prctlSetDumpable(rt, p.misc.dumpable);
  if (p.misc.noNewPrivs) remote.prctlSetNoNewPrivs(rt);
}

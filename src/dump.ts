// dump: freeze a process and its descendants, write everything they are into
// an image, then end them (or let them go on with --leave-running). Any
// failure leaves them as they were.

import fs from 'node:fs';
import path from 'node:path';
import { checkTraceable, SEIZED_OPTIONS, tableSharing, Sharing } from './freeze.js';
import { freezeTree, releaseTree, TreeProc } from './tree.js';
import { getSigmask, setSigmask, peekSiginfo, detach, xstateFeatures } from './kernel/ptrace.js';
import { findSyscallGadget, RemoteTask } from './kernel/remote.js';
import { kernelRelease, readStatus, readStat, pidExists, MapEntry } from './kernel/proc.js';
import { Pool } from './bulk/pool.js';
import { kill } from './kernel/sys.js';
import { SIG, CALL_SIGMASK, BLOCKABLE_SIGNALS, WAIT, RLIMIT } from './kernel/consts.js';
import * as remote from './kernel/rsys.js';
import { planMemory, writePages, findHole, dumpShmem, ShmemObject, SysvShmDump } from './objects/memory/index.js';
import { ImageDirSink } from './image/pages.js';
import { FileTableBuilder } from './objects/files.js';
import { InodeTable } from './objects/inodes.js';
import { LockCollector } from './objects/locks.js';
import { dumpActions } from './objects/signals.js';
import { dumpThread } from './objects/thread.js';
import { readCreds } from './objects/creds.js';
import { readOomScoreAdj } from './objects/sched.js';
import { readIdentity, readTaskValues, readFsState, ProcessImage, FsState } from './objects/process.js';
import type { FdRef } from './objects/files.js';
import { dumpTimers } from './objects/timers.js';
import { dumpSeccomp, seccompMode, suspendSeccomp } from './objects/seccomp.js';
import { ImageWriter, Manifest } from './image/store.js';
import { CkptError, refused, inStep } from './errors.js';
import { checkpointYield, debugFail, debugOn } from './cancel.js';
import { log } from './log.js';
import { faultPoint } from './kernel/faults.js';
import { pagemapScanWorks } from './kernel/mm.js';
import { VERSION } from './version.js';
import { ProgressFn } from './progress.js';
import type { NetworkLockMode } from './api.js';
import { DumpLock } from './net/treelock.js';

export interface DumpOptions {
  pid: number;
  dir: string;
  leaveRunning?: boolean;
  shellJob?: boolean;
  /** --ext-unix-sk: unix sockets connected to sockets outside the tree may be dumped (see objects/unix.ts). */
  extUnixSk?: boolean;
  fileLocks?: boolean;
  /** --tcp-established: established TCP connections are dumped (objects/tcp.ts). */
  tcpEstablished?: boolean;
  /** --skip-in-flight: connections not yet accepted from a listener's queue are left out. */
  skipInFlight?: boolean;
  networkLock?: NetworkLockMode;
  onProgress?: ProgressFn;
}

export interface DumpResult {
  manifest: Manifest;
  pageBytes: number;
  timings: Record<string, number>;
}

const SCRATCH_SIZE = 64 * 1024;
const POOL_THRESHOLD = 128 << 20;

function residentBytes(pid: number): number {
  const kb = Number((readStatus(pid).get('VmRSS') ?? '0').replace(/\D/g, ''));
  return kb * 1024;
}

export async function dump(opts: DumpOptions): Promise<DumpResult> {
  checkTraceable(opts.pid);
  // A worker checksums the pages of big processes while they are written; it
  // starts now, while the processes are being frozen and inspected.
  const pool = residentBytes(opts.pid) >= POOL_THRESHOLD ? new Pool(1) : null;
  try {
    return await dumpTree(opts, pool);
  } finally {
    await pool?.close();
  }
}

interface Captured {
  doc: ProcessImage;
  pagesName: string;
  sums: string[];
  pageBytes: number;
  leader: RemoteTask;
  rts: RemoteTask[];
  origMasks: Map<number, bigint>;
  /** Its fd numbers when ckpt took it: any other fd open at release is ckpt's, and closed. */
  origFds?: Set<number>;
  /** Its areas, as read for the memory plan (its children's plans compare with them). */
  maps: MapEntry[];
}

/** Shared memory objects of the dump: each stored once, by the first process met that maps it. */
interface ShmemCtxDump { seen: Set<string>; objects: Array<{ obj: ShmemObject; sums: string[] }>; sysv: SysvShmDump }

async function dumpTree(opts: DumpOptions, pool: Pool | null): Promise<DumpResult> {
  const root = opts.pid;
  const t: Record<string, number> = {};
  let mark = performance.now();
  const lap = (name: string) => { const n = performance.now(); t[name] = n - mark; mark = n; };
  const dir = path.resolve(opts.dir);

  log.info(`freezing pid ${root} and its descendants`);
  const tree = freezeTree(root);
  const live = tree.filter((p) => !p.zombie);
  const n = (k: number, w: string) => `${k} ${w}${k === 1 ? '' : w.endsWith('s') ? 'es' : 's'}`;
  log.info(`frozen: ${n(live.length, 'process')}, ${n(live.reduce((s, p) => s + p.tids.length, 0), 'thread')}, ${n(tree.length - live.length, 'zombie')}`);
  lap('freeze');
  const progress = (phase: 'freeze' | 'inspect' | 'write' | 'release', done: number, total: number) =>
    opts.onProgress?.({ op: 'dump', phase, done, total, unit: 'processes' });
  progress('freeze', live.length, live.length);

  const captured: Captured[] = [];
  let current: Partial<Captured> | null = null;
  let image: ImageWriter | null = null;
  let step = 'inspect';
  /** Every named step is a fault point for the failure tests (kernel/faults.ts). */
  const enter = (s: string) => { step = s; faultPoint(`dump step ${s}`); };
  let pageBytes = 0;
  /** Every thread's remote-call context, to hand back the signals they caught. */
  const caught = new Map<number, RemoteTask>();
  let fileTable: FileTableBuilder | null = null;
  let netLock: DumpLock | null = null;
  try {
    enter('network lock');
    netLock = DumpLock.take(live.map((p) => p.pid), opts.networkLock, !!opts.tcpEstablished);
    const pids = new Set(tree.map((p) => p.pid));
    // A zombie is remade by its parent (or a helper for a session or group
    // whose leader is gone): the same rules hold as for live processes.
    for (const z of tree.filter((p) => p.zombie)) {
      if (z.zombie!.status & 0x80) {
        throw refused(`zombie ${z.pid}: it was killed by signal ${z.zombie!.status & 0x7f} and dumped core; that status cannot be recreated without writing a core file`);
      }
      checkGroupAndSession(z.pid, z.zombie!, readStat(z.ppid), pids);
    }
    // Who shares an fd table or cwd and root with whom (all are frozen: it cannot change now).
    const sharing = tableSharing(live, root);
    image = new ImageWriter(dir);
    const shmem: ShmemCtxDump = { seen: new Set(), objects: [], sysv: new SysvShmDump() };
    const img = image;
    const treeIds = new Set([...pids, ...tree.flatMap((p) => p.tids)]);
    const inodes = new InodeTable(img);
    const locks = new LockCollector(!!opts.fileLocks, treeIds);
    const files = fileTable = new FileTableBuilder({
      shellJob: !!opts.shellJob, extUnixSk: !!opts.extUnixSk, leaveRunning: !!opts.leaveRunning, treeIds, state: new Map(), inodes,
      tcpEstablished: !!opts.tcpEstablished, skipInFlight: !!opts.skipInFlight,
      writeData: (name, data) => { const f = `file-${name}.img`; img.writeRaw(f, data); return f; },
    });
    for (const proc of live) {
      current = { rts: [], origMasks: new Map() };
      const parentCap = captured.find((x) => x.doc.pid === proc.ppid);
      const c = await captureProcess(proc, opts, image, pool, pids, current, enter, shmem, files, parentCap, inodes, locks, sharing);
      captured.push(c);
      progress('inspect', captured.length, live.length);
      pageBytes += c.pageBytes;
      current = null;
    }
    inodes.checkOutside(treeIds);
    // System V segments the tree has attached: stored once each, while the tree is still frozen.
    let sysvSegs: Awaited<ReturnType<SysvShmDump['write']>> = [];
    if (!shmem.sysv.empty) {
      enter('System V shared memory');
      sysvSegs = await shmem.sysv.write(new ImageDirSink(image, pool, POOL_THRESHOLD));
    }
    enter('file locks');
    const lockList = locks.finish(); // (while the tree is still frozen)
    lap('capture');
    if (pagemapScanWorks() === false) log.info('page maps were read without PAGEMAP_SCAN, in bounded chunks');
    await checkpointYield('dump:pages');

    enter('release');
    for (const r of captured.flatMap((c) => c.rts)) caught.set(r.pid, r);
    releaseProcesses(captured);
    progress('release', captured.length, live.length);

    enter('write image');
    image.writeJson('files.json', { files: files.finish(), ...(inodes.inodes.length ? { inodes: inodes.inodes } : {}) });
    if (lockList.length) image.writeJson('locks.json', { locks: lockList });
    if (shmem.objects.length) image.writeJson('shmem.json', { objects: shmem.objects.map((o) => o.obj) });
    // The lock stays while the tree is gone if connections were kept: restore releases it (network.json).
    const keepLock = !opts.leaveRunning && netLock !== null && netLock.connections > 0;
    if (keepLock) image.writeJson('network.json', { lock: netLock!.rec });
    for (const o of shmem.objects) image.addRaw(o.obj.pagesFile, o.sums);
    if (sysvSegs.length) image.writeJson('sysvshm.json', { segments: sysvSegs.map((o) => o.seg) });
    for (const o of sysvSegs) if (o.seg.pagesFile) image.addRaw(o.seg.pagesFile, o.sums);
    for (const c of captured) {
      image.writeJson(`process-${c.doc.pid}.json`, c.doc);
      image.addRaw(c.pagesName, c.sums);
    }
    let xs = Buffer.alloc(0);
    let xcr0 = 0n;
    let used = 0n;
    for (const c of captured) {
      for (const th of c.doc.threads) {
        const b = Buffer.from(th.xstate, 'base64');
        const f = xstateFeatures(b);
        xs = b; xcr0 = f.xcr0; used |= f.xstateBv;
      }
    }
    const manifest = image.commit({
      ckptVersion: VERSION, created: new Date().toISOString(), kernel: kernelRelease(), arch: process.arch === 'x64' ? 'x86_64' : process.arch,
      cpu: { xcr0: '0x' + xcr0.toString(16), xsaveSize: xs.length, used: '0x' + used.toString(16) },
      root,
      processes: tree.map((p) => {
        const c = captured.find((x) => x.doc.pid === p.pid);
        return p.zombie
          ? { pid: p.pid, ppid: p.ppid, comm: '', threads: 0, zombie: p.zombie }
          : { pid: p.pid, ppid: p.ppid, comm: c!.doc.comm, threads: c!.doc.threads.length };
      }),
      options: { shellJob: !!opts.shellJob, leaveRunning: !!opts.leaveRunning, ...(opts.fileLocks ? { fileLocks: true } : {}), ...(opts.tcpEstablished ? { tcpEstablished: true } : {}) },
    });
    lap('write');
    progress('write', captured.length, live.length);

    if (opts.leaveRunning) {
      // A process that was stopped (job control) stops again by itself as it
      // is let go: detach reinstates a group stop that is still in effect.
      // (Sending its stop signal again would leave one queued, to stop it
      // in the middle of the next dump.)
      // (a signal that arrived while ckpt worked in a thread is handed back to it)
      files.end(true); // (before the tree runs: sockets out of repair mode)
      for (const p of live) for (const tid of p.tids) detach(tid, caught.get(tid)?.interceptedSignal ?? 0);
      netLock?.release();
      log.info(`pid ${root} left running`);
    } else {
      // SIGKILL ends them; their memory is torn down while ckpt exits (which also ends the tracing).
      for (const p of live) kill(p.pid, SIG.KILL);
      files.end(false);
      if (netLock && !keepLock) netLock.release();
      else if (netLock) log.info(`the network stays locked (${netLock.rec.backend} ${netLock.rec.name}) until the image is restored`);
      log.info(`pid ${root}${live.length > 1 ? ` and ${live.length - 1} descendants` : ''} killed after dump`);
    }
    lap('finish');
    return { manifest, pageBytes, timings: t };
  } catch (e) {
    // (before the tree runs on: sockets out of repair mode, ckpt's copies of files in flight closed)
    try { fileTable?.end(true); } catch (u) { log.error((u as Error).message); }
    const err = inStep(step, e);
    log.error(`dump of pid ${root} failed in step "${step}": ${err.message}`);
    const signals = new Map<number, number>();
    const all = [...captured, ...(current ? [current] : [])];
    for (const r of all.flatMap((c) => c.rts ?? [])) caught.set(r.pid, r);
    try { releaseProcesses(all); } catch (u) { log.error((u as Error).message); }
    for (const r of caught.values()) if (r.interceptedSignal) signals.set(r.pid, r.interceptedSignal);
    releaseTree(tree, signals);
    try { netLock?.release(); } catch (u) { log.error((u as Error).message); }
    image?.discard();
    log.info(`pid ${root} released unchanged`);
    if (!(e instanceof CkptError)) log.debug(String((e as Error).stack));
    throw err;
  }
}

/**
 * Put captured processes back as they were: the scratch areas gone and,
 * whatever fails on the way, every thread's
 * registers and signal mask back (each in its own finally; the threads are
 * resumed under an interrupt all at once, then waited for). Safe to call
 * twice: what is done is not done again. Throws, after all that, if
 * anything could not be put back.
 */
function releaseProcesses(cs: Array<Partial<Pick<Captured, 'leader' | 'rts' | 'origMasks' | 'origFds'>>>): void {
  const problems: string[] = [];
  const problem = (pid: number, what: string, u: unknown) => problems.push(`pid ${pid}: could not ${what}: ${(u as Error).message}`);
  try {
    for (const c of cs) {
      const l = c.leader;
      if (!l?.scratch || !c.rts?.length) continue;
      // An fd ckpt opened in the process and had no chance to close (a failure on the way).
      for (const fd of fs.readdirSync(`/proc/${l.pid}/fd`).map(Number)) {
        if (c.origFds && !c.origFds.has(fd)) { try { remote.close(l, fd, String(fd)); } catch (u) { problem(l.pid, `close fd ${fd}`, u); } }
      }
      // (tried twice: once a call failed, the dump is failing and only the release remains to be done)
      for (let attempt = 0; l.scratch; attempt++) {
        try {
          debugFail('release:unmap');
          l.unmapScratch();
        } catch (u) {
          if (attempt > 0) { problem(l.pid, 'unmap the scratch area', u); break; }
        }
      }
    }
  } finally {
    const rts = cs.flatMap((c) => c.rts ?? []);
    const failed = new Set<RemoteTask>();
    for (const r of rts) { try { r.restoreBegin(); } catch (u) { failed.add(r); problem(r.pid, `put the registers of thread ${r.pid} back`, u); } }
    for (const c of cs) {
      for (const r of c.rts ?? []) {
        try { if (!failed.has(r)) r.restoreEnd(); } catch (u) { problem(r.pid, `stop thread ${r.pid} again`, u); } finally {
          const m = c.origMasks?.get(r.pid);
          try { if (m !== undefined) setSigmask(r.pid, m); } catch (u) { problem(r.pid, `put the signal mask of thread ${r.pid} back`, u); } finally { r.close(); }
        }
      }
      // Threads ckpt had set the mask of but made no remote-call context for yet (a failure on the way there).
      for (const [tid, m] of c.origMasks ?? []) {
        if ((c.rts ?? []).some((r) => r.pid === tid)) continue;
        try { setSigmask(tid, m); } catch (u) { problem(tid, `put the signal mask of thread ${tid} back`, u); }
      }
      c.origMasks?.clear();
      // Once released, a second release (after a later failure) has nothing left to do.
      c.rts = [];
      c.leader?.forgetScratch();
    }
  }
  if (problems.length) throw new CkptError('failed', problems.join('; '));
}

async function captureProcess(proc: TreeProc, opts: DumpOptions, image: ImageWriter, pool: Pool | null, treePids: Set<number>,
  cur: Partial<Captured>, setStep: (s: string) => void, shmem: ShmemCtxDump, files: FileTableBuilder, parentCap: Captured | undefined, inodes: InodeTable, locks: LockCollector, sharing: Sharing): Promise<Captured> {
  const pid = proc.pid;
  const tids = proc.tids;
  const origMasks = cur.origMasks!;
  const rts = cur.rts!;
  setStep('inspect');
  const ident = readIdentity(pid, inodes);
  if (pid !== opts.pid) checkGroupAndSession(pid, ident, readStat(proc.ppid), treePids);
  setStep('files');
  const filesOf = sharing.files.get(pid)!;
  const fsOf = sharing.fs.get(pid)!;
  if ((filesOf.of !== undefined || fsOf.of !== undefined) && ident.sid !== pid && ident.sid !== Number(readStat(proc.ppid)[6])) {
    throw refused(`pid ${pid}: it shares its parent's fd table or cwd and root, and is in session ${ident.sid}, whose leader has exited; not supported`);
  }
  // A process sharing an earlier one's fd table: the table is recorded there, once.
  const fds = filesOf.of !== undefined ? [] : files.dumpProcess(pid);
  if (filesOf.of === undefined) locks.noteTable(pid, pid, fds);
  // Threads with an fd table of their own (unshare(CLONE_FILES)), or cwd and root of their own (unshare(CLONE_FS)).
  const threadFiles = new Map<number, { fds?: FdRef[]; filesOf?: number; fs?: FsState; fsOf?: number }>();
  for (const tid of tids) {
    const f = filesOf.threads.get(tid);
    const s = fsOf.threads.get(tid);
    const t: { fds?: FdRef[]; filesOf?: number; fs?: FsState; fsOf?: number } = {};
    if (f === 'own') { t.fds = files.dumpProcess(tid); locks.noteTable(pid, tid, t.fds); } else if (f !== undefined) t.filesOf = f;
    if (s === 'own') t.fs = readFsState(pid, tid); else if (s !== undefined) t.fsOf = s;
    if (f !== undefined || s !== undefined) threadFiles.set(tid, t);
  }
  // (ckpt opens nothing in the process before this: the fd table is what it had)
  cur.origFds = new Set(filesOf.of !== undefined ? fs.readdirSync(`/proc/${pid}/fd`).map(Number) : fds.map((f) => f.fd));
  setStep('memory map');
  // (the parent's areas as its own capture read them: frozen, they have not changed)
  const plan = planMemory(pid, pid !== opts.pid ? proc.ppid : undefined, shmem.seen, parentCap?.maps, inodes);
  shmem.sysv.note(pid, plan.maps);
  await checkpointYield();

  setStep('signals');
  // A trap forced on a task whose SIGTRAP is ignored resets it to SIG_DFL, and
  // one merges with a SIGTRAP already pending (which would be lost): for such
  // a process every call goes through syscall stops instead (no trap at all),
  // with SIGTRAP blocked like every other signal.
  const st = readStatus(pid);
  const bit = (k: string) => (BigInt('0x' + (st.get(k) ?? '0')) >> BigInt(SIG.TRAP - 1)) & 1n;
  const quiet = bit('SigIgn') === 1n || bit('ShdPnd') === 1n || tids.some((t) => { try { return ((BigInt('0x' + (readStatus(t).get('SigPnd') ?? '0')) >> 4n) & 1n) === 1n; } catch { return false; } });
  for (const tid of tids) {
    origMasks.set(tid, getSigmask(tid));
    setSigmask(tid, quiet ? BLOCKABLE_SIGNALS : CALL_SIGMASK); // nothing may be delivered while we run syscalls in it
  }
  const vdso = plan.areas.find((a) => a.name === '[vdso]');
  if (!vdso) throw refused(`pid ${pid} has no vDSO; ckpt needs one to run syscalls in the process`);
  const gadget = findSyscallGadget(pid, BigInt(vdso.start), BigInt(vdso.end));
  // A thread under seccomp would have ckpt's calls filtered too: its filters are suspended while ckpt holds it.
  for (const tid of tids) if (seccompMode(tid)) suspendSeccomp(tid, SEIZED_OPTIONS, `pid ${pid}`);
  // One remote-syscall context per thread; the leader's maps the scratch area they share.
  const rt = new RemoteTask(pid, gadget);
  rt.quiet = quiet;
  rts.push(rt);
  cur.leader = rt;
  // Away from every area (a free page on each side), so that it cannot merge
  // with one: a child's inherited areas are compared with its parent's while
  // the parent's scratch area is mapped.
  const used = plan.areas.map((a) => ({ start: BigInt(a.start) - 4096n, end: BigInt(a.end) + 4096n }));
  rt.mapScratch(SCRATCH_SIZE, findHole(used, SCRATCH_SIZE + 4096, 0x10000n));
  for (const tid of tids.slice(1)) rts.push(rt.taskSharingMemory(tid)); // (quiet like the leader)
  const values = readTaskValues(rt);
  const sigactions = dumpActions(rt, pid);
  const threads = rts.map((r) => dumpThread(r, r.pid, origMasks.get(r.pid)!));
  const pendingShared = peekSiginfo(pid, true).map((b) => b.toString('base64'));
  const timers = dumpTimers(rts, pendingShared, new Map(threads.map((th) => [th.tid, th.pending])), treePids);
  const seccomp = dumpSeccomp(pid, rts);
  const creds = readCreds(pid, values.securebits);
  const stopReported = proc.stopSig && parentCap ? stopWasReported(parentCap.leader, pid) : undefined;
  await checkpointYield('dump:state');

  setStep('pages');
  const sink = new ImageDirSink(image, pool, POOL_THRESHOLD);
  for (const o of plan.shmem) shmem.objects.push(await dumpShmem(pid, o, sink));
  log.info(`pid ${pid}: writing ${(plan.pageBytes / 1048576).toFixed(1)} MiB of pages`);
  // Its own writes would fail past its file size limit (and raise SIGXFSZ): then ckpt copies the pages itself.
  const fsize = ident.rlimits[RLIMIT.FSIZE][0];
  // (CKPT_DEBUG_FAIL=ignore-fsize lets the target write anyway, for the test of what a failed write leaves)
  const insideOk = fsize === 'unlimited' || BigInt(fsize) >= BigInt(plan.pageBytes) || debugOn('ignore-fsize');
  const { file: pagesName, sums } = await writePages(rt, plan, sink, insideOk,
    (done, total) => opts.onProgress?.({ op: 'dump', phase: 'memory', done, total, unit: 'bytes', pid }));

  const doc: ProcessImage = {
    pid, ppid: ident.ppid, pgid: ident.pgid, sid: ident.sid, foreground: ident.foreground, comm: ident.comm, exe: ident.exe, cwd: ident.cwd,
    ...(ident.cwdInode !== undefined ? { cwdInode: ident.cwdInode } : {}),
    ...(ident.exeInode !== undefined ? { exeInode: ident.exeInode } : {}),
    root: ident.root, umask: ident.umask, personality: ident.personality, rlimits: ident.rlimits, creds,
    misc: {
      dumpable: values.dumpable, pdeathsig: values.pdeathsig, noNewPrivs: ident.noNewPrivs, subreaper: values.subreaper,
      xcompPerm: values.xcompPerm, oomScoreAdj: readOomScoreAdj(pid), exitSignal: ident.exitSignal,
      thpDisable: values.thpDisable, membarrier: values.membarrier, loginuid: ident.loginuid,
    },
    itimers: values.itimers,
    mm: { ...ident.mmStat, brk: values.brk, auxv: ident.auxv },
    memory: { pagesFile: pagesName, pageBytes: plan.pageBytes, areas: plan.areas },
    fds, sigactions, pendingShared, threads: threads.map((t) => ({ ...t, ...threadFiles.get(t.tid) })),
    ...(filesOf.of !== undefined ? { filesOf: filesOf.of } : {}), ...(fsOf.of !== undefined ? { fsOf: fsOf.of } : {}),
  };
  if (timers.length) doc.timers = timers;
  if (seccomp) doc.seccomp = seccomp;
  if (proc.stopSig) {
    doc.stopped = true;
    doc.stopSignal = proc.stopSig as 19 | 20 | 21 | 22;
    if (stopReported !== undefined) doc.stopReported = stopReported;
  }
  return { doc, pagesName, sums, pageBytes: plan.pageBytes, leader: rt, rts, origMasks, maps: plan.maps };
}

/**
 * Has the parent already been told that its child stopped (waitpid with
 * WUNTRACED)? Asked in the parent itself: waitid(P_PID, WSTOPPED | WNOHANG |
 * WNOWAIT) reports an unreported stop and leaves it for the program.
 */
function stopWasReported(parent: RemoteTask, pid: number): boolean {
  const info = remote.waitid(parent, WAIT.P_PID, pid, WAIT.STOPPED | WAIT.NOHANG | WAIT.NOWAIT, `${pid}, WSTOPPED|WNOWAIT`);
  return info.pid !== pid;
}

/**
 * A descendant's group and session must be ones restore can recreate: its
 * own, or one led by a process of the tree.
 */
function checkGroupAndSession(pid: number, ident: { pgid: number; sid: number }, parentStat: string[], treePids: Set<number>): void {
  // (also for zombies, which restore remakes the same way)
  const parentPgid = Number(parentStat[5]);
  const parentSid = Number(parentStat[6]);
  // Restore recreates a session or group whose leader has exited with a
  // helper of that number; one led by a live process outside the tree it cannot.
  if (ident.sid !== pid && ident.sid !== parentSid && !treePids.has(ident.sid) && pidExists(ident.sid)) {
    throw refused(`pid ${pid}: it is in session ${ident.sid}, led by pid ${ident.sid}, which is outside the tree`);
  }
  if (ident.pgid !== pid && ident.pgid !== parentPgid && !treePids.has(ident.pgid) && pidExists(ident.pgid)) {
    throw refused(`pid ${pid}: its process group ${ident.pgid} is led by pid ${ident.pgid}, which is outside the tree`);
  }
  if (ident.pgid !== pid && ident.pgid !== parentPgid && ident.sid !== parentSid && ident.pgid !== ident.sid) {
    throw refused(`pid ${pid}: group ${ident.pgid} in session ${ident.sid} (not its parent's): not supported yet`);
  }
}

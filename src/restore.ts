// restore: check the image, then turn a husk process into the program:
// clone the task with its recorded PID, replace the husk's memory with the
// image's, reopen files, set signals, identity and registers, and let it go.

import fs from 'node:fs';
import path from 'node:path';
import { ImageReader, chunkCount } from './image/store.js';
import { ProcessImage, checkRlimits, restoreMm, restoreIdentityCalls, restoreMiscLast, restoreRlimits } from './objects/process.js';
import { checkFds, restoreFds } from './objects/files.js';
import { restoreActions, queueSignals } from './objects/signals.js';
import { restoreThreadCalls, finalRegs, setThreadState } from './objects/thread.js';
import { restoreCreds } from './objects/creds.js';
import { findHole, areaRanges, clearAndMoveSpecials, restoreAreas, registerUffd, unregisterUffd, IOV_SCRATCH } from './objects/memory.js';
import { Pool } from './bulk/pool.js';
import { shareJob } from './bulk/jobs.js';
import { peekFdKeep } from './objects/fdpeek.js';
import { restoreSched, restoreOomScoreAdj } from './objects/sched.js';
import { posixSpawn, syscallRaw } from './kernel/ffi.js';
import { freezeTask } from './freeze.js';
import { RemoteTask, findSyscallGadget } from './kernel/remote.js';
import { readMaps, pidExists, readStat } from './kernel/proc.js';
import { setSigmask, getRseqConfig, waitPid, detach, waitNoHang, describeStatus } from './kernel/ptrace.js';
import { BLOCKABLE_SIGNALS } from './kernel/consts.js';
import { NR, SIG, PR, PTRACE_O, PTRACE_EVENT, AT_FDCWD, O, CLONE, signalName } from './kernel/consts.js';
import { CkptError, badImage, conflict, inStep } from './errors.js';
import { checkpointYield, wasInterrupted } from './cancel.js';
import { hostXfeatures } from './cpu.js';
import { log } from './log.js';

export interface RestoreOptions {
  dir: string;
  detached?: boolean;
  pidfile?: string;
  shellJob?: boolean;
}
export interface RestoreResult { pid: number; exitCode?: number; timings: Record<string, number> }

const SCRATCH_SIZE = 64 * 1024;
const POOL_THRESHOLD = 128 << 20;
const ALL_SIGNALS = BLOCKABLE_SIGNALS;
const HUSKS = ['/usr/bin/sleep', '/bin/sleep'];

/** Load and check everything that can be checked without creating a process. */
export async function loadImage(dir: string, check: 'all' | 'defer-pages'): Promise<{ img: ImageReader; procs: ProcessImage[] }> {
  const img = new ImageReader(dir);
  const m = img.manifest;
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch;
  if (m.arch !== arch) throw badImage(`the image was made on ${m.arch}; this host is ${arch}`);
  await img.verify(check === 'all' ? null : (name) => !name.startsWith('pages-'));
  const host = hostXfeatures();
  const used = BigInt(m.cpu.used);
  const missing = used & ~host.mask;
  if (missing) {
    throw new CkptError('conflict', `the image uses CPU state this host lacks: ${host.describe(missing)} (XSAVE features 0x${missing.toString(16)})`);
  }
  const procs = m.processes.map((p) => img.readJson(`process-${p.pid}.json`, ProcessImage));
  for (const p of procs) {
    if (!p.threads.length) throw badImage(`image file process-${p.pid}.json: no threads`);
    const pf = p.memory.pagesFile;
    if (!m.files[pf]) throw badImage(`image file process-${p.pid}.json: page file ${pf} is not in the manifest`);
    const size = m.files[pf].size;
    for (const a of p.memory.areas) {
      const n = a.runs.reduce((s, r) => s + r[1], 0) * 4096;
      if (a.dataOffset + n > size) throw badImage(`image file process-${p.pid}.json: area ${a.start} points past the end of ${pf}`);
    }
  }
  return { img, procs };
}

function checkHost(p: ProcessImage): void {
  if (pidExists(p.pid)) {
    let who = '';
    try { who = ` by ${readStat(p.pid)[2]}`; } catch { /* gone meanwhile */ }
    throw conflict(`PID ${p.pid} is already in use${who}; the process must get its PID back`);
  }
  if (!fs.existsSync(p.exe)) throw conflict(`pid ${p.pid}: its executable ${p.exe} does not exist on this host`);
  if (!fs.existsSync(p.cwd)) throw conflict(`pid ${p.pid}: its working directory ${p.cwd} does not exist`);
  checkFds(p.fds);
  checkRlimits(p);
}

function spawnHusk(): number {
  const husk = HUSKS.find((h) => fs.existsSync(h));
  if (!husk) throw new CkptError('failed', `no husk program found (tried ${HUSKS.join(', ')})`);
  return posixSpawn(husk, ['ckpt-husk', '1000000'], { sigmask: ALL_SIGNALS });
}

function killAndReap(pid: number, parentIsUs: boolean): void {
  syscallRaw(NR.kill, pid, SIG.KILL);
  try {
    for (;;) {
      const st = waitPid(pid);
      if (!st) break;
      if (!st.stopped) {
        // As tracer we may see the death before it becomes reapable; reap as parent too.
        if (parentIsUs) { try { waitPid(pid); } catch { /* already reaped */ } }
        break;
      }
    }
  } catch { /* not ours to wait for */ }
}

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const t: Record<string, number> = {};
  let mark = performance.now();
  const lap = (name: string) => { const n = performance.now(); t[name] = n - mark; mark = n; };

  const dir = path.resolve(opts.dir);
  // Big images: two workers check the page file and later copy pages in.
  const pool = imagePageBytes(dir) >= POOL_THRESHOLD ? new Pool(1) : null;
  try {
    return await restoreWith(opts, dir, pool, t, lap);
  } finally {
    await pool?.close();
  }
}

function imagePageBytes(dir: string): number {
  try {
    return fs.readdirSync(dir).filter((f) => f.startsWith('pages-')).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
  } catch { return 0; }
}

async function restoreWith(opts: RestoreOptions, dir: string, pool: Pool | null, t: Record<string, number>, lap: (n: string) => void): Promise<RestoreResult> {
  // Big page files are checked while they are loaded into the husk (below),
  // before the program's own task exists; everything else is checked now.
  const { img, procs } = await loadImage(dir, pool ? 'defer-pages' : 'all');
  if (procs.length !== 1) throw badImage(`this ckpt restores one process per image; the image has ${procs.length}`);
  const p = procs[0];
  if (p.fds.some((f) => f.kind === 'tty') && !opts.shellJob) {
    throw new CkptError('usage', `pid ${p.pid} used a terminal when dumped: restore it with --shell-job`);
  }
  checkHost(p);
  lap('check');

  let husk = -1;
  let task = -1;
  const tasksMade: number[] = [];
  let localUffd = -1;
  let step = 'husk';
  try {
    // 1. The husk: a throwaway process whose address space is turned into the program's.
    husk = spawnHusk();
    freezeTask(husk, PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.TRACEVFORK | PTRACE_O.EXITKILL);
    const huskMaps = readMaps(husk);
    const vdso = huskMaps.find((m) => m.path === '[vdso]');
    if (!vdso) throw new CkptError('failed', 'the husk has no vDSO');
    const gadget = findSyscallGadget(husk, vdso.start, vdso.end);
    const hole = findHole([...areaRanges(p.memory), ...huskMaps.map((m) => ({ start: m.start, end: m.end }))], SCRATCH_SIZE);
    const hrt = new RemoteTask(husk, gadget);
    hrt.mapScratch(SCRATCH_SIZE, hole);
    setSigmask(husk, ALL_SIGNALS);
    const off = IOV_SCRATCH + 4096;
    lap('husk');

    // 2. Memory, built in the husk.
    step = 'memory';
    const rs = getRseqConfig(husk);
    if (rs.size) hrt.call('rseq(unregister)', NR.rseq, rs.address, rs.size, 1, rs.signature);
    clearAndMoveSpecials(hrt, p.memory, { start: hole, end: hole + BigInt(SCRATCH_SIZE) }, gadget - vdso.start);
    const pagesPath = img.path(p.memory.pagesFile);
    const pfd = Number(hrt.call('open(page file)', NR.openat, AT_FDCWD, hrt.putString(pagesPath, off), O.RDONLY | O.CLOEXEC, 0));
    const deferred = restoreAreas(hrt, p.memory, pfd, pagesPath, pool !== null);
    hrt.call('close(page file)', NR.close, pfd);
    restoreMm(hrt, p, off);
    lap('memory');
    await checkpointYield('restore:memory');
    if (pool) {
      // Pages of anonymous areas are copied in by ckpt (UFFDIO_COPY: no
      // zeroing), on this thread and a worker at once, and the whole page file
      // is checked on the way. A bad checksum ends the restore here, before
      // the program's task exists.
      step = 'pages';
      let ufdRemote = -1;
      if (deferred.segs.length) {
        ufdRemote = registerUffd(hrt, deferred, off, 3);
        localUffd = peekFdKeep(husk, ufdRemote);
      }
      const size = img.manifest.files[p.memory.pagesFile].size;
      const results = await shareJob({
        op: 'load', uffd: localUffd, path: pagesPath, size, chunks: Array.from({ length: chunkCount(size) }, (_, i) => i),
        segs: deferred.segs,
      }, pool);
      log.debug(`pages loaded: ${results.map((r) => `${((r.bytes ?? 0) / 1048576).toFixed(0)} MiB copied in ${(r.ms ?? 0).toFixed(0)} ms`).join(', ')}`);
      img.checkSums(p.memory.pagesFile, results.flatMap((r) => r.sums ?? []));
      if (ufdRemote >= 0) {
        unregisterUffd(hrt, deferred, ufdRemote, off);
        fs.closeSync(localUffd);
        localUffd = -1;
      }
      lap('pages');
    }

    // 3. The program's task: cloned from the husk with its recorded PID
    // (clone3 set_tid), sharing the address space just built (CLONE_VM), as
    // ckpt's child (CLONE_PARENT, whose exit signal must be 0: it takes the
    // husk's SIGCHLD). Then the husk goes and the task owns the memory alone.
    step = 'clone';
    const args = Buffer.alloc(88);
    args.writeBigUInt64LE(BigInt(CLONE.PARENT | CLONE.VM), 0);
    const tidArr = Buffer.alloc(8);
    tidArr.writeInt32LE(p.pid, 0);
    args.writeBigUInt64LE(hrt.put(tidArr, 256), 64);
    args.writeBigUInt64LE(1n, 72);
    const r = hrt.callRaw(NR.clone3, hrt.put(args, 0), 88);
    if (r === -17n) throw conflict(`PID ${p.pid} is already in use; the process must get its PID back`);
    if (r < 0n) throw new CkptError('failed', `clone3 with set_tid ${p.pid} failed: errno ${-r}`);
    task = Number(r);
    for (;;) {
      const st = waitPid(task)!;
      if (st.stopped && st.event === PTRACE_EVENT.STOP) break;
      if (!st.stopped) throw new CkptError('failed', `new task ${task} ${describeStatus(st)}`);
    }
    const rt = new RemoteTask(task, hrt.gadget);
    rt.scratch = hole;
    rt.scratchSize = SCRATCH_SIZE;
    hrt.close();
    killAndReap(husk, true);
    husk = -1;
    lap('clone');

    // 4. Everything that belongs to the process rather than to its memory.
    const leader = p.threads.find((th) => th.tid === p.pid) ?? p.threads[0];
    step = 'files';
    restoreFds(rt, p.fds);
    step = 'identity';
    // A shell job stays in the caller's session, whose terminal it is given;
    // otherwise a session leader gets its session back.
    if (p.sid === p.pid && !opts.shellJob) rt.call('setsid', NR.setsid);
    else if (p.pgid === p.pid) rt.call('setpgid', NR.setpgid, 0, 0);
    if (opts.shellJob && p.foreground && p.pgid === p.pid) {
      // It was in the foreground of its terminal: make its group the foreground of the caller's.
      const tty = p.fds.find((f) => f.kind === 'tty');
      if (tty) {
        const pg = Buffer.alloc(4);
        pg.writeInt32LE(p.pid, 0);
        rt.call('ioctl(TIOCSPGRP)', NR.ioctl, tty.fd, 0x5410 /* TIOCSPGRP */, rt.put(pg, off));
      }
    }
    restoreIdentityCalls(rt, p, off);
    step = 'signals';
    restoreActions(rt, p.sigactions, off);

    // 5. The other threads: cloned from the leader with their recorded TIDs,
    // sharing its memory, files, fs and signal handlers.
    step = 'threads';
    const threads: Array<{ rt: RemoteTask; t: (typeof p.threads)[number] }> = [{ rt, t: leader }];
    for (const th of p.threads) {
      if (th === leader) continue;
      const targs = Buffer.alloc(88);
      targs.writeBigUInt64LE(BigInt(CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM), 0);
      const tt = Buffer.alloc(8);
      tt.writeInt32LE(th.tid, 0);
      targs.writeBigUInt64LE(rt.put(tt, 256), 64);
      targs.writeBigUInt64LE(1n, 72);
      const tr = rt.callRaw(NR.clone3, rt.put(targs, 0), 88);
      if (tr === -17n) throw conflict(`TID ${th.tid} (a thread of pid ${p.pid}) is already in use`);
      if (tr < 0n) throw new CkptError('failed', `clone3 of thread ${th.tid} failed: errno ${-tr}`);
      const tid = Number(tr);
      tasksMade.push(tid);
      for (;;) {
        const st = waitPid(tid)!;
        if (st.stopped && st.event === PTRACE_EVENT.STOP) break;
        if (!st.stopped) throw new CkptError('failed', `new thread ${tid} ${describeStatus(st)}`);
      }
      const trt = new RemoteTask(tid, rt.gadget);
      trt.scratch = hole;
      trt.scratchSize = SCRATCH_SIZE;
      threads.push({ rt: trt, t: th });
    }
    for (const { rt: trt, t: th } of threads) {
      if (th.comm !== undefined && th !== leader) trt.call('prctl(PR_SET_NAME)', NR.prctl, PR.SET_NAME, trt.putString(th.comm.slice(0, 15), off));
      prepareXstate(trt, th);
      restoreThreadCalls(trt, th, p.pid, off);
    }
    queueSignals(rt, p.pid, null, p.pendingShared, off);
    step = 'limits and credentials';
    restoreRlimits(task, p.rlimits);
    // Credentials belong to each thread.
    for (const { rt: trt } of threads) restoreCreds(trt, p.creds, off);
    restoreMiscLast(rt, p, !opts.detached);
    if (p.misc.oomScoreAdj !== undefined) restoreOomScoreAdj(task, p.misc.oomScoreAdj);
    for (const { rt: trt, t: th } of threads) if (th.sched) restoreSched(trt.pid, th.sched);
    for (const { rt: trt } of threads.slice(1)) {
      if (p.misc.noNewPrivs) trt.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    rt.unmapScratch();
    step = 'registers';
    for (const { rt: trt, t: th } of threads) {
      const fin = finalRegs(th);
      if (fin.note) log.warn(fin.note);
      setThreadState(trt.pid, th, fin.regs);
      trt.close();
    }
    lap('state');
    await checkpointYield();

    if (opts.pidfile) fs.writeFileSync(opts.pidfile, `${task}\n`);
    for (const tid of tasksMade) if (tid !== task) detach(tid);
    detach(task);
    log.info(`pid ${task} restored and running`);
    const restored = task;
    task = -1;
    if (opts.detached) return { pid: restored, timings: t };
    const exitCode = await waitForExit(restored);
    return { pid: restored, exitCode, timings: t };
  } catch (e) {
    const err = inStep(step, e);
    log.error(`restore failed in step "${step}": ${err.message}`);
    if (task > 0) {
      syscallRaw(NR.kill, task, SIG.KILL);
      for (const tid of tasksMade) { try { waitPid(tid); } catch { /* gone */ } }
      killAndReap(task, true);
    }
    if (husk > 0) killAndReap(husk, true);
    if (localUffd >= 0) fs.closeSync(localUffd);
    throw err;
  }
}

/**
 * The kernel gives a task room for AMX tile data only after its first AMX
 * instruction, and refuses such state through ptrace before. Run one
 * (tilerelease) in the task when the image holds tile data.
 */
function prepareXstate(rt: RemoteTask, t: { xstate: string }): void {
  const xs = Buffer.from(t.xstate, 'base64');
  const bv = xs.length >= 520 ? xs.readBigUInt64LE(512) : 0n;
  if (!((bv >> 18n) & 1n)) return;
  const code = Buffer.alloc(128);
  Buffer.from([
    0xc4, 0xe2, 0x78, 0x49, 0x05, 55, 0, 0, 0, // ldtilecfg [rip+55] (the config at offset 64)
    0xc4, 0xe2, 0x7b, 0x49, 0xc0,             // tilezero tmm0: first use of tile data
    0xc4, 0xe2, 0x78, 0x49, 0xc0,             // tilerelease
    0xcc,                                     // int3
  ]).copy(code, 0);
  code[64] = 1;       // palette 1
  code[64 + 16] = 4;  // tmm0: 4 bytes per row
  code[64 + 48] = 1;  // tmm0: 1 row
  rt.runCode(code, 20);
}

/** Wait for the restored process (ckpt is its parent), passing on SIGINT/SIGTERM. */
async function waitForExit(pid: number): Promise<number> {
  let forwarded: string | null = null;
  for (;;) {
    const st = waitNoHang(pid);
    if (st && st.exited) return st.exitCode;
    if (st && st.signaled) {
      log.info(`pid ${pid} was killed by ${signalName(st.termSig)}`);
      return 128 + st.termSig;
    }
    const sig = wasInterrupted();
    if (sig && sig !== forwarded) {
      forwarded = sig;
      syscallRaw(NR.kill, pid, sig === 'SIGINT' ? SIG.INT : sig === 'SIGHUP' ? SIG.HUP : SIG.TERM);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

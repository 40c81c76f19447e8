// restore: check the image, then build the root's address space in a husk
// process, clone the root from it with its recorded PID, give it its files,
// identity, signals and threads, fork its descendants from it top-down (each
// with its PID, memory and state), and let the whole tree go.

import fs from 'node:fs';
import path from 'node:path';
import { ImageReader } from './image/store.js';
import { ProcessImage, readRlimits, checkRlimits, restoreMm, restoreIdentityCalls, restoreMiscLast, restoreRlimits, restoreRootAndCwd, restoreMmSettings } from './objects/process.js';
import { checkFds, restoreFds, openDeferredFds, FdImage } from './objects/files.js';
import { restoreActions, queueSignals } from './objects/signals.js';
import { restoreThreadCalls, finalRegs, setThreadState } from './objects/thread.js';
import { restoreCreds } from './objects/creds.js';
import { findHole, checkMappedFiles, areaRanges, clearAndMoveSpecials, restoreAreas, copyInDeferred, sealAreas, IOV_SCRATCH, ShmemImage, ShmemCtx } from './objects/memory/index.js';
import { ImageDirSource } from './image/pages.js';
import { Pool } from './bulk/pool.js';
import { restoreSched, restoreOomScoreAdj } from './objects/sched.js';
import { posixSpawn, kill, setRlimit } from './kernel/sys.js';
import { freezeTask } from './freeze.js';
import { RemoteTask, findSyscallGadget } from './kernel/remote.js';
import { readMaps, pidExists, readStat, taskState } from './kernel/proc.js';
import { setSigmask, getRseqConfig, waitPid, detach, waitNoHang, describeStatus } from './kernel/ptrace.js';
import { CALL_SIGMASK, BLOCKABLE_SIGNALS, WAIT, IOCTL, RLIMIT } from './kernel/consts.js';
import { NR, SIG, PR, PTRACE_O, PTRACE_EVENT, CLONE, WALL, signalName } from './kernel/consts.js';
import { CkptError, badImage, conflict, inStep } from './errors.js';
import { checkpointYield, wasInterrupted } from './cancel.js';
import { hostXfeatures } from './cpu.js';
import { log } from './log.js';
import { ProgressFn } from './progress.js';

export interface RestoreOptions {
  dir: string;
  detached?: boolean;
  pidfile?: string;
  shellJob?: boolean;
  onProgress?: ProgressFn;
}
export interface RestoreResult { pid: number; exitCode?: number; timings: Record<string, number> }

const SCRATCH_SIZE = 64 * 1024;
const POOL_THRESHOLD = 128 << 20;
const CHILD_UFFD_MIN = 16 << 20;
const HUSKS = ['/usr/bin/sleep', '/bin/sleep'];

/** Load and check everything that can be checked without creating a process. */
export async function loadImage(dir: string, check: 'all' | 'defer-root-pages', pool: Pool | null): Promise<{ img: ImageReader; procs: ProcessImage[]; shmem: ShmemImage }> {
  const img = new ImageReader(dir);
  const m = img.manifest;
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch;
  if (m.arch !== arch) throw badImage(`the image was made on ${m.arch}; this host is ${arch}`);
  await img.verify(check === 'all' ? null : (name) => name !== `pages-${m.root}.img`, pool);
  const host = hostXfeatures();
  const used = BigInt(m.cpu.used);
  const missing = used & ~host.mask;
  if (missing) {
    throw new CkptError('conflict', `the image uses CPU state this host lacks: ${host.describe(missing)} (XSAVE features 0x${missing.toString(16)})`);
  }
  const procs = m.processes.filter((p) => !p.zombie).map((p) => img.readJson(`process-${p.pid}.json`, ProcessImage));
  const shmem: ShmemImage = m.files['shmem.json'] ? img.readJson('shmem.json', ShmemImage) : { objects: [] };
  checkConsistency(m, procs, shmem);
  return { img, procs, shmem };
}

/** What the documents say of each other must agree (each document alone was checked by its schema). */
function checkConsistency(m: ImageReader['manifest'], procs: ProcessImage[], shmem: ShmemImage): void {
  const objects = new Map(shmem.objects.map((o) => [o.id, o]));
  shmem.objects.forEach((o, i) => {
    const f = m.files[o.pagesFile];
    if (!f) throw badImage(`image file shmem.json: field objects[${i}].pagesFile: ${o.pagesFile} is not in the manifest`);
    if (f.size !== o.runs.reduce((s, r) => s + r[1], 0) * 4096) throw badImage(`image file shmem.json: field objects[${i}].runs: they do not match the size of ${o.pagesFile}`);
  });
  for (const p of procs) {
    const file = `process-${p.pid}.json`;
    const entry = m.processes.find((x) => x.pid === p.pid)!;
    if (p.ppid !== entry.ppid) throw badImage(`image file ${file}: field ppid: ${p.ppid}, but manifest.json says ${entry.ppid}`);
    if (p.threads.length !== entry.threads) throw badImage(`image file ${file}: field threads: ${p.threads.length} threads, but manifest.json says ${entry.threads}`);
    const pf = p.memory.pagesFile;
    if (pf !== `pages-${p.pid}.img` || !m.files[pf]) throw badImage(`image file ${file}: field memory.pagesFile: ${pf} is not this process's page file in the manifest`);
    if (m.files[pf].size !== p.memory.pageBytes) throw badImage(`image file ${file}: field memory.pageBytes: ${p.memory.pageBytes}, but ${pf} has ${m.files[pf].size} bytes`);
    p.threads.forEach((t, i) => {
      const n = Buffer.byteLength(t.xstate, 'base64');
      if (n !== m.cpu.xsaveSize) throw badImage(`image file ${file}: field threads[${i}].xstate: ${n} bytes, but manifest.json says cpu.xsaveSize ${m.cpu.xsaveSize}`);
    });
    p.memory.areas.forEach((a, i) => {
      if (a.shmem && !objects.has(a.shmem)) throw badImage(`image file ${file}: field memory.areas[${i}].shmem: object ${a.shmem} is not in shmem.json`);
    });
    const parent = procs.find((x) => x.pid === p.ppid);
    p.fds.forEach((f, i) => {
      if (f.kind === 'inherit' && !parent?.fds.some((x) => x.fd === f.parentFd)) {
        throw badImage(`image file ${file}: field fds[${i}].parentFd: the parent has no fd ${f.parentFd}`);
      }
    });
  }
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
  // fds are put at their numbers before the process gets its own limits: each must be below ckpt's.
  const soft = readRlimits(process.pid)[RLIMIT.NOFILE][0];
  const fdMax = soft === 'unlimited' ? Infinity : Number(soft);
  const big = p.fds.find((f) => f.fd >= fdMax);
  if (big) throw conflict(`pid ${p.pid}: fd ${big.fd} is above what this host allows ckpt (RLIMIT_NOFILE ${fdMax})`);
  checkMappedFiles(p.pid, p.memory);
  checkRlimits(p);
}

function spawnHusk(): number {
  const husk = HUSKS.find((h) => fs.existsSync(h));
  if (!husk) throw new CkptError('failed', `no husk program found (tried ${HUSKS.join(', ')})`);
  return posixSpawn(husk, ['ckpt-husk', '1000000'], { sigmask: CALL_SIGMASK });
}

/** Kill a task ckpt traces and is the parent of, and reap it. */
function killAndReap(pid: number): void {
  kill(pid, SIG.KILL);
  try {
    for (;;) {
      const st = waitPid(pid);
      if (!st) break;
      if (!st.stopped) {
        // As tracer we may see the death before it becomes reapable; reap as parent too.
        try { waitPid(pid); } catch { /* already reaped */ }
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

interface Built {
  p: ProcessImage;
  rt: RemoteTask;
  threads: Array<{ rt: RemoteTask; t: ProcessImage['threads'][number] }>;
  /** fds opened once every process exists (files of the tree's own /proc entries). */
  laterFds: FdImage[];
}

/** clone3 in `parent` with a recorded PID/TID; waits for the new task's first stop. */
function cloneIn(parent: RemoteTask, flags: number, exitSignal: number, pid: number, what: string, made: number[]): number {
  const args = Buffer.alloc(88);
  args.writeBigUInt64LE(BigInt(flags), 0);
  args.writeBigUInt64LE(BigInt(exitSignal), 32);
  const tidArr = Buffer.alloc(8);
  tidArr.writeInt32LE(pid, 0);
  args.writeBigUInt64LE(parent.put(tidArr, 256), 64);
  args.writeBigUInt64LE(1n, 72);
  const r = parent.callRaw(NR.clone3, parent.put(args, 0), 88);
  if (r === -17n) throw conflict(`${what} ${pid} is already in use; it must get its number back`);
  if (r < 0n) throw new CkptError('failed', `clone3 for ${what} ${pid} failed: errno ${-r}`);
  const task = Number(r);
  made.push(task);
  for (;;) {
    const st = waitPid(task)!;
    if (st.stopped && st.event === PTRACE_EVENT.STOP) return task;
    if (!st.stopped) throw new CkptError('failed', `new task ${task} ${describeStatus(st)}`);
  }
}

async function restoreWith(opts: RestoreOptions, dir: string, pool: Pool | null, t: Record<string, number>, lap: (n: string) => void): Promise<RestoreResult> {
  // The root's big page file is checked while it is loaded into the husk
  // (below), before any process of the image exists; everything else now.
  const { img, procs, shmem } = await loadImage(dir, pool ? 'defer-root-pages' : 'all', pool);
  const m = img.manifest;
  const shm: ShmemCtx = { objects: new Map(shmem.objects.map((o) => [o.id, o])), sources: new Map() };
  const pages = new ImageDirSource(img, pool);
  const p = procs.find((x) => x.pid === m.root);
  if (!p) throw badImage(`image file manifest.json: the root process ${m.root} has no process document`);
  for (const q of procs) {
    if (q.fds.some((f) => f.kind === 'tty') && !opts.shellJob) {
      throw new CkptError('usage', `pid ${q.pid} used a terminal when dumped: restore it with --shell-job`);
    }
    checkHost(q);
  }
  for (const z of m.processes.filter((x) => x.zombie)) {
    if (pidExists(z.pid)) throw conflict(`PID ${z.pid} (a zombie of the image) is already in use`);
  }
  // Sessions and groups whose leaders have exited are remade by helpers with their numbers.
  const inTree = new Set(m.processes.map((x) => x.pid));
  for (const q of procs) {
    const parent = procs.find((x) => x.pid === q.ppid);
    if (q.pid === m.root || !parent) continue;
    const needs: Array<[number, string]> = [];
    if (q.sid !== q.pid && q.sid !== parent.sid) needs.push([q.sid, 'session']);
    if (q.pgid !== q.pid && q.pgid !== parent.pgid && !inTree.has(q.pgid) && q.pgid !== q.sid) needs.push([q.pgid, 'process group']);
    for (const [num, what] of needs) {
      if (pidExists(num)) throw conflict(`PID ${num} is in use: pid ${q.pid} needs it to recreate its ${what}, whose leader had exited`);
    }
  }
  lap('check');

  let husk = -1;
  let task = -1;
  const tasksMade: number[] = [];
  let step = 'husk';
  try {
    // 1. The husk: a throwaway process whose address space is turned into the root's.
    husk = spawnHusk();
    freezeTask(husk, PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.TRACEVFORK | PTRACE_O.EXITKILL);
    const huskMaps = readMaps(husk);
    const vdso = huskMaps.find((mm) => mm.path === '[vdso]');
    if (!vdso) throw new CkptError('failed', 'the husk has no vDSO');
    const gadget = findSyscallGadget(husk, vdso.start, vdso.end);
    // The scratch area is inherited by every process of the tree: it must fit in all of them.
    const hole = findHole([...procs.flatMap((q) => areaRanges(q.memory)), ...huskMaps.map((mm) => ({ start: mm.start, end: mm.end }))], SCRATCH_SIZE);
    const scratch = { start: hole, end: hole + BigInt(SCRATCH_SIZE) };
    const hrt = new RemoteTask(husk, gadget);
    hrt.mapScratch(SCRATCH_SIZE, hole);
    setSigmask(husk, CALL_SIGMASK);
    const off = IOV_SCRATCH + 4096;
    lap('husk');

    // 2. Memory, built in the husk.
    step = 'memory';
    const rs = getRseqConfig(husk);
    if (rs.size) hrt.call('rseq(unregister)', NR.rseq, rs.address, rs.size, 1, rs.signature);
    clearAndMoveSpecials(hrt, p.memory, scratch, gadget - vdso.start);
    const deferred = restoreAreas(hrt, p.memory, pages, pool !== null, shm, p.pid);
    restoreMm(hrt, p, off);
    lap('memory');
    await checkpointYield('restore:memory');
    if (pool) {
      // Pages of anonymous areas are copied in by ckpt (UFFDIO_COPY: no
      // zeroing), on this thread and a worker at once, and the whole page file
      // is checked on the way. A bad checksum ends the restore here, before
      // any process of the image exists.
      step = 'pages';
      const results = await copyInDeferred(hrt, deferred, off);
      log.debug(`pages loaded: ${results.map((r) => `${(r.bytes / 1048576).toFixed(0)} MiB copied in ${r.ms.toFixed(0)} ms`).join(', ')}`);
      lap('pages');
    }

    // 3. The root's task: cloned from the husk with its recorded PID
    // (clone3 set_tid), sharing the address space just built (CLONE_VM), as
    // ckpt's child (CLONE_PARENT, whose exit signal must be 0: it takes the
    // husk's SIGCHLD). Then the husk goes and the task owns the memory alone.
    step = 'clone';
    task = cloneIn(hrt, CLONE.PARENT | CLONE.VM, 0, p.pid, 'PID', tasksMade);
    const rt = new RemoteTask(task, hrt.gadget);
    rt.scratch = hole;
    rt.scratchSize = SCRATCH_SIZE;
    hrt.close();
    killAndReap(husk);
    husk = -1;
    lap('clone');

    // 4. The root's own state, then its descendants, top-down: each child is
    // forked from its restored parent, gets its own memory and state, and so on.
    const built: Built[] = [];
    const helpers = new Map<number, Helper>();
    const setStep = (s0: string) => { step = s0; };
    built.push(buildProcess(p, rt, opts, off, tasksMade, true, setStep));
    for (const entry of m.processes) {
      if (entry.pid === p.pid) continue;
      const parent = built.find((b) => b.p.pid === entry.ppid);
      if (!parent) throw badImage(`image file manifest.json: process ${entry.pid} comes before its parent ${entry.ppid}`);
      step = `fork ${entry.pid}`;
      // A process (or zombie) in a session whose leader is gone is made by a
      // helper that leads a new session with that number (CLONE_PARENT keeps
      // the real parent); one in a group whose leader is gone joins a group helper.
      const { sid, pgid } = entry.zombie ?? procs.find((x) => x.pid === entry.pid)!;
      const helper = (num: number, kind: 'session' | 'group') => {
        const h = helpers.get(num) ?? makeHelper(parent, num, kind, tasksMade, hole);
        helpers.set(num, h);
        return h;
      };
      const sessionHelper = sid !== entry.pid && sid !== parent.p.sid ? helper(sid, 'session') : null;
      if (entry.zombie) {
        if (!sessionHelper && pgid !== entry.pid && pgid !== parent.p.pgid && !inTree.has(pgid)) helper(pgid, 'group');
        makeZombie(sessionHelper?.rt ?? parent.rt, entry.pid, entry.zombie, tasksMade, off, sessionHelper !== null, parent.rt);
        continue;
      }
      const q = procs.find((x) => x.pid === entry.pid)!;
      const cpid = sessionHelper
        ? cloneIn(sessionHelper.rt, CLONE.PARENT, 0, q.pid, 'PID', tasksMade)
        : cloneIn(parent.rt, 0, q.misc.exitSignal ?? SIG.CHLD, q.pid, 'PID', tasksMade);
      setSigmask(cpid, CALL_SIGMASK); // (its parent may have had SIGTRAP blocked, see buildProcess)
      const crt = new RemoteTask(cpid, parent.rt.gadget);
      crt.scratch = hole;
      crt.scratchSize = SCRATCH_SIZE;
      step = `memory of ${cpid}`;
      const crs = getRseqConfig(cpid); // a fork keeps its parent's registration
      if (crs.size) crt.call('rseq(unregister)', NR.rseq, crs.address, crs.size, 1, crs.signature);
      const vd = readMaps(cpid).find((mm) => mm.path === '[vdso]')!;
      clearAndMoveSpecials(crt, q.memory, scratch, crt.gadget - vd.start);
      // A child with much memory of its own gets it copied in like the root's (UFFDIO_COPY, two threads).
      const cdeferred = restoreAreas(crt, q.memory, pages, pool !== null && q.memory.pageBytes >= CHILD_UFFD_MIN, shm, q.pid);
      if (pool && cdeferred.segs.length) {
        await copyInDeferred(crt, cdeferred, off);
        log.debug(`pid ${cpid}: ${(cdeferred.bytes / 1048576).toFixed(0)} MiB of pages copied in`);
      }
      restoreMm(crt, q, off);
      built.push(buildProcess(q, crt, opts, off, tasksMade, false, setStep));
    }
    // Groups led by another process of the tree are joined once all exist; a
    // group whose leader is gone gets a helper with that number to lead it.
    for (const b of built) {
      const parentPgid = built.find((x) => x.p.pid === b.p.ppid)?.p.pgid;
      if (b.p.pid === p.pid || b.p.pgid === b.p.pid || b.p.pgid === parentPgid || b.p.pgid === Number(readStat(b.p.pid)[5])) continue;
      if (!built.some((x) => x.p.pid === b.p.pgid) && !helpers.has(b.p.pgid)) {
        const parent = built.find((x) => x.p.pid === b.p.ppid)!;
        helpers.set(b.p.pgid, makeHelper(parent, b.p.pgid, 'group', tasksMade, hole));
      }
      b.rt.call(`setpgid(${b.p.pgid})`, NR.setpgid, 0, b.p.pgid);
    }
    // The helpers go: each ends and its parent reaps it.
    for (const h of helpers.values()) endHelper(h);
    helpers.clear();
    // Files of the tree's own /proc entries, now that every process has its PID.
    step = 'files under /proc';
    for (const b of built) openDeferredFds(b.rt, b.laterFds);
    // Zombies, helpers and stops made here sent their parents SIGCHLD: only the image's pending ones stay.
    for (const b of built) resetChld(b, off);
    lap('tree');

    // 5. Limits, credentials and registers, last (they can take away rights restore needs).
    // A stopped child of a process of the tree is let go first, and stops by
    // its signal; its parent, still held, then takes the report of it back if
    // it had taken it before the dump.
    step = 'limits and credentials';
    const byPid = new Map(built.map((b) => [b.p.pid, b]));
    // Deepest first: a stopped child's parent is still held when the child is done, even if it is stopped too.
    const stoppedKids = built.filter((b) => b.p.stopped && byPid.has(b.p.ppid)).reverse();
    for (const b of stoppedKids) {
      finishProcess(b, opts, false, off);
      kill(b.p.pid, stopSignalFor(b, byPid));
      for (const th of b.threads) detach(th.rt.pid, th.rt.interceptedSignal);
      await waitStopped(b);
      const parent = byPid.get(b.p.ppid)!;
      if (b.p.stopReported) {
        const got = parent.rt.call(`wait4(${b.p.pid}, WUNTRACED)`, NR.wait4, b.p.pid, 0, WAIT.UNTRACED | WAIT.NOHANG, 0);
        if (Number(got) !== b.p.pid) throw new CkptError('failed', `pid ${b.p.ppid}: the report that its child ${b.p.pid} stopped could not be taken back`);
      }
      resetChld(parent, off);
    }
    for (const b of built) if (!stoppedKids.includes(b)) finishProcess(b, opts, b === built[0], off);
    lap('state');
    await checkpointYield();

    if (opts.pidfile) fs.writeFileSync(opts.pidfile, `${task}\n`);
    // A stopped process gets its stop signal queued: it stops again before running any of its code.
    for (const b of built) if (b.p.stopped && !stoppedKids.includes(b)) kill(b.p.pid, stopSignalFor(b, byPid));
    for (const b of built) if (!stoppedKids.includes(b)) for (const th of b.threads) detach(th.rt.pid, th.rt.interceptedSignal);
    log.info(`pid ${task} restored and running${built.length > 1 ? `, with ${built.length - 1} descendants` : ''}`);
    const restored = task;
    task = -1;
    tasksMade.length = 0;
    if (opts.detached) return { pid: restored, timings: t };
    const exitCode = await waitForExit(restored);
    return { pid: restored, exitCode, timings: t };
  } catch (e) {
    const err = inStep(step, e);
    log.error(`restore failed in step "${step}": ${err.message}`);
    for (const tid of tasksMade) kill(tid, SIG.KILL);
    for (const tid of [...tasksMade].reverse()) { if (tid !== task) { try { waitPid(tid); } catch { /* gone */ } } }
    if (task > 0) killAndReap(task);
    if (husk > 0) killAndReap(husk);
    throw err;
  }
}

interface Helper { rt: RemoteTask; parent: Built; kind: 'session' | 'group' }

/**
 * A helper with the number of a session or group whose leader has exited:
 * forked from `parent`, it starts the session (setsid) or group (setpgid) that
 * members then join; it ends once they have. A group helper has no exit
 * signal; a session helper must have SIGCHLD, which the members it creates
 * with CLONE_PARENT take as theirs.
 */
function makeHelper(parent: Built, num: number, kind: 'session' | 'group', made: number[], hole: bigint): Helper {
  const hpid = cloneIn(parent.rt, 0, kind === 'session' ? SIG.CHLD : 0, num, `PID (to lead ${kind} ${num})`, made);
  const rt = new RemoteTask(hpid, parent.rt.gadget);
  rt.scratch = hole;
  rt.scratchSize = SCRATCH_SIZE;
  if (kind === 'session') rt.call('setsid', NR.setsid);
  else rt.call('setpgid', NR.setpgid, 0, 0);
  log.debug(`helper ${hpid} leads ${kind} ${num}`);
  return { rt, parent, kind };
}

function endHelper(h: Helper): void {
  const hpid = h.rt.pid;
  h.rt.exitNow(0);
  h.rt.close();
  h.parent.rt.call(`wait4(helper ${hpid})`, NR.wait4, hpid, 0, WALL, 0);
}

/** Take every SIGCHLD off a process's queues, then queue again those the image had. */
function resetChld(b: Built, off: number): void {
  const { p, rt } = b;
  for (const th of b.threads) th.rt.takeSignal(SIG.CHLD);
  const isChld = (b64: string) => Buffer.from(b64, 'base64').readInt32LE(0) === SIG.CHLD;
  queueSignals(rt, p.pid, null, p.pendingShared.filter(isChld), off);
  for (const th of b.threads) queueSignals(th.rt, p.pid, th.t.tid, th.t.pending.filter(isChld), off);
}

/**
 * The signal that stops a restored process again: the one that stopped it.
 * SIGTSTP, SIGTTIN and SIGTTOU are discarded for a process group that is
 * orphaned (no member has a parent in another group of its session); there
 * only SIGSTOP stops, and the stop is reported as such.
 */
function stopSignalFor(b: Built, byPid: Map<number, Built>): number {
  const sig = b.p.stopSignal ?? SIG.STOP;
  if (sig === SIG.STOP) return sig;
  // (as the processes are now: the root may have joined ckpt's session and group)
  const now = (pid: number) => { const st = readStat(pid); return { ppid: Number(st[4]), pgid: Number(st[5]), sid: Number(st[6]) }; };
  let anchored = false;
  try {
    const me = now(b.p.pid);
    anchored = [...byPid.keys()].map((pid) => ({ pid, ...now(pid) })).filter((m) => m.pgid === me.pgid).some((m) => {
      const parent = now(m.ppid);
      return parent.pgid !== m.pgid && parent.sid === m.sid;
    });
  } catch { anchored = false; }
  if (anchored) return sig;
  log.warn(`pid ${b.p.pid} was stopped by ${signalName(sig)}, but its process group is orphaned here: it is stopped by SIGSTOP instead`);
  return SIG.STOP;
}

/** Wait (up to 5 s) until every thread of a released process is in its job-control stop. */
async function waitStopped(b: Built): Promise<void> {
  const end = Date.now() + 5000;
  for (;;) {
    if (b.threads.every((th) => taskState(th.rt.pid) === 'T')) return;
    if (Date.now() > end) throw new CkptError('failed', `pid ${b.p.pid} did not stop again by ${signalName(b.p.stopSignal ?? SIG.STOP)}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Files, identity, signals and threads of a process whose memory is in place. */
function buildProcess(p: ProcessImage, rt: RemoteTask, opts: RestoreOptions, off: number, made: number[], isRoot: boolean, setStep: (s: string) => void): Built {
  const leader = p.threads.find((th) => th.tid === p.pid) ?? p.threads[0];
  // A SIGTRAP the image has pending would merge with the next single-step
  // trap and be lost: from here on such a process runs its calls through
  // syscall stops, with SIGTRAP blocked (its threads are cloned with this mask).
  const isTrap = (b64: string) => Buffer.from(b64, 'base64').readInt32LE(0) === SIG.TRAP;
  if (p.pendingShared.some(isTrap) || p.threads.some((th) => th.pending.some(isTrap))) {
    rt.quiet = true;
    setSigmask(rt.pid, BLOCKABLE_SIGNALS);
  }
  setStep(`files of ${p.pid}`);
  const laterFds = restoreFds(rt, p.fds);
  setStep(`identity of ${p.pid}`);
  restoreMmSettings(rt, p, off);
  if (isRoot) {
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
        rt.call('ioctl(TIOCSPGRP)', NR.ioctl, tty.fd, IOCTL.TIOCSPGRP, rt.put(pg, off));
      }
    }
  } else if (p.sid === p.pid) {
    rt.call('setsid', NR.setsid);
  } else if (p.pgid === p.pid) {
    rt.call('setpgid', NR.setpgid, 0, 0);
  }
  restoreIdentityCalls(rt, p, off);
  setStep(`signals of ${p.pid}`);
  restoreActions(rt, p.sigactions, off);

  // The other threads: cloned from the leader with their recorded TIDs,
  // sharing its memory, files, fs and signal handlers.
  setStep(`threads of ${p.pid}`);
  const threads: Built['threads'] = [{ rt, t: leader }];
  for (const th of p.threads) {
    if (th === leader) continue;
    const tid = cloneIn(rt, CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM, 0, th.tid, `TID (a thread of pid ${p.pid})`, made);
    const trt = new RemoteTask(tid, rt.gadget);
    trt.scratch = rt.scratch;
    trt.scratchSize = rt.scratchSize;
    trt.quiet = rt.quiet;
    threads.push({ rt: trt, t: th });
  }
  for (const { rt: trt, t: th } of threads) {
    if (th.comm !== undefined && th !== leader) trt.call('prctl(PR_SET_NAME)', NR.prctl, PR.SET_NAME, trt.putString(th.comm.slice(0, 15), off));
    prepareXstate(trt, th);
    restoreThreadCalls(trt, th, p.pid, off);
  }
  queueSignals(rt, p.pid, null, p.pendingShared, off);
  return { p, rt, threads, laterFds };
}

function finishProcess(b: Built, opts: RestoreOptions, isRoot: boolean, off: number): void {
  const { p, rt, threads } = b;
  // Every trap of a remote call resets an ignored SIGTRAP to SIG_DFL: from here on the calls make none,
  // and the last one sets SIGTRAP's action again.
  const trap = p.sigactions.find((a) => a.sig === SIG.TRAP && a.handler === '0x1');
  if (trap) for (const th of threads) th.rt.quiet = true;
  sealAreas(rt, p.memory);
  restoreRootAndCwd(rt, p, off);
  restoreRlimits(p.pid, p.rlimits);
  // Credentials belong to each thread.
  for (const { rt: trt } of threads) restoreCreds(trt, p.creds, off);
  restoreMiscLast(rt, p, !(isRoot && opts.detached));
  if (p.misc.oomScoreAdj !== undefined) restoreOomScoreAdj(p.pid, p.misc.oomScoreAdj);
  for (const { rt: trt, t: th } of threads) {
    if (th.sched) restoreSched(trt.pid, th.sched);
    if (trt !== rt && p.misc.noNewPrivs) trt.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  }
  if (trap) restoreActions(rt, [trap], off, [SIG.TRAP]);
  rt.unmapScratch();
  for (const { rt: trt, t: th } of threads) {
    const fin = finalRegs(th);
    if (fin.note) log.warn(fin.note);
    setThreadState(trt.pid, th, fin.regs);
    trt.settle();
  }
  for (const { rt: trt } of threads) {
    trt.restoreEnd();
    trt.close();
  }
}

/**
 * A zombie: forked from its parent with its PID, put in its group or
 * session, then ended with its recorded status. Its parent, stopped, does not
 * reap it: it stays a zombie until the parent waits for it, as before.
 */
function makeZombie(maker: RemoteTask, pid: number, z: { status: number; pgid: number; sid: number; exitSignal: number }, made: number[], off: number,
  viaHelper: boolean, parent: RemoteTask): void {
  // Made by a session helper, it is created with CLONE_PARENT: its parent is the helper's, and its exit signal the helper's (SIGCHLD).
  const zpid = viaHelper ? cloneIn(maker, CLONE.PARENT, 0, pid, 'PID (a zombie)', made) : cloneIn(maker, 0, z.exitSignal || SIG.CHLD, pid, 'PID (a zombie)', made);
  const zrt = new RemoteTask(zpid, parent.gadget);
  zrt.scratch = parent.scratch;
  zrt.scratchSize = parent.scratchSize;
  if (z.sid === pid) zrt.call('setsid', NR.setsid);
  else if (z.pgid === pid) zrt.call('setpgid', NR.setpgid, 0, 0);
  else if (z.pgid !== Number(readStat(zpid)[5])) zrt.call(`setpgid(${z.pgid})`, NR.setpgid, 0, z.pgid);
  const sig = z.status & 0x7f;
  if (sig === 0) {
    zrt.exitNow((z.status >> 8) & 0xff);
  } else {
    // Killed by a signal: no core file, the default action, nothing blocked, then the signal.
    setRlimit(zpid, RLIMIT.CORE, 0n, 0n, 'RLIMIT_CORE');
    zrt.killSelfWith(sig, off);
  }
  zrt.close();
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
      kill(pid, sig === 'SIGINT' ? SIG.INT : sig === 'SIGHUP' ? SIG.HUP : SIG.TERM);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

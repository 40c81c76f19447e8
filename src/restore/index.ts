// restore: check the image, then recreate the tree in phases:
//   husk     the root's address space is built in a throwaway process and
//            the root's task is cloned from it with its PID (husk.ts);
//   tasks    every process, thread and zombie exists, with its memory,
//            session and group (tree.ts);
//   objects  every open file description is created once (objects/files.ts),
//            those that refer to others (epoll) after them;
//   fds      every process gets its fd table (objects/files.ts);
//   process  identity, signals, thread state (process.ts);
//   run      limits, credentials and registers, last, and the tree is let go (run.ts).
// A failure at any step kills every task made and leaves nothing behind.

import fs from 'node:fs';
import path from 'node:path';
import { ImageReader } from '../image/store.js';
import { ProcessImage, readRlimits, checkRlimits } from '../objects/process.js';
import { FilesImage, FdRef, checkFileRefs, checkFiles, OpenFiles, describeFile } from '../objects/files.js';
import { MadeInodes, checkInodes } from '../objects/inodes.js';
import { LocksImage, checkLocks, restoreLocks } from '../objects/locks.js';
import { checkMappedFiles, ShmemImage, SysvShmImage, MadeSysvShm } from '../objects/memory/index.js';
import { ImageDirSource } from '../image/pages.js';
import { Pool } from '../bulk/pool.js';
import { kill, dupAbove } from '../kernel/sys.js';
import { datagramPair } from '../kernel/fdpass.js';
import { pidExists, readStat } from '../kernel/proc.js';
import { waitPid } from '../kernel/ptrace.js';
import { remoteCallsMade } from '../kernel/remote.js';
import { RLIMIT, SIG } from '../kernel/consts.js';
import { CkptError, badImage, conflict, inStep } from '../errors.js';
import { checkpointYield } from '../cancel.js';
import { hostXfeatures } from '../cpu.js';
import { log } from '../log.js';
import { faultPoint } from '../kernel/faults.js';
import { buildRoot, killAndReap } from './husk.js';
import { buildTree, checkSharingRefs } from './tree.js';
import { restoreProcess, resetChld } from './process.js';
import { release, waitForExit } from './run.js';
import { RestoreCtx, RestoreOptions, RestoreResult, POOL_THRESHOLD, Built } from './context.js';
import { RemoteTask } from '../kernel/remote.js';
import { NetworkImage, restoreLock } from '../net/treelock.js';
import { unlockNetwork } from '../net/lock.js';

export type { RestoreOptions, RestoreResult } from './context.js';

export interface LoadedImage { img: ImageReader; procs: ProcessImage[]; shmem: ShmemImage; sysv: SysvShmImage; files: FilesImage; locks: LocksImage }

/** Load and check everything that can be checked without creating a process. */
export async function loadImage(dir: string, check: 'all' | 'defer-root-pages', pool: Pool | null): Promise<LoadedImage> {
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
  const sysv: SysvShmImage = m.files['sysvshm.json'] ? img.readJson('sysvshm.json', SysvShmImage) : { segments: [] };
  const files = img.readJson('files.json', FilesImage);
  const locks: LocksImage = m.files['locks.json'] ? img.readJson('locks.json', LocksImage) : { locks: [] };
  checkConsistency(m, procs, shmem, files);
  checkSysv(m, procs, sysv);
  checkSharingRefs(procs);
  checkLocks(locks, (task) => tableOf(procs, task));
  return { img, procs, shmem, sysv, files, locks };
}

/** The System V segments: their page files are the image's, and every sysvshm area names one of them. */
function checkSysv(m: ImageReader['manifest'], procs: ProcessImage[], sysv: SysvShmImage): void {
  const ids = new Set<number>();
  sysv.segments.forEach((s, i) => {
    if (ids.has(s.id)) throw badImage(`image file sysvshm.json: field segments[${i}].id: segment ${s.id} is listed twice`);
    ids.add(s.id);
    if (!s.pagesFile) return;
    const f = m.files[s.pagesFile];
    if (!f) throw badImage(`image file sysvshm.json: field segments[${i}].pagesFile: ${s.pagesFile} is not in the manifest`);
    if (f.size !== s.runs.reduce((n, r) => n + r[1], 0) * 4096) throw badImage(`image file sysvshm.json: field segments[${i}].runs: they do not match the size of ${s.pagesFile}`);
  });
  for (const p of procs) {
    p.memory.areas.forEach((a, i) => {
      if (a.sysvshm !== undefined && !ids.has(a.sysvshm)) throw badImage(`image file process-${p.pid}.json: field memory.areas[${i}].sysvshm: segment ${a.sysvshm} is not in sysvshm.json`);
    });
  }
}

/** What the documents say of each other must agree (each document alone was checked by its schema). */
function checkConsistency(m: ImageReader['manifest'], procs: ProcessImage[], shmem: ShmemImage, files: FilesImage): void {
  const objects = new Map(shmem.objects.map((o) => [o.id, o]));
  checkInodes(files.inodes ?? [], m.files);
  const inodeIds = new Set((files.inodes ?? []).map((n) => n.id));
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
      if (a.inode !== undefined && !inodeIds.has(a.inode)) throw badImage(`image file ${file}: field memory.areas[${i}].inode: inode ${a.inode} is not in files.json`);
    });
    if (p.cwdInode !== undefined && !inodeIds.has(p.cwdInode)) throw badImage(`image file ${file}: field cwdInode: inode ${p.cwdInode} is not in files.json`);
    if (p.exeInode !== undefined && !inodeIds.has(p.exeInode)) throw badImage(`image file ${file}: field exeInode: inode ${p.exeInode} is not in files.json`);
  }
  // (with the tables of threads that had their own)
  checkFileRefs(files, procs.flatMap((p) => [{ pid: p.pid, fds: p.fds }, ...p.threads.filter((t) => t.fds).map((t) => ({ pid: p.pid, fds: t.fds! }))]));
  files.files.forEach((f, i) => {
    if (typeof f.inode === 'number' && !inodeIds.has(f.inode)) throw badImage(`image file files.json: field files[${i}].inode: inode ${f.inode} is not listed`);
  });
}

/** The fd table a task (a process or a thread) holds: its own, or the one it shares. */
function tableOf(procs: ProcessImage[], task: number): FdRef[] | undefined {
  for (const p of procs) {
    const th = p.threads.find((t) => t.tid === task);
    if (!th) continue;
    const owner = p.filesOf !== undefined ? procs.find((x) => x.pid === p.filesOf) : p;
    const of = th.filesOf !== undefined ? p.threads.find((t) => t.tid === th.filesOf) : th;
    return of?.fds ?? owner?.fds;
  }
  return undefined;
}

/**
 * Every fd table of the tree, once, each with a task that holds it: the
 * processes' (a process sharing another's has none of its own), then those
 * of threads that had their own.
 */
function fdTables(built: Built[]): Array<{ rt: RemoteTask; fds: FdRef[] }> {
  return [
    ...built.filter((b) => b.p.filesOf === undefined).map((b) => ({ rt: b.rt, fds: b.p.fds as FdRef[] })),
    ...built.flatMap((b) => b.threads.filter((t) => t.t.fds).map((t) => ({ rt: t.rt, fds: t.t.fds as FdRef[] }))),
  ];
}

function checkHost(p: ProcessImage): void {
  if (pidExists(p.pid)) {
    let who = '';
    try { who = ` by ${readStat(p.pid)[2]}`; } catch { /* gone meanwhile */ }
    throw conflict(`PID ${p.pid} is already in use${who}; the process must get its PID back`);
  }
  if (p.exeInode === undefined && !fs.existsSync(p.exe)) throw conflict(`pid ${p.pid}: its executable ${p.exe} does not exist on this host`);
  if (p.cwdInode === undefined && !fs.existsSync(p.cwd)) throw conflict(`pid ${p.pid}: its working directory ${p.cwd} does not exist`);
  // fds are put at their numbers before the process gets its own limits: each must be below ckpt's.
  const soft = readRlimits(process.pid)[RLIMIT.NOFILE][0];
  const fdMax = soft === 'unlimited' ? Infinity : Number(soft);
  const big = [...p.fds, ...p.threads.flatMap((t) => t.fds ?? [])].find((f) => f.fd >= fdMax);
  if (big) throw conflict(`pid ${p.pid}: fd ${big.fd} is above what this host allows ckpt (RLIMIT_NOFILE ${fdMax})`);
  checkMappedFiles(p.pid, p.memory);
  checkRlimits(p);
}

/** Checks of the host before any process is created. */
function checkBeforeRestore(loaded: LoadedImage, opts: RestoreOptions): void {
  const { img, procs, files } = loaded;
  const m = img.manifest;
  // (open files first: an image restored without the --shell-job or --file-locks it needs is a usage error)
  checkFiles(files, procs, !!opts.shellJob, (name) => Object.hasOwn(img.manifest.files, name), !!opts.extUnixSk);
  if (loaded.locks.locks.length && !opts.fileLocks) {
    throw new CkptError('usage', `pid ${loaded.locks.locks[0].pid} held file locks when dumped (dumped with --file-locks): restore it with --file-locks`);
  }
  for (const q of procs) checkHost(q);
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
}

function imagePageBytes(dir: string): number {
  try {
    return fs.readdirSync(dir).filter((f) => f.startsWith('pages-')).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
  } catch { return 0; }
}

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const dir = path.resolve(opts.dir);
  // Big images: two workers check the page file and later copy pages in.
  const pool = imagePageBytes(dir) >= POOL_THRESHOLD ? new Pool(1) : null;
  try {
    return await restoreWith(opts, dir, pool);
  } finally {
    await pool?.close();
  }
}

/**
 * A copy of the tree's end of the restore socket (which every process
 * inherits at the same number) at a number no fd table of the image uses, so
 * that it can stay open while the tables are installed: above them all if
 * ckpt's RLIMIT_NOFILE allows, else in a gap among them.
 */
function channelNumber(fd: number, used: Set<number>): number {
  const tryAt = (min: number): number | null => {
    let got: number;
    try { got = dupAbove(fd, min); } catch { return null; } // (beyond ckpt's RLIMIT_NOFILE)
    if (!used.has(got)) return got;
    fs.closeSync(got);
    return null;
  };
  const high = tryAt(Math.max(2, ...used) + 1);
  if (high !== null) return high;
  for (let min = 3; min < 65536; min++) {
    if (used.has(min)) continue;
    const got = tryAt(min);
    if (got !== null) return got;
  }
  throw conflict('no fd number that the image does not use is free in ckpt for the restore socket (RLIMIT_NOFILE of ckpt)');
}

async function restoreWith(opts: RestoreOptions, dir: string, pool: Pool | null): Promise<RestoreResult> {
  const t: Record<string, number> = {};
  const callsAtStart = remoteCallsMade();
  let mark = performance.now();
  const lap = (name: string) => { const n = performance.now(); t[name] = n - mark; mark = n; };
  const progress = (phase: 'check' | 'tasks' | 'objects' | 'fds' | 'restore' | 'run', done: number, total: number) =>
    opts.onProgress?.({ op: 'restore', phase, done, total, unit: 'processes' });

  // The root's big page file is checked while it is loaded into the husk
  // (below), before any process of the image exists; everything else now.
  const loaded = await loadImage(dir, pool ? 'defer-root-pages' : 'all', pool);
  const { img, procs, shmem, sysv, files, locks } = loaded;
  const m = img.manifest;
  const root = procs.find((x) => x.pid === m.root);
  if (!root) throw badImage(`image file manifest.json: the root process ${m.root} has no process document`);
  checkBeforeRestore(loaded, opts);
  // (the dump's network lock, made again here if it is not in place: released once the tree runs)
  const netLock = restoreLock(m.files['network.json'] ? img.readJson('network.json', NetworkImage) : null, opts.networkLock);
  lap('check');
  progress('check', 1, 1);

  const [channelLocal, channelLow] = datagramPair();
  let channelTree: number;
  try {
    channelTree = channelNumber(channelLow, new Set(procs.flatMap((p) => [p.fds, ...p.threads.map((t) => t.fds ?? [])]).flat().map((f) => f.fd)));
  } catch (e) {
    fs.closeSync(channelLocal);
    throw e;
  } finally {
    fs.closeSync(channelLow);
  }
  let step = 'husk';
  // Deleted files and memfds: made before any task (their mappings are part of the tasks' memory), held until the end.
  const inodes = new MadeInodes(files.inodes ?? [], (name) => img.path(name));
  const made = { husk: -1 };
  // System V segments: found or made before any task (the tasks attach them as part of their memory).
  const sysvMade = new MadeSysvShm(sysv.segments, (name) => img.path(name));
  const open: OpenFiles = new OpenFiles(files, {
    shellJob: !!opts.shellJob, extUnixSk: !!opts.extUnixSk, tcpClose: !!opts.tcpClose, state: new Map(), onDone: (fn) => open.done.push(fn), inodes,
    readData: (name) => {
      if (!Object.hasOwn(img.manifest.files, name)) throw badImage(`image file ${name} is not listed in the manifest`);
      return fs.readFileSync(img.path(name));
    },
  }, { local: channelLocal, remote: channelTree });
  const ctx: RestoreCtx = {
    opts, img, procs, files, pool, lap, open, inodes,
    shm: { objects: new Map(shmem.objects.map((o) => [o.id, o])), sources: new Map(), inodes, sysv: sysvMade }, pages: new ImageDirSource(img, pool),
    scratch: { start: 0n, end: 0n }, tasksMade: [],
    channel: { local: channelLocal, remote: channelTree },
    // Every named step is a fault point for the failure tests (kernel/faults.ts).
    get step() { return step; },
    set step(s: string) { step = s; faultPoint(`restore step ${s}`); },
  };
  let rootPid = -1;
  let treeEnd = channelTree;
  try {
    ctx.step = 'stored files';
    inodes.make();
    if (sysv.segments.length) {
      ctx.step = 'System V shared memory';
      sysvMade.make();
    }
    const rootRt = await buildRoot(ctx, root, made);
    fs.closeSync(treeEnd); // (the tree holds its end now, at the same number)
    treeEnd = -1;
    rootPid = rootRt.pid;

    ctx.step = 'objects for the tasks';
    open.prepare();
    const built = await buildTree(ctx, root, rootRt);
    ctx.step = 'seals';
    inodes.seal(); // (once every mapping is made: a seal may forbid new ones)
    sysvMade.finish(); // (removed segments are removed again once every task has attached them)
    lap('tree');
    progress('tasks', built.length, procs.length);

    ctx.step = 'open files';
    const callsBeforeFiles = remoteCallsMade();
    const tables = fdTables(built);
    open.create(tables, 'objects');
    progress('objects', built.length, procs.length);
    tables.forEach((t, i) => {
      ctx.step = `files of ${t.rt.pid}`;
      open.install(t.rt, t.fds, 'first');
      progress('fds', Math.min(i + 1, built.length), built.length);
    });
    // (made once the files they refer to are at their numbers: most registrations need no moving of fds)
    ctx.step = 'open files that refer to others';
    open.create(tables, 'refs');
    tables.forEach((t) => {
      ctx.step = `files of ${t.rt.pid} that refer to others`;
      open.install(t.rt, t.fds, 'rest');
    });
    open.close();
    // Locks last among files: from here on nothing closes an fd of the tree (which would drop its POSIX locks).
    if (locks.locks.length) {
      ctx.step = 'file locks';
      const tasks = new Map(built.flatMap((b) => b.threads.map((t) => [t.rt.pid, t.rt] as const)));
      const byId = new Map(files.files.map((f) => [f.id, f]));
      restoreLocks(locks, (task) => tasks.get(task)!, (id) => describeFile(byId.get(id)!));
    }
    lap('files');
    const remoteCallsFiles = remoteCallsMade() - callsBeforeFiles;

    built.forEach((b, i) => {
      restoreProcess(ctx, b, i === 0);
      progress('restore', i + 1, built.length);
    });
    // Zombies, helpers and stops made here sent their parents SIGCHLD: only the image's pending ones stay.
    for (const b of built) resetChld(b);
    lap('process');
    await checkpointYield();

    const pid = await release(ctx, built);
    if (netLock) {
      unlockNetwork(netLock);
      log.info(`network lock ${netLock.name} released`);
    }
    progress('run', built.length, built.length);
    ctx.tasksMade.length = 0;
    rootPid = -1;
    const counts = { remoteCalls: remoteCallsMade() - callsAtStart, remoteCallsFiles, fds: procs.reduce((n, p) => n + p.fds.length, 0) };
    if (opts.detached) return { pid, timings: t, counts };
    const exitCode = await waitForExit(pid);
    return { pid, exitCode, timings: t, counts };
  } catch (e) {
    const err = inStep(ctx.step, e);
    log.error(`restore failed in step "${ctx.step}": ${err.message}`);
    for (const tid of ctx.tasksMade) kill(tid, SIG.KILL);
    for (const tid of [...ctx.tasksMade].reverse()) { if (tid !== rootPid) { try { waitPid(tid); } catch { /* gone */ } } }
    if (rootPid > 0) killAndReap(rootPid);
    if (made.husk > 0) killAndReap(made.husk);
    sysvMade.undo();
    if (netLock) log.warn(`the network stays locked (${netLock.backend} ${netLock.name}) for another restore of the image; peers wait meanwhile`);
    throw err;
  } finally {
    open.close();
    inodes.close();
    fs.closeSync(channelLocal);
    if (treeEnd >= 0) fs.closeSync(treeEnd);
  }
}

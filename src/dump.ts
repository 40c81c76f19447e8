// dump: freeze a process and its descendants, write everything they are into
// an image, then end them (or let them go on with --leave-running). Any
// failure leaves them as they were.

import path from 'node:path';
import { checkTraceable } from './freeze.js';
import { freezeTree, releaseTree, TreeProc } from './tree.js';
import { getSigmask, setSigmask, peekSiginfo, detach, xstateFeatures } from './kernel/ptrace.js';
import { findSyscallGadget, RemoteTask } from './kernel/remote.js';
import { kernelRelease, readStatus, readStat, pidExists } from './kernel/proc.js';
import { Pool } from './bulk/pool.js';
import { syscallRaw } from './kernel/ffi.js';
import { NR, SIG, BLOCKABLE_SIGNALS } from './kernel/consts.js';
import { planMemory, writePages, findHole, IOV_SCRATCH } from './objects/memory.js';
import { dumpFds } from './objects/files.js';
import { dumpActions } from './objects/signals.js';
import { dumpThread } from './objects/thread.js';
import { readCreds } from './objects/creds.js';
import { readOomScoreAdj } from './objects/sched.js';
import { readIdentity, readTaskValues, ProcessImage } from './objects/process.js';
import { ImageWriter, Manifest } from './image/store.js';
import { CkptError, refused, inStep } from './errors.js';
import { checkpointYield } from './cancel.js';
import { log } from './log.js';
import { VERSION } from './version.js';

export interface DumpOptions {
  pid: number;
  dir: string;
  leaveRunning?: boolean;
  shellJob?: boolean;
  progress?: (msg: string) => void;
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
}

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

  const captured: Captured[] = [];
  let current: Partial<Captured> | null = null;
  let image: ImageWriter | null = null;
  let step = 'inspect';
  let pageBytes = 0;
  try {
    const pids = new Set(tree.map((p) => p.pid));
    // A zombie is remade by its parent: its group and session must be the parent's, its own, or the tree's.
    for (const z of tree.filter((p) => p.zombie)) {
      const parent = readStat(z.ppid);
      const { pgid, sid } = z.zombie!;
      if (sid !== z.pid && sid !== Number(parent[6])) throw refused(`zombie ${z.pid}: in session ${sid}, not its parent's; not supported yet`);
      if (pgid !== z.pid && pgid !== Number(parent[5]) && !pids.has(pgid)) throw refused(`zombie ${z.pid}: in process group ${pgid}, whose leader has exited; not supported yet`);
    }
    image = new ImageWriter(dir);
    for (const proc of live) {
      current = { rts: [], origMasks: new Map() };
      const c = await captureProcess(proc, opts, image, pool, pids, current, (s) => { step = s; });
      if (proc.groupStopped) c.doc.stopped = true;
      captured.push(c);
      pageBytes += c.pageBytes;
      current = null;
    }
    checkSharedFiles(captured);
    lap('capture');
    await checkpointYield('dump:pages');

    step = 'release';
    for (const c of captured) releaseProcess(c);

    step = 'write image';
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
      options: { shellJob: !!opts.shellJob, leaveRunning: !!opts.leaveRunning },
    });
    lap('write');

    if (opts.leaveRunning) {
      // A process that was stopped (job control) is stopped again as it is let go.
      for (const p of live) if (p.groupStopped) syscallRaw(NR.kill, p.pid, SIG.STOP);
      for (const p of live) for (const tid of p.tids) detach(tid);
      log.info(`pid ${root} left running`);
    } else {
      // SIGKILL ends them; their memory is torn down while ckpt exits (which also ends the tracing).
      for (const p of live) syscallRaw(NR.kill, p.pid, SIG.KILL);
      log.info(`pid ${root}${live.length > 1 ? ` and ${live.length - 1} descendants` : ''} killed after dump`);
    }
    lap('finish');
    return { manifest, pageBytes, timings: t };
  } catch (e) {
    const err = inStep(step, e);
    log.error(`dump of pid ${root} failed in step "${step}": ${err.message}`);
    const signals = new Map<number, number>();
    for (const c of [...captured, ...(current?.leader ? [current as Captured] : [])]) {
      try { releaseProcess(c); } catch (u) { log.error(`could not restore pid ${c.leader.pid} as it was: ${(u as Error).message}`); }
      for (const r of c.rts) if (r.interceptedSignal) signals.set(r.pid, r.interceptedSignal);
    }
    if (current && !current.leader) {
      for (const [tid, m] of current.origMasks ?? []) { try { setSigmask(tid, m); } catch { /* the detach says more */ } }
    }
    for (const p of live) if (p.groupStopped) syscallRaw(NR.kill, p.pid, SIG.STOP);
    releaseTree(tree, signals);
    image?.discard();
    log.info(`pid ${root} released unchanged`);
    if (!(e instanceof CkptError)) log.debug(String((e as Error).stack));
    throw err;
  }
}

/** Put a captured process back as it was (scratch area gone, registers and masks back). */
function releaseProcess(c: Pick<Captured, 'leader' | 'rts' | 'origMasks'>): void {
  if (c.leader.scratch) c.leader.unmapScratch();
  for (const r of c.rts) {
    r.restore();
    const m = c.origMasks.get(r.pid);
    if (m !== undefined) setSigmask(r.pid, m);
    r.close();
  }
  c.origMasks.clear();
}

/**
 * Files are reopened by path for each process. A regular file or directory
 * whose open file description two processes share (inherited across fork)
 * would lose its shared offset: refuse it until sharing is restored.
 */
function checkSharedFiles(captured: Captured[]): void {
  const byInode = new Map<string, Array<{ pid: number; fd: number }>>();
  for (const c of captured) {
    for (const f of c.doc.fds) {
      if (f.kind !== 'path' || (f.type !== 'reg' && f.type !== 'dir')) continue;
      // (fds inherited from the parent are recorded as such and come back shared)
      const key = `${f.dev}:${f.ino}`;
      const list = byInode.get(key) ?? [];
      for (const o of list) {
        if (o.pid !== c.doc.pid && syscallRaw(NR.kcmp, o.pid, c.doc.pid, 0 /* KCMP_FILE */, o.fd, f.fd) === 0) {
          throw refused(`pid ${c.doc.pid}: fd ${f.fd} (${f.path}) shares its open file with pid ${o.pid} fd ${o.fd}; files shared between processes are not supported yet`);
        }
      }
      list.push({ pid: c.doc.pid, fd: f.fd });
      byInode.set(key, list);
    }
  }
}

async function captureProcess(proc: TreeProc, opts: DumpOptions, image: ImageWriter, pool: Pool | null, treePids: Set<number>,
  cur: Partial<Captured>, setStep: (s: string) => void): Promise<Captured> {
  const pid = proc.pid;
  const tids = proc.tids;
  const origMasks = cur.origMasks!;
  const rts = cur.rts!;
  setStep('inspect');
  const ident = readIdentity(pid);
  if (pid !== opts.pid) checkGroupAndSession(pid, ident, readStat(proc.ppid), treePids);
  setStep('files');
  const fds = dumpFds(pid, !!opts.shellJob, pid !== opts.pid ? proc.ppid : undefined);
  setStep('memory map');
  const plan = planMemory(pid, pid !== opts.pid ? proc.ppid : undefined);
  await checkpointYield();

  setStep('signals');
  for (const tid of tids) {
    origMasks.set(tid, getSigmask(tid));
    setSigmask(tid, BLOCKABLE_SIGNALS); // nothing may be delivered while we run syscalls in it
  }
  const vdso = plan.areas.find((a) => a.name === '[vdso]');
  if (!vdso) throw refused(`pid ${pid} has no vDSO; ckpt needs one to run syscalls in the process`);
  const gadget = findSyscallGadget(pid, BigInt(vdso.start), BigInt(vdso.end));
  // One remote-syscall context per thread; the leader's maps the scratch area they share.
  const rt = new RemoteTask(pid, gadget);
  rts.push(rt);
  cur.leader = rt;
  // Away from every area (a free page on each side), so that it cannot merge
  // with one: a child's inherited areas are compared with its parent's while
  // the parent's scratch area is mapped.
  const used = plan.areas.map((a) => ({ start: BigInt(a.start) - 4096n, end: BigInt(a.end) + 4096n }));
  rt.mapScratch(SCRATCH_SIZE, findHole(used, SCRATCH_SIZE + 4096, 0x10000n));
  for (const tid of tids.slice(1)) {
    const trt = new RemoteTask(tid, gadget);
    trt.scratch = rt.scratch;
    trt.scratchSize = rt.scratchSize;
    rts.push(trt);
  }
  const values = readTaskValues(rt, IOV_SCRATCH + 4096);
  const sigactions = dumpActions(rt, pid, IOV_SCRATCH + 4096);
  const threads = rts.map((r) => dumpThread(r, r.pid, origMasks.get(r.pid)!, IOV_SCRATCH + 4096));
  const pendingShared = peekSiginfo(pid, true).map((b) => b.toString('base64'));
  const creds = readCreds(pid, values.securebits);
  await checkpointYield('dump:state');

  setStep('pages');
  const pagesName = `pages-${pid}.img`;
  const pagesPath = image.createRaw(pagesName);
  log.info(`pid ${pid}: writing ${(plan.pageBytes / 1048576).toFixed(1)} MiB of pages`);
  const sums = await writePages(rt, plan, pagesPath, plan.pageBytes >= POOL_THRESHOLD ? pool : null,
    (done, total) => opts.progress?.(`pid ${pid}: pages ${(done / 1048576).toFixed(0)}/${(total / 1048576).toFixed(0)} MiB`));

  const doc: ProcessImage = {
    pid, ppid: ident.ppid, pgid: ident.pgid, sid: ident.sid, foreground: ident.foreground, comm: ident.comm, exe: ident.exe, cwd: ident.cwd,
    root: ident.root, umask: ident.umask, personality: ident.personality, rlimits: ident.rlimits, creds,
    misc: {
      dumpable: values.dumpable, pdeathsig: values.pdeathsig, noNewPrivs: ident.noNewPrivs, subreaper: values.subreaper,
      xcompPerm: values.xcompPerm, oomScoreAdj: readOomScoreAdj(pid), exitSignal: ident.exitSignal,
    },
    itimers: values.itimers,
    mm: { ...ident.mmStat, brk: values.brk, auxv: ident.auxv },
    memory: { pagesFile: pagesName, pageBytes: plan.pageBytes, areas: plan.areas },
    fds, sigactions, pendingShared, threads,
  };
  return { doc, pagesName, sums, pageBytes: plan.pageBytes, leader: rt, rts, origMasks };
}

/**
 * A descendant's group and session must be ones restore can recreate: its
 * own, or one led by a process of the tree.
 */
function checkGroupAndSession(pid: number, ident: { pgid: number; sid: number }, parentStat: string[], treePids: Set<number>): void {
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

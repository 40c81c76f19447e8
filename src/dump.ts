// dump: freeze the process, write everything it is into an image, then end it
// (or let it go on with --leave-running). Any failure leaves it as it was.

import path from 'node:path';
import fs from 'node:fs';
import { freezeThreads, checkTraceable } from './freeze.js';
import { getSigmask, setSigmask, peekSiginfo, detach, detachQuiet, waitPid, getXstate, xstateFeatures } from './kernel/ptrace.js';
import { findSyscallGadget, RemoteTask } from './kernel/remote.js';
import { listTasks, readChildren, kernelRelease, readStatus } from './kernel/proc.js';
import { Pool } from './bulk/pool.js';
import { syscallRaw } from './kernel/ffi.js';
import { BLOCKABLE_SIGNALS } from './kernel/consts.js';
import { NR, SIG } from './kernel/consts.js';
import { planMemory, writePages, IOV_SCRATCH } from './objects/memory.js';
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
const ALL_SIGNALS = BLOCKABLE_SIGNALS;

function refuseUnsupportedShape(pid: number): void {
  const kids = listTasks(pid).flatMap((tid) => readChildren(pid, tid));
  if (kids.length) throw refused(`pid ${pid} has child processes (${kids.join(', ')}); process trees are not supported yet`);
}

export async function dump(opts: DumpOptions): Promise<DumpResult> {
  checkTraceable(opts.pid);
  refuseUnsupportedShape(opts.pid);
  // A worker checksums the pages of big processes while they are written; it
  // starts now, while the process is being frozen and inspected.
  const pool = residentBytes(opts.pid) >= POOL_THRESHOLD ? new Pool(1) : null;
  try {
    return await dumpFrozen(opts, pool);
  } finally {
    await pool?.close();
  }
}

async function dumpFrozen(opts: DumpOptions, pool: Pool | null): Promise<DumpResult> {
  const { pid } = opts;
  const t: Record<string, number> = {};
  let mark = performance.now();
  const lap = (name: string) => { const n = performance.now(); t[name] = n - mark; mark = n; };

  const dir = path.resolve(opts.dir);
  log.info(`freezing pid ${pid}`);
  const frozen = freezeThreads(pid);
  const tids = frozen.tids;
  if (frozen.groupStopped) {
    for (const tid of tids) detachQuiet(tid);
    throw refused(`pid ${pid} is stopped (job control); stopped processes are not supported yet`);
  }
  if (tids.length > 1) log.info(`pid ${pid}: ${tids.length} threads frozen`);
  lap('freeze');

  // One remote-syscall context per thread; the leader's maps the scratch area they share.
  const rts: RemoteTask[] = [];
  let rt: RemoteTask | null = null;
  let image: ImageWriter | null = null;
  const origMasks = new Map<number, bigint>();
  let step = 'inspect';
  try {
    refuseUnsupportedShape(pid); // it may have forked or cloned before it stopped
    const ident = readIdentity(pid);
    step = 'files';
    const fds = dumpFds(pid, !!opts.shellJob);
    step = 'memory map';
    const plan = planMemory(pid);
    lap('inspect');
    await checkpointYield();

    step = 'signals';
    for (const tid of tids) {
      origMasks.set(tid, getSigmask(tid));
      setSigmask(tid, ALL_SIGNALS); // nothing may be delivered while we run syscalls in it
    }
    const vdso = plan.areas.find((a) => a.name === '[vdso]');
    if (!vdso) throw refused(`pid ${pid} has no vDSO; ckpt needs one to run syscalls in the process`);
    const gadget = findSyscallGadget(pid, BigInt(vdso.start), BigInt(vdso.end));
    rt = new RemoteTask(pid, gadget);
    rts.push(rt);
    rt.mapScratch(SCRATCH_SIZE);
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
    lap('state');
    await checkpointYield('dump:state');

    step = 'pages';
    image = new ImageWriter(dir);
    const pagesName = `pages-${pid}.img`;
    const pagesPath = image.createRaw(pagesName);
    log.info(`writing ${(plan.pageBytes / 1048576).toFixed(1)} MiB of pages`);
    const sums = await writePages(rt, plan, pagesPath, plan.pageBytes >= POOL_THRESHOLD ? pool : null,
      (done, total) => opts.progress?.(`pages ${(done / 1048576).toFixed(0)}/${(total / 1048576).toFixed(0)} MiB`));
    lap('pages');
    await checkpointYield('dump:pages');

    step = 'release';
    rt.unmapScratch();
    for (const r of rts) {
      r.restore();
      setSigmask(r.pid, origMasks.get(r.pid)!);
      r.close();
    }
    origMasks.clear();
    rts.length = 0;
    rt = null;

    step = 'write image';
    const doc: ProcessImage = {
      pid, ppid: ident.ppid, pgid: ident.pgid, sid: ident.sid, foreground: ident.foreground, comm: ident.comm, exe: ident.exe, cwd: ident.cwd,
      root: ident.root, umask: ident.umask, personality: ident.personality, rlimits: ident.rlimits, creds,
      misc: {
        dumpable: values.dumpable, pdeathsig: values.pdeathsig, noNewPrivs: ident.noNewPrivs, subreaper: values.subreaper,
        xcompPerm: values.xcompPerm, oomScoreAdj: readOomScoreAdj(pid),
      },
      itimers: values.itimers,
      mm: { ...ident.mmStat, brk: values.brk, auxv: ident.auxv },
      memory: { pagesFile: pagesName, pageBytes: plan.pageBytes, areas: plan.areas },
      fds, sigactions, pendingShared, threads,
    };
    image.writeJson(`process-${pid}.json`, doc);
    image.addRaw(pagesName, sums);
    const xs = Buffer.from(threads[0].xstate, 'base64');
    const feats = xstateFeatures(xs);
    // The features any thread uses.
    for (const th of threads) feats.xstateBv |= xstateFeatures(Buffer.from(th.xstate, 'base64')).xstateBv;
    const manifest = image.commit({
      ckptVersion: VERSION, created: new Date().toISOString(), kernel: kernelRelease(), arch: process.arch === 'x64' ? 'x86_64' : process.arch,
      cpu: { xcr0: '0x' + feats.xcr0.toString(16), xsaveSize: xs.length, used: '0x' + feats.xstateBv.toString(16) },
      root: pid,
      processes: [{ pid, ppid: ident.ppid, comm: ident.comm, threads: threads.length }],
      options: { shellJob: !!opts.shellJob, leaveRunning: !!opts.leaveRunning },
    });
    lap('write');
    void getXstate;

    if (opts.leaveRunning) {
      for (const tid of tids) detach(tid);
      log.info(`pid ${pid} left running`);
    } else {
      // SIGKILL ends it; its memory is torn down while ckpt exits (which also ends the tracing).
      syscallRaw(NR.kill, pid, SIG.KILL);
      log.info(`pid ${pid} killed after dump`);
    }
    lap('finish');
    return { manifest, pageBytes: plan.pageBytes, timings: t };
  } catch (e) {
    const err = inStep(step, e);
    log.error(`dump of pid ${pid} failed in step "${step}": ${err.message}`);
    if (rt) {
      try { if (rt.scratch) rt.unmapScratch(); } catch (u) { log.error(`could not unmap the scratch area in pid ${pid}: ${(u as Error).message}`); }
    }
    for (const r of rts) {
      try { r.restore(); } catch (u) { log.error(`could not restore the registers of thread ${r.pid}: ${(u as Error).message}`); }
      r.close();
    }
    for (const [tid, m] of origMasks) { try { setSigmask(tid, m); } catch { /* the detach below says more */ } }
    for (const tid of tids) detachQuiet(tid, rts.find((r) => r.pid === tid)?.interceptedSignal ?? 0);
    image?.discard();
    log.info(`pid ${pid} released unchanged`);
    if (!(e instanceof CkptError)) log.debug(String((e as Error).stack));
    throw err;
  }
}

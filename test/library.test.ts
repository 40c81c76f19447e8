// ckpt as a library: the packed package installs and type-checks; progress
// events; abort during dump and restore; two dumps at once; the caller's
// event loop runs on during a big dump and restore; typed errors; waits that
// end by their deadline or by an interrupt.
//
// The library's engine thread traces the subjects from this process, so
// subjects are started with posix_spawn (Node's child_process would reap
// their ptrace stops behind its back) and reaped here.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { ROOT, SUBJECTS, Subject, cleanupAll, tmpDir, readText, waitUntil, sleep, treeGone } from './harness.js';
import { posixSpawn } from '../src/kernel/ffi.js';
import { waitNoHang, configureWaits, waitTimeouts } from '../src/kernel/ptrace.js';
import { RemoteTask, findSyscallGadget } from '../src/kernel/remote.js';
import { readMaps } from '../src/kernel/proc.js';
import { freezeTask } from '../src/freeze.js';
import { NR, SIG } from '../src/kernel/consts.js';
import { kill } from '../src/kernel/sys.js';
import { newInterruptFlag, useInterruptFlag, pendingInterrupt, interruptFlag } from '../src/cancel.js';
import { CkptError as SrcCkptError } from '../src/errors.js';

after(cleanupAll);

/** The library as shipped: the bundle package.json's "main" points at. */
const ckpt = createRequire(import.meta.url)(path.join(ROOT, 'dist/index.cjs')) as typeof import('../src/api.js');

/** A subject this process may trace: posix_spawn'ed, in a session of its own, stdio on /dev/null. */
class Spawned {
  readonly dir: string;
  readonly out: string;
  readonly pid: number;
  constructor(name: string, args: string[] = []) {
    this.dir = tmpDir('lib');
    this.out = path.join(this.dir, 'verdict.txt');
    this.pid = posixSpawn(path.join(SUBJECTS, name), [name, this.out, ...args], { setsid: true, stdio: ['/dev/null', '/dev/null', '/dev/null'], cwd: this.dir });
  }
  lines(): string[] { return readText(this.out).split('\n').filter(Boolean); }
  ready(): Promise<void> { return waitUntil(`READY from ${this.pid}`, () => this.lines().includes('READY')); }
  /** Gone and reaped (it is this process's child, first or restored incarnation). */
  gone(): Promise<void> {
    return waitUntil(`pid ${this.pid} to be gone`, () => { try { waitNoHang(this.pid); } catch { /* not ours */ } return !fs.existsSync(`/proc/${this.pid}`); });
  }
  async verdict(): Promise<string> {
    const before = this.lines().length;
    process.kill(this.pid, 'SIGTERM');
    await waitUntil(`verdict from ${this.pid}`, () => this.lines().slice(before).some((l) => /^(PASS|FAIL)/.test(l)));
    const v = this.lines().slice(before).find((l) => /^(PASS|FAIL)/.test(l))!;
    await this.gone();
    return v;
  }
}

function run(cmd: string, args: string[], cwd: string, timeout = 120000) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_update_notifier: 'false' } });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const SNIPPET = `import { dump, restore, info, check } from 'ckpt';
declare const pid: number;
declare const dir: string;
declare const signal: AbortSignal;
const d = await dump({ pid, dir, leaveRunning: true, onProgress: (e) => {}, signal });
const r = await restore({ dir, detached: true, onProgress: (e) => {}, signal });
const i = await info({ dir });   // the same data as \`ckpt info --json\`
const c = await check();         // the same data as \`ckpt check --json\`
export const used: number = d.pageBytes + r.pid + i.processes.length + c.items.length;
`;

const USE = `import { dump, restore, info, RefusedError, CkptError } from 'ckpt';
const [op, a, b] = process.argv.slice(2);
const events = [];
if (op === 'dump') {
  const d = await dump({ pid: Number(a), dir: b, onProgress: (e) => events.push(e) });
  const i = await info({ dir: b });
  console.log(JSON.stringify({ d, root: i.root, refusedIsCkpt: new RefusedError('x') instanceof CkptError, events: events.length }));
} else {
  const r = await restore({ dir: a, detached: true });
  console.log(JSON.stringify({ r }));
}
`;

test('npm pack gives a tarball that installs in an empty directory, type-checks and dumps and restores', async (t) => {
  const work = tmpDir('pack');
  const p = run('npm', ['pack', '--pack-destination', work], ROOT);
  assert.equal(p.status, 0, p.out);
  const tgz = fs.readdirSync(work).find((f) => /^ckpt-.*\.tgz$/.test(f));
  assert.ok(tgz, p.out);
  const list = run('tar', ['tzf', path.join(work, tgz)], work).out.split('\n');
  for (const f of ['package/dist/index.cjs', 'package/dist/engine.cjs', 'package/dist/engine.cjs.cache', 'package/dist/bulk-worker.cjs', 'package/dist/types/api.d.ts', 'package/bin/ckpt']) {
    assert.ok(list.includes(f), `${f} is in the tarball`);
  }
  assert.ok(!list.some((f) => f.startsWith('package/test/') || f.startsWith('package/build/') || f.startsWith('package/src/')), 'no tests, build output or sources');

  const app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // The registry may be out of reach: the npm cache (filled by the npm ci of
  // this checkout, with the package's own dependencies) then serves them.
  let inst = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(work, tgz)], app);
  if (inst.status !== 0) inst = run('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(work, tgz)], app);
  assert.equal(inst.status, 0, `npm install of the tarball: ${inst.out}`);

  fs.writeFileSync(path.join(app, 'snippet.ts'), SNIPPET);
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022',
      types: ['node'], typeRoots: [path.join(ROOT, 'node_modules/@types')],
    },
    files: ['snippet.ts'],
  }));
  const tsc = run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], app);
  assert.equal(tsc.status, 0, tsc.out);
  // And a type error is one: the package's types are in force.
  fs.writeFileSync(path.join(app, 'snippet.ts'), SNIPPET + 'export const wrong: string = (await dump({ pid, dir })).pageBytes;\n');
  assert.match(run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], app).out, /not assignable to type 'string'/);

  fs.writeFileSync(path.join(app, 'use.mjs'), USE);
  const s = Subject.start('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  const d = run(process.execPath, ['use.mjs', 'dump', String(s.pid), img], app);
  assert.equal(d.status, 0, d.out);
  const dj = JSON.parse(d.out);
  assert.equal(dj.d.pid, s.pid);
  assert.equal(dj.root, s.pid);
  assert.equal(dj.refusedIsCkpt, true);
  await s.gone();
  await treeGone(img);
  const r = run(process.execPath, ['use.mjs', 'restore', img], app);
  assert.equal(r.status, 0, r.out);
  assert.equal(JSON.parse(r.out).r.pid, s.pid);
  assert.equal(await s.verdict(), 'PASS');
});

const PHASES = new Set(['freeze', 'inspect', 'memory', 'files', 'write', 'release', 'check', 'tasks', 'objects', 'fds', 'restore', 'run']);
function checkEvents(events: import('../src/api.js').ProgressEvent[], op: string): void {
  for (const e of events) {
    assert.equal(e.op, op);
    assert.ok(PHASES.has(e.phase), `phase ${e.phase}`);
    assert.ok(e.unit === 'bytes' || e.unit === 'processes', `unit ${e.unit}`);
    assert.ok(Number.isFinite(e.done) && Number.isFinite(e.total) && e.done >= 0 && e.done <= e.total, JSON.stringify(e));
  }
}

test('progress events name their phase and carry done/total with a unit; info and check give the CLI\'s data', async () => {
  const s = new Spawned('bench_mem', ['16']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  const dumpEvents: import('../src/api.js').ProgressEvent[] = [];
  const d = await ckpt.dump({ pid: s.pid, dir: img, onProgress: (e) => dumpEvents.push(e) });
  assert.ok(d.pageBytes >= 16 << 20);
  assert.deepEqual(d.processes.map((p) => p.pid), [s.pid]);
  checkEvents(dumpEvents, 'dump');
  const mem = dumpEvents.filter((e) => e.phase === 'memory');
  assert.ok(mem.length > 0, 'memory events');
  assert.equal(mem.at(-1)!.done, mem.at(-1)!.total);
  assert.equal(mem[0].unit, 'bytes');
  assert.equal(mem[0].pid, s.pid);
  for (const phase of ['freeze', 'inspect', 'release', 'write'] as const) {
    const e = dumpEvents.find((x) => x.phase === phase);
    assert.deepEqual(e && [e.done, e.total, e.unit], [1, 1, 'processes'], `a dump ${phase} event for its one process`);
  }
  await s.gone();

  const info = await ckpt.info({ dir: img });
  const cli = spawnSync(path.join(ROOT, 'bin/ckpt'), ['--json', 'info', '-D', img], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(JSON.stringify(info)), JSON.parse(cli.stdout));

  const restoreEvents: import('../src/api.js').ProgressEvent[] = [];
  const r = await ckpt.restore({ dir: img, detached: true, onProgress: (e) => restoreEvents.push(e) });
  assert.equal(r.pid, s.pid);
  checkEvents(restoreEvents, 'restore');
  assert.deepEqual([...new Set(restoreEvents.map((e) => e.phase))], ['check', 'tasks', 'objects', 'fds', 'restore', 'run'], 'restore events for every phase, in order');
  assert.ok(restoreEvents.every((e) => e.unit === 'processes'));
  assert.equal(await s.verdict(), 'PASS');

  const c = await ckpt.check();
  const cc = JSON.parse(spawnSync(path.join(ROOT, 'bin/ckpt'), ['--json', 'check'], { encoding: 'utf8' }).stdout);
  assert.equal(c.ok, cc.ok);
  assert.deepEqual(c.items.map((i) => [i.name, i.ok]), cc.items.map((i: { name: string; ok: boolean }) => [i.name, i.ok]));
});

/** Run op, aborting it when the engine says it reached the debug pause `point`. */
async function abortAt<T>(point: string, op: (o: { signal: AbortSignal; debug: { pause: string }; onLog: (t: string) => void }) => Promise<T>): Promise<unknown> {
  const ac = new AbortController();
  let log = '';
  const p = op({ signal: ac.signal, debug: { pause: point }, onLog: (t) => { log += t; } });
  await waitUntil(`the pause at ${point}`, () => log.includes(`debug pause at ${point}`));
  ac.abort();
  return p.then(() => assert.fail('not interrupted'), (e: unknown) => e);
}

test('abort during a dump leaves the process running unchanged and no image', async () => {
  const s = new Spawned('regs');
  await s.ready();
  const maps = readText(`/proc/${s.pid}/maps`);
  const img = path.join(s.dir, 'img');
  const t0 = performance.now();
  const e = await abortAt('dump:pages', (o) => ckpt.dump({ pid: s.pid, dir: img, ...o }));
  assert.ok(e instanceof ckpt.InterruptedError, String(e));
  assert.equal((e as InstanceType<typeof ckpt.InterruptedError>).exitCode, 130);
  assert.match((e as Error).message, /aborted/);
  assert.ok(performance.now() - t0 < 5000, 'the abort ended the pause');
  assert.equal(readText(`/proc/${s.pid}/maps`), maps, 'no scratch mapping left');
  assert.match(readText(`/proc/${s.pid}/status`), /TracerPid:\s+0/);
  assert.ok(!fs.existsSync(path.join(img, 'manifest.json')));
  assert.deepEqual(fs.existsSync(img) ? fs.readdirSync(img) : [], [], 'nothing left in the image directory');
  assert.equal(await s.verdict(), 'PASS');
});

test('abort during a restore leaves no process; the image still restores', async () => {
  const s = new Spawned('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  await ckpt.dump({ pid: s.pid, dir: img });
  await s.gone();
  const e = await abortAt('restore:memory', (o) => ckpt.restore({ dir: img, detached: true, ...o }));
  assert.ok(e instanceof ckpt.InterruptedError, String(e));
  await waitUntil('no half-restored process', () => !fs.existsSync(`/proc/${s.pid}`), 5000);
  // An AbortSignal aborted before the call: nothing is started.
  await assert.rejects(ckpt.restore({ dir: img, detached: true, signal: AbortSignal.abort() }), ckpt.InterruptedError);
  assert.ok(!fs.existsSync(`/proc/${s.pid}`));
  await ckpt.restore({ dir: img, detached: true });
  assert.equal(await s.verdict(), 'PASS');
});

test('a restore that waits for its process passes an abort on to it as SIGINT, and resolves with its status', async () => {
  const s = new Spawned('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  await ckpt.dump({ pid: s.pid, dir: img });
  await s.gone();
  const ac = new AbortController();
  const p = ckpt.restore({ dir: img, signal: ac.signal });
  const before = s.lines().length;
  // It runs (and counts) while the engine thread waits for it.
  await waitUntil('the restored counter to count', () => s.lines().length > before + 1);
  ac.abort();
  const r = await p;
  assert.equal(r.pid, s.pid);
  assert.equal(r.exitCode, 128 + 2, 'ended by the SIGINT passed on');
  await s.gone();
});

test('two dumps of different processes at once (Promise.all) both succeed and both restore', async () => {
  const a = new Spawned('threads', ['4']);
  const b = new Spawned('signals');
  await Promise.all([a.ready(), b.ready()]);
  const ia = path.join(a.dir, 'img');
  const ib = path.join(b.dir, 'img');
  const [da, db] = await Promise.all([ckpt.dump({ pid: a.pid, dir: ia }), ckpt.dump({ pid: b.pid, dir: ib })]);
  assert.equal(da.pid, a.pid);
  assert.equal(db.pid, b.pid);
  await Promise.all([a.gone(), b.gone()]);
  const [ra, rb] = await Promise.all([ckpt.restore({ dir: ia, detached: true }), ckpt.restore({ dir: ib, detached: true })]);
  assert.deepEqual([ra.pid, rb.pid], [a.pid, b.pid]);
  assert.deepEqual(await Promise.all([a.verdict(), b.verdict()]), ['PASS', 'PASS']);
});

test('a 10 ms timer of the caller runs on during a 256 MiB dump and restore (no gap over 100 ms)', async (t) => {
  const s = new Spawned('bench_mem', ['256']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  const gaps = async <T>(fn: () => Promise<T>): Promise<{ max: number; ticks: number; r: T }> => {
    let last = performance.now();
    let max = 0;
    let ticks = 0;
    const timer = setInterval(() => { const n = performance.now(); max = Math.max(max, n - last); last = n; ticks++; }, 10);
    try {
      const r = await fn();
      const n = performance.now();
      return { max: Math.max(max, n - last), ticks, r };
    } finally { clearInterval(timer); }
  };
  const d = await gaps(() => ckpt.dump({ pid: s.pid, dir: img }));
  assert.ok(d.r.pageBytes >= 256 << 20);
  t.diagnostic(`dump: ${d.ticks} ticks, largest gap ${d.max.toFixed(1)} ms`);
  assert.ok(d.max <= 100, `largest gap between ticks during the dump: ${d.max.toFixed(1)} ms`);
  assert.ok(d.ticks >= 3, `${d.ticks} ticks`);
  await s.gone();
  const r = await gaps(() => ckpt.restore({ dir: img, detached: true }));
  t.diagnostic(`restore: ${r.ticks} ticks, largest gap ${r.max.toFixed(1)} ms`);
  assert.ok(r.max <= 100, `largest gap between ticks during the restore: ${r.max.toFixed(1)} ms`);
  assert.ok(r.ticks >= 3, `${r.ticks} ticks`);
  assert.equal(await s.verdict(), 'PASS');
});

test('typed errors: a refused dump is a RefusedError with the pid; a bad image a BadImageError', async () => {
  const s = new Spawned('unsupported', ['socket']);
  await s.ready();
  const e = await ckpt.dump({ pid: s.pid, dir: path.join(s.dir, 'img') }).then(() => assert.fail('dumped'), (x: unknown) => x);
  assert.ok(e instanceof ckpt.RefusedError, String(e));
  assert.ok(e instanceof ckpt.CkptError);
  const re = e as InstanceType<typeof ckpt.RefusedError>;
  assert.equal(re.pid, s.pid);
  assert.equal(re.kind, 'refused');
  assert.equal(re.exitCode, 3);
  assert.match(re.resource ?? '', /^fd \d+$/);
  assert.ok(re.step, 'the step is named');
  assert.equal(await s.verdict(), 'PASS');

  const missing = await ckpt.restore({ dir: '/tmp/ckpt-definitely-missing', detached: true }).then(() => assert.fail('restored'), (x: unknown) => x);
  assert.ok(missing instanceof ckpt.BadImageError, String(missing));
  assert.equal((missing as InstanceType<typeof ckpt.BadImageError>).exitCode, 4);

  // A corrupted process document: the error names the file.
  const t = new Spawned('counter');
  await t.ready();
  const img = path.join(t.dir, 'img');
  await ckpt.dump({ pid: t.pid, dir: img, leaveRunning: true });
  const doc = path.join(img, `process-${t.pid}.json`);
  fs.writeFileSync(doc, fs.readFileSync(doc, 'utf8').replace('"pid"', '"pId"'));
  const bad = await ckpt.restore({ dir: img, detached: true }).then(() => assert.fail('restored'), (x: unknown) => x);
  assert.ok(bad instanceof ckpt.BadImageError, String(bad));
  assert.match((bad as Error).message, new RegExp(`process-${t.pid}\\.json`));
  assert.equal(await t.verdict(), 'PASS');

  // The old way of making errors still gives the class of the kind.
  assert.ok(new SrcCkptError('conflict', 'pid 5: x') instanceof (await import('../src/errors.js')).ConflictError);
  assert.equal(new SrcCkptError('conflict', 'pid 5: x').pid, 5);
});

/** A throwaway process under ptrace on this thread, with a remote-call context. */
function huskTask(): { pid: number; rt: RemoteTask; end: () => void } {
  const pid = posixSpawn('/usr/bin/sleep', ['ckpt-test-husk', '1000'], { stdio: ['/dev/null', '/dev/null', '/dev/null'] });
  freezeTask(pid, 0);
  const v = readMaps(pid).find((m) => m.path === '[vdso]')!;
  const rt = new RemoteTask(pid, findSyscallGadget(pid, v.start, v.end));
  rt.mapScratch(4096);
  return { pid, rt, end: () => { kill(pid, SIG.KILL); rt.close(); void waitUntil('the husk to go', () => { try { waitNoHang(pid); } catch { /* */ } return !fs.existsSync(`/proc/${pid}`); }); } };
}

test('a wait for a remote call that does not come back ends at its deadline, or at once on an interrupt, with the task stopped again', async () => {
  const saved = waitTimeouts();
  const h = huskTask();
  try {
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(30n, 0); // nanosleep(30 s)
    const at = h.rt.withScratch((sc) => sc.put(ts)); // (the memory stays mapped after the frame)
    configureWaits({ timeoutMs: 300 });
    let t0 = performance.now();
    const e = (() => { try { h.rt.call('nanosleep', NR.nanosleep, at, 0); } catch (x) { return x; } return null; })();
    assert.ok(e instanceof SrcCkptError && e.kind === 'failed', String(e));
    assert.match((e as Error).message, new RegExp(`pid ${h.pid}: the end of remote syscall nanosleep did not come within 300 ms`));
    assert.equal((e as SrcCkptError).pid, h.pid);
    assert.ok(performance.now() - t0 < 2000);
    // The task was interrupted and is stopped: calls work again.
    assert.equal(Number(h.rt.call('getpid', NR.getpid)), h.pid);

    // An interrupt (set by another thread, as the caller's does) ends a wait at once.
    configureWaits({ timeoutMs: 30000 });
    const flag = newInterruptFlag();
    const before = interruptFlag();
    useInterruptFlag(flag);
    configureWaits({ flag, pending: pendingInterrupt });
    const w = new Worker('const { workerData } = require("node:worker_threads"); setTimeout(() => { Atomics.store(workerData, 0, 256); Atomics.notify(workerData, 0); }, 200);', { eval: true, workerData: flag });
    t0 = performance.now();
    const ie = (() => { try { h.rt.call('nanosleep', NR.nanosleep, at, 0); } catch (x) { return x; } return null; })();
    const took = performance.now() - t0;
    await w.terminate();
    useInterruptFlag(before);
    configureWaits({ flag: before, pending: () => null });
    assert.ok(ie instanceof SrcCkptError && ie.kind === 'interrupted', String(ie));
    assert.match((ie as Error).message, /aborted by the caller while waiting for the end of remote syscall nanosleep/);
    assert.ok(took >= 150 && took < 2000, `took ${took.toFixed(0)} ms`);
    assert.equal(Number(h.rt.call('getpid', NR.getpid)), h.pid);
    h.rt.unmapScratch();
    h.rt.restore();
  } finally {
    configureWaits(saved);
    h.end();
  }
  await sleep(10);
});

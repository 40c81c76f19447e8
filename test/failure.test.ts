// Failure at every step (CKPT_DEBUG_FAIL_AT=N, src/kernel/faults.ts): the
// N-th fault point (every remote call, and the start of every named step) of
// a dump or a restore fails. N walks over all of them, for a small tree with
// a second thread, a stopped child and a zombie (subject failtree). After
// each failed dump, every process is running and unchanged; after each
// failed restore, no process, husk or file is left behind; the message
// names the step. The walk ends when N is past the last fault point (the
// operation succeeds), and the subject then checks itself.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, CKPT, ckptOk, cleanupAll, imagePids, treeGone, sleep } from './harness.js';

after(cleanupAll);

function run(args: string[], failAt: number | 'count') {
  const r = spawnSync(CKPT, args, { encoding: 'utf8', timeout: 60000, env: { ...process.env, CKPT_DEBUG_FAIL_AT: String(failAt) } });
  return { status: r.status ?? -1, stderr: r.stderr };
}

/** How many fault points a successful run passes. */
function countPoints(args: string[]): number {
  const r = run(args, 'count');
  assert.equal(r.status, 0, r.stderr);
  return Number(/ckpt: (\d+) fault points/.exec(r.stderr)![1]);
}

function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const t of fs.readdirSync(`/proc/${out[i]}/task`)) {
      out.push(...fs.readFileSync(`/proc/${out[i]}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    }
  }
  return out;
}

/**
 * What a failed dump must leave as it was: per task its state, signal mask
 * and pending signals, and its registers as far as /proc shows them for a
 * task blocked in a syscall (number, arguments, stack pointer, program
 * counter); per process its memory map and its fds (target, offset, flags).
 */
function snapshot(pids: number[]): string {
  const out: string[] = [];
  const read = (p: string) => { try { return fs.readFileSync(p, 'utf8'); } catch (e) { return `(${(e as Error).message})`; } };
  for (const pid of pids) {
    out.push(`== ${pid}`, read(`/proc/${pid}/maps`));
    for (const tid of fs.readdirSync(`/proc/${pid}/task`).sort()) {
      const st = read(`/proc/${pid}/task/${tid}/status`).split('\n').filter((l) => /^(State|SigBlk|SigPnd|ShdPnd|SigIgn|SigCgt|TracerPid):/.test(l));
      out.push(`task ${tid}`, ...st, `syscall ${read(`/proc/${pid}/task/${tid}/syscall`).trim()}`);
    }
    let fds: string[] = [];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`).sort((a, b) => Number(a) - Number(b)); } catch { /* a zombie */ }
    for (const fd of fds) {
      const info = read(`/proc/${pid}/fdinfo/${fd}`).split('\n').filter((l) => /^(pos|flags):/.test(l)).join(' ');
      out.push(`fd ${fd} ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)} ${info}`);
    }
  }
  return out.join('\n');
}

async function settled(pids: number[], want: string): Promise<string> {
  // The tasks go back into their blocking calls once ckpt lets them go.
  let now = '';
  for (let i = 0; i < 200; i++) {
    now = snapshot(pids);
    if (now === want) return now;
    await sleep(10);
  }
  return now;
}

test('a dump (--leave-running) failing at any step leaves the tree running and unchanged, and says where it failed', async () => {
  const s = Subject.start('failtree');
  await s.ready();
  const pids = tree(s.pid);
  assert.equal(pids.length, 3, 'root, a stopped child and a zombie');
  const want = snapshot(pids);
  const img = path.join(s.dir, 'img');
  const args = ['dump', '-t', String(s.pid), '-D', img, '--leave-running'];
  const total = countPoints(args);
  fs.rmSync(img, { recursive: true, force: true });
  assert.equal(await settled(pids, want), want, 'a dump leaves the tree as it was');
  let failed = 0;
  for (let n = 0; n < total; n++) {
    const r = run(args, n);
    // (a failure the dump recovers from, such as a cleanup call it tries again, may still end in success)
    if (r.status === 0) { fs.rmSync(img, { recursive: true, force: true }); assert.equal(await settled(pids, want), want, `fault point ${n}: the tree is as it was`); continue; }
    failed++;
    assert.match(r.stderr, new RegExp(`^ckpt: [^:\\n]+: (.*: )?debug failure at fault point ${n} `, 'm'), `fault point ${n}: the message names the step`);
    assert.ok(!fs.existsSync(path.join(img, 'manifest.json')), `fault point ${n}: no image`);
    assert.deepEqual(fs.readdirSync(s.dir).filter((f) => f.startsWith('img') && fs.readdirSync(path.join(s.dir, f)).length), [], `fault point ${n}: nothing staged`);
    assert.equal(await settled(pids, want), want, `fault point ${n}: the tree is as it was`);
  }
  assert.ok(failed > 20 && failed >= total - 3, `a dump fails at (nearly) every one of its ${total} fault points (${failed})`);
  process.stdout.write(`# dump: ${total} fault points, the dump failed at ${failed}\n`);
  assert.equal(await s.verdict(), 'PASS');
});

test('a restore failing at any step leaves no process, no husk and no file behind, and says where it failed', async () => {
  const s = Subject.start('failtree');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  const pids = imagePids(img);
  const files = fs.readdirSync(img).sort();
  const pidfile = path.join(s.dir, 'restored.pid');
  // A husk left by ckpt would be orphaned to this test (a subreaper). (Other husks on the machine are other tests'.)
  const husks = () => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map((p) => {
    try { return { cmd: fs.readFileSync(`/proc/${p}/cmdline`, 'utf8'), stat: fs.readFileSync(`/proc/${p}/stat`, 'utf8') }; } catch { return null; }
  }).filter((x) => x && x.cmd.startsWith('ckpt-husk') && Number(x.stat.replace(/^.*\) /, '').split(' ')[1]) === process.pid).map((x) => x!.stat);
  const args = ['restore', '-D', img, '-d', '--pidfile', pidfile];
  const total = countPoints(args);
  const endRestored = async () => {
    // The tree as restored: ended, and its PIDs free again.
    for (const pid of [...pids].reverse()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await treeGone(img);
    fs.rmSync(pidfile, { force: true });
  };
  await endRestored();
  let failed = 0;
  for (let n = 0; n < total; n++) {
    const r = run(args, n);
    if (r.status === 0) { await endRestored(); continue; }
    failed++;
    assert.match(r.stderr, new RegExp(`^ckpt: [^:\\n]+: (.*: )?debug failure at fault point ${n} `, 'm'), `fault point ${n}: the message names the step`);
    // (a killed process whose parent was killed too is reaped by whoever inherits it: here this test, as subreaper)
    for (const pid of pids) {
      const alive = () => fs.existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      assert.ok(!alive(), `fault point ${n}: pid ${pid} is not left alive; ckpt said: ${r.stderr}`);
    }
    await treeGone(img);
    assert.deepEqual(husks(), [], `fault point ${n}: no husk is left; ckpt said: ${r.stderr}`);
    assert.ok(!fs.existsSync(pidfile), `fault point ${n}: no pidfile`);
    assert.deepEqual(fs.readdirSync(img).sort(), files, `fault point ${n}: the image directory is as it was`);
  }
  assert.ok(failed > 50 && failed >= total - 3, `a restore fails at (nearly) every one of its ${total} fault points (${failed})`);
  process.stdout.write(`# restore: ${total} fault points, the restore failed at ${failed}\n`);
  ckptOk(...args);
  assert.equal(await s.verdict(), 'PASS');
});

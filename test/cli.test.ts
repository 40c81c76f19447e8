// The command line: info (text and --json), check, exit codes, logs.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Subject, ckpt, ckptOk, cleanupAll, ROOT } from './harness.js';

after(cleanupAll);

test('check reports the features and exits 0 here', () => {
  const r = ckpt('check');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ok\s+remote syscalls/);
  assert.match(r.stdout, /ok\s+clone3 with set_tid/);
  const j = JSON.parse(ckpt('--json', 'check').stdout);
  assert.equal(j.ok, true);
  assert.ok(j.items.some((i: { name: string; ok: boolean }) => i.name === 'PTRACE_GETREGSET NT_X86_XSTATE' && i.ok));
});

test('info shows the process, areas, fds, signals and registers; --json gives the same', async () => {
  const s = Subject.start('signals');
  await s.ready();
  const img = path.join(s.dir, 'img');
  const d = JSON.parse(ckptOk('--json', 'dump', '-t', String(s.pid), '-D', img, '--leave-running').stdout);
  assert.equal(d.ok, true);
  assert.ok(d.pageBytes > 0);
  const text = ckptOk('info', '-D', img).stdout;
  assert.match(text, new RegExp(`process ${s.pid} \\(signals\\)`));
  assert.match(text, /\[stack\]/);
  assert.match(text, /fd +0: chr \/dev\/null/);
  assert.match(text, /SIGUSR1 +0x[0-9a-f]+ flags/);
  assert.match(text, /thread \d+: rip 0x/);
  const j = JSON.parse(ckptOk('--json', 'info', '-D', img).stdout);
  assert.equal(j.processes[0].pid, s.pid);
  assert.ok(j.processes[0].memory.areas.some((a: { name: string }) => a.name === '[stack]'));
  assert.ok(j.processes[0].signals.pendingShared.includes('SIGUSR1'));
  assert.equal(await s.verdict(), 'PASS');
});

test('image files are private: 0600 files in a 0700 directory', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '-R');
  assert.equal(fs.statSync(img).mode & 0o777, 0o700);
  for (const f of fs.readdirSync(img)) assert.equal(fs.statSync(path.join(img, f)).mode & 0o777, 0o600, f);
  assert.equal(await s.verdict(), 'PASS');
});

test('-v4 -o writes a debug log into the images directory; errors go to stderr', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('-v4', '-o', 'dump.log', 'dump', '-t', String(s.pid), '-D', img, '-R');
  const log = fs.readFileSync(path.join(img, 'dump.log'), 'utf8');
  assert.match(log, /INFO +freezing pid/);
  assert.match(log, /writing .* MiB of pages/);
  assert.equal(await s.verdict(), 'PASS');
});

test('-v alone raises the log level, as in CRIU', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const r = ckptOk('-v', 'dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '-R');
  assert.match(r.stderr, /INFO +freezing pid/);
  assert.equal(await s.verdict(), 'PASS');
});

test('usage errors exit 2; JSON errors carry the kind', () => {
  assert.equal(ckpt('-o', 'x.log', 'restore', '-D', '/tmp/ckpt-definitely-missing').status, 4);
  assert.equal(ckpt('dump', '-D', '/tmp/x').status, 2);
  assert.equal(ckpt('nonsense').status, 2);
  const r = ckpt('--json', 'restore', '-D', '/tmp/ckpt-definitely-missing');
  assert.equal(r.status, 4);
  assert.equal(JSON.parse(r.stdout).kind, 'bad-image');
});

test('restore without -d waits for the process and exits with its status', async () => {
  const s = Subject.start('counter', ['15']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  const r = ckpt('restore', '-D', img);
  assert.equal(r.status, 0, r.stderr);
  const counts = s.lines().filter((l) => l.startsWith('count')).map((l) => Number(l.split(' ')[1]));
  assert.equal(counts.at(-1), 15, 'the counter ran to its end after restore');
});

test('restore --pidfile writes the restored PID', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  const pidfile = path.join(s.dir, 'restored.pid');
  ckptOk('restore', '-D', img, '-d', '--pidfile', pidfile);
  assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(s.pid));
  assert.equal(await s.verdict(), 'PASS');
});

test('info lists the processes of a tree and its zombies', async () => {
  const s = Subject.start('zombie');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '-R');
  const text = ckptOk('info', '-D', img).stdout;
  assert.match(text, /1 process \(root \d+\), 2 zombies/);
  assert.match(text, /zombie \d+ +ppid \d+ .*: exited with 42/);
  assert.match(text, /zombie \d+ +ppid \d+ .*: killed by SIGUSR1/);
  const j = JSON.parse(ckptOk('--json', 'info', '-D', img).stdout);
  assert.equal(j.zombies.length, 2);
  assert.equal(await s.verdict(), 'PASS');
});

test('the suite passes when it is started with an extra fd open (subjects get only fds 0-2)', () => {
  // fd 3 is a pipe inherited without close-on-exec, as a shell may leak one.
  const r = spawnSync(process.execPath, ['--test', '--test-name-pattern=^round trip: counter$', path.join(ROOT, 'build/test/roundtrip.test.js')], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', 'pipe'], timeout: 60000,
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), // a run of its own, not a subtest of this one
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# pass 1/);
});

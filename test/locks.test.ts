// File locks and leases (src/objects/locks.ts), kept with --file-locks: flock
// (shared by parent and child, shared and exclusive), POSIX record locks on
// several ranges and in two processes, OFD locks, read and write leases,
// locks on a file that a process outside the tree has open, and tasks
// blocked waiting for a lock. Each subject checks its locks after restore
// from a process forked then. Without --file-locks a lock is refused, and an
// image with locks needs --file-locks on restore.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, treeGone } from './harness.js';

after(cleanupAll);

const MODES = ['flock', 'mixed', 'posix', 'ofd', 'lease', 'wlease', 'outside', 'waiters', 'sharedtable', 'threadtable'];

for (const mode of MODES) {
  test(`locks: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('locks', [mode]), { dump: ['--file-locks'], restore: ['--file-locks'] }), 'PASS');
  });
}

for (const mode of MODES) {
  test(`locks: leave running: ${mode} (the dump takes no lock away)`, async () => {
    assert.equal(await leaveRunning(Subject.start('locks', [mode]), ['--file-locks']), 'PASS');
  });
}

test('locks: each lock is recorded once, with the process that takes it again', async () => {
  const s = Subject.start('locks', ['posix']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--file-locks', '--leave-running');
  const locks = JSON.parse(fs.readFileSync(path.join(img, 'locks.json'), 'utf8')).locks as Array<{ type: string; mode: string; pid: number; start?: string; end?: string }>;
  const kid = JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8')).processes[1].pid as number;
  const got = locks.map((l) => `${l.type} ${l.mode} ${l.pid === s.pid ? 'parent' : l.pid === kid ? 'child' : l.pid} ${l.start}-${l.end ?? 'EOF'}`).sort();
  assert.deepEqual(got, ['posix read child 0-4', 'posix read parent 40-89', 'posix write parent 5-14', 'posix write parent 90-EOF']);
  assert.match(ckpt('info', '-D', img).stdout, /file lock: pid \d+ fd \d+: posix write lock on bytes 90-EOF/);
  assert.equal(await s.verdict(), 'PASS');
});

test('locks: an flock inherited by a child is one lock, taken again by the parent that took it', async () => {
  const s = Subject.start('locks', ['flock']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--file-locks', '--leave-running');
  const locks = JSON.parse(fs.readFileSync(path.join(img, 'locks.json'), 'utf8')).locks as Array<{ type: string; pid: number }>;
  assert.deepEqual(locks.map((l) => [l.type, l.pid]), [['flock', s.pid]]);
  assert.equal(await s.verdict(), 'PASS');
});

test('locks: without --file-locks a lock is refused (naming --file-locks), and the process runs on', async () => {
  const s = Subject.start('locks', ['ofd']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}: fd \\d+ \\(.*o\\.lock\\) holds a file lock \\(OFDLCK ADVISORY\\); dump with --file-locks`));
  assert.equal(await s.verdict(), 'PASS');
});

test('locks: a POSIX lock of a child is refused without --file-locks too (on a description its parent holds)', async () => {
  // The child's lock shows only on the child's fd of a description met first in the parent.
  const s = Subject.start('locks', ['posix']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /holds a file lock \(POSIX ADVISORY\)/);
  assert.equal(await s.verdict(), 'PASS');
});

test('locks: an image with locks needs --file-locks on restore', async () => {
  const s = Subject.start('locks', ['mixed']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--file-locks');
  await s.gone();
  await treeGone(img);
  const r = ckpt('restore', '-D', img, '-d');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /restore it with --file-locks/);
  assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'no process was created');
  ckptOk('restore', '-D', img, '-d', '--file-locks');
  assert.equal(await s.verdict(), 'PASS');
});

test('locks: a lock whose description a process outside the tree holds too is refused', async () => {
  const s = Subject.start('locks', ['shared_outside']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '--file-locks');
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /its FLOCK lock belongs to an open file description that pid \d+, outside the tree, holds too/);
  assert.equal(await s.verdict(), 'PASS');
});

test('locks: a lease being broken is refused, and the process runs on', async () => {
  const s = Subject.start('locks', ['breaking']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '--file-locks');
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}: fd \\d+ \\(.*k\\.lock\\): its lease is being broken`));
  assert.equal(await s.verdict(), 'PASS');
});

test('locks: a lock taken meanwhile by another process makes the restore fail cleanly', async () => {
  const s = Subject.start('locks', ['mixed']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--file-locks');
  await s.gone();
  await treeGone(img);
  // Someone else takes the exclusive lock's file first.
  const { spawn } = await import('node:child_process');
  const holder = spawn('flock', ['-o', '-x', path.join(s.dir, 'b.lock'), 'sleep', '30'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100 && !fs.readFileSync('/proc/locks', 'utf8').includes(` ${holder.pid} `); i++) await new Promise((r) => setTimeout(r, 50));
    const r = ckpt('restore', '-D', img, '-d', '--file-locks');
    assert.equal(r.status, 5, r.stderr);
    assert.match(r.stderr, /flock write lock cannot be taken again: another process holds a conflicting lock/);
    assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'no process was left behind');
  } finally { holder.kill('SIGKILL'); }
  await new Promise((r) => setTimeout(r, 200));
  ckptOk('restore', '-D', img, '-d', '--file-locks');
  assert.equal(await s.verdict(), 'PASS');
});

// Image format upgrades: a version 1 image, made by ckpt 0.1.0 and kept as a
// fixture (test/fixtures/README.md), is refused by restore and info with the
// command that upgrades it; `ckpt image upgrade` rewrites it in format 4, and
// the upgraded image restores: the subject checks its shared open files. A
// version 2 image upgrades to 3 unchanged but for its version.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, CKPT, Subject, ckpt, ckptOk, cleanupAll, tmpDir, waitUntil } from './harness.js';

after(cleanupAll);

const FIXTURE = path.join(ROOT, 'test/fixtures/v1-image');
const BIN = path.join(ROOT, 'test/fixtures/v1-image-bin');
const RUN_DIR = '/tmp/ckpt-v1-fixture';
const MTIME = 1796083200;
const ROOT_PID = 31001;

function copyFixture(): string {
  const dir = path.join(tmpDir('upgrade'), 'img');
  fs.cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

test('a version 1 image: info and restore say how to upgrade it (exit 4), and nothing is changed', () => {
  const dir = copyFixture();
  const before = fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]);
  for (const args of [['info', '-D', dir], ['restore', '-D', dir, '-d']]) {
    const r = ckpt(...args);
    assert.equal(r.status, 4, `${args[0]}: exit 4; stderr: ${r.stderr}`);
    assert.match(r.stderr, /format version 1; this ckpt reads version 4/);
    assert.ok(r.stderr.includes(`ckpt image upgrade -D ${dir}`), r.stderr);
  }
  assert.ok(!fs.existsSync(`/proc/${ROOT_PID}`), 'no process was created');
  assert.deepEqual(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]), before);
});

test('image upgrade: the version 1 fixture becomes format 4 and restores with its shared open files', async () => {
  const dir = copyFixture();
  const r = ckptOk('image', 'upgrade', '-D', dir, '--json');
  const out = JSON.parse(r.stdout);
  assert.equal(out.from, 1);
  assert.equal(out.to, 4);
  assert.deepEqual(out.steps.map((s: string) => s.slice(0, 6)), ['1 -> 2', '2 -> 3', '3 -> 4']);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).version, 4);
  // Page files are the old ones, linked (not rewritten).
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.img'))) {
    assert.equal(fs.readFileSync(path.join(dir, f)).compare(fs.readFileSync(path.join(FIXTURE, f))), 0, `${f} unchanged`);
  }
  assert.ok(!fs.readdirSync(dir).some((f) => f.startsWith('.ckpt')), 'no staging directory left');
  // The open-file table: the root's 20 and 21 (a dup) and the child's 20 and 21 (inherited) are one open file.
  const info = JSON.parse(ckptOk('info', '-D', dir, '--json').stdout);
  const [root, child] = info.processes;
  const file = (p: { fds: Array<{ fd: number; file: number; cloexec: boolean }> }, fd: number) => p.fds.find((f) => f.fd === fd)!;
  assert.equal(file(root, 21).file, file(root, 20).file);
  assert.equal(file(child, 20).file, file(root, 20).file);
  assert.equal(file(child, 2).file, file(root, 1).file);
  assert.equal(file(root, 21).cloexec, true);
  assert.equal(file(root, 20).cloexec, false);
  assert.equal(info.openFiles.length, 4);
  // A second upgrade has nothing to do.
  assert.deepEqual(JSON.parse(ckptOk('image', 'upgrade', '-D', dir, '--json').stdout).steps, []);

  // Restore it (the fixture's files where the image names them).
  for (const pid of [31001, 31002]) assert.ok(!fs.existsSync(`/proc/${pid}`), `PID ${pid} must be free to restore the fixture`);
  fs.rmSync(RUN_DIR, { recursive: true, force: true });
  fs.mkdirSync(RUN_DIR, { recursive: true });
  for (const f of ['v1fixture', 'data.txt']) fs.copyFileSync(path.join(BIN, f), path.join(RUN_DIR, f));
  fs.chmodSync(path.join(RUN_DIR, 'v1fixture'), 0o755);
  fs.utimesSync(path.join(RUN_DIR, 'v1fixture'), MTIME, MTIME);
  ckptOk('restore', '-D', dir, '-d');
  try {
    process.kill(ROOT_PID, 'SIGTERM');
    const verdict = path.join(RUN_DIR, 'verdict.txt');
    await waitUntil('the fixture writes its verdict', () => fs.existsSync(verdict) && fs.readFileSync(verdict, 'utf8').trim().length > 0);
    assert.equal(fs.readFileSync(verdict, 'utf8').trim(), 'PASS');
  } finally {
    for (const pid of [31002, 31001]) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  }
});

test('image upgrade refuses a damaged version 1 image and leaves it as it was', () => {
  const dir = copyFixture();
  const pages = path.join(dir, 'pages-31001.img');
  const fd = fs.openSync(pages, 'r+');
  fs.writeSync(fd, Buffer.from('garbage'), 0, 7, 100);
  fs.closeSync(fd);
  const before = fs.readdirSync(dir).sort();
  const r = ckpt('image', 'upgrade', '-D', dir);
  assert.equal(r.status, 4, r.stderr);
  assert.match(r.stderr, /pages-31001\.img is corrupted/);
  assert.deepEqual(fs.readdirSync(dir).sort(), before);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).version, 1);
});

test('image upgrade killed at every step of its commit leaves the old image or the new one, whole', () => {
  for (let n = 0; ; n++) {
    const dir = copyFixture();
    const r = spawnSync(CKPT, ['image', 'upgrade', '-D', dir], { encoding: 'utf8', env: { ...process.env, CKPT_DEBUG_CRASH: `commit:${n}` } });
    // After the crash (or success), reading the directory finishes or discards the commit.
    const v = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).version;
    const committed = fs.existsSync(path.join(dir, '.ckpt-commit'));
    const info = ckpt('info', '-D', dir, '--json');
    if (v === 1 && !committed) assert.equal(info.status, 4, `crash at ${n}: old image, refused as version 1: ${info.stderr}`);
    else assert.equal(info.status, 0, `crash at ${n}: the new image, whole: ${info.stderr}`);
    if (r.status === 0) break;
    assert.ok(n < 50, 'the commit ends');
  }
});

test('a version 2 image is refused with the command that upgrades it; upgraded to 4 it restores', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const dir = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', dir);
  await s.gone();
  // (a version 2 image of this process: the same documents, the manifest saying 2)
  const mf = path.join(dir, 'manifest.json');
  fs.writeFileSync(mf, JSON.stringify({ ...JSON.parse(fs.readFileSync(mf, 'utf8')), version: 2 }));
  const r = ckpt('restore', '-D', dir, '-d');
  assert.equal(r.status, 4, r.stderr);
  assert.match(r.stderr, /format version 2; this ckpt reads version 4/);
  assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'no process was created');
  const out = JSON.parse(ckptOk('image', 'upgrade', '-D', dir, '--json').stdout);
  assert.deepEqual([out.from, out.to, out.steps.length], [2, 4, 2]);
  ckptOk('restore', '-D', dir, '-d');
  assert.equal(await s.verdict(), 'PASS');
});

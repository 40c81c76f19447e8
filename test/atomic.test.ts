// Replacing an image is safe against crashes: ckpt killed (SIGKILL) before any
// filesystem operation of the commit leaves the old image or the new one,
// whole, in the directory; the next reader or writer finishes a commit that
// had passed its commit point. Files that are not part of the image stay.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { Subject, CKPT, ckpt, ckptOk, cleanupAll } from './harness.js';

after(cleanupAll);

const CHUNK = 64 << 20;
const IMAGE_FILE = /^(manifest\.json|files\.json|shmem\.json|process-.+\.json|(pages|shmem)-.+\.img)$/;

interface Manifest { created: string; files: Record<string, { size: number; crc32c: string[] }> }

let s: Subject;
before(async () => {
  s = Subject.start('counter');
  await s.ready();
});

const hex = (n: number) => n.toString(16).padStart(8, '0');
const readManifest = (dir: string): Manifest => JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;

function sums(file: string, size: number): string[] {
  const out: string[] = [];
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(CHUNK, size));
    for (let off = 0; off === 0 || off < size; off += CHUNK) {
      const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, size - off), off);
      out.push(hex(crc32c(buf.subarray(0, n))));
    }
  } finally { fs.closeSync(fd); }
  return out;
}

/**
 * `ckpt info` reads the image in dir (finishing an interrupted commit), and
 * the image is whole: every file its manifest lists has the listed size and
 * checksums, and no other image file nor the commit directory is left.
 */
function checkWhole(dir: string): Manifest {
  const info = JSON.parse(ckptOk('--json', 'info', '-D', dir).stdout) as { created: string };
  const m = readManifest(dir);
  assert.equal(info.created, m.created);
  for (const [name, e] of Object.entries(m.files)) {
    const p = path.join(dir, name);
    assert.ok(fs.existsSync(p), `${name} is missing`);
    assert.equal(fs.statSync(p).size, e.size, `${name}: size`);
    assert.deepEqual(sums(p, e.size), e.crc32c, `${name}: checksums`);
  }
  assert.ok(!fs.existsSync(path.join(dir, '.ckpt-commit')), '.ckpt-commit is left');
  assert.deepEqual(fs.readdirSync(dir).filter((f) => IMAGE_FILE.test(f)).sort(), ['manifest.json', ...Object.keys(m.files)].sort());
  return m;
}

/** A dump with --leave-running into dir, killed at commit step `crashAt` if given. */
function dump(dir: string, crashAt?: number, extra: string[] = []) {
  const env = { ...process.env };
  if (crashAt === undefined) delete env.CKPT_DEBUG_CRASH; else env.CKPT_DEBUG_CRASH = `commit:${crashAt}`;
  return spawnSync(CKPT, [...extra, 'dump', '-t', String(s.pid), '-D', dir, '--leave-running'], { env, encoding: 'utf8', timeout: 120000 });
}

function dumpOk(dir: string, extra: string[] = []): void {
  const r = dump(dir, undefined, extra);
  assert.equal(r.status, 0, `dump failed (${r.signal ?? r.status}): ${r.stderr}`);
}

/** ckpt was killed while it had the subject stopped: the subject must run on. */
function assertAlive(when: string): void {
  const st = fs.existsSync(`/proc/${s.pid}/stat`) ? fs.readFileSync(`/proc/${s.pid}/stat`, 'utf8').replace(/^.*\) /, '').charAt(0) : '';
  assert.ok(st !== '' && st !== 'Z', `the subject died after ckpt was killed (${when}); ` +
    'a SIGTRAP death means ckpt left it single-stepping (the kernel clears that on PTRACE_DETACH, not when the tracer dies)');
}

const staging = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith('.ckpt-new-'));

/**
 * An image A in dir, with one more file than the dumps of the same process
 * will have (shmem-1.img, listed in its manifest), so that a replacement also
 * has an old file to remove. Returns A's manifest.
 */
function imageA(dir: string): Manifest {
  dumpOk(dir, ['-v3', '-o', 'dump.log']);
  const extra = Buffer.alloc(5000, 7);
  fs.writeFileSync(path.join(dir, 'shmem-1.img'), extra, { mode: 0o600 });
  const m = readManifest(dir);
  m.files['shmem-1.img'] = { size: extra.length, crc32c: [hex(crc32c(extra))] };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m, null, 1) + '\n');
  return checkWhole(dir);
}

function putBack(saved: string, dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(saved, dir, { recursive: true });
}

test('ckpt killed at every step of replacing an image leaves the old image or the new one, whole', (t) => {
  const dir = path.join(s.dir, 'img');
  const a = imageA(dir);
  const log = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
  assert.ok(log.length > 0);
  const saved = path.join(s.dir, 'img-a');
  fs.cpSync(dir, saved, { recursive: true });

  let n = 0;
  for (; ; n++) {
    assert.ok(n < 100, 'the commit never completes');
    const r = dump(dir, n, ['-o', 'dump.log']);
    if (r.signal === null) {
      assert.equal(r.status, 0, r.stderr);
      break;
    }
    assert.equal(r.signal, 'SIGKILL', `dump with commit:${n}: ${r.signal ?? r.status} ${r.stderr}`);
    // Step 0 is the commit point (the staging directory becomes .ckpt-commit).
    if (n === 0) assert.equal(staging(dir).length, 1, 'the staging directory is left');
    else assert.ok(fs.existsSync(path.join(dir, '.ckpt-commit')), `commit:${n}: no .ckpt-commit`);
    const m = checkWhole(dir);
    assertAlive(`commit:${n}`); // (after ckpt info: it would have had time to die)
    if (n === 0) assert.equal(m.created, a.created, 'killed before the commit point: image A');
    else assert.notEqual(m.created, a.created, `killed at step ${n}, after the commit point: the new image`);
    assert.ok(fs.readFileSync(path.join(dir, 'dump.log'), 'utf8').startsWith(log), 'the log file is kept');
    putBack(saved, dir);
  }
  const m = checkWhole(dir);
  assert.notEqual(m.created, a.created);
  // The commit point, one rename per new file and the manifest, one unlink (shmem-1.img), the rmdir.
  assert.equal(n, 1 + Object.keys(m.files).length + 1 + 1 + 1);
  t.diagnostic(`${n} crash points`);
});

test('a log file and other files in the image directory survive a replacement', () => {
  const dir = path.join(s.dir, 'img-log');
  dumpOk(dir, ['-v3', '-o', 'dump.log']);
  const first = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
  assert.match(first, /INFO/);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine\n');
  const a = checkWhole(dir);
  dumpOk(dir, ['-v3', '-o', 'dump.log']);
  const second = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
  assert.ok(second.startsWith(first) && second.length > first.length, 'the log of both dumps is there');
  assert.equal(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8'), 'mine\n');
  assert.notEqual(checkWhole(dir).created, a.created);
});

test('staging directories left by dumps killed before their commit point are removed by the next dump', () => {
  const dir = path.join(s.dir, 'img-stale');
  dumpOk(dir);
  const r = dump(dir, 0);
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  fs.mkdirSync(path.join(dir, '.ckpt-new-zzzzzz'));
  fs.writeFileSync(path.join(dir, '.ckpt-new-zzzzzz', 'pages-1.img'), 'x');
  assert.equal(staging(dir).length, 2);
  const a = checkWhole(dir);
  assert.equal(staging(dir).length, 2, 'a reader leaves them');
  dumpOk(dir);
  assert.deepEqual(staging(dir), []);
  assert.notEqual(checkWhole(dir).created, a.created);
});

test('on a read-only directory, an interrupted commit is read or refused, never mixed', (t) => {
  const dir = path.join(s.dir, 'img-ro');
  const a = imageA(dir);
  const saved = path.join(s.dir, 'img-ro-a');
  fs.cpSync(dir, saved, { recursive: true });
  const ro = path.join(s.dir, 'ro');
  fs.mkdirSync(ro);
  const mount = (...args: string[]) => spawnSync('mount', args, { encoding: 'utf8' });
  const m0 = mount('--bind', dir, ro);
  assert.equal(m0.status, 0, `bind mount (tests run as root): ${m0.stderr}`);
  spawnSync('umount', [ro]);
  // As above: the commit point, the new files (A's but shmem-1.img), the manifest, shmem-1.img, the rmdir.
  const steps = 1 + (Object.keys(a.files).length - 1) + 1 + 1 + 1;
  const cases: Array<[number, 'A' | 'new' | 'refused']> = [[0, 'A'], [1, 'refused'], [steps - 3, 'refused'], [steps - 2, 'new'], [steps - 1, 'new']];
  for (const [n, want] of cases) {
    const r = dump(dir, n);
    assert.equal(r.signal, 'SIGKILL', `commit:${n}: ${r.stderr}`);
    assert.equal(mount('--bind', dir, ro).status, 0);
    try {
      assert.equal(mount('-o', 'remount,bind,ro', ro).status, 0);
      const i = ckpt('--json', 'info', '-D', ro);
      if (want === 'refused') {
        assert.equal(i.status, 4, i.stdout);
        assert.match(i.stderr, /was being replaced when ckpt was interrupted.*cannot be moved into place \(EROFS\)/);
      } else {
        assert.equal(i.status, 0, i.stderr);
        const created = (JSON.parse(i.stdout) as { created: string }).created;
        if (want === 'A') assert.equal(created, a.created, `commit:${n}`);
        else assert.notEqual(created, a.created, `commit:${n}`);
      }
    } finally {
      assert.equal(spawnSync('umount', [ro]).status, 0);
    }
    // Writable again: the commit is finished.
    const m = checkWhole(dir);
    assert.equal(m.created === a.created, n === 0);
    putBack(saved, dir);
  }
});

test('the subject ran on through all of it', async () => {
  assert.equal(await s.verdict(), 'PASS');
});

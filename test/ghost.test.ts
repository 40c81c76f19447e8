// Files whose contents travel in the image (src/objects/inodes.ts): files,
// directories and FIFOs deleted or replaced while open or mapped, memfds
// (src/objects/memfd.ts), and files held with O_PATH (src/objects/regfile.ts).
// Each mode of the ghost subject checks itself after restore: contents byte
// for byte, size, holes (SEEK_DATA/SEEK_HOLE), st_nlink 0, seals, offsets,
// flags, and writes through shared mappings seen by every holder.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, tmpDir, CKPT, imagePids, treeGone } from './harness.js';

after(cleanupAll);

const MODES = [
  'empty', 'sparse', 'offset', 'mmap-shared', 'mmap-private', 'mapped-only', 'cwd', 'dirfd', 'fifo', 'replaced',
  'opath', 'memfd', 'memfd-plain', 'memfd-shared', 'memfd-mapped', 'twoprocs', 'memfd-noexec', 'tmpfile', 'exe',
];

for (const mode of MODES) {
  test(`ghost: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('ghost', [mode])), 'PASS');
  });
}

for (const mode of ['sparse', 'mmap-shared', 'mapped-only', 'fifo', 'memfd', 'memfd-shared', 'memfd-mapped', 'cwd', 'twoprocs']) {
  test(`ghost: leave running: ${mode} (the program goes on unchanged)`, async () => {
    assert.equal(await leaveRunning(Subject.start('ghost', [mode])), 'PASS');
  });
}

test('ghost: a 1 GiB sparse deleted file costs only its data in the image', async () => {
  const s = Subject.start('ghost', ['sparse']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const doc = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8'));
  assert.equal(doc.inodes.length, 1);
  const n = doc.inodes[0];
  assert.equal(n.type, 'reg');
  assert.equal(n.size, 1024 ** 3);
  assert.ok(n.path.endsWith('/g'), n.path);
  const stored = n.runs.reduce((t: number, r: [number, number]) => t + r[1], 0);
  assert.ok(stored >= 4096 + 5000 + 100 && stored <= 64 * 1024, `${stored} bytes of data`);
  assert.equal(fs.statSync(path.join(img, n.data)).size, stored);
  const total = fs.readdirSync(img).reduce((t, f) => t + fs.statSync(path.join(img, f)).size, 0);
  assert.ok(total < 8 << 20, `the image has ${total} bytes`);
  const fd = doc.files.find((f: { kind: string }) => f.kind === 'ghost');
  assert.equal(fd.inode, n.id);
  assert.equal(await s.verdict(), 'PASS');
});

test('ghost: a memfd mapped by parent and child is stored once, and info names it', async () => {
  const s = Subject.start('ghost', ['memfd-shared']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const doc = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8'));
  assert.equal(doc.inodes.length, 1);
  assert.equal(doc.inodes[0].type, 'memfd');
  assert.equal(doc.inodes[0].name, 'shared');
  assert.equal(doc.inodes[0].seals, 0x12);
  for (const f of fs.readdirSync(img).filter((x) => /^process-\d+\.json$/.test(x))) {
    const p = JSON.parse(fs.readFileSync(path.join(img, f), 'utf8'));
    const areas = p.memory.areas.filter((a: { kind: string }) => a.kind === 'inode');
    assert.ok(areas.length >= 1, `${f} maps the memfd`);
    for (const a of areas) assert.equal(a.inode, doc.inodes[0].id);
  }
  const info = ckpt('info', '-D', img);
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /memfd \(inode 1\)/);
  assert.match(info.stdout, /stored memfd "shared" \(inode 1, mode 0777, 16384 bytes, 8192 bytes of data, seals 0x12\)/);
  assert.equal(await s.verdict(), 'PASS');
});

test('ghost: a deleted file also held by a process outside the tree is refused, and the program runs on', async () => {
  const s = Subject.start('ghost', ['empty']);
  await s.ready();
  const fdNum = fs.readdirSync(`/proc/${s.pid}/fd`).find((n) => fs.readlinkSync(`/proc/${s.pid}/fd/${n}`).endsWith('/g (deleted)'))!;
  const mine = fs.openSync(`/proc/${s.pid}/fd/${fdNum}`, 'r');
  try {
    const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`deleted file .*/g is also held by pid ${process.pid}, outside the tree`));
  } finally { fs.closeSync(mine); }
  assert.equal(await s.verdict(), 'PASS');
});

const REFUSED: Array<[string, RegExp]> = [
  ['deleted-hardlink', /fd 3 \(.*\/g \(deleted\)\): .*was unlinked from this path but still has 1 other link/],
  ['hugetlb', /fd 3 \(\/memfd:huge.*\): a memfd of huge pages \(MFD_HUGETLB\)/],
  ['secretmem', /fd 3 \(\/secretmem \(deleted\)\): \/secretmem \(deleted\) is memfd_secret memory; not supported/],
];
for (const [mode, re] of REFUSED) {
  test(`ghost: refused: ${mode}, and the program runs on`, async () => {
    const s = Subject.start('ghost', [mode]);
    await s.ready();
    const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(await s.verdict(), 'PASS');
  });
}

test('ghost: a deleted file that a process outside the tree also maps, but both only privately, is no refusal', async () => {
  const dir = tmpDir('ghost-lib');
  const lib = path.join(dir, 'lib');
  const page = Buffer.alloc(8192);
  page.write('a library\0');
  fs.writeFileSync(lib, page);
  const a = Subject.start('ghost', ['lib-private', lib]);
  const b = Subject.start('ghost', ['lib-private', lib]);
  await a.ready();
  await b.ready();
  fs.unlinkSync(lib);
  assert.equal(await roundTrip(a), 'PASS');
  assert.equal(await b.verdict(), 'PASS');
});

test('ghost: a restore failing at any of its steps leaves no process and no file behind; then it succeeds', async () => {
  const s = Subject.start('ghost', ['twoprocs']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  const listing = () => fs.readdirSync(s.dir).sort().join(' ');
  const before = listing();
  const run = (failAt: string) => spawnSync(CKPT, ['restore', '-D', img, '-d'], { encoding: 'utf8', timeout: 60000, env: { ...process.env, CKPT_DEBUG_FAIL_AT: failAt } });
  // (how many fault points a restore passes: counted by one that succeeds, which is then undone)
  const counted = run('count');
  assert.equal(counted.status, 0, counted.stderr);
  const points = Number(/ckpt: (\d+) fault points/.exec(counted.stderr)![1]);
  for (const pid of imagePids(img)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  await treeGone(img);
  const picks = [...new Set([0, 1, 2, 3, ...Array.from({ length: 10 }, (_, i) => Math.floor((i + 1) * points / 11)), points - 1])];
  for (const n of picks) {
    const r = run(String(n));
    assert.notEqual(r.status, 0, `fault point ${n} of ${points}: the restore succeeded`);
    assert.match(r.stderr, /failed in step|ckpt: /);
    await treeGone(img);
    assert.equal(listing(), before, `fault point ${n}: files left behind`);
  }
  ckptOk('restore', '-D', img, '-d');
  assert.equal(await s.verdict(), 'PASS');
});

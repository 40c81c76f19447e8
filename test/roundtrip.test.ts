// Every C subject goes through dump (killing it) and restore, then checks itself.
// Some also go through dump --leave-running and check themselves while still running.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, roundTrip, leaveRunning, cleanupAll } from './harness.js';

after(cleanupAll);

const ROUND_TRIP: Array<[string, string[]]> = [
  ['counter', []],
  ['static_counter', []],
  ['tls', []],
  ['mem', []],
  ['mem', ['growsdown']],
  ['bigmem', ['256']],
  ['regs', []],
  ['sleep_nanosleep', []],
  ['sleep_pause', []],
  ['futex_wait', []],
  ['fifo_read', []],
  ['signals', []],
  ['identity', []],
  ['files', []],
  ['threads', ['8']],
  ['threads', ['64']],
  ['unsupported', ['thread']], // a thread was refused before threads were supported
  ['attrs', []],
  ['tree', []],          // 21 processes on three levels, several groups and sessions
  ['zombie', []],
  ['storm', []],
  ['stopped', []],       // a stopped child stays stopped, goes on with SIGCONT
  ['sessions', []],      // a session and a group whose leaders have exited
  ['sharedfile', []],    // a file opened before fork: one offset shared by parent and children         // forking and reaping short-lived children while being dumped
  ['unsupported', ['child']], // a child with a parent-death signal; refused before trees were supported
];

for (const [name, args] of ROUND_TRIP) {
  test(`round trip: ${name} ${args.join(' ')}`.trim(), async () => {
    const s = Subject.start(name, args);
    assert.equal(await roundTrip(s), 'PASS');
  });
}

for (const name of ['counter', 'mem', 'regs', 'signals', 'files', 'identity', 'sleep_nanosleep', 'futex_wait', 'threads', 'tree', 'zombie', 'stopped']) {
  test(`leave running: ${name}`, async () => {
    const s = Subject.start(name);
    assert.equal(await leaveRunning(s), 'PASS');
  });
}

test('two round trips in a row: the restored process can be dumped again', async () => {
  const s = Subject.start('signals');
  await s.ready();
  const { ckptOk } = await import('./harness.js');
  for (const img of ['img1', 'img2']) {
    ckptOk('dump', '-t', String(s.pid), '-D', `${s.dir}/${img}`);
    await s.gone();
    ckptOk('restore', '-D', `${s.dir}/${img}`, '-d');
  }
  assert.equal(await s.verdict(), 'PASS');
});

// Every C subject goes through dump (killing it) and restore, then checks itself.
// Some also go through dump --leave-running and check themselves while still running.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, SUBJECTS, roundTrip, leaveRunning, cleanupAll, tmpDir, readText } from './harness.js';

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

test('a process of an unprivileged user (all its uids and gids 1000) round-trips, and after --leave-running too', async () => {
  for (const how of ['roundtrip', 'leave-running']) {
    const dir = tmpDir('uid1000');
    fs.chmodSync(dir, 0o777);
    const s = new Subject('/usr/bin/setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', path.join(SUBJECTS, 'counter'), path.join(dir, 'verdict.txt')], { dir, outArg: false });
    await s.ready();
    assert.equal(readText(`/proc/${s.pid}/status`).match(/^Uid:\s+(.*)$/m)![1].split(/\s+/).join(' '), '1000 1000 1000 1000');
    assert.equal(how === 'roundtrip' ? await roundTrip(s) : await leaveRunning(s), 'PASS', how);
  }
});

// Unix domain sockets (src/objects/unix.ts): socketpairs, named sockets,
// listeners with connections waiting, datagram sockets with several senders,
// files in flight; queues read without consuming them (--leave-running);
// sockets of other families and peers outside the tree refused.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, roundTrip, leaveRunning, cleanupAll } from './harness.js';

after(cleanupAll);

const PAIR = ['stream', 'dgram', 'seqpacket', 'empty', 'opts', 'full', 'dgramfull', 'shutwr', 'shutrd', 'shutboth', 'peerclosed', 'seqclosed', 'fork', 'creds', 'childpair'];
const only = process.env.UNIX_ONLY?.split(',');

for (const mode of PAIR) {
  if (only && !only.includes(`pair:${mode}`)) continue;
  test(`unix socketpairs: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('unix_pair', [mode])), 'PASS');
  });
}
for (const mode of ['stream', 'dgram', 'seqpacket', 'opts', 'full', 'dgramfull', 'creds', 'fork']) {
  if (only && !only.includes(`pair-lr:${mode}`)) continue;
  test(`unix socketpairs: leave running: ${mode} (nothing consumed)`, async () => {
    assert.equal(await leaveRunning(Subject.start('unix_pair', [mode])), 'PASS');
  });
}

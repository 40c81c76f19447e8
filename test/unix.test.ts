// Unix domain sockets (src/objects/unix.ts): socketpairs, named sockets,
// listeners with connections waiting, datagram sockets with several senders,
// files in flight; queues read without consuming them (--leave-running);
// sockets of other families and peers outside the tree refused.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, roundTrip, leaveRunning, cleanupAll } from './harness.js';

after(cleanupAll);

const PAIR = ['stream', 'dgram', 'seqpacket', 'empty', 'opts', 'full', 'dgramfull', 'shutwr', 'shutrd', 'shutboth', 'peerclosed', 'peerreset', 'seqreset', 'seqclosed', 'fork', 'creds', 'childpair'];
const only = process.env.UNIX_ONLY?.split(',');

for (const mode of PAIR) {
  if (only && !only.includes(`pair:${mode}`)) continue;
  test(`unix socketpairs: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('unix_pair', [mode])), 'PASS');
  });
}
for (const mode of ['stream', 'dgram', 'seqpacket', 'opts', 'full', 'dgramfull', 'creds', 'fork', 'peerreset']) {
  if (only && !only.includes(`pair-lr:${mode}`)) continue;
  test(`unix socketpairs: leave running: ${mode} (nothing consumed)`, async () => {
    assert.equal(await leaveRunning(Subject.start('unix_pair', [mode])), 'PASS');
  });
}

const LISTEN = ['listen', 'backlog', 'seqbacklog', 'accepted', 'abstract', 'clientbound', 'child', 'deleted', 'srvclosed', 'srvreset'];
for (const mode of LISTEN) {
  if (only && !only.includes(`listen:${mode}`)) continue;
  test(`unix listeners and connections: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('unix_listen', [mode])), 'PASS');
  });
}
for (const mode of ['backlog', 'accepted', 'srvreset', 'deleted']) {
  if (only && !only.includes(`listen-lr:${mode}`)) continue;
  test(`unix listeners and connections: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('unix_listen', [mode])), 'PASS');
  });
}

const DGRAM = ['senders', 'abstract', 'self', 'connected', 'autobind', 'creds', 'deleted', 'gone', 'empty'];
for (const mode of DGRAM) {
  if (only && !only.includes(`dgram:${mode}`)) continue;
  test(`unix datagram sockets: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('unix_dgram', [mode])), 'PASS');
  });
}
for (const mode of ['senders', 'self', 'creds', 'deleted']) {
  if (only && !only.includes(`dgram-lr:${mode}`)) continue;
  test(`unix datagram sockets: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('unix_dgram', [mode])), 'PASS');
  });
}

const RIGHTS = ['pipe', 'file', 'socket', 'self', 'same', 'dgram', 'nested', 'creds'];
for (const mode of RIGHTS) {
  if (only && !only.includes(`rights:${mode}`)) continue;
  test(`unix files in flight: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('unix_rights', [mode])), 'PASS');
  });
}
for (const mode of ['pipe', 'self', 'nested']) {
  if (only && !only.includes(`rights-lr:${mode}`)) continue;
  test(`unix files in flight: leave running: ${mode}`, async () => {
    assert.equal(await leaveRunning(Subject.start('unix_rights', [mode])), 'PASS');
  });
}

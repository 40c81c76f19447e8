// Unix domain sockets (src/objects/unix.ts): socketpairs, named sockets,
// listeners with connections waiting, datagram sockets with several senders,
// files in flight; queues read without consuming them (--leave-running);
// sockets of other families and peers outside the tree refused.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Subject, SUBJECTS, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, readText, waitUntil, tmpDir } from './harness.js';

after(cleanupAll);

const PAIR = ['stream', 'dgram', 'seqpacket', 'empty', 'opts', 'full', 'dgramfull', 'shutwr', 'shutrd', 'shutboth', 'peerclosed', 'peerreset', 'seqreset', 'seqclosed', 'fork', 'creds', 'childpair', 'uidpair'];
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

const LISTEN = ['listen', 'backlog', 'seqbacklog', 'accepted', 'abstract', 'clientbound', 'child', 'deleted', 'srvclosed', 'srvreset', 'relative'];
for (const mode of LISTEN) {
  if (only && !only.includes(`listen:${mode}`)) continue;
  test(`unix listeners and connections: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('unix_listen', [mode])), 'PASS');
  });
}
for (const mode of ['backlog', 'accepted', 'srvreset', 'deleted', 'relative']) {
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

// ---- refusals, and --ext-unix-sk

test('unix: a socket whose peer is outside the tree is refused, naming pid, fd and peer; the process runs on', async () => {
  // (Node's stdio pipes are unix stream socketpairs: the subject's stdout is connected to this process)
  const dir = tmpDir('unix-out');
  const out = path.join(dir, 'verdict.txt');
  const child = spawn(path.join(SUBJECTS, 'unix_pair'), [out, 'stream'], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await waitUntil('READY', () => fs.existsSync(out) && readText(out).includes('READY'));
    const r = ckpt('dump', '-t', String(child.pid), '-D', path.join(dir, 'img'));
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`pid ${child.pid}: fd 1 \\(socket:\\[\\d+\\]\\): its peer, socket \\d+ \\(\\(unnamed\\)\\), is held by pid ${process.pid} \\(fd \\d+\\), outside the tree`));
    process.kill(child.pid!, 'SIGTERM');
    await waitUntil('verdict', () => /PASS|FAIL/.test(readText(out)));
    assert.match(readText(out), /PASS/);
  } finally {
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
});

test('unix: a connection waiting to be accepted that holds data is refused, and the process runs on', async () => {
  const s = Subject.start('unix_listen', ['pendingdata']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}: fd \\d+ \\(socket:\\[\\d+\\]\\): a connection waiting to be accepted \\(client socket \\d+\\) already holds data`));
  assert.equal(await s.verdict(), 'PASS');
});

test('unix: --leave-running of a seqpacket socket whose peer closed is refused (reading would take its error); the process runs on', async () => {
  const s = Subject.start('unix_pair', ['seqreset']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '--leave-running');
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /a seqpacket socket whose peer was closed: its queue cannot be read without taking the error/);
  assert.equal(await s.verdict(), 'PASS');
});

test('unix: --ext-unix-sk: a datagram client of a server outside the tree is connected to it again', async () => {
  const dir = tmpDir('unix-ext');
  const sockPath = path.join(dir, 'ext.sock');
  const server = Subject.start('unix_dgram', ['extserver', sockPath]);
  await server.ready();
  const client = Subject.start('unix_dgram', ['extclient', sockPath]);
  await client.ready();
  const img = path.join(client.dir, 'img');
  const no = ckpt('dump', '-t', String(client.pid), '-D', img);
  assert.equal(no.status, 3, no.stderr);
  assert.match(no.stderr, new RegExp(`pid ${client.pid}: fd 3 \\(socket:\\[\\d+\\]\\): its peer, socket \\d+ \\(${sockPath.replace(/[.]/g, '\\.')}\\), is held by pid ${server.pid} \\(fd 3\\), outside the tree \\(--ext-unix-sk lets it`));
  ckptOk('dump', '-t', String(client.pid), '-D', img, '--ext-unix-sk');
  await client.gone();
  const info = ckptOk('info', '-D', img);
  assert.match(info.stdout, /peer outside the tree at /);
  const bad = ckpt('restore', '-D', img, '-d');
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /restore with --ext-unix-sk/);
  ckptOk('restore', '-D', img, '-d', '--ext-unix-sk');
  assert.equal(await client.verdict(), 'PASS');
  assert.equal(await server.verdict(), 'PASS');
});

test('unix: a datagram server of the tree with a client outside is refused unless --ext-unix-sk', async () => {
  const dir = tmpDir('unix-ext2');
  const sockPath = path.join(dir, 'ext.sock');
  const server = Subject.start('unix_dgram', ['extserver', sockPath]);
  await server.ready();
  const client = Subject.start('unix_dgram', ['extclient', sockPath]);
  await client.ready();
  const r = ckpt('dump', '-t', String(server.pid), '-D', path.join(server.dir, 'img'), '--leave-running');
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${server.pid}: fd 3 \\(socket:\\[\\d+\\]\\): socket \\d+, held by pid ${client.pid} \\(fd 3\\), outside the tree, is connected to it`));
  ckptOk('dump', '-t', String(server.pid), '-D', path.join(server.dir, 'img2'), '--leave-running', '--ext-unix-sk');
  assert.equal(await client.verdict(), 'PASS');
  assert.equal(await server.verdict(), 'PASS');
});

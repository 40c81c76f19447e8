// TCP sockets (src/objects/tcp.ts): listeners, unconnected sockets and
// connections (TCP repair) in the subject test/subjects/tcp.c, with both ends
// in the tree or a peer outside it; connections refused without
// --tcp-established, connections not yet accepted refused without
// --skip-in-flight; --tcp-close.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, waitUntil, treeGone } from './harness.js';

after(cleanupAll);

const only = process.env.TCP_ONLY?.split(',');
const want = (name: string) => !only || only.includes(name);

// Sockets that are not connections need no flag.
for (const mode of ['listen4', 'listen6', 'dual', 'bound', 'unbound']) {
  if (!want(mode)) continue;
  test(`tcp: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('tcp', [mode])), 'PASS');
  });
}
for (const mode of ['pair', 'pair6', 'mapped', 'full', 'shared', 'accepted', 'shutrd', 'halfwr', 'closed', 'inflight']) {
  if (!want(mode)) continue;
  test(`tcp: round trip with --tcp-established: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('tcp', [mode]), { dump: ['--tcp-established'] }), 'PASS');
  });
}
for (const mode of ['listen4', 'pair', 'full', 'accepted', 'halfwr', 'inflight']) {
  if (!want(`lr:${mode}`)) continue;
  test(`tcp: leave running: ${mode} (the connections go on untouched)`, async () => {
    assert.equal(await leaveRunning(Subject.start('tcp', [mode]), ['--tcp-established']), 'PASS');
  });
}

test('tcp: an established connection is refused without --tcp-established, naming the fd and both addresses', async () => {
  const s = Subject.start('tcp', ['pair']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}: fd \\d+ \\(socket:\\[\\d+\\]\\): an established TCP connection 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:\\d+ \\(established\\); dump with --tcp-established`));
  assert.equal(await s.verdict(), 'PASS', 'the program runs on unchanged');
});

test('tcp: a connection waiting in a listener\'s queue is refused, naming the client; --skip-in-flight leaves it out', async () => {
  const s = Subject.start('tcp', ['pending', 'skipped']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '--tcp-established');
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /listening on 127\.0\.0\.1:\d+, it has 1 connection the program has not accepted yet \(from 127\.0\.0\.1:\d+\)/);
  assert.match(r.stderr, /--skip-in-flight/);
  assert.equal(await roundTrip(s, { dump: ['--tcp-established', '--skip-in-flight'] }), 'PASS');
});

test('tcp: after a refused dump, the connection waiting in the listener\'s queue is still there to accept', async () => {
  const s = Subject.start('tcp', ['pending']);
  await s.ready();
  assert.equal(ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '--tcp-established').status, 3);
  assert.equal(await s.verdict(), 'PASS');
});

/** A peer outside the tree: a server in this process, which the subject connects to. */
async function outsidePeer(): Promise<{ port: number; conn: Promise<net.Socket>; close(): void }> {
  const srv = net.createServer();
  let resolve!: (s: net.Socket) => void;
  const conn = new Promise<net.Socket>((r) => { resolve = r; });
  srv.on('connection', (c) => { c.setNoDelay(true); resolve(c); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { port: (srv.address() as net.AddressInfo).port, conn, close: () => srv.close() };
}

/** Send "ping N", wait for "pong N". */
async function ping(c: net.Socket, n: number, got: string[]): Promise<void> {
  c.write(`ping ${n}\n`);
  await waitUntil(`pong ${n}`, () => got.join('').includes(`pong ${n}\n`), 20000);
}

for (const lr of [false, true]) {
  if (!want(lr ? 'lr:client' : 'client')) continue;
  test(`tcp: a connection to a peer outside the tree carries on${lr ? ' (leave running)' : ''}, the peer sees no reset`, async () => {
    const peer = await outsidePeer();
    try {
      const s = Subject.start('tcp', ['client', String(peer.port)]);
      const c = await peer.conn;
      const got: string[] = [];
      let ended = '';
      c.on('data', (d) => got.push(d.toString()));
      c.on('error', (e) => { ended = e.message; });
      c.on('end', () => { ended = 'end'; });
      await s.ready();
      await waitUntil('hello', () => got.join('').startsWith('hello\n'));
      await ping(c, 0, got);
      const img = path.join(s.dir, 'img');
      if (lr) {
        ckptOk('dump', '-t', String(s.pid), '-D', img, '--tcp-established', '--leave-running');
      } else {
        ckptOk('dump', '-t', String(s.pid), '-D', img, '--tcp-established');
        await s.gone();
        await treeGone(img);
        ckptOk('restore', '-D', img, '-d');
      }
      await ping(c, 1, got);
      await ping(c, 2, got);
      assert.equal(ended, '', 'the peer saw its connection end');
      assert.equal(await s.verdict(), 'PASS');
      c.destroy();
    } finally { peer.close(); }
  });
}

/**
 * A listener outside the tree whose queue is full (backlog 0, one connection
 * not accepted), so that a SYN to it is dropped: a connect stays under way.
 * `drain()` makes it accept (and echo) from then on.
 */
function fullListener(): { port: Promise<number>; drain(): void; close(): void } {
  const py = spawn('python3', ['-c', `
import socket, sys, threading
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(0)
c = socket.create_connection(l.getsockname())
print(l.getsockname()[1], flush=True)
sys.stdin.readline()
def echo(s):
    while True:
        d = s.recv(100)
        if not d: return
        s.sendall(d)
while True:
    s, _ = l.accept()
    threading.Thread(target=echo, args=(s,), daemon=True).start()
`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = new Promise<number>((r) => py.stdout.once('data', (d) => r(Number(d.toString().trim()))));
  return { port, drain: () => py.stdin.write('\n'), close: () => py.kill('SIGKILL') };
}

for (const lr of [false, true]) {
  if (!want(lr ? 'lr:connecting' : 'connecting')) continue;
  test(`tcp: a connection under way (SYN_SENT) is made again and completes${lr ? ' (leave running)' : ''}`, async () => {
    const l = fullListener();
    try {
      const s = Subject.start('tcp', ['connecting', String(await l.port)]);
      await s.ready();
      const img = path.join(s.dir, 'img');
      if (lr) ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
      else {
        ckptOk('dump', '-t', String(s.pid), '-D', img);
        await s.gone();
        await treeGone(img);
        ckptOk('restore', '-D', img, '-d');
      }
      l.drain();
      assert.equal(await s.verdict(), 'PASS');
    } finally { l.close(); }
  });
}

test('tcp: --tcp-close restores connections reset', async () => {
  const peer = await outsidePeer();
  try {
    const s = Subject.start('tcp', ['client', String(peer.port)]);
    const c = await peer.conn;
    let peerError = '';
    c.on('error', (e) => { peerError = (e as NodeJS.ErrnoException).code ?? e.message; });
    await s.ready();
    const img = path.join(s.dir, 'img');
    ckptOk('dump', '-t', String(s.pid), '-D', img, '--tcp-established');
    await s.gone();
    await treeGone(img);
    ckptOk('restore', '-D', img, '-d', '--tcp-close');
    // (the subject ends by itself, seeing its connection end)
    await waitUntil('the subject to see the reset', () => s.lines().some((l) => l.startsWith('FAIL')));
    assert.match(s.lines().find((l) => l.startsWith('FAIL'))!, /^FAIL the connection ended \(Connection reset by peer\) after 0 pings/, 'the program sees its connection reset');
    await s.reap();
    // (the peer learns of the reset when it next sends: the restored socket is closed)
    c.write('ping 0\n');
    await waitUntil('the peer to see the reset', () => peerError !== '');
    assert.equal(peerError, 'ECONNRESET');
    c.destroy();
  } finally { peer.close(); }
});

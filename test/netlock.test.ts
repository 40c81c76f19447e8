// The network lock (src/net/lock.ts), with each backend (nftables, iptables),
// on real sockets of the real kernel. Every case runs in a fresh network
// namespace of its own (ip netns add), so the host's rules are never touched
// and the cases cannot disturb each other: the sockets are held there by
// test/fixtures/netpeer.py, and the lock is made there (the `netns` option).
//
// What a lock must do is checked against what happens without it: a closed
// listener refuses a connect(), a closed UDP port makes a connected sender
// get ECONNREFUSED, a closed connection answers with a RST. With the lock,
// none of that reaches the peer, and after unlock traffic goes on.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT, CKPT, sleep } from './harness.js';
import * as L from '../src/net/lock.js';
import { CkptError, MissingError } from '../src/errors.js';

const PEER = path.join(ROOT, 'test/fixtures/netpeer.py');
const MARK = `0x${L.PASS_MARK.toString(16)}`;

// ---------------------------------------------------------------- namespaces and peers

let nsSeq = 0;
const namespaces = new Set<string>();
const peers = new Set<Peer>();

/** The tools the test runs, found where ckpt finds them (PATH may lack the sbin directories). */
const tool = (name: string): string => L.findTool(name) ?? name;
const IP = tool('ip');
const NSENTER = tool('nsenter');

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(tool(cmd), args, { encoding: 'utf8', input, timeout: 30000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh network namespace with lo up. */
class Netns {
  readonly name = `ckpt-nl-${process.pid}-${++nsSeq}`;
  readonly path = `/run/netns/${this.name}`;
  constructor() {
    run('ip', ['netns', 'add', this.name]);
    namespaces.add(this.name);
    run('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
  }
  get o(): L.NetnsOption { return { netns: this.path }; }
  /** A command run in the namespace. */
  exec(cmd: string, args: string[], input?: string): string { return run(NSENTER, [`--net=${this.path}`, '--', tool(cmd), ...args], input); }
  del(): void {
    if (namespaces.delete(this.name)) spawnSync(IP, ['netns', 'del', this.name]);
  }
}

/** netpeer.py in a namespace: one command, one answer. */
class Peer {
  private proc: ChildProcess;
  private waiting: Array<(line: string) => void> = [];
  private lines: string[] = [];
  private stderr = '';
  constructor(ns: Netns) {
    this.proc = spawn(NSENTER, [`--net=${ns.path}`, '--', tool('python3'), '-u', PEER], { stdio: ['pipe', 'pipe', 'pipe'] });
    peers.add(this);
    this.proc.stderr!.on('data', (d) => { this.stderr += String(d); });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      const w = this.waiting.shift();
      if (w) w(l); else this.lines.push(l);
    });
  }
  /** Send a command, get its answer. */
  cmd(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`netpeer: no answer to "${line}" ${this.stderr}`)), 30000);
      this.waiting.push((l) => { clearTimeout(t); resolve(l); });
      this.proc.stdin!.write(line + '\n');
    });
  }
  /** A command that must succeed: what follows "ok". */
  async ok(line: string): Promise<string> {
    const a = await this.cmd(line);
    assert.match(a, /^ok\b/, `netpeer: ${line} -> ${a}`);
    return a.slice(2).trim();
  }
  async port(line: string): Promise<number> { return Number(await this.ok(line)); }
  /** The TCP state and pending socket error of a socket, e.g. "ESTABLISHED 0". */
  status(n: string): Promise<string> { return this.ok(`status ${n}`); }
  /** Wait until a socket's status is `want` (at most `ms`); the last status seen. */
  async until(n: string, want: RegExp, ms: number): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const s = await this.status(n);
      if (want.test(s) || Date.now() > end) return s;
      await sleep(50);
    }
  }
  stop(): void {
    peers.delete(this);
    try { this.proc.stdin!.end('quit\n'); } catch { /* gone */ }
    try { this.proc.kill('SIGKILL'); } catch { /* gone */ }
  }
}

after(() => {
  for (const p of [...peers]) p.stop();
  for (const n of [...namespaces]) spawnSync(IP, ['netns', 'del', n]);
});

/** A test body in a fresh namespace with a peer; both are removed afterwards. */
async function inNetns(fn: (ns: Netns, p: Peer) => Promise<void>): Promise<void> {
  const ns = new Netns();
  const p = new Peer(ns);
  try { await fn(ns, p); } finally { p.stop(); ns.del(); }
}

const tcp4 = (lport: number, rport?: number): L.LockTarget => ({
  proto: 'tcp', family: 4, local: { addr: '127.0.0.1', port: lport }, ...(rport ? { remote: { addr: '127.0.0.1', port: rport } } : { listen: true }),
});

// ---------------------------------------------------------------- without a kernel: the rules

test('netlock: rules: IPv4-mapped addresses are IPv4, a dual-stack [::] socket is locked in both, v6only only in IPv6', () => {
  const mapped = L.lockScript({ backend: 'nftables', name: 'm', targets: [{ proto: 'tcp', family: 6, local: { addr: '::ffff:10.1.2.3', port: 80 }, remote: { addr: '::ffff:10.9.9.9', port: 4000 } }] });
  assert.match(mapped, /ip saddr 10\.9\.9\.9 ip daddr 10\.1\.2\.3 tcp sport 4000 tcp dport 80 drop/);
  assert.match(mapped, /ip saddr 10\.1\.2\.3 ip daddr 10\.9\.9\.9 tcp sport 80 tcp dport 4000 drop/);
  assert.doesNotMatch(mapped, /ip6 /);
  const dual = L.lockScript({ backend: 'iptables', name: 'd', targets: [{ proto: 'udp', family: 6, local: { addr: '::', port: 53 } }] });
  assert.match(dual, /^ip6tables -A CKPT-d-in -p udp --dport 53 -j DROP$/m);
  assert.match(dual, /^iptables -A CKPT-d-in -p udp --dport 53 -j DROP$/m);
  assert.match(dual, /^iptables -A CKPT-d-out -p udp --sport 53 -j DROP$/m);
  const only6 = L.lockScript({ backend: 'iptables', name: 'd', targets: [{ proto: 'udp', family: 6, local: { addr: '::', port: 53 }, v6only: true }] });
  assert.doesNotMatch(only6, /^iptables /m);
  const listen = L.lockScript({ backend: 'nftables', name: 'l', targets: [{ proto: 'tcp', family: 4, local: { addr: '0.0.0.0', port: 8080 }, listen: true }] });
  assert.match(listen, /meta nfproto ipv4 tcp dport 8080 tcp flags & \(syn \| ack\) == syn drop/);
  assert.doesNotMatch(listen, /chain output \{[^}]*drop/); // a listener sends nothing worth dropping
  const ul = L.lockScript({ backend: 'iptables', name: 'u', targets: [{ proto: 'udplite', family: 6, local: { addr: 'fe80::1%eth0', port: 9 }, remote: { addr: 'fe80::2', port: 0 } }] });
  assert.match(ul, /^ip6tables -A CKPT-u-in -s fe80::2\/128 -d fe80::1\/128 -p udplite -m multiport --dports 9 -j DROP$/m);
  // The pass mark comes first in each chain.
  const s = L.lockScript({ backend: 'nftables', name: 'x', targets: [tcp4(1, 2)] });
  assert.match(s, new RegExp(`policy accept;\\n\\s*meta mark ${MARK} accept\\n\\s*ip saddr`));
});

test('netlock: bad targets and names are refused before any command runs', () => {
  const bad: Array<[Partial<L.LockTarget> & Record<string, unknown>, RegExp]> = [
    [{ ...tcp4(80, 1000), local: { addr: 'localhost', port: 80 } }, /not an IP address/],
    [{ ...tcp4(80, 1000), local: { addr: '127.0.0.1; flush ruleset', port: 80 } }, /not an IP address/],
    [{ ...tcp4(80, 1000), local: { addr: '::1', port: 80 } }, /IPv6 address in an IPv4 target/],
    [{ ...tcp4(0, 1000) }, /local port 0/],
    [{ ...tcp4(70000, 1000) }, /local port 70000/],
    [{ proto: 'udp', family: 4, local: { addr: '0.0.0.0', port: 5 }, listen: true }, /only a TCP socket listens/],
    [{ ...tcp4(80, 1000), proto: 'sctp' as 'tcp' }, /protocol sctp/],
  ];
  for (const [t, re] of bad) {
    assert.throws(() => L.lockNetwork([t as L.LockTarget], { backend: 'nftables', netns: '/nonexistent' }), (e: unknown) => e instanceof CkptError && re.test(e.message), JSON.stringify(t));
  }
  assert.throws(() => L.lockNetwork([tcp4(80, 1000)], { backend: 'nftables', name: 'a-b', netns: '/nonexistent' }), /bad lock name/);
  assert.throws(() => L.lockNetwork([tcp4(80, 1000)], { backend: 'nftables', name: 'x'.repeat(17), netns: '/nonexistent' }), /bad lock name/);
  assert.equal(L.LockRecordSchema.safeParse({ backend: 'iptables', name: 'ok_1', targets: [tcp4(1, 2)] }).success, true);
  assert.equal(L.LockRecordSchema.safeParse({ backend: 'iptables', name: 'ok_1', targets: [{ ...tcp4(1, 2), local: { addr: 'nope', port: 1 } }] }).success, false);
});

test('netlock: detectBackend names what is there (nft first), and where the tools are', () => {
  const d = L.detectBackend();
  const nft = L.findTool('nft');
  if (nft) assert.deepEqual([d.backend, /^nft \d+\.\d+/.test(d.detail)], ['nftables', true], d.detail);
  else if (L.findTool('iptables')) assert.equal(d.backend, 'iptables', d.detail);
  else assert.match(d.detail, /nftables.*iptables/);
  // The sbin directories are searched even when PATH lacks them.
  const saved = process.env.PATH;
  try {
    process.env.PATH = '/nonexistent';
    L.setToolDirs(null); // (forgets what was found)
    if (fs.existsSync('/usr/sbin/nft')) assert.equal(L.findTool('nft'), '/usr/sbin/nft');
  } finally { process.env.PATH = saved; L.setToolDirs(null); }
});

test('netlock: without the tools, the error says which packages provide them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-nltools-'));
  try {
    L.setToolDirs([dir]);
    const d = L.detectBackend();
    assert.equal(d.backend, null);
    assert.match(d.detail, /nft not found.*install the package nftables.*or iptables/);
    assert.throws(() => L.lockNetwork([tcp4(80, 1000)], {}), (e: unknown) => e instanceof MissingError && /install the package nftables/.test(e.message));
    assert.throws(() => L.lockNetwork([tcp4(80, 1000)], { backend: 'iptables' }), (e: unknown) => e instanceof MissingError && /iptables-restore not found/.test(e.message));
    // iptables without ip6tables: IPv4 would do, IPv6 targets are refused clearly.
    for (const t of ['iptables', 'iptables-restore', 'iptables-save', 'nsenter']) {
      const p = (L.setToolDirs(null), L.findTool(t));
      if (p) fs.symlinkSync(p, path.join(dir, t));
    }
    L.setToolDirs([dir]);
    const six: L.LockTarget = { proto: 'tcp', family: 6, local: { addr: '::1', port: 80 }, listen: true };
    assert.throws(() => L.lockNetwork([six], { backend: 'iptables', netns: '/nonexistent' }), (e: unknown) => e instanceof MissingError && /ip6tables-restore not found, and IPv6 sockets are to be locked/.test(e.message));
  } finally {
    L.setToolDirs(null);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('netlock: ckpt check reports TCP_REPAIR and the network lock backend, and says what is missing without CAP_NET_ADMIN', () => {
  const r = spawnSync(CKPT, ['check'], { encoding: 'utf8' });
  assert.match(r.stdout, /^ok\s+TCP_REPAIR \(optional\): works/m);
  const d = L.detectBackend();
  assert.match(r.stdout, new RegExp(`^ok\\s+network lock \\(optional\\): ${d.backend} \\(`, 'm'), r.stdout);
  const setpriv = L.findTool('setpriv');
  if (!setpriv) return;
  const n = spawnSync(setpriv, ['--bounding-set', '-net_admin', '--inh-caps', '-net_admin', CKPT, 'check'], { encoding: 'utf8' });
  assert.match(n.stdout, /^absent\s+TCP_REPAIR \(optional\): .*EPERM.*CAP_NET_ADMIN/m, n.stdout + n.stderr);
  assert.match(n.stdout, /^absent\s+network lock \(optional\): no usable network lock tool/m);
});

// ---------------------------------------------------------------- each backend on real sockets

for (const backend of ['nftables', 'iptables'] as const) {
  const probe = L.probeBackend(backend);
  describe(`netlock with ${backend}`, { skip: probe.ok ? false : probe.detail }, () => {
    const opts = (ns: Netns, extra: Partial<L.LockOptions> = {}): L.LockOptions => ({ backend, ...ns.o, ...extra });

    test(`${backend}: an established TCP connection: data is held, no RST either way, and flows after unlock`, async () => {
      await inNetns(async (ns, p) => {
        const P = await p.port('tcp_listen l 4 127.0.0.1 0');
        const cport = await p.port(`connect c 4 127.0.0.1 ${P}`);
        await p.ok('accept s l 5');
        assert.equal(await p.until('c', /^ESTABLISHED/, 5000), 'ESTABLISHED 0');

        // s is the socket being checkpointed; c its peer.
        const rec = L.lockNetwork([tcp4(P, cport)], opts(ns));
        assert.deepEqual([rec.backend, L.isLocked(rec, ns.o)], [backend, true]);
        await p.ok('send c hello');
        assert.equal(await p.cmd('recv s 1.5'), 'none', 'data reached the locked socket');
        assert.equal(await p.status('c'), 'ESTABLISHED 0');
        assert.equal(await p.status('s'), 'ESTABLISHED 0');
        L.unlockNetwork(rec, ns.o);
        assert.equal(L.isLocked(rec, ns.o), false);
        assert.equal(await p.cmd('recv s 20'), 'ok hello', 'the retransmission did not arrive after unlock');
        assert.equal(await p.status('c'), 'ESTABLISHED 0');

        // Now the checkpointed side goes away (the dumped process is killed)
        // while locked: its RST and the kernel's answers to the peer's data
        // are held; after unlock the peer learns of it (the control: the
        // lock was what kept the RST away).
        const c2 = await p.port(`connect c2 4 127.0.0.1 ${P}`);
        await p.ok('accept s2 l 5');
        assert.equal(await p.until('c2', /^ESTABLISHED/, 5000), 'ESTABLISHED 0');
        const rec2 = L.lockNetwork([tcp4(P, c2)], opts(ns));
        await p.ok('close s2 rst');
        await p.ok('send c2 more');
        await sleep(1500);
        assert.equal(await p.status('c2'), 'ESTABLISHED 0', 'the peer got a RST through the lock');
        L.unlockNetwork(rec2, ns.o);
        assert.equal(await p.until('c2', /^CLOSE ECONNRESET/, 20000), 'CLOSE ECONNRESET', 'without the lock the peer is reset');
      });
    });

    test(`${backend}: a listener: new connections wait (no RST while its socket is gone) and complete after unlock`, async () => {
      await inNetns(async (ns, p) => {
        // The control: a closed port refuses at once.
        const P0 = await p.port('tcp_listen l0 4 127.0.0.1 0');
        await p.ok('close l0');
        await p.ok(`connect c0 4 127.0.0.1 ${P0}`);
        assert.equal(await p.until('c0', /ECONNREFUSED/, 5000), 'CLOSE ECONNREFUSED');

        const P = await p.port('tcp_listen l 4 127.0.0.1 0');
        await p.ok(`connect e 4 127.0.0.1 ${P}`);
        await p.ok('accept es l 5');
        const rec = L.lockNetwork([tcp4(P)], opts(ns));
        // Connections already made to the port are not held: only SYNs are.
        await p.ok('send e hi');
        assert.equal(await p.cmd('recv es 5'), 'ok hi');
        await p.ok('close l'); // the dumped process is killed
        await p.ok(`connect c 4 127.0.0.1 ${P}`);
        await sleep(1500);
        assert.equal(await p.status('c'), 'SYN_SENT 0', 'the SYN was answered through the lock');
        await p.port(`tcp_listen l2 4 127.0.0.1 ${P}`); // restore recreated it
        L.unlockNetwork(rec, ns.o);
        assert.equal(await p.until('c', /^ESTABLISHED/, 20000), 'ESTABLISHED 0', 'the connection did not complete after unlock');
        await p.ok('accept s l2 5');
      });
    });

    test(`${backend}: a bound UDP socket: datagrams are held, no ECONNREFUSED while it is gone, delivered after unlock`, async () => {
      await inNetns(async (ns, p) => {
        const P = await p.port('udp_bind u 4 127.0.0.1 0 udp');
        await p.port(`udp_connect q 4 127.0.0.1 ${P} udp`);
        await p.ok('send q a0');
        assert.equal(await p.cmd('recv u 5'), 'ok a0');
        const rec = L.lockNetwork([{ proto: 'udp', family: 4, local: { addr: '127.0.0.1', port: P } }], opts(ns));
        await p.ok('send q a1');
        assert.equal(await p.cmd('recv u 1'), 'none', 'a datagram reached the locked socket');
        // What the socket sends is held too (netfilter's drop in output fails the send with EPERM).
        const W = await p.port('udp_bind w 4 127.0.0.1 0 udp');
        assert.match(await p.cmd(`sendto u 127.0.0.1 ${W} out`), /^(ok 3|err EPERM)$/);
        assert.equal(await p.cmd('recv w 1'), 'none', 'a datagram left the locked socket');
        await p.ok('close u'); // the dumped process is killed
        await p.ok('send q a2');
        await sleep(300);
        await p.ok('send q a3');
        assert.equal(await p.status('q'), 'udp 0', 'the sender saw the port closed through the lock');
        await p.port(`udp_bind u2 4 127.0.0.1 ${P} udp`);
        L.unlockNetwork(rec, ns.o);
        await p.ok('send q a4');
        assert.equal(await p.cmd('recv u2 5'), 'ok a4');
        // The control: without the lock, a closed port is reported to the sender.
        await p.ok('close u2');
        await p.ok('send q a5');
        await sleep(300);
        assert.match(await p.cmd('send q a6'), /^err ECONNREFUSED$/);
      });
    });

    test(`${backend}: UDP-Lite over IPv6, a connected target: only its peer's datagrams are held`, async () => {
      await inNetns(async (ns, p) => {
        const P = await p.port('udp_bind v 6 ::1 0 udplite');
        const q = await p.port(`udp_connect q 6 ::1 ${P} udplite`);
        await p.port(`udp_connect r 6 ::1 ${P} udplite`);
        const rec = L.lockNetwork([{ proto: 'udplite', family: 6, local: { addr: '::1', port: P }, remote: { addr: '::1', port: q } }], opts(ns));
        await p.ok('send q b1');
        assert.equal(await p.cmd('recv v 1'), 'none');
        await p.ok('send r b2');
        assert.equal(await p.cmd('recv v 5'), 'ok b2');
        L.unlockNetwork(rec, ns.o);
        await p.ok('send q b3');
        assert.equal(await p.cmd('recv v 5'), 'ok b3');
      });
    });

    test(`${backend}: packets marked PASS_MARK pass the lock (in and out)`, async () => {
      await inNetns(async (ns, p) => {
        const P = await p.port('tcp_listen l 4 127.0.0.1 0');
        const P2 = await p.port('tcp_listen l2 4 127.0.0.1 0');
        const c = await p.port(`connect c 4 127.0.0.1 ${P2}`);
        await p.ok('accept s l2 5');
        assert.equal(await p.until('c', /^ESTABLISHED/, 5000), 'ESTABLISHED 0');
        // One lock, two targets: the listener and the connection.
        const rec = L.lockNetwork([tcp4(P), tcp4(P2, c)], opts(ns));
        await p.ok(`connect m 4 127.0.0.1 ${P} ${MARK}`);
        assert.equal(await p.until('m', /^ESTABLISHED/, 5000), 'ESTABLISHED 0', 'a marked SYN was held');
        await p.ok(`connect u 4 127.0.0.1 ${P}`);
        await sleep(1200);
        assert.equal(await p.status('u'), 'SYN_SENT 0', 'an unmarked SYN passed');
        await p.ok(`setmark s ${MARK}`);
        await p.ok('send s fromlocked');
        assert.equal(await p.cmd('recv c 5'), 'ok fromlocked', 'a marked segment was held on its way out');
        await p.ok('send c topeer');
        assert.equal(await p.cmd('recv s 1'), 'none', 'an unmarked segment reached the locked socket');
        L.unlockNetwork(rec, ns.o);
        assert.equal(await p.cmd('recv s 20'), 'ok topeer');
        assert.equal(await p.until('u', /^ESTABLISHED/, 20000), 'ESTABLISHED 0');
      });
    });

    test(`${backend}: IPv6: a connection over ::1, and a dual-stack listener on [::] that holds IPv4 SYNs too`, async () => {
      await inNetns(async (ns, p) => {
        const P = await p.port('tcp_listen l 6 :: 0');
        const c = await p.port(`connect c 6 ::1 ${P}`);
        await p.ok('accept s l 5');
        assert.equal(await p.until('c', /^ESTABLISHED/, 5000), 'ESTABLISHED 0');
        const rec = L.lockNetwork([
          { proto: 'tcp', family: 6, local: { addr: '::1', port: P }, remote: { addr: '::1', port: c } },
          { proto: 'tcp', family: 6, local: { addr: '::', port: P }, listen: true },
        ], opts(ns));
        await p.ok('send c six');
        assert.equal(await p.cmd('recv s 1'), 'none');
        await p.ok(`connect n6 6 ::1 ${P}`);
        await p.ok(`connect n4 4 127.0.0.1 ${P}`);
        await sleep(1200);
        assert.equal(await p.status('n6'), 'SYN_SENT 0');
        assert.equal(await p.status('n4'), 'SYN_SENT 0', 'an IPv4 SYN reached the dual-stack listener');
        assert.equal(await p.status('c'), 'ESTABLISHED 0');
        L.unlockNetwork(rec, ns.o);
        assert.equal(await p.cmd('recv s 20'), 'ok six');
        assert.equal(await p.until('n6', /^ESTABLISHED/, 20000), 'ESTABLISHED 0');
        assert.equal(await p.until('n4', /^ESTABLISHED/, 20000), 'ESTABLISHED 0');
      });
    });

    test(`${backend}: two locks coexist, unlock removes only its own and is idempotent, ensureLocked re-makes a lock (also in another namespace)`, async () => {
      await inNetns(async (ns, p) => {
        const A = await p.port('udp_bind a 4 127.0.0.1 0 udp');
        const B = await p.port('udp_bind b 4 127.0.0.1 0 udp');
        await p.port('udp_bind x 4 127.0.0.1 0 udp');
        const udp = (port: number): L.LockTarget => ({ proto: 'udp', family: 4, local: { addr: '127.0.0.1', port } });
        const held = async (n: string, port: number) => {
          await p.ok(`sendto x 127.0.0.1 ${port} to${n}`);
          const got = await p.cmd(`recv ${n} 1`);
          if (got !== 'none') assert.equal(got, `ok to${n}`);
          return got === 'none';
        };
        const ra = L.lockNetwork([udp(A)], opts(ns, { name: 'lockA' }));
        const rb = L.lockNetwork([udp(B), { proto: 'tcp', family: 6, local: { addr: '::1', port: 999 }, listen: true }], opts(ns));
        assert.match(rb.name, L.LOCK_NAME_RE);
        assert.notEqual(rb.name, ra.name);
        assert.deepEqual([L.isLocked(ra, ns.o), L.isLocked(rb, ns.o), await held('a', A), await held('b', B)], [true, true, true, true]);
        assert.deepEqual(L.listLocks(ns.o).sort((x, y) => x.name.localeCompare(y.name)),
          [{ backend, name: ra.name }, { backend, name: rb.name }].sort((x, y) => x.name.localeCompare(y.name)));

        L.unlockNetwork(ra, ns.o);
        assert.deepEqual([L.isLocked(ra, ns.o), L.isLocked(rb, ns.o), await held('a', A), await held('b', B)], [false, true, false, true]);
        L.unlockNetwork(ra, ns.o); // gone already: no error
        assert.equal(L.isLocked(ra, ns.o), false);

        // ensureLocked on a lock in place leaves it as it is, once.
        const before = rules(ns, rb);
        L.ensureLocked(rb, ns.o);
        L.ensureLocked(rb, ns.o);
        assert.equal(rules(ns, rb), before);
        assert.equal(await held('b', B), true);
        // ... and re-makes one that is gone.
        L.unlockNetwork(rb, ns.o);
        assert.equal(await held('b', B), false);
        L.ensureLocked(rb, ns.o);
        assert.deepEqual([L.isLocked(rb, ns.o), await held('b', B), rules(ns, rb)], [true, true, before]);

        // Restore on another host: the record alone makes the lock there.
        const other = new Netns();
        try {
          assert.equal(L.isLocked(rb, other.o), false);
          L.ensureLocked(rb, other.o);
          assert.equal(L.isLocked(rb, other.o), true);
          assert.equal(rules(other, rb), before);
          L.unlockNetwork(rb, other.o);
          assert.equal(L.isLocked(rb, other.o), false);
          assert.equal(L.isLocked(rb, ns.o), true, 'unlock in one namespace removed the lock of another');
        } finally { other.del(); }
        assert.deepEqual(L.listLocks(ns.o), [{ backend, name: rb.name }]);
        L.unlockNetwork(rb, ns.o);
        assert.equal(L.isLocked(rb, ns.o), false);
        assert.equal(rules(ns, rb), '', 'something of the lock is left');
        assert.deepEqual(L.listLocks(ns.o), []);
      });
    });

    test(`${backend}: a failing command gives a clear error naming the backend and the tool's message`, async () => {
      await inNetns(async (ns) => {
        const rec = L.lockNetwork([tcp4(5000, 6000)], opts(ns, { name: 'dup' }));
        const before = rules(ns, rec);
        assert.throws(() => L.lockNetwork([tcp4(7000, 8000)], opts(ns, { name: 'dup' })), (e: unknown) => {
          assert.ok(e instanceof CkptError);
          assert.match(e.message, new RegExp(`^network lock \\(${backend}\\): .*failed \\(exit \\d+\\).*(File exists|already exists)`, 's'));
          return true;
        });
        assert.equal(rules(ns, rec), before, 'the failed lock changed the existing one');
        L.unlockNetwork(rec, ns.o);
        assert.throws(() => L.lockNetwork([tcp4(5000, 6000)], { backend, netns: '/nonexistent/netns' }),
          (e: unknown) => e instanceof CkptError && new RegExp(`network lock \\(${backend}\\).*/nonexistent/netns.*: .+`, 's').test(e.message));
      });
    });
  });
}

/** The lock's rules as the backend lists them in a namespace ('' when there are none). */
function rules(ns: Netns, rec: L.LockRecord): string {
  if (rec.backend === 'nftables') {
    const r = spawnSync(NSENTER, [`--net=${ns.path}`, '--', tool('nft'), 'list', 'table', 'inet', `ckpt-${rec.name}`], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout : '';
  }
  const mine = (save: string) => save.split('\n').filter((l) => l.includes(`CKPT-${rec.name}-`) && !l.startsWith('#')).join('\n');
  return [mine(ns.exec('iptables-save', ['-t', 'filter'])), mine(ns.exec('ip6tables-save', ['-t', 'filter']))].filter(Boolean).join('\n');
}

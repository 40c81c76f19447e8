// UDP and UDP-Lite sockets (src/objects/udp.ts): bound, connected,
// autobound, unbound, dual-stack, queued datagrams (put back through a raw
// socket), corked, shut down, multicast memberships with source filters,
// options, SO_REUSEPORT groups, shared and in-flight sockets; refusals of
// what cannot be read back. And the packet builders of src/net/packets.ts
// against packets the kernel itself sent.
//
// The whole file runs in a network namespace of its own (this process
// unshares it before starting anything: subjects and ckpt are its
// children), with lo up and multicast on: the host's network is not touched
// and ports cannot clash with other tests.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { sys } from '../src/kernel/ffi.js';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, CKPT } from './harness.js';
import { ipPacket, udpDatagram, tcpSegment, inetChecksum, PROTO, TCPF } from '../src/net/packets.js';

sys('unshare(CLONE_NEWNET)', 272 /* x86_64 unshare */, 0x40000000 /* CLONE_NEWNET */);
for (const args of [['link', 'set', 'lo', 'up'], ['link', 'set', 'lo', 'multicast', 'on']]) {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

after(cleanupAll);

const only = process.env.UDP_ONLY?.split(',');
const ROUND = ['bound4', 'bound6', 'dual', 'conn4', 'conn6', 'connauto', 'disconn', 'autobound', 'unbound', 'unboundshut', 'queue', 'queue6', 'queueconn', 'queuepre',
  'mapped', 'device', 'peekoff', 'cork', 'shutrd', 'shutwr', 'shutunconn', 'mcast', 'opts', 'reuseport', 'lite', 'lite6', 'shared', 'inflight', 'connrefused', 'connrefused6'];
for (const mode of ROUND) {
  if (only && !only.includes(mode)) continue;
  test(`udp: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('udp', [mode])), 'PASS');
  });
}
for (const mode of ['queue', 'queue6', 'queueconn', 'queuepre', 'peekoff', 'device', 'mcast', 'opts', 'lite', 'shared', 'connauto', 'connrefused', 'connrefused6', 'reuseport']) {
  if (only && !only.includes(`lr:${mode}`)) continue;
  test(`udp: leave running: ${mode} (nothing consumed, options put back)`, async () => {
    assert.equal(await leaveRunning(Subject.start('udp', [mode])), 'PASS');
  });
}

test('udp: ckpt info describes a socket with its addresses and queue', async () => {
  const s = Subject.start('udp', ['queue']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const info = ckptOk('info', '-D', img).stdout;
  assert.match(info, /udp 127\.0\.0\.1:\d+, 6 datagrams queued/);
  assert.equal(await s.verdict(), 'PASS');
});

for (const [mode, re] of [
  ['corkdata', /pid \d+: fd \d+ \(socket:\[\d+\]\), UDP 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+: \d+ bytes are waiting to be sent \(UDP_CORK is set\); corked data cannot be read back/],
  ['encap', /pid \d+: fd \d+ \(socket:\[\d+\]\), UDP 127\.0\.0\.1:\d+: the socket is an encapsulation socket \(UDP_ENCAP ESP-in-UDP\)/],
  ['recverr', /pid \d+: fd \d+ \(socket:\[\d+\]\), UDP 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+: the socket has a pending error or queued error messages \(POLLERR, with IP_RECVERR on\)/],
] as const) {
  test(`udp: refused: ${mode}, and the process runs on`, async () => {
    const s = Subject.start('udp', [mode]);
    await s.ready();
    const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(await s.verdict(), 'PASS');
  });
}

test('udp: a bind conflict on restore names the address and says the port is in use', async () => {
  const s = Subject.start('udp', ['bound4']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  // (another process takes the port meanwhile)
  const files = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8')) as { files: Array<{ kind: string; local?: { port: number } }> };
  const port = files.files.find((f) => f.kind === 'udp' && f.local)!.local!.port;
  const holder = spawnSync('python3', ['-c', `import socket, subprocess, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', ${port}))
r = subprocess.run(sys.argv[1:]); print(r.returncode)`, CKPT, 'restore', '-D', img, '-d'], { encoding: 'utf8' });
  assert.match(holder.stdout + holder.stderr, new RegExp(`127\\.0\\.0\\.1:${port} cannot be bound: the port is in use on this host`));
  assert.match(holder.stdout.trim(), /^5$/m);
});

// ---- packet builders against the kernel's own packets

test('packets: an IPv4 header checksum as RFC 1071 computes it (a known header)', () => {
  // 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7
  const h = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  assert.equal(inetChecksum(h), 0xb861);
  const p = ipPacket({ src: '192.168.0.1', dst: '192.168.0.199', proto: PROTO.UDP, payload: Buffer.alloc(0x73 - 20), ttl: 64 });
  assert.equal(p.subarray(0, 20).toString('hex'), '450000730000400040 11b861c0a80001c0a800c7'.replace(/ /g, ''));
});

test('packets: UDP, UDP-Lite, TCP and IPv6 packets are the bytes the kernel sends (captured on lo)', async () => {
  // The kernel sends each kind of packet on lo; a packet socket sees it; the builder, given the same fields, must give the same bytes.
  const script = `
import socket, struct, sys, time
P = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
P.bind(('lo', 0))
P.settimeout(2)
def grab(match):
    end = time.time() + 2
    while time.time() < end:
        d, a = P.recvfrom(70000)
        if a[2] != socket.PACKET_OUTGOING and match(d): return d
    raise SystemExit('nothing captured')
out = []
# UDP over IPv4
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 7001))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 7002))
s.sendto(b'hello, udp', ('127.0.0.1', 7001))
out.append(grab(lambda d: d[0] >> 4 == 4 and d[9] == 17 and d[22:24] == b'\\x1b\\x59'))
# UDP-Lite over IPv4, coverage 12
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136); r.bind(('127.0.0.1', 7003))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136); s.bind(('127.0.0.1', 7004)); s.setsockopt(136, 10, 12)
s.sendto(b'lite data here', ('127.0.0.1', 7003))
out.append(grab(lambda d: d[0] >> 4 == 4 and d[9] == 136))
# UDP over IPv6
r = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); r.bind(('::1', 7005))
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('::1', 7006))
s.sendto(b'v6 datagram!', ('::1', 7005))
out.append(grab(lambda d: d[0] >> 4 == 6 and d[6] == 17))
# a TCP SYN over IPv4
l = socket.socket(); l.bind(('127.0.0.1', 7007)); l.listen()
c = socket.socket(); c.setblocking(False)
try: c.connect(('127.0.0.1', 7007))
except BlockingIOError: pass
out.append(grab(lambda d: d[0] >> 4 == 4 and d[9] == 6 and d[33] == 2))
# a TCP SYN over IPv6
l6 = socket.socket(socket.AF_INET6); l6.bind(('::1', 7008)); l6.listen()
c6 = socket.socket(socket.AF_INET6); c6.setblocking(False)
try: c6.connect(('::1', 7008))
except BlockingIOError: pass
out.append(grab(lambda d: d[0] >> 4 == 6 and d[6] == 6 and d[53] == 2))
print(' '.join(x.hex() for x in out))
`;
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [u4, lite, u6, syn4, syn6] = r.stdout.trim().split(' ').map((h) => Buffer.from(h, 'hex'));
  // (lo offloads UDP and TCP checksums: the kernel's packet holds only the pseudo header's sum there, so that
  // field is compared in the next test, by the kernel accepting what the builders make)
  const masked = (b: Buffer, at: number) => { const c = Buffer.from(b); c[at] = 0; c[at + 1] = 0; return c.toString('hex'); };
  const ttl4 = u4[8], id4 = (u4[4] << 8) | u4[5], df4 = (u4[6] & 0x40) !== 0;
  assert.deepEqual(
    masked(ipPacket({ src: '127.0.0.1', dst: '127.0.0.1', proto: PROTO.UDP, ttl: ttl4, id: id4, df: df4, tos: u4[1],
      payload: udpDatagram({ src: '127.0.0.1', dst: '127.0.0.1', sport: 7002, dport: 7001, data: Buffer.from('hello, udp') }) }), 26),
    masked(u4, 26), 'UDP over IPv4');
  assert.deepEqual(
    ipPacket({ src: '127.0.0.1', dst: '127.0.0.1', proto: PROTO.UDPLITE, ttl: lite[8], id: (lite[4] << 8) | lite[5], df: (lite[6] & 0x40) !== 0, tos: lite[1],
      payload: udpDatagram({ src: '127.0.0.1', dst: '127.0.0.1', sport: 7004, dport: 7003, data: Buffer.from('lite data here'), lite: true, cscov: 12 }) }).toString('hex'),
    lite.toString('hex'), 'UDP-Lite over IPv4');
  const flow6 = ((u6[1] & 0xf) << 16) | (u6[2] << 8) | u6[3], tc6 = ((u6[0] & 0xf) << 4) | (u6[1] >> 4);
  assert.deepEqual(
    masked(ipPacket({ src: '::1', dst: '::1', proto: PROTO.UDP, ttl: u6[7], tos: tc6, flowLabel: flow6,
      payload: udpDatagram({ src: '::1', dst: '::1', sport: 7006, dport: 7005, data: Buffer.from('v6 datagram!') }) }), 46),
    masked(u6, 46), 'UDP over IPv6');
  for (const [pkt, fam] of [[syn4, 4], [syn6, 6]] as const) {
    const ip = fam === 4 ? 20 : 40;
    const t = pkt.subarray(ip);
    const be32 = (o: number) => ((t[o] << 24) | (t[o + 1] << 16) | (t[o + 2] << 8) | t[o + 3]) >>> 0;
    const dataOff = (t[12] >> 4) * 4;
    const seg = tcpSegment({
      src: fam === 4 ? '127.0.0.1' : '::1', dst: fam === 4 ? '127.0.0.1' : '::1', sport: (t[0] << 8) | t[1], dport: (t[2] << 8) | t[3],
      seq: be32(4), ack: be32(8), flags: t[13], window: (t[14] << 8) | t[15], options: t.subarray(20, dataOff),
    });
    assert.equal(masked(seg, 16), masked(t, 16), `TCP SYN over IPv${fam}`);
    assert.equal(t[13], TCPF.SYN);
  }
});

test('packets: the kernel takes the checksums of the built UDP, UDP-Lite and TCP packets, and drops them when one byte is changed', () => {
  // Sent from a raw socket (no checksum offload: the receiver checks every checksum); a UDP datagram must arrive,
  // a TCP SYN must be answered by a SYN-ACK; a copy with one bit of its data flipped must not.
  const u = (lite: boolean, fam: 4 | 6, port: number) => {
    const a = fam === 4 ? '127.0.0.1' : '::1';
    return ipPacket({ src: a, dst: a, proto: lite ? PROTO.UDPLITE : PROTO.UDP, payload: udpDatagram({ src: a, dst: a, sport: 9999, dport: port, data: Buffer.from(`datagram to ${port}`), lite, cscov: lite ? 0 : undefined }) });
  };
  const syn = (fam: 4 | 6, port: number) => {
    const a = fam === 4 ? '127.0.0.1' : '::1';
    return ipPacket({ src: a, dst: a, proto: PROTO.TCP, payload: tcpSegment({ src: a, dst: a, sport: 40000 + port, dport: port, seq: 12345, ack: 0, flags: TCPF.SYN, window: 1000 }) });
  };
  const cases = [['udp', 4, 7101, u(false, 4, 7101)], ['lite', 4, 7102, u(true, 4, 7102)], ['udp', 6, 7103, u(false, 6, 7103)], ['lite', 6, 7104, u(true, 6, 7104)],
    ['tcp', 4, 7105, syn(4, 7105)], ['tcp', 6, 7106, syn(6, 7106)]] as const;
  const flip = (b: Buffer) => { const c = Buffer.from(b); c[c.length - 1] ^= 1; return c; };
  const lines = cases.flatMap(([k, f, p, pkt], i) => [`${k} ${f} ${p} ${pkt.toString('hex')} ok`, `${k} ${f} ${7201 + i} ${flip(pkt).toString('hex')} bad`]);
  // (the bad copies go to ports of their own, so that a good one cannot answer for them: their port is rewritten below)
  const script = `
import socket, sys, time
res = []
for line in sys.stdin.read().split('\\n'):
    if not line: continue
    k, f, port, hexp, want = line.split()
    fam = socket.AF_INET if f == '4' else socket.AF_INET6
    a = '127.0.0.1' if f == '4' else '::1'
    pkt = bytearray(bytes.fromhex(hexp))
    port = int(port)
    if k == 'tcp':
        L = socket.socket(fam); L.bind((a, port)); L.listen()
        P = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3)); P.bind(('lo', 0)); P.settimeout(0.5)
    else:
        L = socket.socket(fam, socket.SOCK_DGRAM, 136 if k == 'lite' else 17); L.bind((a, port)); L.settimeout(0.5)
    R = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
    if f == '6': R.setsockopt(41, 36, 1)
    R.sendto(bytes(pkt), (a, 0))
    got = False
    try:
        if k == 'tcp':
            end = time.time() + 0.5
            while time.time() < end and not got:
                d, _ = P.recvfrom(9999)
                ip = 20 if f == '4' else 40
                got = d[ip:ip+2] == port.to_bytes(2, 'big') and d[ip+13] == 0x12
        else:
            got = len(L.recv(9999)) > 0
    except socket.timeout: pass
    res.append(f"{k}{f}:{port}:{'ok' if got else 'dropped'}")
print(' '.join(res))
`;
  // The bad copies keep their checksum but go to another port: rewrite the destination port (and so they differ twice).
  const input = lines.map((l) => {
    const [k, f, p, hex, want] = l.split(' ');
    if (want === 'ok') return l;
    const b = Buffer.from(hex, 'hex');
    const ip = f === '4' ? 20 : 40;
    b[ip + 2] = Number(p) >> 8; b[ip + 3] = Number(p) & 0xff;
    return [k, f, p, b.toString('hex'), want].join(' ');
  }).join('\n') + '\n';
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8', input });
  assert.equal(r.status, 0, r.stderr);
  const want = cases.flatMap(([k, f, p], i) => [`${k}${f}:${p}:ok`, `${k}${f}:${7201 + i}:dropped`]).join(' ');
  assert.equal(r.stdout.trim(), want);
});

test('packets: a checksum that comes out 0 is sent as 0xffff (UDP)', () => {
  // Find data whose checksum would be 0: the sum over header and data must be 0xffff.
  const base = udpDatagram({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, data: Buffer.from([0, 0]) });
  const c = (base[6] << 8) | base[7];
  // (the two data bytes take the checksum's value: the sum then folds to 0xffff and its complement is 0)
  const d = udpDatagram({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, data: Buffer.from([c >> 8, c & 0xff]) });
  assert.equal(((d[6] << 8) | d[7]).toString(16), 'ffff');
});


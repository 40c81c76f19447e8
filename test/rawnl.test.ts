// Raw inet sockets, ICMP ping sockets, packet sockets and netlink sockets
// (src/objects/rawsock.ts, packetsock.ts, netlinksock.ts). Everything runs
// in a network namespace of its own (subjects and ckpt alike, through
// nsenter): ping sockets need net.ipv4.ping_group_range to include the
// group, which is set there only; link and address changes stay there; and
// nothing else sends on its loopback, so queues are empty unless a subject
// fills them.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Subject, SUBJECTS, CKPT, cleanupAll, tmpDir, treeGone, CkptRun } from './harness.js';

const NS = `ckpt-rawnl-${process.pid}`;
const NSPATH = `/run/netns/${NS}`;

before(() => {
  const run = (...a: string[]) => { const r = spawnSync(a[0], a.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(`${a.join(' ')}: ${r.stderr}`); };
  run('ip', 'netns', 'add', NS);
  run('ip', '-n', NS, 'link', 'set', 'lo', 'up');
  run('ip', 'netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ping_group_range=0 2147483647');
});
after(async () => {
  await cleanupAll();
  spawnSync('ip', ['netns', 'delete', NS]);
});

function nsCkpt(...args: string[]): CkptRun {
  const r = spawnSync('nsenter', [`--net=${NSPATH}`, CKPT, ...args], { encoding: 'utf8', timeout: 120000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
function nsCkptOk(...args: string[]): CkptRun {
  const r = nsCkpt(...args);
  if (r.status !== 0) throw new Error(`ckpt ${args.join(' ')} exited ${r.status}\n${r.stderr}${r.stdout}`);
  return r;
}
/** A subject started in the test's network namespace (nsenter execs it: same pid). */
function start(name: string, mode: string): Subject {
  const dir = tmpDir('rawnl');
  return new Subject('nsenter', [`--net=${NSPATH}`, path.join(SUBJECTS, name), path.join(dir, 'verdict.txt'), mode], { dir, outArg: false });
}
async function roundTrip(s: Subject): Promise<string> {
  await s.ready();
  const img = path.join(s.dir, 'img');
  nsCkptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  nsCkptOk('restore', '-D', img, '-d');
  return s.verdict();
}
async function leaveRunning(s: Subject): Promise<string> {
  await s.ready();
  nsCkptOk('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img-lr'), '--leave-running');
  return s.verdict();
}
/** A dump that must be refused (exit 3) naming the pid, an fd and `why`; the subject runs on and passes. */
async function refusedDump(s: Subject, why: RegExp): Promise<void> {
  await s.ready();
  const r = nsCkpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img-refused'));
  assert.equal(r.status, 3, `ckpt dump should be refused:\n${r.stderr}${r.stdout}`);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}: fd \\d+`));
  assert.match(r.stderr, why);
  assert.ok(fs.existsSync(`/proc/${s.pid}`), 'the subject is gone after a refused dump');
  assert.equal(await s.verdict(), 'PASS');
}
/** `ckpt info` of the last image of the subject. */
export function info(s: Subject): string { return nsCkptOk('info', '-D', path.join(s.dir, 'img')).stdout; }

const only = process.env.RAWNL_ONLY?.split(',');
const want = (t: string) => !only || only.includes(t);

for (const mode of ['icmp', 'icmp6', 'hdrincl', 'opts']) {
  if (want(`raw:${mode}`)) test(`raw sockets: round trip: ${mode}`, async () => { assert.equal(await roundTrip(start('raw', mode)), 'PASS'); });
  if (want(`raw-lr:${mode}`)) test(`raw sockets: leave running: ${mode}`, async () => { assert.equal(await leaveRunning(start('raw', mode)), 'PASS'); });
}
if (want('raw:queued')) test('raw sockets: packets waiting to be read are refused, naming how much', async () => {
  await refusedDump(start('raw', 'queued'), /packets are queued to be read \(\d+ bytes/);
});
if (want('raw:ra6')) test('raw sockets: IPV6_ROUTER_ALERT is refused (its value cannot be read)', async () => {
  await refusedDump(start('raw', 'ra6'), /IPV6_ROUTER_ALERT/);
});

for (const mode of ['bound', 'auto', 'v6', 'opts', 'unbound']) {
  if (want(`ping:${mode}`)) test(`ping sockets: round trip: ${mode}`, async () => { assert.equal(await roundTrip(start('ping', mode)), 'PASS'); });
  if (want(`ping-lr:${mode}`)) test(`ping sockets: leave running: ${mode}`, async () => { assert.equal(await leaveRunning(start('ping', mode)), 'PASS'); });
}
if (want('ping:queued')) test('ping sockets: an echo reply waiting to be read is refused', async () => {
  await refusedDump(start('ping', 'queued'), /ping socket whose packets are queued to be read/);
});
if (want('ping:info')) test('ping sockets: ckpt info names the ident', async () => {
  const s = start('ping', 'bound');
  assert.equal(await roundTrip(s), 'PASS');
  assert.match(info(s), /ICMP ping socket, ident 4660/);
});
if (want('ping:connfirst')) test('ping sockets: round trip: connected before its first send (connect gave it its ident)', async () => {
  assert.equal(await roundTrip(start('ping', 'connfirst')), 'PASS');
});

for (const mode of ['lo', 'dgram', 'none', 'fanout']) {
  if (want(`packet:${mode}`)) test(`packet sockets: round trip: ${mode}`, async () => { assert.equal(await roundTrip(start('packet', mode)), 'PASS'); });
  if (want(`packet-lr:${mode}`)) test(`packet sockets: leave running: ${mode}`, async () => { assert.equal(await leaveRunning(start('packet', mode)), 'PASS'); });
}
if (want('packet:ring')) test('packet sockets: a mapped ring (PACKET_RX_RING) is refused, saying why', async () => {
  await refusedDump(start('packet', 'ring'), /PACKET_RX_RING.*mmap/);
});
if (want('packet:queued')) test('packet sockets: frames waiting to be read are refused, naming how much', async () => {
  await refusedDump(start('packet', 'queued'), /frames queued to be read \(\d+ bytes/);
});
if (want('packet:packet')) test('packet sockets: SOCK_PACKET is refused', async () => {
  await refusedDump(start('packet', 'packet'), /SOCK_PACKET/);
});
if (want('packet:info')) test('packet sockets: ckpt info names the device and memberships', async () => {
  const s = start('packet', 'lo');
  await s.ready();
  nsCkptOk('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  await s.gone();
  await treeGone(path.join(s.dir, 'img'));
  nsCkptOk('restore', '-D', path.join(s.dir, 'img'), '-d');
  assert.match(info(s), /packet socket \(SOCK_RAW\), protocol 0x0003, on lo, allmulti on lo, promisc on lo, filtered/);
  // (and a second dump of the restored socket lists them in the same order)
  nsCkptOk('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img2'), '--leave-running');
  assert.match(nsCkptOk('info', '-D', path.join(s.dir, 'img2')).stdout, /on lo, allmulti on lo, promisc on lo, filtered/);
  assert.equal(await s.verdict(), 'PASS');
});

for (const mode of ['route', 'explicit', 'connected']) {
  if (want(`netlink:${mode}`)) test(`netlink sockets: round trip: ${mode}`, async () => { assert.equal(await roundTrip(start('netlink', mode)), 'PASS'); });
  if (want(`netlink-lr:${mode}`)) test(`netlink sockets: leave running: ${mode}`, async () => { assert.equal(await leaveRunning(start('netlink', mode)), 'PASS'); });
}
if (want('netlink:queued')) test('netlink sockets: messages waiting to be read are refused, naming how many bytes', async () => {
  await refusedDump(start('netlink', 'queued'), /NETLINK_ROUTE socket with messages queued to be read \(\d+ bytes/);
});
if (want('netlink:dumping')) test('netlink sockets: a dump under way is refused', async () => {
  await refusedDump(start('netlink', 'dumping'), /NETLINK_ROUTE socket with a dump under way/);
});
if (want('netlink:taken')) test('netlink sockets: a port id taken meanwhile makes the restore fail, naming it; nothing is left behind', async () => {
  const s = start('netlink', 'connected');
  await s.ready();
  const img = path.join(s.dir, 'img');
  nsCkptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  // another program takes A's port id
  const squatter = new Subject('nsenter', [`--net=${NSPATH}`, 'python3', '-c',
    'import socket,time\ns=socket.socket(16,socket.SOCK_RAW,2)\ns.bind((0x6000abcd,0))\nopen(__import__("sys").argv[1],"w").write("READY\\n")\ntime.sleep(60)', path.join(s.dir, 'squat.txt')],
  { dir: s.dir, outArg: false });
  await (async () => { for (let i = 0; i < 500 && !fs.existsSync(path.join(s.dir, 'squat.txt')); i++) await new Promise((r) => setTimeout(r, 20)); })();
  const r = nsCkpt('restore', '-D', img, '-d');
  squatter.kill();
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /port id 1610656717 is taken by another NETLINK_USERSOCK socket/);
  assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'a failed restore left the process behind');
});
if (want('netlink:info')) test('netlink sockets: ckpt info names the protocol, port id and groups', async () => {
  const s = start('netlink', 'explicit');
  assert.equal(await roundTrip(s), 'PASS');
  assert.match(info(s), /NETLINK_KOBJECT_UEVENT socket, port id 2146435073, groups 1, NETLINK_BROADCAST_ERROR, NETLINK_CAP_ACK, non-blocking/);
  assert.match(info(s), /NETLINK_GENERIC socket, not bound/);
});
if (want('netlink:connector')) test('netlink sockets: NETLINK_CONNECTOR is refused, saying why', async () => {
  await refusedDump(start('netlink', 'connector'), /NETLINK_CONNECTOR socket, which is not supported: .*PROC_CN_MCAST_LISTEN/);
});

if (want('ping:gid')) test('ping sockets: made again with the holder\'s group when ckpt\'s may not make them', async () => {
  const range = (r: string) => { const x = spawnSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', `net.ipv4.ping_group_range=${r}`]); assert.equal(x.status, 0); };
  range('1000 1000');
  try {
    assert.equal(await roundTrip(start('ping', 'gid')), 'PASS');
  } finally { range('0 2147483647'); }
});
for (const [mode, group] of [['mcast', '239.1.2.3 on lo'], ['mcast6', 'ff05:0000:0000:0000:0000:0000:0000:4242 on lo']]) {
  if (want(`raw:${mode}`)) test(`raw sockets: multicast memberships are refused (${mode}), naming the group`, async () => {
    await refusedDump(start('raw', mode), new RegExp(`joined multicast group ${group}`));
  });
}
if (want('raw:info')) test('raw sockets: ckpt info names the protocol, address and filter', async () => {
  const s = start('raw', 'icmp');
  assert.equal(await roundTrip(s), 'PASS');
  assert.match(info(s), /raw IPv4 socket, ICMP, bound to 127\.0\.0\.1, ICMP filter 0xfffffffe/);
});

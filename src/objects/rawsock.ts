// Raw inet sockets (AF_INET, AF_INET6, SOCK_RAW, any protocol, IPPROTO_RAW
// included) and ICMP "ping" sockets (SOCK_DGRAM with IPPROTO_ICMP or
// IPPROTO_ICMPV6), two kinds.
//
// Dump, on ckpt's copy of the socket (pidfd_getfd): the protocol; the bound
// address; the connected peer (from /proc/net/raw, raw6, icmp and icmp6,
// which list the sockets by inode with their peer and, for ping sockets,
// their ident: getpeername of a socket connected with port 0 says "not
// connected", and sock_diag has no ping sockets, nor raw ones where the
// kernel lacks raw_diag, as here); the shutdown state, as poll shows it (a
// socket shut down for sending only is not seen); the protocol's own options (IP_HDRINCL and
// IPV6_HDRINCL, ICMP_FILTER, ICMPV6_FILTER, IPV6_CHECKSUM, IP_ROUTER_ALERT);
// and the SOL_SOCKET, IP and IPv6 options that differ from a fresh socket's
// (sockopts.ts).
//
// Refused, naming the pid, the fd and why:
// - packets waiting to be read: they came from the network, and the only way
//   to queue them again is to send them again, which every other raw socket
//   and the stack itself would see as new packets (the count of bytes of
//   receive memory is named);
// - IPV6_ROUTER_ALERT set on an IPv6 raw socket: the kernel says that it is
//   set but not with which router alert value;
// - a raw IGMP (IPv4) or ICMPv6 socket while a multicast routing socket
//   (MRT_INIT, MRT6_INIT) is open in the network namespace: it may be that
//   socket, whose routing tables ckpt cannot rebuild;
// - multicast groups joined, by raw or ping sockets (found by asking
//   MCAST_MSFILTER of the socket for every group an interface has joined):
//   not supported yet.
//
// Not seen: the IPv6 flow label of a connected socket, a pending error
// (SO_ERROR is cleared by reading it), the error queue, and an
// IPV6_ROUTER_ALERT set with the value 0 (MLD), which reads back as unset.
// A ping socket whose ident the kernel chose comes back bound to it (the
// kernel then keeps the ident if the socket is disconnected later).
//
// Restore makes the socket in ckpt (a ping socket with a group that may make
// one: ckpt's, or the holder's at dump), sets the options that precede
// bind(), binds, sets the rest, connects and shuts down.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, SOCK, errnoName } from '../kernel/consts.js';
import { pidfdGetfd, socket, setFl } from '../kernel/sys.js';
import {
  AF, IPPROTO, SOL, IP, IPV6, InetAddr, getsocknameInet, bindInet, connectInet,
  TCP_STATE, addrBytes, addrText, recvDatagram, showAddr, setsockoptIntRaw as setInt, shutdownRaw, getsockoptIntOrNull as intOpt, sockMeminfo,
} from '../kernel/inet.js';
import { ICMP_FILTER, IPV6_CHECKSUM, IP_ROUTER_ALERT, pingGroupRange, socketAsEgid, mrouteInUse, joinedGroup, getIcmp6Filter, setIcmp6Filter, pollShutdown } from '../kernel/rawsock.js';
import { readStatus } from '../kernel/proc.js';
import { SysError } from '../kernel/sys.js';
import { refused, badImage, CkptError } from '../errors.js';
import { fileId, u32, i32, int } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx } from './kind.js';
import { SockOpts, dumpSockOpts, restoreSockOpts } from './sockopts.js';

const Family = z.union([z.literal(4), z.literal(6)]);
const Addr = z.object({
  addr: z.string().check(z.maxLength(64)),
  port: int(0, 65535),
  flowinfo: z.optional(u32),
  scope: z.optional(u32),
});
type Addr = z.infer<typeof Addr>;

export const RawSockFile = z.object({
  id: fileId,
  kind: z.literal('rawsock'),
  family: Family,
  /** The IP protocol it was made with (IPPROTO_RAW: 255, sends only, headers included). */
  protocol: int(0, 255),
  /** status flags of the description (O_NONBLOCK), without O_CLOEXEC and the access mode */
  flags: u32,
  /** The local address it is bound to (or that connect gave it); none: any. */
  bound: z.optional(Addr),
  /** The address it is connected to. */
  peer: z.optional(Addr),
  /** sk_shutdown: 1 no more receiving, 2 no more sending. */
  shutdown: z.optional(int(1, 3)),
  /** IP_HDRINCL (IPv4) or IPV6_HDRINCL, when it differs from a fresh socket's. */
  hdrincl: z.optional(z.boolean()),
  /** ICMP_FILTER (IPv4 ICMP): the types not received, bit n for type n. */
  icmpFilter: z.optional(u32),
  /** ICMPV6_FILTER (ICMPv6): struct icmp6_filter as 8 words, a set bit blocks the type. */
  icmp6Filter: z.optional(z.tuple([u32, u32, u32, u32, u32, u32, u32, u32])),
  /** IPV6_CHECKSUM: -1 none, else the offset of the checksum the kernel computes and checks (only when it differs from a fresh socket's). */
  checksum: z.optional(i32),
  /** IP_ROUTER_ALERT (IPv4): packets with the router alert option are passed to it. */
  routerAlert: z.optional(z.boolean()),
  opts: SockOpts,
});
export type RawSockFile = z.infer<typeof RawSockFile>;

export const PingSockFile = z.object({
  id: fileId,
  kind: z.literal('pingsock'),
  family: Family,
  flags: u32,
  /** Bound (by bind, or by the kernel at the first send): the local address and the ident (the ICMP echo identifier, its "port"). */
  bound: z.optional(z.object({ addr: z.string().check(z.maxLength(64)), ident: int(1, 65535) })),
  /** The address it is connected to. */
  peer: z.optional(Addr),
  shutdown: z.optional(int(1, 3)),
  /** The effective group of the process that held it at dump (one that may make ping sockets). */
  gid: u32,
  opts: SockOpts,
});
export type PingSockFile = z.infer<typeof PingSockFile>;

const where = (f: FdFacts) => `pid ${f.pid}: fd ${f.fd} (${f.link})`;
const famOf = (f: FdFacts): 4 | 6 => (f.socket!.family === AF.INET ? 4 : 6);
const isAny = (a: string) => a === '0.0.0.0' || a === '::';
const showFam = (fam: 4 | 6) => (fam === 4 ? 'IPv4' : 'IPv6');
const PROTO_NAMES: Record<number, string> = { 0: 'IP', 1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 41: 'IPv6', 47: 'GRE', 50: 'ESP', 58: 'ICMPv6', 89: 'OSPF', 103: 'PIM', 112: 'VRRP', 132: 'SCTP', 255: 'RAW' };
const protoName = (p: number) => PROTO_NAMES[p] ?? `protocol ${p}`;

/** What the receive queue holds: null when it is empty, else words for people. */
function queued(fd: number): string | null {
  const peek = recvDatagram(fd, 65536, SOCK.MSG_PEEK | SOCK.MSG_TRUNC);
  const mem = sockMeminfo(fd)?.rmem ?? 0;
  // (nothing in the receive memory and nothing to peek, or only the 0 of a socket shut down for reading)
  if (mem === 0 && (peek === null || typeof peek === 'number' || peek.len === 0)) return null;
  const first = peek && typeof peek !== 'number' ? `, the first of ${peek.len} bytes` : '';
  return `packets are queued to be read (${mem} bytes of receive memory${first})`;
}

// ---------------------------------------------------------------- raw

interface RawState { table: Map<number, Map<number, ProcEntry>>; mroute: Map<number, boolean | null> }
function rawState(ctx: DumpFileCtx): RawState {
  let st = ctx.state.get('rawsock') as RawState | undefined;
  if (!st) { st = { table: new Map(), mroute: new Map() }; ctx.state.set('rawsock', st); }
  return st;
}
function rawTable(ctx: DumpFileCtx, fam: 4 | 6): Map<number, ProcEntry> {
  const st = rawState(ctx);
  let m = st.table.get(fam);
  if (!m) { m = procSockets(fam === 4 ? '/proc/net/raw' : '/proc/net/raw6', fam); st.table.set(fam, m); }
  return m;
}

function dumpRaw(f: FdFacts, ctx: DumpFileCtx): Omit<RawSockFile, 'id'> {
  const w = where(f);
  const fam = famOf(f);
  const protocol = f.socket!.protocol;
  const copy = pidfdGetfd(f.pid, f.fd);
  try {
    const q = queued(copy);
    if (q) throw refused(`${w}: a raw ${showFam(fam)} ${protoName(protocol)} socket whose ${q}: they came from the network and could only be put back by sending them again, which other sockets would see`);
    if ((fam === 4 && protocol === 2) || (fam === 6 && protocol === IPPROTO.ICMPV6)) {
      const st = rawState(ctx);
      if (!st.mroute.has(fam)) st.mroute.set(fam, mrouteInUse(fam));
      if (st.mroute.get(fam)) throw refused(`${w}: a raw ${showFam(fam)} ${protoName(protocol)} socket, and a multicast routing socket (${fam === 4 ? 'MRT_INIT' : 'MRT6_INIT'}) is open in this network namespace: it may be this one, whose routing tables ckpt cannot rebuild`);
    }
    const group = joinedGroup(copy, fam);
    if (group) throw refused(`${w}: a raw ${showFam(fam)} ${protoName(protocol)} socket that has joined multicast group ${group}: the multicast memberships of raw sockets are not supported yet`);
    // (sock_diag answers for raw sockets only where the kernel has raw_diag: /proc/net/raw and raw6 always list them)
    const d = rawTable(ctx, fam).get(f.st.ino);
    if (!d) throw refused(`${w}: /proc/net/raw${fam === 6 ? '6' : ''} does not list this raw socket (inode ${f.st.ino}); is it in another network namespace than ckpt?`);
    const out: Omit<RawSockFile, 'id'> = { kind: 'rawsock', family: fam, protocol, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), opts: {} };
    const name = getsocknameInet(copy);
    if (name && !isAny(name.addr)) out.bound = { addr: name.addr, port: 0, ...(name.scope ? { scope: name.scope } : {}) };
    if (d.state === TCP_STATE.ESTABLISHED) out.peer = { addr: d.remote.addr, port: d.remote.port };
    const shut = pollShutdown(copy);
    if (shut) out.shutdown = shut;
    // the protocol's own options, against a fresh socket's
    const fresh = socket(fam === 4 ? AF.INET : AF.INET6, SOCK_RAW, protocol);
    try {
      const hdr = fam === 4 ? [SOL.IP, IP.HDRINCL] : [SOL.IPV6, IPV6.HDRINCL];
      const h = intOpt(copy, hdr[0], hdr[1]);
      if (h !== null && h !== intOpt(fresh, hdr[0], hdr[1])) out.hdrincl = h !== 0;
      if (fam === 4 && protocol === IPPROTO.ICMP) {
        const v = intOpt(copy, SOL.RAW, ICMP_FILTER);
        if (v) out.icmpFilter = v >>> 0;
      }
      if (fam === 4) {
        const ra = intOpt(copy, SOL.IP, IP_ROUTER_ALERT);
        if (ra) out.routerAlert = true;
      }
      if (fam === 6) {
        const c = intOpt(copy, SOL.RAW, IPV6_CHECKSUM);
        if (c !== null && c !== intOpt(fresh, SOL.RAW, IPV6_CHECKSUM)) out.checksum = c;
        if (protocol === IPPROTO.ICMPV6) {
          const fl = getIcmp6Filter(copy);
          if (fl && fl.some((x) => x !== 0)) out.icmp6Filter = fl as NonNullable<RawSockFile['icmp6Filter']>;
        }
        if (intOpt(copy, SOL.IPV6, IPV6.ROUTER_ALERT)) throw refused(`${w}: IPV6_ROUTER_ALERT is set on this raw IPv6 socket, and the kernel does not say with which router alert value`);
      }
    } finally { fs.closeSync(fresh); }
    out.opts = dumpSockOpts(copy, fam, SOCK_RAW, protocol, w, ctx.state, new Set(['routerAlert']));
    return out;
  } finally { fs.closeSync(copy); }
}

const SOCK_RAW = 3;

function fail(w: string, what: string, e: number): never {
  throw new CkptError('failed', `${w}: ${what} failed: ${errnoName(-e)}`);
}
function toInet(fam: 4 | 6, a: Addr): InetAddr {
  return { family: fam, addr: a.addr, port: a.port, ...(a.flowinfo ? { flowinfo: a.flowinfo } : {}), ...(a.scope ? { scope: a.scope } : {}) };
}
function checkAddr(id: number, fam: 4 | 6, a: string, what: string): void {
  try { addrBytes(a, fam); } catch { throw badImage(`image file files.json: open file ${id}: ${what} ${JSON.stringify(a)} is not an ${showFam(fam)} address`); }
}

function createRaw(d: RawSockFile): number {
  const w = `raw socket (open file ${d.id})`;
  const fd = socket(d.family === 4 ? AF.INET : AF.INET6, SOCK_RAW | SOCK.NONBLOCK, d.protocol);
  try {
    restoreSockOpts(fd, d.family, d.opts, w, 'early');
    if (d.bound) { const r = bindInet(fd, toInet(d.family, d.bound)); if (r < 0) fail(w, `bind to ${d.bound.addr}`, r); }
    const set = (what: string, level: number, opt: number, v: number) => { const r = setInt(fd, level, opt, v); if (r < 0) fail(w, `setting ${what}`, r); };
    if (d.hdrincl !== undefined) set(d.family === 4 ? 'IP_HDRINCL' : 'IPV6_HDRINCL', d.family === 4 ? SOL.IP : SOL.IPV6, d.family === 4 ? IP.HDRINCL : IPV6.HDRINCL, d.hdrincl ? 1 : 0);
    if (d.icmpFilter !== undefined) set('ICMP_FILTER', SOL.RAW, ICMP_FILTER, d.icmpFilter | 0);
    if (d.routerAlert) set('IP_ROUTER_ALERT', SOL.IP, IP_ROUTER_ALERT, 1);
    if (d.checksum !== undefined) set('IPV6_CHECKSUM', SOL.RAW, IPV6_CHECKSUM, d.checksum);
    if (d.icmp6Filter) { const r = setIcmp6Filter(fd, d.icmp6Filter); if (r < 0) fail(w, 'setting ICMPV6_FILTER', r); }
    restoreSockOpts(fd, d.family, d.opts, w, 'late');
    if (d.peer) { const r = connectInet(fd, toInet(d.family, d.peer)); if (r < 0) fail(w, `connect to ${d.peer.addr}`, r); }
    if (d.shutdown) shutdownQuiet(fd, d.shutdown, w);
    setFl(fd, d.flags);
  } catch (e) { fs.closeSync(fd); throw e; }
  return fd;
}

/** shutdown(how - 1 as SHUT_*): an unconnected datagram socket gets ENOTCONN but is shut down all the same. */
function shutdownQuiet(fd: number, mask: number, w: string): void {
  const r = shutdownRaw(fd, mask - 1);
  if (r < 0 && r !== -107) fail(w, 'shutdown', r);
}

export const rawSockKind = defineKind<RawSockFile>({
  kind: 'rawsock',
  schema: RawSockFile,
  takes: (f) => !!f.socket && (f.socket.family === AF.INET || f.socket.family === AF.INET6) && f.socket.type === SOCK_RAW,
  dump: dumpRaw,
  describe: (d) => `raw ${showFam(d.family)} socket, ${protoName(d.protocol)}${d.bound ? `, bound to ${d.bound.addr}` : ''}${d.peer ? `, connected to ${d.peer.addr}` : ''}${d.hdrincl ? ', headers included' : ''}${d.icmpFilter !== undefined ? `, ICMP filter 0x${d.icmpFilter.toString(16)}` : ''}${d.icmp6Filter ? ', ICMPv6 filter' : ''}${d.flags & O.NONBLOCK ? ', non-blocking' : ''}`,
  check(d) {
    if (d.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${d.id}: the status flags of a socket hold an access mode`);
    if (d.bound) checkAddr(d.id, d.family, d.bound.addr, 'the bound address');
    if (d.peer) checkAddr(d.id, d.family, d.peer.addr, 'the peer address');
    if (d.icmpFilter !== undefined && !(d.family === 4 && d.protocol === IPPROTO.ICMP)) throw badImage(`image file files.json: open file ${d.id}: an ICMP filter on a socket that is not a raw IPv4 ICMP one`);
    if (d.icmp6Filter && !(d.family === 6 && d.protocol === IPPROTO.ICMPV6)) throw badImage(`image file files.json: open file ${d.id}: an ICMPv6 filter on a socket that is not a raw ICMPv6 one`);
  },
  phase: 'objects',
  create: (d) => ({ local: createRaw(d), closeAfter: true }),
});

// ---------------------------------------------------------------- ping

interface ProcEntry { local: InetAddr; remote: InetAddr; state: number; rxQueue: number }

/** /proc/net/raw, raw6, icmp or icmp6 (ckpt's network namespace): every socket listed, by inode. */
function procSockets(file: string, fam: 4 | 6): Map<number, ProcEntry> {
  const out = new Map<number, ProcEntry>();
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return out; }
  const addr = (s: string): InetAddr => {
    const [hex, port] = s.split(':');
    const b = Buffer.from(hex, 'hex');
    // (each 32-bit word is printed in host order)
    for (let i = 0; i < b.length; i += 4) b.subarray(i, i + 4).reverse();
    return { family: fam, addr: addrText(b), port: parseInt(port, 16) };
  };
  for (const line of text.split('\n').slice(1)) {
    const t = line.trim().split(/\s+/);
    if (t.length < 10) continue;
    const [, rx] = t[4].split(':');
    out.set(Number(t[9]), { local: addr(t[1]), remote: addr(t[2]), state: parseInt(t[3], 16), rxQueue: parseInt(rx, 16) });
  }
  return out;
}

function canPing(gid: number): boolean {
  const [lo, hi] = pingGroupRange();
  return lo <= gid && gid <= hi;
}

/** A ping socket from ckpt: with ckpt's group if it may, else with `gid` for the time of the call. */
function makePing(fam: 4 | 6, type: number, gid: number): number {
  const family = fam === 4 ? AF.INET : AF.INET6;
  const proto = fam === 4 ? IPPROTO.ICMP : IPPROTO.ICMPV6;
  const own = process.getegid?.() ?? 0;
  if (canPing(own) || !canPing(gid)) return socket(family, type, proto);
  return socketAsEgid(family, type, proto, gid);
}

function egidOf(pid: number): number {
  const g = readStatus(pid).get('Gid')?.trim().split(/\s+/);
  return Number(g?.[1] ?? 0);
}

function dumpPing(f: FdFacts, ctx: DumpFileCtx): Omit<PingSockFile, 'id'> {
  const w = where(f);
  const fam = famOf(f);
  const copy = pidfdGetfd(f.pid, f.fd);
  try {
    const q = queued(copy);
    if (q) throw refused(`${w}: an ICMP${fam === 6 ? 'v6' : ''} ping socket whose ${q}: echo replies that came from the network cannot be put back`);
    const group = joinedGroup(copy, fam);
    if (group) throw refused(`${w}: an ICMP${fam === 6 ? 'v6' : ''} ping socket that has joined multicast group ${group}: not supported yet`);
    const key = `pingsock:${fam}`;
    let table = ctx.state.get(key) as Map<number, ProcEntry> | undefined;
    if (!table) { table = procSockets(fam === 4 ? '/proc/net/icmp' : '/proc/net/icmp6', fam); ctx.state.set(key, table); }
    const e = table.get(f.st.ino);
    const name = getsocknameInet(copy);
    const gid = egidOf(f.pid);
    const out: Omit<PingSockFile, 'id'> = { kind: 'pingsock', family: fam, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), gid, opts: {} };
    if (!e) {
      // (a ping socket is listed once it has an ident: one never bound nor used for sending is not; connect gave it a local address)
      if (name && name.port === 0 && !isAny(name.addr)) throw refused(`${w}: an ICMP${fam === 6 ? 'v6' : ''} ping socket connected before its first send: the kernel lists it nowhere yet, so its peer cannot be read`);
      if (!name || name.port !== 0) throw refused(`${w}: /proc/net/icmp${fam === 6 ? '6' : ''} does not list this ping socket (inode ${f.st.ino}); is it in another network namespace than ckpt?`);
    } else {
      const ident = name?.port ?? e.local.port;
      if (ident) out.bound = { addr: name?.addr ?? e.local.addr, ident };
      if (e.state === TCP_STATE.ESTABLISHED) out.peer = { addr: e.remote.addr, port: e.remote.port };
    }
    const shut = pollShutdown(copy);
    if (shut) out.shutdown = shut;
    out.opts = dumpSockOpts(copy, fam, SOCK.DGRAM, fam === 4 ? IPPROTO.ICMP : IPPROTO.ICMPV6, w, ctx.state, new Set(), () => makePing(fam, SOCK.DGRAM, gid));
    return out;
  } catch (e) {
    if (e instanceof SysError && e.errno === 13) throw refused(`${w}: ckpt cannot make a ping socket to compare with (net.ipv4.ping_group_range is ${pingGroupRange().join(' ')})`);
    throw e;
  } finally { fs.closeSync(copy); }
}

function createPing(d: PingSockFile): number {
  const w = `ping socket (open file ${d.id})`;
  let fd: number;
  try { fd = makePing(d.family, SOCK.DGRAM | SOCK.NONBLOCK, d.gid); } catch (e) {
    if (e instanceof SysError && e.errno === 13) throw new CkptError('conflict', `${w}: the kernel does not let ckpt make a ping socket: net.ipv4.ping_group_range is ${pingGroupRange().join(' ')}, which includes neither ckpt's group nor the holder's (${d.gid})`);
    throw e;
  }
  try {
    restoreSockOpts(fd, d.family, d.opts, w, 'early');
    if (d.bound) {
      const r = bindInet(fd, { family: d.family, addr: d.bound.addr, port: d.bound.ident });
      if (r === -98) throw new CkptError('conflict', `${w}: its ident ${d.bound.ident} (on ${d.bound.addr}) is taken by another ping socket`);
      if (r < 0) fail(w, `bind to ${d.bound.addr} ident ${d.bound.ident}`, r);
    }
    restoreSockOpts(fd, d.family, d.opts, w, 'late');
    if (d.peer) { const r = connectInet(fd, toInet(d.family, d.peer)); if (r < 0) fail(w, `connect to ${showAddr(toInet(d.family, d.peer))}`, r); }
    if (d.shutdown) shutdownQuiet(fd, d.shutdown, w);
    setFl(fd, d.flags);
  } catch (e) { fs.closeSync(fd); throw e; }
  return fd;
}

export const pingSockKind = defineKind<PingSockFile>({
  kind: 'pingsock',
  schema: PingSockFile,
  takes: (f) => !!f.socket && f.socket.type === SOCK.DGRAM
    && ((f.socket.family === AF.INET && f.socket.protocol === IPPROTO.ICMP) || (f.socket.family === AF.INET6 && f.socket.protocol === IPPROTO.ICMPV6)),
  dump: dumpPing,
  describe: (d) => `ICMP${d.family === 6 ? 'v6' : ''} ping socket${d.bound ? `, ident ${d.bound.ident}${isAny(d.bound.addr) ? '' : ` on ${d.bound.addr}`}` : ''}${d.peer ? `, connected to ${d.peer.addr}` : ''}${d.flags & O.NONBLOCK ? ', non-blocking' : ''}`,
  check(d) {
    if (d.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${d.id}: the status flags of a socket hold an access mode`);
    if (d.bound) checkAddr(d.id, d.family, d.bound.addr, 'the bound address');
    if (d.peer) checkAddr(d.id, d.family, d.peer.addr, 'the peer address');
    if (!canPing(process.getegid?.() ?? 0) && !canPing(d.gid)) {
      throw new CkptError('conflict', `open file ${d.id}: an ICMP ping socket cannot be made here: net.ipv4.ping_group_range is ${pingGroupRange().join(' ')}, which includes neither ckpt's group nor the holder's (${d.gid})`);
    }
  },
  phase: 'objects',
  create: (d) => ({ local: createPing(d), closeAfter: true }),
});

// UDP and UDP-Lite sockets (AF_INET, AF_INET6, SOCK_DGRAM), one kind: the
// protocol is a field.
//
// Dump works on ckpt's copy of the socket (pidfd_getfd). sock_diag gives
// what no getsockopt does (shutdown state, owner); getsockname and
// getpeername the addresses. The socket's options are those of sockopts.ts
// plus the UDP level's own; its multicast memberships are found by asking,
// for every group an interface of the host has joined (/proc/net/igmp,
// igmp6), for the socket's filter of that group (MCAST_MSFILTER answers
// only for a member). The receive queue is read without consuming it:
// MSG_PEEK at a moving SO_PEEK_OFF, with the options that tell each
// datagram's destination, TTL, TOS and flow label on for the time of the
// reading; the socket's own values are put back afterwards.
//
// What cannot be read back is refused: data corked but not yet sent
// (UDP_CORK, MSG_MORE), a pending error or queued error messages (reading
// them takes them), an encapsulation socket (UDP_ENCAP), datagrams that
// GRO coalesced, queued datagrams to multicast or broadcast addresses.
//
// Restore makes the socket in ckpt and sets it up there; the open-file table
// installs it. Options that must precede bind() first, then bind() (a port
// the kernel picked is taken again the way the kernel picks one, so that
// the socket does not count as bound by the program), connect(), the other
// options, memberships. Queued datagrams are put back in order as packets
// from a raw socket (source: their sender, destination: theirs), marked so
// that the network lock lets them through, each waited for until it is in
// the queue. Then shutdown, owner, file status flags.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { holdsWithin } from '../cancel.js';
import { O, SOCK, SO, POLL, EPOLL, errnoName } from '../kernel/consts.js';
import { pidfdGetfd, socket, setFl, pollNow } from '../kernel/sys.js';
import {
  AF, IPPROTO, SOL, IP, SO_MORE, SIOC, InetAddr, InetDiag, inetDiagAll, getsocknameInet, getpeernameInet, bindInet, connectInet,
  sockIoctlInt, recvDatagram, showAddr, addrBytes, setsockoptRaw, IPV6, shutdownRaw,
  getsockoptIntOrNull as getIntOpt, setsockoptIntRaw as setIntOpt, sockMeminfo,
} from '../kernel/inet.js';
import { UDP_OPT, UDP_ENCAP_NAMES, RECV_OPTS, getMcastFilter, joinMcast, hostGroups, datagramMeta,
  steerReuseport, unsteerReuseport } from '../kernel/udpsk.js';
import { sendRawPacket, RawSender, RawSenders } from '../kernel/rawsend.js';
import { udpPacket, icmpErrorPacket, onWire } from '../net/packets.js';
import { PASS_MARK } from '../net/lock.js';
import { refused, badImage, conflict, CkptError } from '../errors.js';
import { fileId, u32, count, int } from '../image/schema.js';
import { SockOpts, InetAddrSchema, dumpSockOpts, restoreSockOpts, restoreSenders } from './sockopts.js';
import { defineKind, FdFacts, DumpFileCtx, RestoreFileCtx } from './kind.js';

const Fam = z.union([z.literal(4), z.literal(6)]);
const Addr = InetAddrSchema;

const Membership = z.object({
  /** The group's family (an IPv6 socket may join IPv4 groups too). */
  family: Fam,
  group: z.string().check(z.maxLength(64)),
  /** The interface, by name (its index may differ on another host) and by index at dump. */
  ifname: z.string().check(z.maxLength(15)),
  ifindex: u32,
  mode: z.enum(['include', 'exclude']),
  sources: z.array(z.string().check(z.maxLength(64))),
});
type Membership = z.infer<typeof Membership>;

const Datagram = z.object({
  /** Its bytes in the queue's data file. */
  len: int(0, 1 << 20),
  from: Addr,
  /** Its destination address (IPv6 sockets: v4-mapped for an IPv4 datagram). */
  to: z.string().check(z.maxLength(64)),
  /** IPv4 TTL or IPv6 hop limit, TOS or traffic class, IPv6 flow label. */
  ttl: z.optional(int(0, 255)),
  tos: z.optional(int(0, 255)),
  flowLabel: z.optional(int(0, 0xfffff)),
});
type Datagram = z.infer<typeof Datagram>;

export const UdpFile = z.object({
  id: fileId,
  kind: z.literal('udp'),
  protocol: z.enum(['udp', 'udplite']),
  family: Fam,
  /** The socket's inode at dump (for messages and the network lock). */
  ino: count,
  /** status flags of the description (O_NONBLOCK), without O_CLOEXEC and the access mode */
  flags: u32,
  /** Its owner (sk_uid: who made it, or whom it was chown()ed to). */
  uid: z.optional(u32),
  /** Its address (none: not bound). */
  local: z.optional(Addr),
  /** Where it was among the sockets of its port (bound earlier: smaller): sockets that share a port are bound again in this order. */
  bindRank: z.optional(count),
  /** The port was picked by the kernel (autobind: a send, connect, or bind to port 0), not given to bind(). */
  autoPort: z.optional(z.boolean()),
  /** Connected: the address was given to bind() (else the kernel chose it by the route to the peer). */
  bindAddr: z.optional(z.boolean()),
  peer: z.optional(Addr),
  /** sk_shutdown: 1 no more receiving, 2 no more sending. */
  shutdown: int(0, 3),
  opts: SockOpts,
  /** UDP-level options that differ from a fresh socket's. */
  udp: z.optional(z.object({
    cork: z.optional(z.boolean()),
    segment: z.optional(int(0, 0xffff)),
    gro: z.optional(z.boolean()),
    noCheck6Tx: z.optional(z.boolean()),
    noCheck6Rx: z.optional(z.boolean()),
    sendCscov: z.optional(int(0, 0xffff)),
    recvCscov: z.optional(int(0, 0xffff)),
  })),
  memberships: z.optional(z.array(Membership)),
  /** A pending error (SO_ERROR) of a connected socket, made by an ICMP error of its peer; given back by such an ICMP error. */
  error: z.optional(int(1, 4095)),
  /** The receive queue, oldest first; their bytes in `data`. */
  queue: z.optional(z.array(Datagram)),
  data: z.optional(z.string()),
});
export type UdpFile = z.infer<typeof UdpFile>;

const PROTO_NR = { udp: IPPROTO.UDP, udplite: IPPROTO.UDPLITE } as const;
const SOL_OF = { udp: SOL.UDP, udplite: SOL.UDPLITE } as const;


function isWildcard(a: string): boolean { return a === '0.0.0.0' || a === '::'; }
function isMulticastOrBroadcast(a: string): boolean {
  const w = onWire(a);
  if (!w.includes(':')) {
    const b = addrBytes(w, 4);
    return (b[0] >= 224 && b[0] <= 239) || b.every((x) => x === 255);
  }
  return addrBytes(w, 6)[0] === 0xff;
}

// ---------------------------------------------------------------- dump

interface DumpState { diag: Map<number, InetDiag>; rank: Map<number, number> }

function diagOf(ctx: DumpFileCtx, ino: number): InetDiag | undefined {
  let st = ctx.state.get('udp') as DumpState | undefined;
  if (!st) {
    st = { diag: new Map(), rank: new Map() };
    for (const fam of [4, 6] as const) {
      for (const p of [IPPROTO.UDP, IPPROTO.UDPLITE]) {
        let list: InetDiag[] = [];
        try { list = inetDiagAll(fam, p); } catch { /* (no UDP-Lite diag here: those sockets are then refused by name) */ }
        // (the kernel lists the sockets of a port newest first: their rank, counted from the end, is the order they were bound in)
        list.forEach((d, i) => { if (d.inode) { st!.diag.set(d.inode, d); st!.rank.set(d.inode, list.length - i); } });
      }
    }
    ctx.state.set('udp', st);
  }
  return st.diag.get(ino);
}
function rankOf(ctx: DumpFileCtx, ino: number): number | undefined { return (ctx.state.get('udp') as DumpState | undefined)?.rank.get(ino); }

/** The ports the kernel picks from for this socket (its IP_LOCAL_PORT_RANGE within the host's range), without the reserved ones. */
function ephemeral(localPortRange: number | undefined): { lo: number; hi: number; reserved: (p: number) => boolean } {
  let lo = 32768, hi = 60999;
  try { [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number); } catch { /* default */ }
  if (localPortRange) {
    const sl = localPortRange & 0xffff, sh = localPortRange >>> 16;
    if (lo <= sl && sl <= hi) lo = sl;
    if (lo <= sh && sh <= hi) hi = sh;
  }
  const ranges: Array<[number, number]> = [];
  try {
    for (const part of fs.readFileSync('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8').trim().split(',').filter(Boolean)) {
      const [a, b] = part.split('-').map(Number);
      ranges.push([a, b ?? a]);
    }
  } catch { /* none */ }
  return { lo, hi, reserved: (p) => ranges.some(([a, b]) => p >= a && p <= b) };
}

/** The source address the kernel picks for a socket of `family` connected to `peer` (bound to `device`, when it is). */
function routeSource(family: 4 | 6, protocol: number, peer: InetAddr, device?: string): string | null {
  const fd = socket(family === 4 ? AF.INET : AF.INET6, SOCK.DGRAM, protocol);
  try {
    if (device) {
      const b = Buffer.alloc(16);
      b.write(device, 'latin1');
      // (as the socket is: if the device cannot be bound here the route is not that one either)
      if (setsockoptRaw(fd, SOL.SOCKET, SO_MORE.BINDTODEVICE, b) < 0) return null;
    }
    if (connectInet(fd, peer) < 0) return null;
    return getsocknameInet(fd)?.addr ?? null;
  } finally { fs.closeSync(fd); }
}

function dumpUdp(f: FdFacts, ctx: DumpFileCtx): Omit<UdpFile, 'id'> {
  const own = f.pid === process.pid; // (a socket in flight: ckpt's copy already)
  const where = own ? `a socket in flight in a queue of the tree (${f.link})` : `pid ${f.pid}: fd ${f.fd} (${f.link})`;
  const s = f.socket!;
  const family = s.family === AF.INET6 ? 6 : 4;
  const protocol = s.protocol === IPPROTO.UDPLITE ? 'udplite' : 'udp';
  const proto = PROTO_NR[protocol];
  const fd = own ? f.fd : pidfdGetfd(f.pid, f.fd);
  try {
    if (f.flags & O.ASYNC) throw refused(`${where}: the socket signals its owner when ready (O_ASYNC); not supported yet`);
    const local = getsocknameInet(fd);
    const peer = getpeernameInet(fd);
    const d = diagOf(ctx, f.st.ino);
    // (an unbound socket is in no table of the kernel, and sock_diag does not show it)
    if (!d && (local?.port ?? 0) !== 0) throw refused(`${where}: the kernel does not show this ${protocol === 'udp' ? 'UDP' : 'UDP-Lite'} socket to ckpt (is it of another network namespace?)`);
    const out: Omit<UdpFile, 'id'> = {
      kind: 'udp', protocol, family, ino: f.st.ino, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), shutdown: d ? d.shutdown & 3 : unboundShutdown(fd),
      opts: dumpSockOpts(fd, family, SOCK.DGRAM, proto, where, ctx.state),
    };
    // (the socket's owner, sk_uid, is its inode's owner: sockfs keeps both on chown)
    if (f.st.uid) out.uid = f.st.uid;
    const show = `${local ? showAddr(local) : 'unbound'}${peer ? ` -> ${showAddr(peer)}` : ''}`;
    const at = `${where}, ${protocol === 'udp' ? 'UDP' : 'UDP-Lite'} ${show}`;

    // UDP-level options.
    const sol = SOL_OF[protocol];
    const encap = getIntOpt(fd, sol, UDP_OPT.ENCAP) ?? 0;
    if (encap) throw refused(`${at}: the socket is an encapsulation socket (UDP_ENCAP ${UDP_ENCAP_NAMES[encap] ?? encap}): the kernel handles its datagrams itself (IPsec, L2TP...); not supported`);
    const udp: NonNullable<UdpFile['udp']> = {};
    if (getIntOpt(fd, sol, UDP_OPT.CORK)) udp.cork = true;
    const seg = getIntOpt(fd, sol, UDP_OPT.SEGMENT) ?? 0;
    if (seg) udp.segment = seg;
    if (getIntOpt(fd, sol, UDP_OPT.GRO)) udp.gro = true;
    if (family === 6) {
      if (getIntOpt(fd, sol, UDP_OPT.NO_CHECK6_TX)) udp.noCheck6Tx = true;
      if (getIntOpt(fd, sol, UDP_OPT.NO_CHECK6_RX)) udp.noCheck6Rx = true;
    }
    if (protocol === 'udplite') {
      const sc = getIntOpt(fd, sol, UDP_OPT.SEND_CSCOV) ?? 0;
      const rc = getIntOpt(fd, sol, UDP_OPT.RECV_CSCOV) ?? 0;
      if (sc) udp.sendCscov = sc;
      if (rc) udp.recvCscov = rc;
    }
    if (Object.keys(udp).length) out.udp = udp;

    // Addresses.
    if (local && local.port !== 0) {
      out.local = local;
      const rank = rankOf(ctx, f.st.ino);
      if (rank !== undefined) out.bindRank = rank;
      const range = ephemeral(out.opts.ints?.localPortRange);
      // A port in the range the kernel picks from is taken to be one it picked (see docs/support.md).
      if (local.port >= range.lo && local.port <= range.hi && !range.reserved(local.port)) out.autoPort = true;
      if (peer && !isWildcard(local.addr)) {
        const src = routeSource(family, proto, peer, out.opts.device);
        if (src !== local.addr) out.bindAddr = true;
      }
    }
    if (peer) out.peer = peer;

    // Data corked and not yet sent: the kernel cannot give it back.
    let outq = 0;
    if (!holdsWithin(500, () => (outq = sockIoctlInt(fd, SIOC.OUTQ, 'SIOCOUTQ')) === 0, 10)) {
      throw refused(`${at}: ${outq} bytes are waiting to be sent (${udp.cork ? 'UDP_CORK is set' : 'MSG_MORE, or not yet sent by the device'}); corked data cannot be read back`);
    }
    // A pending error (SO_ERROR) or error messages (IP_RECVERR): reading either takes it from the program,
    // and so does a read of the queue (the kernel answers the error first). Taken here, given back at the end.
    const e = pollNow(fd) & POLL.ERR ? takeError(fd, out, at) : 0;
    try {
      out.memberships = readMemberships(fd, family, at);
      if (!out.memberships.length) delete out.memberships;
      if (d && d.rqueue > 0) readQueue(fd, family, out, ctx, at);
    } finally {
      if (e) giveErrorBack(fd, out, e, at);
    }
    if (e) out.error = e;
    return out;
  } finally {
    if (!own) fs.closeSync(fd);
  }
}

/**
 * The shutdown state of an unbound socket (which sock_diag does not show),
 * as poll() tells it: POLLRDHUP for no more receiving, POLLHUP for both.
 * (Shut down for writing only, it looks like any other: see docs/support.md.)
 */
function unboundShutdown(fd: number): number {
  const ev = pollNow(fd);
  if (ev & POLL.HUP) return 3;
  return ev & EPOLL.RDHUP ? 1 : 0;
}

// ICMP errors that make a connected socket's pending error (net/ipv4/udp.c, icmp.c; net/ipv6/udp.c, icmp.c): errno -> type, code.
const ICMP4_OF: Record<number, [number, number]> = {
  111: [3, 3] /* ECONNREFUSED: port unreachable */, 92: [3, 2] /* ENOPROTOOPT: protocol unreachable */, 101: [3, 6] /* ENETUNREACH: network unknown */,
  112: [3, 7] /* EHOSTDOWN: host unknown */, 64: [3, 8] /* ENONET: host isolated */, 113: [3, 10] /* EHOSTUNREACH: host prohibited */,
  71: [12, 0] /* EPROTO: parameter problem */, 90: [3, 4] /* EMSGSIZE: fragmentation needed */,
};
const ICMP6_OF: Record<number, [number, number]> = {
  111: [1, 4] /* ECONNREFUSED: port unreachable */, 13: [1, 1] /* EACCES: administratively prohibited */, 71: [4, 0] /* EPROTO: parameter problem */,
  90: [2, 0] /* EMSGSIZE: packet too big */,
};

/** Send the connected socket `fd` (`d`: what it is) the ICMP error that makes `err` its pending error, and wait until it has one. */
function giveError(fd: number, d: Pick<UdpFile, 'protocol' | 'local' | 'peer'>, err: number, sender: (fam: 4 | 6) => RawSender): string | null {
  const local = onWire(d.local!.addr), peer = onWire(d.peer!.addr);
  const fam = local.includes(':') ? 6 : 4;
  const icmp = (fam === 4 ? ICMP4_OF : ICMP6_OF)[err];
  if (!icmp) return `the kernel makes ${errnoName(err)} from no ICMP error ckpt knows`;
  let info = 0;
  if (err === 90) {
    // (too big: at the path MTU the socket knows already, which stays as it is)
    const mtu = getIntOpt(fd, fam === 4 ? SOL.IP : SOL.IPV6, fam === 4 ? IP.MTU : IPV6.MTU);
    if (!mtu || mtu < 0) return 'its path MTU cannot be read';
    info = mtu;
  }
  const about = udpPacket({ src: local, dst: peer, sport: d.local!.port, dport: d.peer!.port, data: Buffer.alloc(0), lite: d.protocol === 'udplite' });
  const pkt = icmpErrorPacket({ src: peer, dst: local, type: icmp[0], code: icmp[1], info, about });
  const r = sendRawPacket(sender(fam), pkt, { family: fam, addr: local, port: 0 });
  if (r < 0) return `the ICMP error could not be sent: ${errnoName(-r)}`;
  return holdsWithin(ARRIVAL_MS, () => (pollNow(fd) & POLL.ERR) !== 0) ? null : 'the ICMP error sent did not make it one';
}

/**
 * Take the pending error of a socket that poll() says has one (POLLERR).
 * It can only be read by taking it: so only where ckpt can give it back
 * (giveErrorBack): a connected socket without an error queue, whose error
 * the kernel made from an ICMP error of its peer, which ckpt sends again.
 */
function takeError(fd: number, out: Omit<UdpFile, 'id'>, at: string): number {
  const ints = out.opts.ints ?? {};
  const queues = [ints.recverr && 'IP_RECVERR', ints.recverr6 && 'IPV6_RECVERR', ints.timestamping && 'SO_TIMESTAMPING', ints.zerocopy && 'SO_ZEROCOPY'].filter(Boolean);
  if (queues.length) throw refused(`${at}: the socket has a pending error or queued error messages (POLLERR, with ${queues.join(', ')} on); ckpt cannot read them without taking them from the program; not supported yet`);
  if (!out.peer || !out.local) throw refused(`${at}: the socket has a pending error (POLLERR) and no peer: ckpt could not give it back once read; not supported yet`);
  return getIntOpt(fd, SOL.SOCKET, SO.ERROR) ?? 0;
}

/** Give the program its pending error back, then take it and give it once more: what restore will do is known to work. */
function giveErrorBack(fd: number, out: Omit<UdpFile, 'id'>, e: number, at: string): void {
  const senders = new RawSenders(PASS_MARK);
  const sender = (fam: 4 | 6) => senders.get(fam);
  try {
    let why = giveError(fd, out, e, sender);
    if (!why) {
      const again = getIntOpt(fd, SOL.SOCKET, SO.ERROR) ?? 0;
      why = giveError(fd, out, e, sender) ?? (again !== e ? `the ICMP error made ${errnoName(again)}` : null);
    }
    if (why) throw new CkptError('failed', `${at}: its pending error ${errnoName(e)} was read and could not be given back (${why}); the program will not see it`);
  } finally { senders.close(); }
}

function readMemberships(fd: number, family: 4 | 6, at: string): Membership[] {
  const out: Membership[] = [];
  // (an IPv6 socket may be a member of IPv4 groups too)
  for (const gf of family === 4 ? [4] as const : [4, 6] as const) {
    const seen = new Set<string>();
    for (const g of hostGroups(gf)) {
      const key = `${g.ifindex} ${g.group}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const r = getMcastFilter(fd, gf, g.ifindex, g.group);
      if (r === null) continue;
      if (typeof r === 'number') {
        // (EINVAL or ENOPROTOOPT: not a group this socket can ask about)
        if (r === -22 || r === -92) continue;
        throw refused(`${at}: its filter of multicast group ${g.group} on ${g.ifname} could not be read: ${errnoName(-r)}`);
      }
      out.push({ family: gf, group: g.group, ifname: g.ifname, ifindex: g.ifindex, mode: r.mode, sources: r.sources });
    }
  }
  return out;
}

/** Read the receive queue without consuming it; the socket's own options are put back. */
function readQueue(fd: number, family: 4 | 6, out: Omit<UdpFile, 'id'>, ctx: DumpFileCtx, at: string): void {
  const opts = Object.values(RECV_OPTS).filter(([level]) => family === 6 || level === SOL.IP);
  const saved = opts.map(([level, opt]) => getIntOpt(fd, level, opt));
  const peekOff = getIntOpt(fd, SOL.SOCKET, SO.PEEK_OFF) ?? -1;
  const queue: Datagram[] = [];
  const chunks: Buffer[] = [];
  let off = 0;
  let size = 65536;
  try {
    opts.forEach(([level, opt], i) => { if (saved[i] !== null) setIntOpt(fd, level, opt, 1); });
    for (;;) {
      // (an empty datagram at an offset is skipped by the kernel once peeked: the offset stays and the next one comes)
      if (setIntOpt(fd, SOL.SOCKET, SO.PEEK_OFF, off) < 0) throw refused(`${at}: SO_PEEK_OFF cannot be set on it`);
      const m = recvDatagram(fd, size, SOCK.MSG_PEEK | SOCK.MSG_TRUNC);
      if (m === null) break;
      if (typeof m === 'number') throw refused(`${at}: reading its queue failed: ${errnoName(-m)}`);
      if (m.len > size) { size = m.len; continue; }
      if (m.flags & SOCK.MSG_CTRUNC) throw refused(`${at}: a queued datagram carries more control data than ckpt reads`);
      const meta = datagramMeta(m.cmsgs);
      if (meta.gro && m.len > meta.gro) throw refused(`${at}: a queued datagram of ${m.len} bytes is ${Math.ceil(m.len / meta.gro)} datagrams coalesced by GRO (UDP_GRO); it cannot be queued again as it is; not supported yet`);
      if (!m.from) throw refused(`${at}: a queued datagram without a sender address`);
      if (!meta.dst) throw refused(`${at}: the destination of a queued datagram could not be learned`);
      if (meta.ipOptions) throw refused(`${at}: a queued datagram (from ${showAddr(m.from)}) carries IP options; not supported yet`);
      if (isMulticastOrBroadcast(meta.dst)) {
        throw refused(`${at}: a datagram to the multicast or broadcast address ${meta.dst} (from ${showAddr(m.from)}) is queued; it could not be queued again without sending it to every member; not supported yet`);
      }
      if (queue.length >= 1 << 16) throw refused(`${at}: more than ${1 << 16} datagrams queued`);
      const dg: Datagram = { len: m.data.length, from: m.from, to: meta.dst };
      if (meta.ttl !== undefined && meta.ttl >= 0) dg.ttl = meta.ttl;
      if (meta.tos) dg.tos = meta.tos;
      if (meta.flowLabel) dg.flowLabel = meta.flowLabel;
      queue.push(dg);
      chunks.push(m.data);
      off += m.data.length;
    }
  } finally {
    setIntOpt(fd, SOL.SOCKET, SO.PEEK_OFF, peekOff);
    opts.forEach(([level, opt], i) => { if (saved[i] !== null) setIntOpt(fd, level, opt, saved[i]!); });
  }
  if (!queue.length) return;
  out.queue = queue;
  const bytes = Buffer.concat(chunks);
  if (bytes.length) out.data = ctx.writeData(`udp-${out.ino}`, bytes);
}

// ---------------------------------------------------------------- restore

function ifindexOf(name: string): number | null {
  try { return Number(fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()); } catch { return null; }
}

function what(d: UdpFile): string {
  return `open file ${d.id} (${describeUdp(d)})`;
}

function describeUdp(d: UdpFile): string {
  const p = d.protocol === 'udp' ? 'udp' : 'udplite';
  const parts = [`${p}${d.family === 6 ? '6' : ''} ${d.local ? showAddr(d.local as InetAddr) : 'unbound'}${d.peer ? ` -> ${showAddr(d.peer as InetAddr)}` : ''}`];
  if (d.queue?.length) parts.push(`${d.queue.length} datagram${d.queue.length === 1 ? '' : 's'} queued`);
  if (d.memberships?.length) parts.push(`member of ${d.memberships.map((m) => `${m.group}%${m.ifname}${m.sources.length ? ` (${m.mode} ${m.sources.join(' ')})` : ''}`).join(', ')}`);
  if (d.shutdown) parts.push(`shut down ${['', 'for reading', 'for writing', 'both ways'][d.shutdown]}`);
  if (d.udp?.cork) parts.push('corked');
  if (d.error) parts.push(`pending error ${errnoName(d.error)}`);
  return parts.join(', ');
}


/** How long a datagram may take to reach the queue it is put back in. */
const ARRIVAL_MS = 5000;

function createUdp(d: UdpFile, ctx: RestoreFileCtx): number {
  const label = what(d);
  const fail = (msg: string) => new CkptError('failed', `${label}: ${msg}`);
  const fd = socket(d.family === 4 ? AF.INET : AF.INET6, SOCK.DGRAM, PROTO_NR[d.protocol]);
  try {
    // (the owner first: a SO_REUSEPORT group takes only sockets of one owner)
    if (d.uid) fs.fchownSync(fd, d.uid, -1);
    restoreSockOpts(fd, d.family, d.opts, label, 'early');
    const rangeOpt = d.opts.ints?.localPortRange ?? 0;
    const bindErr = (e: number, a: InetAddr) => {
      if (e === -98) return conflict(`${label}: ${showAddr(a)} cannot be bound: the port is in use on this host`);
      if (e === -99) return conflict(`${label}: ${showAddr(a)} cannot be bound: the address is not one of this host`);
      return conflict(`${label}: bind to ${showAddr(a)} failed: ${errnoName(-e)}`);
    };
    if (d.local) {
      const local = d.local as InetAddr;
      const wildcard: InetAddr = { family: d.family, addr: d.family === 4 ? '0.0.0.0' : '::', port: 0 };
      // A port the kernel picked is picked again by the kernel, from a range of one port: the socket is not bound to it by the program.
      let auto = !!d.autoPort;
      if (auto) {
        const r = ephemeral(undefined);
        if (local.port < r.lo || local.port > r.hi || setIntOpt(fd, SOL.IP, IP.LOCAL_PORT_RANGE, (local.port << 16) | local.port) < 0) auto = false;
      }
      // (a connected socket whose address the route chose: bound to the wildcard, connect() sets the address as it did)
      const addrGiven = !d.peer || d.bindAddr || isWildcard(local.addr);
      const a: InetAddr = { ...(addrGiven ? local : wildcard), port: auto ? 0 : local.port };
      const e = bindInet(fd, a);
      if (e < 0) throw bindErr(e, { ...a, port: local.port });
      // (queued before connect(): datagrams from others than the peer may be queued, which a connected socket would not take)
      if (d.queue?.length) fillQueue(fd, d, ctx, label);
      if (d.peer) {
        const e = connectInet(fd, d.peer as InetAddr);
        if (e === -98) throw conflict(`${label}: ${showAddr(local)} cannot be bound: the port is in use on this host`);
        if (e < 0) throw conflict(`${label}: connect to ${showAddr(d.peer as InetAddr)} failed: ${errnoName(-e)}`);
      }
      if (d.autoPort) setIntOpt(fd, SOL.IP, IP.LOCAL_PORT_RANGE, rangeOpt);
      const got = getsocknameInet(fd);
      if (!got || got.port !== local.port || onWire(got.addr) !== onWire(local.addr)) {
        throw conflict(`${label}: the socket got the address ${got ? showAddr(got) : 'none'}, not ${showAddr(local)}${d.peer ? ' (the route to its peer chose another source address on this host)' : ''}`);
      }
    } else if (d.peer) throw badImage(`image file files.json: open file ${d.id}: connected but not bound`);

    restoreSockOpts(fd, d.family, d.opts, label, 'late');
    const sol = SOL_OF[d.protocol];
    const u = d.udp ?? {};
    const setU = (opt: number, v: number, name: string) => { const r = setIntOpt(fd, sol, opt, v); if (r < 0) throw fail(`setting ${name} again failed: ${errnoName(-r)}`); };
    if (u.segment) setU(UDP_OPT.SEGMENT, u.segment, 'UDP_SEGMENT');
    if (u.gro) setU(UDP_OPT.GRO, 1, 'UDP_GRO');
    if (u.noCheck6Tx) setU(UDP_OPT.NO_CHECK6_TX, 1, 'UDP_NO_CHECK6_TX');
    if (u.noCheck6Rx) setU(UDP_OPT.NO_CHECK6_RX, 1, 'UDP_NO_CHECK6_RX');
    if (u.sendCscov) setU(UDP_OPT.SEND_CSCOV, u.sendCscov, 'UDPLITE_SEND_CSCOV');
    if (u.recvCscov) setU(UDP_OPT.RECV_CSCOV, u.recvCscov, 'UDPLITE_RECV_CSCOV');
    if (u.cork) setU(UDP_OPT.CORK, 1, 'UDP_CORK');
    for (const m of d.memberships ?? []) {
      const ifi = ifindexOf(m.ifname);
      if (ifi === null) throw conflict(`${label}: interface ${m.ifname} (of its membership of multicast group ${m.group}) is not on this host`);
      const r = joinMcast(fd, m.family, ifi, m.group, { mode: m.mode, sources: m.sources });
      if (r < 0) throw fail(`joining multicast group ${m.group} on ${m.ifname} again failed: ${errnoName(-r)}`);
    }
    if (d.error) {
      if (!d.peer || !d.local) throw badImage(`image file files.json: open file ${d.id}: a pending error on a socket without a peer`);
      const why = giveError(fd, d, d.error, (fam) => restoreSenders(ctx).get(fam));
      if (why) throw fail(`its pending error ${errnoName(d.error)} could not be given back: ${why}`);
    }
    if (d.shutdown) {
      const r = shutdownRaw(fd, d.shutdown === 3 ? SOCK.SHUT_RDWR : d.shutdown === 1 ? SOCK.SHUT_RD : SOCK.SHUT_WR);
      // (an unconnected socket: the kernel sets the bits and says ENOTCONN)
      if (r < 0 && r !== -107) throw fail(`shutdown failed: ${errnoName(-r)}`);
    }
    setFl(fd, d.flags);
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * Steer the SO_REUSEPORT group the socket just joined to it: its member
 * number is the number of sockets that were in the group before it (the
 * sockets of this host bound to the same address, port and device, with the
 * same owner). False when it is alone.
 */
function steerToSelf(fd: number, d: UdpFile, label: string): boolean {
  const me = fs.fstatSync(fd).ino;
  const got = getsocknameInet(fd);
  if (!got) return false;
  const dev = getIntOpt(fd, SOL.SOCKET, SO_MORE.BINDTOIFINDEX) ?? 0;
  const others = inetDiagAll(d.family, PROTO_NR[d.protocol]).filter((x) => x.inode !== me && x.src.port === got.port
    && x.src.addr === got.addr && x.ifindex === dev && x.uid === (d.uid ?? 0) && x.dst.port === 0);
  if (!others.length) return false;
  const r = steerReuseport(fd, others.length);
  if (r < 0) throw new CkptError('failed', `${label}: its queued datagrams cannot be steered to it in its SO_REUSEPORT group: ${errnoName(-r)}`);
  return true;
}

/**
 * A socket, made with the others of the image that share its port (same
 * protocol and family), all at once, in the order they were bound: the
 * kernel gives a port's datagrams to the socket bound last among equals,
 * and numbers the members of a SO_REUSEPORT group in the order they joined.
 */
function createShared(d: UdpFile, ctx: RestoreFileCtx): number {
  if (!d.local) return createUdp(d, ctx);
  const key = (x: UdpFile) => `${x.protocol}/${x.family}/${x.local!.port}`;
  const group = (ctx.descs as unknown as UdpFile[]).filter((x) => x.kind === 'udp' && x.local && key(x) === key(d));
  if (group.length < 2) return createUdp(d, ctx);
  let made = ctx.state.get('udp:made') as Map<number, number> | undefined;
  if (!made) {
    const m = new Map<number, number>();
    made = m;
    ctx.state.set('udp:made', m);
    // (those made with another and never asked for: the restore failed first)
    ctx.onDone(() => { for (const fd of m.values()) { try { fs.closeSync(fd); } catch { /* closed */ } } m.clear(); });
  }
  if (!made.has(d.id)) {
    const order = [...group].sort((a, b) => (a.bindRank ?? a.id) - (b.bindRank ?? b.id) || a.id - b.id);
    for (const x of order) made.set(x.id, createUdp(x, ctx));
  }
  const fd = made.get(d.id)!;
  made.delete(d.id);
  return fd;
}

/** Put the queued datagrams back, in order, each waited for until it is in the queue. */
function fillQueue(fd: number, d: UdpFile, ctx: RestoreFileCtx, label: string): void {
  const data = d.data ? ctx.readData(d.data) : Buffer.alloc(0);
  const total = d.queue!.reduce((s, q) => s + q.len, 0);
  if (total > data.length) throw badImage(`image file ${d.data ?? 'files.json'}: open file ${d.id}: its queue has more bytes than its data file`);
  // (room for all of them while they come back: the buffer and its lock are put back after)
  const rcvbuf = getIntOpt(fd, SOL.SOCKET, SO.RCVBUF) ?? 0;
  const lock = getIntOpt(fd, SOL.SOCKET, SO_MORE.BUF_LOCK) ?? 0;
  setIntOpt(fd, SOL.SOCKET, SO.RCVBUFFORCE, Math.max(rcvbuf, 4 * total + 1024 * d.queue!.length + (1 << 20)));
  // (a socket bound to a device takes only what comes in on it: the datagrams come in on the loopback)
  const dev = getIntOpt(fd, SOL.SOCKET, SO_MORE.BINDTOIFINDEX) ?? 0;
  if (dev) setIntOpt(fd, SOL.SOCKET, SO_MORE.BINDTOIFINDEX, 0);
  const local = d.local as InetAddr;
  const checked = new Set<string>();
  // (a member of a SO_REUSEPORT group gets what comes to the group by a hash of the sender: steered to it for the time)
  const steered = d.opts.ints?.reuseport ? steerToSelf(fd, d, label) : false;
  let at = 0;
  try {
    for (const q of d.queue!) {
      const bytes = data.subarray(at, at + q.len);
      at += q.len;
      const src = onWire(q.from.addr);
      const dst = onWire(q.to);
      const fam = src.includes(':') ? 6 : 4;
      if ((dst.includes(':') ? 6 : 4) !== fam) throw badImage(`image file files.json: open file ${d.id}: a queued datagram from ${q.from.addr} to ${q.to}`);
      if (!checked.has(dst)) {
        // (its destination must be an address of this host, or the packet would leave it)
        const probe = socket(fam === 4 ? AF.INET : AF.INET6, SOCK.DGRAM, 0);
        try {
          if (fam === 6) setIntOpt(probe, SOL.IPV6, IPV6.V6ONLY, 1);
          const e = bindInet(probe, { family: fam, addr: dst, port: 0, ...(q.from.scope ? { scope: q.from.scope } : {}) });
          if (e === -99) throw conflict(`${label}: a queued datagram was sent to ${dst}, which is not an address of this host`);
        } finally { fs.closeSync(probe); }
        checked.add(dst);
      }
      const s = restoreSenders(ctx).get(fam);
      const pkt = udpPacket({
        src, dst, sport: q.from.port, dport: local.port, data: bytes, lite: d.protocol === 'udplite',
        ttl: q.ttl ?? 64, tos: q.tos ?? 0, flowLabel: q.flowLabel ?? 0,
      });
      const before = (sockMeminfo(fd)?.rmem ?? -1);
      const r = sendRawPacket(s, pkt, { family: fam, addr: dst, port: 0, ...(fam === 6 && q.from.scope ? { scope: q.from.scope } : {}) });
      if (r < 0) throw new CkptError('failed', `${label}: a queued datagram (from ${showAddr(q.from as InetAddr)}, ${q.len} bytes) could not be sent again: ${errnoName(-r)}`);
      if (!holdsWithin(ARRIVAL_MS, () => (sockMeminfo(fd)?.rmem ?? -1) > before)) {
        throw new CkptError('failed', `${label}: a queued datagram (from ${showAddr(q.from as InetAddr)} to ${dst}, ${q.len} bytes) sent again did not arrive in its queue (another socket of this host shares the port, or a firewall drops it)`);
      }
    }
  } finally {
    if (steered) unsteerReuseport(fd);
    if (dev) setIntOpt(fd, SOL.SOCKET, SO_MORE.BINDTOIFINDEX, dev);
    setIntOpt(fd, SOL.SOCKET, SO.RCVBUFFORCE, Math.floor(rcvbuf / 2));
    setIntOpt(fd, SOL.SOCKET, SO_MORE.BUF_LOCK, lock);
  }
}

export const udpKind = defineKind<UdpFile>({
  kind: 'udp',
  schema: UdpFile,
  takes: (f) => !!f.socket && (f.socket.family === AF.INET || f.socket.family === AF.INET6) && f.socket.type === SOCK.DGRAM
    && (f.socket.protocol === IPPROTO.UDP || f.socket.protocol === IPPROTO.UDPLITE),
  dump: dumpUdp,
  describe: describeUdp,
  check(d, ctx) {
    if (d.data && !ctx.hasFile(d.data)) throw badImage(`image file files.json: open file ${d.id}: its data file ${d.data} is not in the manifest`);
    const total = (d.queue ?? []).reduce((s, q) => s + q.len, 0);
    if (total && !d.data) throw badImage(`image file files.json: open file ${d.id}: ${total} bytes queued but no data file`);
    if (d.queue?.length && !d.local) throw badImage(`image file files.json: open file ${d.id}: datagrams queued on an unbound socket`);
    for (const m of d.memberships ?? []) {
      if (ifindexOf(m.ifname) === null) throw conflict(`${what(d)}: interface ${m.ifname} (of its membership of multicast group ${m.group}) is not on this host`);
    }
  },
  phase: 'objects',
  create(d, _holder, ctx) {
    return { local: createShared(d, ctx), closeAfter: true };
  },
});

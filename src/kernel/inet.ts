// Inet sockets (AF_INET, AF_INET6) as ckpt handles them itself, on its own
// copies of a tree's sockets (pidfd_getfd) or on sockets it makes: addresses,
// socket options as raw buffers, queue sizes, the send and receive calls TCP
// repair needs, and sock_diag for inet sockets (linux/inet_diag.h): every TCP,
// UDP, UDP-Lite or raw socket of ckpt's network namespace, with its state,
// addresses, inode, queues and, for TCP, tcp_info.

import { sys, syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, SOCK } from './consts.js';
import { RTATTR, MSGHDR, CMSGHDR, iovecArray, Layout } from './structs.js';
import { sockDiagDump } from './diagdump.js';

export const AF = { UNSPEC: 0, UNIX: 1, INET: 2, INET6: 10, NETLINK: 16, PACKET: 17 } as const;
export const SOCK_TYPE = { STREAM: 1, DGRAM: 2, RAW: 3, RDM: 4, SEQPACKET: 5, PACKET: 10 } as const;
export const IPPROTO = { IP: 0, ICMP: 1, TCP: 6, UDP: 17, IPV6: 41, ICMPV6: 58, SCTP: 132, UDPLITE: 136, RAW: 255, MPTCP: 262 } as const;
/** Option levels. */
export const SOL = { SOCKET: 1, IP: 0, IPV6: 41, TCP: 6, UDP: 17, UDPLITE: 136, RAW: 255, PACKET: 263, NETLINK: 270 } as const;

/** SOL_SOCKET options beyond those of consts.ts SO (asm-generic numbers). */
export const SO_MORE = {
  LINGER: 13, BINDTODEVICE: 25, ATTACH_FILTER: 26, GET_FILTER: 26, DETACH_FILTER: 27, TIMESTAMPING_OLD: 37, RXQ_OVFL: 40, NOFCS: 43, LOCK_FILTER: 44,
  SELECT_ERR_QUEUE: 45, BUSY_POLL: 46, MEMINFO: 55, MAX_PACING_RATE: 47, INCOMING_CPU: 49, ATTACH_BPF: 50, ZEROCOPY: 60, TXTIME: 61, BINDTOIFINDEX: 62,
  TIMESTAMP_NEW: 63, TIMESTAMPNS_NEW: 64, PREFER_BUSY_POLL: 69, BUSY_POLL_BUDGET: 70, BUF_LOCK: 72, RESERVE_MEM: 73, TXREHASH: 74, RCVMARK: 75,
} as const;

/** IPPROTO_TCP options (linux/tcp.h). */
export const TCP = {
  NODELAY: 1, MAXSEG: 2, CORK: 3, KEEPIDLE: 4, KEEPINTVL: 5, KEEPCNT: 6, SYNCNT: 7, LINGER2: 8, DEFER_ACCEPT: 9, WINDOW_CLAMP: 10, INFO: 11,
  QUICKACK: 12, CONGESTION: 13, MD5SIG: 14, THIN_LINEAR_TIMEOUTS: 16, THIN_DUPACK: 17, USER_TIMEOUT: 18, REPAIR: 19, REPAIR_QUEUE: 20,
  QUEUE_SEQ: 21, REPAIR_OPTIONS: 22, FASTOPEN: 23, TIMESTAMP: 24, NOTSENT_LOWAT: 25, SAVE_SYN: 27, REPAIR_WINDOW: 29, FASTOPEN_CONNECT: 30,
  ULP: 31, FASTOPEN_NO_COOKIE: 34, INQ: 36, TX_DELAY: 37,
} as const;
/** TCP_REPAIR values, TCP_REPAIR_QUEUE queues, TCP_REPAIR_OPTIONS codes. */
export const TCP_REPAIR = { ON: 1, OFF: 0, OFF_NO_WP: -1 } as const;
export const TCP_QUEUE = { NO: 0, RECV: 1, SEND: 2 } as const;
export const TCPOPT = { MSS: 2, WINDOW: 3, SACK_PERM: 4, TIMESTAMP: 8 } as const;
/** tcpi_options bits. */
export const TCPI_OPT = { TIMESTAMPS: 1, SACK: 2, WSCALE: 4, ECN: 8, ECN_SEEN: 16, SYN_DATA: 32 } as const;
/** TCP states (include/net/tcp_states.h). */
export const TCP_STATE = {
  ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE: 7, CLOSE_WAIT: 8, LAST_ACK: 9, LISTEN: 10, CLOSING: 11, NEW_SYN_RECV: 12,
} as const;
export const TCP_STATE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TCP_STATE).map(([k, v]) => [v, k]));

/** IPPROTO_IP options (linux/in.h). */
export const IP = {
  TOS: 1, TTL: 2, HDRINCL: 3, OPTIONS: 4, RECVOPTS: 6, RETOPTS: 7, PKTINFO: 8, PKTOPTIONS: 9, MTU_DISCOVER: 10, RECVERR: 11, RECVTTL: 12, RECVTOS: 13,
  MTU: 14, FREEBIND: 15, PASSSEC: 18, TRANSPARENT: 19, RECVORIGDSTADDR: 20, MINTTL: 21, NODEFRAG: 22, CHECKSUM: 23, BIND_ADDRESS_NO_PORT: 24,
  RECVFRAGSIZE: 25, RECVERR_RFC4884: 26, MULTICAST_IF: 32, MULTICAST_TTL: 33, MULTICAST_LOOP: 34, ADD_MEMBERSHIP: 35, DROP_MEMBERSHIP: 36,
  MSFILTER: 41, MCAST_JOIN_GROUP: 42, MCAST_LEAVE_GROUP: 45, MCAST_JOIN_SOURCE_GROUP: 46, MCAST_MSFILTER: 48, MULTICAST_ALL: 49, UNICAST_IF: 50,
  LOCAL_PORT_RANGE: 51,
} as const;
/** IPPROTO_IPV6 options (linux/in6.h). */
export const IPV6 = {
  ADDRFORM: 1, UNICAST_HOPS: 16, MULTICAST_IF: 17, MULTICAST_HOPS: 18, MULTICAST_LOOP: 19, JOIN_GROUP: 20, LEAVE_GROUP: 21, ROUTER_ALERT: 22,
  MTU_DISCOVER: 23, MTU: 24, RECVERR: 25, V6ONLY: 26, JOIN_ANYCAST: 27, MULTICAST_ALL: 29, ROUTER_ALERT_ISOLATE: 30, RECVERR_RFC4884: 31,
  HDRINCL: 36, RECVPKTINFO: 49, PKTINFO: 50, RECVHOPLIMIT: 51, HOPLIMIT: 52, RECVHOPOPTS: 53, RECVRTHDR: 56, RECVDSTOPTS: 58, RECVPATHMTU: 60,
  DONTFRAG: 62, RECVTCLASS: 66, TCLASS: 67, AUTOFLOWLABEL: 70, ADDR_PREFERENCES: 72, MINHOPCOUNT: 73, RECVORIGDSTADDR: 74, TRANSPARENT: 75,
  UNICAST_IF: 76, RECVFRAGSIZE: 77, FREEBIND: 78,
} as const;
/** ioctls on sockets: bytes to read, bytes not yet acknowledged (TCP) or queued to send, bytes not yet sent (TCP). */
export const SIOC = { INQ: 0x541b, OUTQ: 0x5411, OUTQNSD: 0x894b } as const;

// ---------------------------------------------------------------- addresses

/** An inet address and port: `addr` as printed (dotted quad, or RFC 5952 IPv6), the IPv6 flow info and scope when not 0. */
export interface InetAddr { family: 4 | 6; addr: string; port: number; flowinfo?: number; scope?: number }

export const SOCKADDR_IN = new Layout('sockaddr_in', 16, { family: [0, 'u16'], port: [2, 'u16'], addr: [4, 'u32'] } as const, false);
export const SOCKADDR_IN6 = new Layout('sockaddr_in6', 28, { family: [0, 'u16'], port: [2, 'u16'], flowinfo: [4, 'u32'], scope: [24, 'u32'] } as const, false);

/** An IPv4 or IPv6 address's bytes as text. */
export function addrText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) throw new Error(`internal: an address of ${b.length} bytes`);
  // (an IPv4-mapped address keeps its dotted tail, as inet_ntop writes it)
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${[...b.subarray(12)].join('.')}`;
  const w = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i));
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(w) : `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** An address as text to its bytes (4 for IPv4, 16 for IPv6); throws on a malformed one. */
export function addrBytes(s: string, family: 4 | 6): Buffer {
  const v4 = (t: string) => {
    const p = t.split('.');
    if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) throw new Error(`not an IPv4 address: ${s}`);
    return Buffer.from(p.map(Number));
  };
  if (family === 4) return v4(s);
  const out = Buffer.alloc(16);
  let tail: Buffer | null = null;
  let t = s;
  const lastColon = t.lastIndexOf(':');
  if (t.slice(lastColon + 1).includes('.')) { tail = v4(t.slice(lastColon + 1)); t = t.slice(0, lastColon + 1) + '0:0'; }
  const halves = t.split('::');
  if (halves.length > 2) throw new Error(`not an IPv6 address: ${s}`);
  const words = (h: string) => (h === '' ? [] : h.split(':').map((x) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(x)) throw new Error(`not an IPv6 address: ${s}`);
    return parseInt(x, 16);
  }));
  const head = words(halves[0]);
  const rest = halves.length === 2 ? words(halves[1]) : [];
  if (halves.length === 1 ? head.length !== 8 : head.length + rest.length > 7) throw new Error(`not an IPv6 address: ${s}`);
  head.forEach((x, i) => out.writeUInt16BE(x, 2 * i));
  rest.forEach((x, i) => out.writeUInt16BE(x, 2 * (8 - rest.length + i)));
  if (tail) tail.copy(out, 12);
  return out;
}

/** `addr:port` for people ([addr]:port for IPv6). */
export function showAddr(a: InetAddr): string { return a.family === 6 ? `[${a.addr}]:${a.port}` : `${a.addr}:${a.port}`; }

/** A struct sockaddr_in or sockaddr_in6 for `a`. */
export function sockaddrInet(a: InetAddr): Buffer {
  if (a.family === 4) {
    const b = Buffer.alloc(SOCKADDR_IN.size);
    SOCKADDR_IN.set(b, 'family', AF.INET);
    b.writeUInt16BE(a.port, SOCKADDR_IN.offsetOf('port'));
    addrBytes(a.addr, 4).copy(b, SOCKADDR_IN.offsetOf('addr'));
    return b;
  }
  const b = Buffer.alloc(SOCKADDR_IN6.size);
  SOCKADDR_IN6.set(b, 'family', AF.INET6);
  b.writeUInt16BE(a.port, SOCKADDR_IN6.offsetOf('port'));
  b.writeUInt32BE(a.flowinfo ?? 0, SOCKADDR_IN6.offsetOf('flowinfo'));
  addrBytes(a.addr, 6).copy(b, 8);
  SOCKADDR_IN6.set(b, 'scope', a.scope ?? 0);
  return b;
}

/** The address in a sockaddr the kernel filled in, or null when it is not an inet one (AF_UNSPEC: none). */
export function parseSockaddrInet(b: Buffer, len: number): InetAddr | null {
  if (len < 2) return null;
  const fam = b.readUInt16LE(0);
  if (fam === AF.INET && len >= 8) return { family: 4, addr: addrText(b.subarray(4, 8)), port: b.readUInt16BE(2) };
  if (fam === AF.INET6 && len >= 24) {
    const a: InetAddr = { family: 6, addr: addrText(b.subarray(8, 24)), port: b.readUInt16BE(2) };
    const flow = b.readUInt32BE(4);
    const scope = len >= 28 ? SOCKADDR_IN6.get(b, 'scope') : 0;
    if (flow) a.flowinfo = flow;
    if (scope) a.scope = scope;
    return a;
  }
  return null;
}

function nameCall(fd: number, nr: number, what: string): InetAddr | null {
  const b = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length, 0);
  const r = syscallRaw(nr, fd, addressOf(b), addressOf(len));
  if (r === -107 /* ENOTCONN */) return null;
  if (r < 0) throw new SysError(what, -r);
  return parseSockaddrInet(b, len.readUInt32LE(0));
}
/** getsockname of an inet socket. */
export function getsocknameInet(fd: number): InetAddr | null { return nameCall(fd, NR.getsockname, 'getsockname'); }
/** getpeername of an inet socket: null when not connected. */
export function getpeernameInet(fd: number): InetAddr | null { return nameCall(fd, NR.getpeername, 'getpeername'); }
/** bind to `a`: 0 or -errno. */
export function bindInet(fd: number, a: InetAddr): number {
  const s = sockaddrInet(a);
  return syscallRaw(NR.bind, fd, addressOf(s), s.length);
}
/** connect to `a` (null: AF_UNSPEC, which disconnects): 0 or -errno. */
export function connectInet(fd: number, a: InetAddr | null): number {
  const s = a ? sockaddrInet(a) : Buffer.alloc(16);
  return syscallRaw(NR.connect, fd, addressOf(s), s.length);
}

// ---------------------------------------------------------------- options, queues, data

/** getsockopt into a buffer of `size` bytes: the bytes the kernel gave, or -errno. */
export function getsockoptRaw(fd: number, level: number, opt: number, size: number, init?: Buffer): Buffer | number {
  const b = Buffer.alloc(Math.max(size, 1));
  init?.copy(b);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size, 0);
  const r = syscallRaw(NR.getsockopt, fd, level, opt, addressOf(b), addressOf(len));
  if (r < 0) return r;
  return Buffer.from(b.subarray(0, Math.min(len.readUInt32LE(0), size)));
}
/** getsockopt into a buffer, throwing on failure. */
export function getsockoptBuf(fd: number, level: number, opt: number, size: number, name: string, init?: Buffer): Buffer {
  const r = getsockoptRaw(fd, level, opt, size, init);
  if (typeof r === 'number') throw new SysError(`getsockopt(${name})`, -r);
  return r;
}
/** setsockopt with a buffer: 0 or -errno. */
export function setsockoptRaw(fd: number, level: number, opt: number, v: Buffer): number {
  return syscallRaw(NR.setsockopt, fd, level, opt, v.length ? addressOf(v) : 0, v.length);
}
export function setsockoptBuf(fd: number, level: number, opt: number, v: Buffer, name: string): void {
  const r = setsockoptRaw(fd, level, opt, v);
  if (r < 0) throw new SysError(`setsockopt(${name})`, -r);
}
/** setsockopt of an int (or of a u32, such as a sequence number), 0 or -errno. */
export function setsockoptIntRaw(fd: number, level: number, opt: number, v: number): number {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v | 0, 0);
  return setsockoptRaw(fd, level, opt, b);
}

/** SO_MEMINFO (sockets of any family): receive memory in use (sk_rmem_alloc), the receive buffer, send memory in use..., or null when the kernel does not say. */
export function sockMeminfo(fd: number): { rmem: number; rcvbuf: number; wmem: number; sndbuf: number } | null {
  const b = getsockoptRaw(fd, SOL.SOCKET, SO_MORE.MEMINFO, 36);
  if (typeof b === 'number' || b.length < 16) return null;
  return { rmem: b.readUInt32LE(0), rcvbuf: b.readUInt32LE(4), wmem: b.readUInt32LE(8), sndbuf: b.readUInt32LE(12) };
}

/** A socket ioctl that answers an int (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD). */
export function sockIoctlInt(fd: number, req: number, name: string): number {
  const b = Buffer.alloc(4);
  sys(`ioctl(${name})`, NR.ioctl, fd, req, addressOf(b));
  return b.readInt32LE(0);
}

/** recvfrom(fd, size, flags | MSG_DONTWAIT) without an address: the bytes, or -errno (-EAGAIN: nothing). */
export function recvBytes(fd: number, size: number, flags: number): Buffer | number {
  const b = Buffer.alloc(Math.max(size, 1));
  const r = syscallRaw(NR.recvfrom, fd, addressOf(b), size, flags | SOCK.MSG_DONTWAIT, 0, 0);
  return r < 0 ? r : Buffer.from(b.subarray(0, r));
}
/** sendto(fd, data, flags | MSG_DONTWAIT | MSG_NOSIGNAL), to `to` when given: bytes sent or -errno. */
export function sendBytes(fd: number, data: Buffer, flags: number, to?: InetAddr): number {
  const body = data.length ? data : Buffer.alloc(1);
  const a = to ? sockaddrInet(to) : null;
  return syscallRaw(NR.sendto, fd, addressOf(body), data.length, flags | SOCK.MSG_DONTWAIT | SOCK.MSG_NOSIGNAL, a ? addressOf(a) : 0, a ? a.length : 0);
}

/** One datagram read with recvmsg: its bytes, sender, control messages (level, type, body) and flags. */
export interface InetDatagram { data: Buffer; from: InetAddr | null; cmsgs: Array<{ level: number; type: number; data: Buffer }>; flags: number; len: number }

/** recvmsg(fd, flags | MSG_DONTWAIT) of one datagram with its sender and control messages; null when none is queued, -errno on error. */
export function recvDatagram(fd: number, size: number, flags: number): InetDatagram | null | number {
  const data = Buffer.alloc(Math.max(size, 1));
  const name = Buffer.alloc(128);
  const control = Buffer.alloc(4096);
  const iov = iovecArray([[addressOf(data), size]]);
  const m = MSGHDR.encode({ name: addressOf(name), namelen: name.length, iov: addressOf(iov), iovlen: 1, control: addressOf(control), controllen: control.length });
  const r = syscallRaw(NR.recvmsg, fd, addressOf(m), flags | SOCK.MSG_DONTWAIT);
  if (r === -11) return null;
  if (r < 0) return r;
  const cmsgs: InetDatagram['cmsgs'] = [];
  const clen = Number(MSGHDR.get(m, 'controllen'));
  for (let at = 0; at + CMSGHDR.size <= clen;) {
    const c = CMSGHDR.decode(control, at);
    const len = Number(c.len);
    if (len < CMSGHDR.size) break;
    cmsgs.push({ level: c.level, type: c.type, data: Buffer.from(control.subarray(at + CMSGHDR.size, at + len)) });
    at += (len + 7) & ~7;
  }
  void iov;
  return { data: Buffer.from(data.subarray(0, Math.min(r, size))), from: parseSockaddrInet(name, MSGHDR.get(m, 'namelen')), cmsgs, flags: MSGHDR.get(m, 'flags'), len: r };
}

/** sendmsg of `data` to `to` (or the connected peer) with control messages: bytes sent or -errno. */
export function sendDatagram(fd: number, data: Buffer, to: InetAddr | null, cmsgs: Array<{ level: number; type: number; data: Buffer }> = [], flags = 0): number {
  const body = data.length ? data : Buffer.alloc(1);
  const iov = iovecArray([[addressOf(body), data.length]]);
  const a = to ? sockaddrInet(to) : null;
  const parts = cmsgs.map((c) => {
    const b = Buffer.alloc((CMSGHDR.size + c.data.length + 7) & ~7);
    CMSGHDR.encodeInto(b, { len: CMSGHDR.size + c.data.length, level: c.level, type: c.type });
    c.data.copy(b, CMSGHDR.size);
    return b;
  });
  const control = parts.length ? Buffer.concat(parts) : null;
  const m = MSGHDR.encode({
    name: a ? addressOf(a) : 0, namelen: a ? a.length : 0, iov: addressOf(iov), iovlen: 1,
    control: control ? addressOf(control) : 0, controllen: control ? control.length : 0,
  });
  const r = syscallRaw(NR.sendmsg, fd, addressOf(m), flags | SOCK.MSG_DONTWAIT | SOCK.MSG_NOSIGNAL);
  void body; void iov; void a; void control;
  return r;
}

// ---------------------------------------------------------------- tcp_info, repair window

/** The fields of struct tcp_info ckpt reads (the kernel's struct is longer; it copies what is asked for). */
export const TCP_INFO = new Layout('tcp_info', 104, {
  state: [0, 'u8'], caState: [1, 'u8'], retransmits: [2, 'u8'], probes: [3, 'u8'], backoff: [4, 'u8'], options: [5, 'u8'], wscale: [6, 'u8'],
  rto: [8, 'u32'], ato: [12, 'u32'], sndMss: [16, 'u32'], rcvMss: [20, 'u32'], unacked: [24, 'u32'], lastDataSent: [44, 'u32'], pmtu: [60, 'u32'],
  rcvSsthresh: [64, 'u32'], rtt: [68, 'u32'], rttvar: [72, 'u32'], sndSsthresh: [76, 'u32'], sndCwnd: [80, 'u32'], advmss: [84, 'u32'],
} as const, false);
export interface TcpInfo {
  state: number; options: number;
  /** window scale: ours (rcv) and the peer's (snd) */
  sndWscale: number; rcvWscale: number;
  sndMss: number; rcvMss: number; advmss: number; rto: number;
}
export function decodeTcpInfo(b: Buffer): TcpInfo {
  if (b.length < 88) throw new Error(`internal: tcp_info of ${b.length} bytes`);
  const ws = TCP_INFO.get(b, 'wscale');
  return {
    state: TCP_INFO.get(b, 'state'), options: TCP_INFO.get(b, 'options'), sndWscale: ws & 0xf, rcvWscale: ws >> 4,
    sndMss: TCP_INFO.get(b, 'sndMss'), rcvMss: TCP_INFO.get(b, 'rcvMss'), advmss: TCP_INFO.get(b, 'advmss'), rto: TCP_INFO.get(b, 'rto'),
  };
}
export function tcpInfo(fd: number): TcpInfo { return decodeTcpInfo(getsockoptBuf(fd, SOL.TCP, TCP.INFO, TCP_INFO.size, 'TCP_INFO')); }

/** struct tcp_repair_window. */
export const TCP_REPAIR_WINDOW = new Layout('tcp_repair_window', 20, {
  sndWl1: [0, 'u32'], sndWnd: [4, 'u32'], maxWindow: [8, 'u32'], rcvWnd: [12, 'u32'], rcvWup: [16, 'u32'],
} as const, true);

/** struct tcp_repair_opt[] for TCP_REPAIR_OPTIONS. */
export function tcpRepairOpts(opts: Array<[code: number, val: number]>): Buffer {
  const b = Buffer.alloc(8 * opts.length);
  opts.forEach(([c, v], i) => { b.writeUInt32LE(c, 8 * i); b.writeUInt32LE(v >>> 0, 8 * i + 4); });
  return b;
}

// ---------------------------------------------------------------- sock_diag for inet sockets

/** struct inet_diag_req_v2 (the socket id inside: ports big-endian, addresses as 16 bytes). */
export const INET_DIAG_REQ_V2 = new Layout('inet_diag_req_v2', 56, {
  family: [0, 'u8'], protocol: [1, 'u8'], ext: [2, 'u8'], pad: [3, 'u8'], states: [4, 'u32'],
} as const, false);
/** struct inet_diag_msg. */
export const INET_DIAG_MSG = new Layout('inet_diag_msg', 72, {
  family: [0, 'u8'], state: [1, 'u8'], timer: [2, 'u8'], retrans: [3, 'u8'], sport: [4, 'u16'], dport: [6, 'u16'], ifindex: [40, 'u32'],
  cookie0: [44, 'u32'], cookie1: [48, 'u32'], expires: [52, 'u32'], rqueue: [56, 'u32'], wqueue: [60, 'u32'], uid: [64, 'u32'], inode: [68, 'u32'],
} as const, false);
/** inet_diag attributes (enum in linux/inet_diag.h). */
export const INET_DIAG = { MEMINFO: 1, INFO: 2, CONG: 4, TOS: 5, TCLASS: 6, SKMEMINFO: 7, SHUTDOWN: 8, PROTOCOL: 10, SKV6ONLY: 11, MARK: 15, CLASS_ID: 17, MD5SIG: 18, ULP_INFO: 19, CGROUP_ID: 21 } as const;

/** What sock_diag says of one inet socket. */
export interface InetDiag {
  family: 4 | 6;
  protocol: number;
  /** TCP_STATE (UDP: ESTABLISHED when connected, CLOSE otherwise) */
  state: number;
  src: InetAddr;
  dst: InetAddr;
  /** The bound device (SO_BINDTODEVICE), 0 for none. */
  ifindex: number;
  /** 0: no file holds it (an unaccepted connection in a listener's queue, or an orphan). */
  inode: number;
  /** Listeners: connections waiting and the backlog; others: bytes to read and bytes queued to send. */
  rqueue: number;
  wqueue: number;
  uid: number;
  /** sk_shutdown: 1 no more receiving, 2 no more sending. */
  shutdown: number;
  cookie: bigint;
  /** TCP: tcp_info. */
  info?: TcpInfo;
  tos?: number;
  tclass?: number;
  v6only?: boolean;
  mark?: number;
  cong?: string;
  /** TCP MD5 signature keys are set (TCP_MD5SIG); shown to CAP_NET_ADMIN. */
  md5?: boolean;
  /** An upper-layer protocol (TCP_ULP: tls, mptcp...), shown to CAP_NET_ADMIN. */
  ulp?: boolean;
}

/**
 * Every socket of one inet family and protocol in ckpt's network namespace
 * (IPPROTO_RAW: raw sockets of every protocol). TCP sockets come with their
 * tcp_info, congestion control, TOS and mark.
 */
export function inetDiagAll(family: 4 | 6, protocol: number): InetDiag[] {
  const bit = (a: number) => 1 << (a - 1);
  const raw = protocol === IPPROTO.RAW || protocol === IPPROTO.ICMP || protocol === IPPROTO.ICMPV6;
  const req = Buffer.alloc(INET_DIAG_REQ_V2.size);
  INET_DIAG_REQ_V2.set(req, 'family', family === 4 ? AF.INET : AF.INET6);
  INET_DIAG_REQ_V2.set(req, 'protocol', raw ? IPPROTO.RAW : protocol);
  INET_DIAG_REQ_V2.set(req, 'ext', bit(INET_DIAG.INFO) | bit(INET_DIAG.CONG) | bit(INET_DIAG.TOS) | bit(INET_DIAG.TCLASS) | bit(INET_DIAG.SHUTDOWN));
  // (raw sockets: the protocol asked for goes in the pad byte, sdiag_raw_protocol)
  if (raw) INET_DIAG_REQ_V2.set(req, 'pad', protocol);
  INET_DIAG_REQ_V2.set(req, 'states', 0xffffffff);
  const out: InetDiag[] = [];
  sockDiagDump(req, `${family === 4 ? 'AF_INET' : 'AF_INET6'}, protocol ${protocol}`, (m) => out.push(parseInetDiag(m, protocol)));
  return out;
}

function parseInetDiag(b: Buffer, protocol: number): InetDiag {
  const fam = INET_DIAG_MSG.get(b, 'family') === AF.INET6 ? 6 : 4;
  const addrAt = (off: number) => addrText(b.subarray(off, off + (fam === 4 ? 4 : 16)));
  const d: InetDiag = {
    family: fam, protocol, state: INET_DIAG_MSG.get(b, 'state'),
    src: { family: fam, addr: addrAt(8), port: b.readUInt16BE(4) },
    dst: { family: fam, addr: addrAt(24), port: b.readUInt16BE(6) },
    ifindex: INET_DIAG_MSG.get(b, 'ifindex'), inode: INET_DIAG_MSG.get(b, 'inode'),
    rqueue: INET_DIAG_MSG.get(b, 'rqueue'), wqueue: INET_DIAG_MSG.get(b, 'wqueue'), uid: INET_DIAG_MSG.get(b, 'uid'), shutdown: 0,
    cookie: BigInt(INET_DIAG_MSG.get(b, 'cookie0')) | (BigInt(INET_DIAG_MSG.get(b, 'cookie1')) << 32n),
  };
  for (let at = INET_DIAG_MSG.size; at + RTATTR.size <= b.length;) {
    const a = RTATTR.decode(b, at);
    if (a.len < RTATTR.size) break;
    const p = b.subarray(at + RTATTR.size, at + a.len);
    switch (a.type) {
      case INET_DIAG.INFO: if (p.length >= 88) d.info = decodeTcpInfo(Buffer.from(p)); break;
      case INET_DIAG.SHUTDOWN: d.shutdown = p.readUInt8(0); break;
      case INET_DIAG.TOS: d.tos = p.readUInt8(0); break;
      case INET_DIAG.TCLASS: d.tclass = p.readUInt8(0); break;
      case INET_DIAG.SKV6ONLY: d.v6only = p.readUInt8(0) !== 0; break;
      case INET_DIAG.MARK: d.mark = p.readUInt32LE(0); break;
      case INET_DIAG.CONG: d.cong = p.toString('latin1').replace(/\0.*$/s, ''); break;
      case INET_DIAG.PROTOCOL: d.protocol = p.readUInt8(0); break;
      case INET_DIAG.MD5SIG: d.md5 = true; break;
      case INET_DIAG.ULP_INFO: d.ulp = true; break;
    }
    at += (a.len + 3) & ~3;
  }
  return d;
}

/** What a socket is: SO_DOMAIN, SO_TYPE and SO_PROTOCOL. */
export function socketFacts(fd: number): { family: number; type: number; protocol: number } {
  const get = (opt: number, name: string) => {
    const b = getsockoptBuf(fd, SOL.SOCKET, opt, 4, name);
    return b.readInt32LE(0);
  };
  return { family: get(39, 'SO_DOMAIN'), type: get(3, 'SO_TYPE'), protocol: get(38, 'SO_PROTOCOL') };
}

/** A classic BPF instruction (struct sock_filter): code, jt, jf, k. */
export type BpfInsn = [code: number, jt: number, jf: number, k: number];

/**
 * SO_GET_FILTER: the socket's classic BPF filter, null when it has none, or
 * -errno (-EACCES: an eBPF filter, which cannot be read back). (The option's
 * length is counted in instructions.)
 */
export function getSocketFilter(fd: number): BpfInsn[] | null | number {
  const len = Buffer.alloc(4);
  const r0 = syscallRaw(NR.getsockopt, fd, SOL.SOCKET, SO_MORE.GET_FILTER, 0, addressOf(len));
  if (r0 < 0) return r0;
  const n = len.readUInt32LE(0);
  if (!n) return null;
  const b = Buffer.alloc(8 * n);
  len.writeUInt32LE(n, 0);
  const r = syscallRaw(NR.getsockopt, fd, SOL.SOCKET, SO_MORE.GET_FILTER, addressOf(b), addressOf(len));
  if (r < 0) return r;
  const out: BpfInsn[] = [];
  for (let i = 0; i < Math.min(n, len.readUInt32LE(0)); i++) out.push([b.readUInt16LE(8 * i), b[8 * i + 2], b[8 * i + 3], b.readUInt32LE(8 * i + 4)]);
  return out;
}
/** SO_ATTACH_FILTER of a classic BPF program: 0 or -errno. */
export function attachSocketFilter(fd: number, insns: readonly BpfInsn[]): number {
  const prog = Buffer.alloc(8 * insns.length);
  insns.forEach(([code, jt, jf, k], i) => { prog.writeUInt16LE(code, 8 * i); prog[8 * i + 2] = jt; prog[8 * i + 3] = jf; prog.writeUInt32LE(k >>> 0, 8 * i + 4); });
  const f = Buffer.alloc(16);
  f.writeUInt16LE(insns.length, 0);
  f.writeBigUInt64LE(addressOf(prog), 8);
  const r = syscallRaw(NR.setsockopt, fd, SOL.SOCKET, SO_MORE.ATTACH_FILTER, addressOf(f), f.length);
  void prog;
  return r;
}

/** An int option (one the kernel answers in a byte: that byte), or null when the socket has no such option. */
export function getsockoptIntOrNull(fd: number, level: number, opt: number): number | null {
  const r = getsockoptRaw(fd, level, opt, 4);
  if (typeof r === 'number' || !r.length) return null;
  return r.length >= 4 ? r.readInt32LE(0) : r.readUInt8(0);
}
/** An int option, throwing on failure (as unsigned: sequence numbers). */
export function getsockoptU32(fd: number, level: number, opt: number, name: string): number {
  return getsockoptBuf(fd, level, opt, 4, name).readUInt32LE(0);
}
export function getsockoptI32(fd: number, level: number, opt: number, name: string): number {
  return getsockoptBuf(fd, level, opt, 4, name).readInt32LE(0);
}
/** SO_LINGER as [on, seconds], or null. */
export function getLinger(fd: number): [boolean, number] | null {
  const l = getsockoptRaw(fd, SOL.SOCKET, SO_MORE.LINGER, 8);
  return typeof l === 'number' || l.length < 8 ? null : [l.readInt32LE(0) !== 0, l.readInt32LE(4)];
}
export function setLinger(fd: number, on: boolean, secs: number): number {
  const b = Buffer.alloc(8);
  b.writeInt32LE(on ? 1 : 0, 0);
  b.writeInt32LE(secs, 4);
  return setsockoptRaw(fd, SOL.SOCKET, SO_MORE.LINGER, b);
}
/** IP_MULTICAST_IF of an IPv4 socket: the interface address (null: none set). */
export function getMulticastIf4(fd: number): string | null {
  const r = getsockoptRaw(fd, SOL.IP, IP.MULTICAST_IF, 4);
  return typeof r === 'number' || r.length !== 4 || r.readUInt32LE(0) === 0 ? null : addrText(r);
}
/** IP_MULTICAST_IF by address (struct ip_mreqn with only the address): 0 or -errno. */
export function setMulticastIf4(fd: number, addr: string): number {
  const b = Buffer.alloc(12);
  addrBytes(addr, 4).copy(b, 4);
  return setsockoptRaw(fd, SOL.IP, IP.MULTICAST_IF, b);
}

/** fchown of a socket: the kernel makes `uid` the socket's owner (sk_uid, as sock_diag and /proc/net show it). */
export function chownSocket(fd: number, uid: number): void { sys(`fchown(socket, ${uid})`, NR.fchown, fd, uid, -1); }

/** listen(fd, backlog): 0 or -errno. */
export function listenRaw(fd: number, backlog: number): number { return syscallRaw(NR.listen, fd, backlog); }
/** shutdown(fd, how): 0 or -errno (an unconnected inet socket answers ENOTCONN, yet keeps the shutdown). */
export function shutdownRaw(fd: number, how: number): number { return syscallRaw(NR.shutdown, fd, how); }

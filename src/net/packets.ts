// Packets built byte by byte, for ckpt to inject with a raw socket
// (kernel/rawsend.ts): IPv4 and IPv6 headers, UDP and UDP-Lite datagrams
// and TCP segments, each with its checksum (RFC 791, 8200, 768, 3828, 9293).
// Pure functions over Buffers: no kernel calls.

import { addrBytes } from '../kernel/inet.js';

/**
 * The firewall mark of packets ckpt sends itself while a tree's sockets are
 * locked (restored datagrams, segments that recreate a TCP state): the
 * network lock lets them through.
 */

export const PROTO = { TCP: 6, UDP: 17, UDPLITE: 136 } as const;
/** TCP header flags. */
export const TCPF = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

// (wire formats are big-endian: written byte by byte)
function put16(b: Buffer, v: number, off: number): void { b[off] = (v >>> 8) & 0xff; b[off + 1] = v & 0xff; }
function put32(b: Buffer, v: number, off: number): void { put16(b, (v >>> 16) & 0xffff, off); put16(b, v & 0xffff, off + 2); }

/** The family of an address as text: 6 when it has a colon, else 4. */
export function familyOf(addr: string): 4 | 6 { return addr.includes(':') ? 6 : 4; }

/** An address as it is on the wire: an IPv4-mapped IPv6 address (a v6 socket's IPv4 peer) as the IPv4 one. */
export function onWire(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1] : a;
}

/** The 16-bit ones' complement sum of `parts` (not yet complemented). */
function sum16(parts: Buffer[]): number {
  let s = 0;
  for (const b of parts) {
    let i = 0;
    for (; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1];
    if (i < b.length) s += b[i] << 8;
    // (fold now and then: the sum stays a small integer)
    s = (s & 0xffff) + (s >>> 16);
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The Internet checksum (RFC 1071) of the concatenation of `parts`: parts of odd length only last. */
export function inetChecksum(...parts: Buffer[]): number { return ~sum16(parts) & 0xffff; }

/** The pseudo header of a transport checksum: IPv4 (RFC 768) or IPv6 (RFC 8200 8.1). */
export function pseudoHeader(src: string, dst: string, proto: number, length: number): Buffer {
  const fam = familyOf(src);
  if (familyOf(dst) !== fam) throw new Error(`internal: a packet from ${src} to ${dst} mixes families`);
  if (fam === 4) {
    const b = Buffer.alloc(12);
    addrBytes(src, 4).copy(b, 0);
    addrBytes(dst, 4).copy(b, 4);
    b[9] = proto;
    put16(b, length, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  addrBytes(src, 6).copy(b, 0);
  addrBytes(dst, 6).copy(b, 16);
  put32(b, length, 32);
  b[39] = proto;
  return b;
}

export interface IpFields {
  src: string;
  dst: string;
  proto: number;
  payload: Buffer;
  /** IPv4 TTL or IPv6 hop limit (64). */
  ttl?: number;
  /** IPv4 TOS or IPv6 traffic class (0). */
  tos?: number;
  /** IPv6 flow label (0). */
  flowLabel?: number;
  /** IPv4 identification (0) and don't-fragment (true). */
  id?: number;
  df?: boolean;
  /** IPv4 options (padded to 4 bytes with end-of-options). */
  options?: Buffer;
}

/** An IPv4 or IPv6 packet (the family of `src`) around `payload`, header checksum computed. */
export function ipPacket(f: IpFields): Buffer {
  const fam = familyOf(f.src);
  if (familyOf(f.dst) !== fam) throw new Error(`internal: a packet from ${f.src} to ${f.dst} mixes families`);
  if (fam === 4) {
    const opt = f.options ?? Buffer.alloc(0);
    const optLen = (opt.length + 3) & ~3;
    if (optLen > 40) throw new Error(`internal: ${opt.length} bytes of IPv4 options`);
    const hl = 20 + optLen;
    const total = hl + f.payload.length;
    if (total > 0xffff) throw new Error(`internal: an IPv4 packet of ${total} bytes`);
    const h = Buffer.alloc(hl);
    h[0] = 0x40 | (hl >> 2);
    h[1] = f.tos ?? 0;
    put16(h, total, 2);
    put16(h, f.id ?? 0, 4);
    put16(h, f.df === false ? 0 : 0x4000, 6);
    h[8] = f.ttl ?? 64;
    h[9] = f.proto;
    addrBytes(f.src, 4).copy(h, 12);
    addrBytes(f.dst, 4).copy(h, 16);
    opt.copy(h, 20);
    put16(h, inetChecksum(h), 10);
    return Buffer.concat([h, f.payload]);
  }
  if (f.payload.length > 0xffff) throw new Error(`internal: an IPv6 payload of ${f.payload.length} bytes`);
  const h = Buffer.alloc(40);
  put32(h, ((6 << 28) | ((f.tos ?? 0) << 20) | ((f.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  put16(h, f.payload.length, 4);
  h[6] = f.proto;
  h[7] = f.ttl ?? 64;
  addrBytes(f.src, 6).copy(h, 8);
  addrBytes(f.dst, 6).copy(h, 24);
  return Buffer.concat([h, f.payload]);
}

export interface UdpFields {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  data: Buffer;
  /** UDP-Lite (RFC 3828): the bytes the checksum covers, header included; 0 (the default): all. */
  lite?: boolean;
  cscov?: number;
}

/** A UDP or UDP-Lite datagram (header and data), checksum over the pseudo header computed. */
export function udpDatagram(f: UdpFields): Buffer {
  const len = 8 + f.data.length;
  if (len > 0xffff) throw new Error(`internal: a UDP datagram of ${len} bytes`);
  const h = Buffer.alloc(8);
  put16(h, f.sport, 0);
  put16(h, f.dport, 2);
  const d = Buffer.concat([h, f.data]);
  let covered = d;
  if (f.lite) {
    const cscov = f.cscov ?? 0;
    if (cscov !== 0 && (cscov < 8 || cscov > len)) throw new Error(`internal: a UDP-Lite checksum coverage of ${cscov} for ${len} bytes`);
    put16(d, cscov, 4);
    covered = cscov ? d.subarray(0, cscov) : d;
  } else put16(d, len, 4);
  const c = inetChecksum(pseudoHeader(f.src, f.dst, f.lite ? PROTO.UDPLITE : PROTO.UDP, len), covered);
  // (a computed 0 is sent as all ones: 0 means "no checksum" for UDP over IPv4)
  put16(d, c === 0 ? 0xffff : c, 6);
  return d;
}

/** A whole IP packet holding a UDP or UDP-Lite datagram. */
export function udpPacket(f: UdpFields & Omit<IpFields, 'src' | 'dst' | 'proto' | 'payload'>): Buffer {
  return ipPacket({ ...f, proto: f.lite ? PROTO.UDPLITE : PROTO.UDP, payload: udpDatagram(f) });
}

export interface TcpFields {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** TCPF bits. */
  flags: number;
  window: number;
  /** Options as they go on the wire (padded to 4 bytes with NOPs... and a final end-of-options). */
  options?: Buffer;
  data?: Buffer;
  urgent?: number;
}

/** A TCP segment (header, options and data), checksum over the pseudo header computed. */
export function tcpSegment(f: TcpFields): Buffer {
  const opt = f.options ?? Buffer.alloc(0);
  const optLen = (opt.length + 3) & ~3;
  if (optLen > 40) throw new Error(`internal: ${opt.length} bytes of TCP options`);
  const h = Buffer.alloc(20 + optLen);
  put16(h, f.sport, 0);
  put16(h, f.dport, 2);
  put32(h, f.seq >>> 0, 4);
  put32(h, f.ack >>> 0, 8);
  h[12] = ((20 + optLen) >> 2) << 4;
  h[13] = f.flags & 0xff;
  put16(h, f.window & 0xffff, 14);
  put16(h, f.urgent ?? 0, 18);
  opt.copy(h, 20);
  // (padding after the options: end-of-option-list, 0, which alloc gave)
  const seg = Buffer.concat([h, f.data ?? Buffer.alloc(0)]);
  put16(seg, inetChecksum(pseudoHeader(f.src, f.dst, PROTO.TCP, seg.length), seg), 16);
  return seg;
}

/** A whole IP packet holding a TCP segment. */
export function tcpPacket(f: TcpFields & Omit<IpFields, 'src' | 'dst' | 'proto' | 'payload'>): Buffer {
  return ipPacket({ ...f, proto: PROTO.TCP, payload: tcpSegment(f) });
}

/** TCP option bytes: timestamps (kind 8), padded with two NOPs in front as stacks send it. */
export function tcpOptTimestamp(val: number, ecr: number): Buffer {
  const b = Buffer.from([1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  put32(b, val >>> 0, 4);
  put32(b, ecr >>> 0, 8);
  return b;
}

export interface IcmpErrorFields {
  /** Who reports the error, and to whom (the socket that sent the packet it is about). */
  src: string;
  dst: string;
  /** ICMP (IPv4) or ICMPv6 type and code. */
  type: number;
  code: number;
  /** The 32 bits after the checksum: the next-hop MTU for "fragmentation needed" (in its low 16 bits) and "packet too big", the pointer of a parameter problem (its top byte). */
  info?: number;
  /** The start of the packet it is about: its IP header and the first 8 bytes after it. */
  about: Buffer;
  ttl?: number;
}

/** An ICMP or ICMPv6 error message in its IP packet, checksums computed (ICMPv6: over the pseudo header too). */
export function icmpErrorPacket(f: IcmpErrorFields): Buffer {
  const fam = familyOf(f.src);
  const m = Buffer.concat([Buffer.alloc(8), f.about]);
  m[0] = f.type;
  m[1] = f.code;
  put32(m, (f.info ?? 0) >>> 0, 4);
  const proto = fam === 4 ? 1 : 58;
  put16(m, fam === 4 ? inetChecksum(m) : inetChecksum(pseudoHeader(f.src, f.dst, proto, m.length), m), 2);
  return ipPacket({ src: f.src, dst: f.dst, proto, payload: m, ttl: f.ttl ?? 64, df: false });
}

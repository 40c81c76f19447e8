// Raw inet sockets and ICMP "ping" sockets (man 7 raw, man 7 icmp, the
// ping_group_range sysctl): their own option numbers, and a socket made
// with another effective group for the calling thread only (a ping socket
// can only be made by a group of net.ipv4.ping_group_range).

import fs from 'node:fs';
import { syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, SOCK } from './consts.js';

/** SOL_RAW (IPv4): ICMP_FILTER, the ICMP types a raw ICMP socket does not receive (bit n: type n). */
export const ICMP_FILTER = 1;
/** SOL_ICMPV6 and its ICMPV6_FILTER (struct icmp6_filter, 8 x u32: bit set = type blocked). */
export const SOL_ICMPV6 = 58;
export const ICMPV6_FILTER = 1;
/** IPV6_CHECKSUM (asked at SOL_RAW, which works for every protocol: -1 none, else the checksum's offset). */
export const IPV6_CHECKSUM = 7;
/** IP_ROUTER_ALERT (IPv4, raw sockets). */
export const IP_ROUTER_ALERT = 5;

/** net.ipv4.ping_group_range of ckpt's network namespace: the groups that may make ping sockets. */
export function pingGroupRange(): [number, number] {
  const t = fs.readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number);
  return [t[0], t[1]];
}

/**
 * socket(family, type, protocol) made while this thread's effective group is
 * `egid` (only this thread's: a raw setresgid, not libc's, which changes
 * every thread), then back to what it was. ckpt runs as root and keeps its
 * effective uid, so it may change its group and change it back.
 */
export function socketAsEgid(family: number, type: number, protocol: number, egid: number): number {
  const before = syscallRaw(108 /* getegid */);
  let r = syscallRaw(NR.setresgid, -1, egid, -1);
  if (r < 0) throw new SysError(`setresgid(-1, ${egid}, -1)`, -r);
  let fd: number;
  try {
    fd = syscallRaw(NR.socket, family, type | SOCK.CLOEXEC, protocol);
  } finally {
    r = syscallRaw(NR.setresgid, -1, before, -1);
    if (r < 0) throw new SysError(`setresgid(-1, ${before}, -1) back`, -r); // eslint-disable-line no-unsafe-finally
  }
  if (fd < 0) throw new SysError(`socket(${family}, ${type}, ${protocol}) as group ${egid}`, -fd);
  return fd;
}

/**
 * Is a multicast routing socket (MRT_INIT / MRT6_INIT) open in ckpt's network
 * namespace? Asked by trying to become one on a fresh socket (the kernel
 * allows one per table): EADDRINUSE says another is. Null when the kernel has
 * no multicast routing.
 */
export function mrouteInUse(family: 4 | 6): boolean | null {
  const fd = syscallRaw(NR.socket, family === 4 ? 2 : 10, 3 /* SOCK_RAW */ | SOCK.CLOEXEC, family === 4 ? 2 /* IPPROTO_IGMP */ : 58);
  if (fd < 0) throw new SysError('socket(SOCK_RAW) for MRT_INIT', -fd);
  try {
    const one = Buffer.alloc(4);
    one.writeInt32LE(1, 0);
    const r = syscallRaw(NR.setsockopt, fd, family === 4 ? 0 : 41, 200 /* MRT_INIT, MRT6_INIT */, addressOf(one), 4);
    if (r === -98 /* EADDRINUSE */) return true;
    if (r === -92 /* ENOPROTOOPT */ || r === -95 /* EOPNOTSUPP */) return null;
    if (r < 0) throw new SysError('setsockopt(MRT_INIT)', -r);
    syscallRaw(NR.setsockopt, fd, family === 4 ? 0 : 41, 201 /* MRT_DONE */, 0, 0);
    return false;
  } finally { syscallRaw(NR.close, fd); }
}

/** ICMPV6_FILTER as its 8 words (null: the kernel refuses it). */
export function getIcmp6Filter(fd: number): number[] | null {
  const b = Buffer.alloc(32);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(32, 0);
  const r = syscallRaw(NR.getsockopt, fd, SOL_ICMPV6, ICMPV6_FILTER, addressOf(b), addressOf(len));
  if (r < 0 || len.readUInt32LE(0) !== 32) return null;
  return Array.from({ length: 8 }, (_, i) => b.readUInt32LE(4 * i));
}
/** Set ICMPV6_FILTER: 0 or -errno. */
export function setIcmp6Filter(fd: number, words: readonly number[]): number {
  const b = Buffer.alloc(32);
  words.forEach((v, i) => b.writeUInt32LE(v >>> 0, 4 * i));
  return syscallRaw(NR.setsockopt, fd, SOL_ICMPV6, ICMPV6_FILTER, addressOf(b), 32);
}


/**
 * What poll says of a datagram socket's shutdown state: 1 (no more
 * receiving: POLLRDHUP), 3 (both: POLLHUP), 0 otherwise. A socket shut down
 * for sending only looks like one that is not.
 */
export function pollShutdown(fd: number): number {
  const p = Buffer.alloc(8);
  p.writeInt32LE(fd, 0);
  p.writeInt16LE(0x2000 | 0x4, 4); // POLLRDHUP | POLLOUT
  const r = syscallRaw(NR.poll, addressOf(p), 1, 0);
  if (r <= 0) return 0;
  const rev = p.readInt16LE(6);
  if (rev & 0x10 /* POLLHUP */) return 3;
  return rev & 0x2000 ? 1 : 0;
}

/**
 * The first multicast group socket `fd` has joined, as "group on device", or
 * null when it has joined none. Asked group by group, for every group an
 * interface of ckpt's network namespace has joined (/proc/net/igmp, igmp6:
 * a socket's groups are among them): getsockopt(MCAST_MSFILTER) answers for
 * a group the socket has joined and says EADDRNOTAVAIL for one it has not.
 */
export function joinedGroup(fd: number, family: 4 | 6): string | null {
  let text = '';
  try { text = fs.readFileSync(family === 4 ? '/proc/net/igmp' : '/proc/net/igmp6', 'utf8'); } catch { return null; }
  const groups: Array<{ ifindex: number; dev: string; addr: Buffer; shown: string }> = [];
  if (family === 4) {
    let dev: { ifindex: number; name: string } | null = null;
    for (const line of text.split('\n').slice(1)) {
      const head = /^(\d+)\s+(\S+)\s*:/.exec(line);
      if (head) { dev = { ifindex: Number(head[1]), name: head[2] }; continue; }
      const g = /^\s+([0-9A-Fa-f]{8})\s/.exec(line);
      if (!g || !dev) continue;
      const b = Buffer.alloc(4);
      b.writeUInt32LE(parseInt(g[1], 16), 0); // (the group as the kernel stores it, printed as a host-order word)
      groups.push({ ifindex: dev.ifindex, dev: dev.name, addr: b, shown: [...b].join('.') });
    }
  } else {
    for (const line of text.split('\n')) {
      const t = line.trim().split(/\s+/);
      if (t.length < 3 || !/^\d+$/.test(t[0]) || !/^[0-9a-f]{32}$/.test(t[2])) continue;
      const b = Buffer.from(t[2], 'hex');
      groups.push({ ifindex: Number(t[0]), dev: t[1], addr: b, shown: t[2].replace(/(.{4})(?!$)/g, '$1:') });
    }
  }
  for (const g of groups) {
    // struct group_filter: interface, then the group (a sockaddr_storage at 8), mode at 136, source count at 140, sources from 144
    const gf = Buffer.alloc(144 + 128);
    gf.writeUInt32LE(g.ifindex, 0);
    gf.writeUInt16LE(family === 4 ? 2 : 10, 8);
    g.addr.copy(gf, family === 4 ? 12 : 16);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(gf.length, 0);
    const r = syscallRaw(NR.getsockopt, fd, family === 4 ? 0 : 41, 48 /* MCAST_MSFILTER */, addressOf(gf), addressOf(len));
    if (r >= 0) return `${g.shown} on ${g.dev}`;
  }
  return null;
}

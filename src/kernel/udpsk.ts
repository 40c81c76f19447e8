// What the UDP kind asks of the kernel beyond kernel/inet.ts: UDP and
// UDP-Lite options, multicast memberships and source filters (MCAST_*
// with struct group_req / group_source_req / group_filter), the control
// messages a peeked datagram comes with (its destination, TTL or hop limit,
// TOS or traffic class, flow label, GRO segment size), the bytes a socket's
// receive queue holds (SO_MEMINFO), shutdown() that may answer ENOTCONN,
// and the multicast groups of each interface (/proc/net/igmp, igmp6).

import fs from 'node:fs';
import { addressOf } from './ffi.js';
import { AF, SOL, IP, IPV6, addrText, addrBytes, getsockoptRaw, setsockoptRaw, setsockoptIntRaw } from './inet.js';

/** SOL_UDP / SOL_UDPLITE options (linux/udp.h). */
export const UDP_OPT = { CORK: 1, ENCAP: 100, NO_CHECK6_TX: 101, NO_CHECK6_RX: 102, SEGMENT: 103, GRO: 104, SEND_CSCOV: 10, RECV_CSCOV: 11 } as const;
/** UDP_ENCAP types, for messages. */
export const UDP_ENCAP_NAMES: Record<number, string> = {
  1: 'ESP-in-UDP (non-IKE marker)', 2: 'ESP-in-UDP', 3: 'L2TP-in-UDP', 4: 'GTPv0', 5: 'GTPv1-U', 6: 'RxRPC', 7: 'ESP-in-TCP',
};
/** IP options ckpt turns on for a moment to learn a queued datagram's header fields. */
export const RECV_OPTS = {
  ipPktinfo: [SOL.IP, IP.PKTINFO], ipRecvttl: [SOL.IP, IP.RECVTTL], ipRecvtos: [SOL.IP, IP.RECVTOS], ipRecvopts: [SOL.IP, IP.RECVOPTS],
  v6Recvpktinfo: [SOL.IPV6, IPV6.RECVPKTINFO], v6Recvhoplimit: [SOL.IPV6, IPV6.RECVHOPLIMIT], v6Recvtclass: [SOL.IPV6, IPV6.RECVTCLASS],
  v6Flowinfo: [SOL.IPV6, 11 /* IPV6_FLOWINFO */],
} as const;
const MCAST = { JOIN_GROUP: 42, JOIN_SOURCE_GROUP: 46, MSFILTER: 48 } as const;
/** poll(2) bits the UDP kind reads. */
export const MCAST_MODE = { EXCLUDE: 0, INCLUDE: 1 } as const;



// ---------------------------------------------------------------- multicast

const SS = 128; // sizeof(struct sockaddr_storage)
function storage(b: Buffer, at: number, family: 4 | 6, addr: string): void {
  b.writeUInt16LE(family === 4 ? AF.INET : AF.INET6, at);
  addrBytes(addr, family).copy(b, at + (family === 4 ? 4 : 8));
}
function fromStorage(b: Buffer, at: number): string {
  return b.readUInt16LE(at) === AF.INET ? addrText(b.subarray(at + 4, at + 8)) : addrText(b.subarray(at + 8, at + 24));
}

/** A membership's filter: its mode and sources. */
export interface McastFilter { mode: 'include' | 'exclude'; sources: string[] }

/**
 * getsockopt(MCAST_MSFILTER) for group `group` on interface `ifindex`: the
 * socket's filter if it is a member there, null if it is not (EADDRNOTAVAIL),
 * -errno on another error. `family`: the group's (its option level).
 */
export function getMcastFilter(fd: number, family: 4 | 6, ifindex: number, group: string): McastFilter | null | number {
  let n = 16;
  for (;;) {
    const size = 144 + SS * n;
    const req = Buffer.alloc(size);
    req.writeUInt32LE(ifindex, 0);
    storage(req, 8, family, group);
    req.writeUInt32LE(n, 140);
    const r = getsockoptRaw(fd, family === 4 ? SOL.IP : SOL.IPV6, MCAST.MSFILTER, size, req);
    if (r === -99 /* EADDRNOTAVAIL */) return null;
    if (typeof r === 'number') return r;
    const num = r.readUInt32LE(140);
    if (num > n) { n = num; continue; }
    const sources: string[] = [];
    for (let i = 0; i < num; i++) sources.push(fromStorage(r, 144 + SS * i));
    return { mode: r.readUInt32LE(136) === MCAST_MODE.INCLUDE ? 'include' : 'exclude', sources };
  }
}

/** Join `group` on `ifindex` and set its filter (MCAST_JOIN_GROUP, then MCAST_MSFILTER when it has sources or includes): 0 or -errno. */
export function joinMcast(fd: number, family: 4 | 6, ifindex: number, group: string, f: McastFilter): number {
  const level = family === 4 ? SOL.IP : SOL.IPV6;
  if (f.mode === 'include' && f.sources.length) {
    // (an include filter: joined through its first source, so that no moment passes with every source let in)
    const gsr = Buffer.alloc(8 + 2 * SS);
    gsr.writeUInt32LE(ifindex, 0);
    storage(gsr, 8, family, group);
    storage(gsr, 8 + SS, family, f.sources[0]);
    const r = setsockoptRaw(fd, level, MCAST.JOIN_SOURCE_GROUP, gsr);
    if (r < 0 || f.sources.length === 1) return r;
  } else {
    const gr = Buffer.alloc(8 + SS);
    gr.writeUInt32LE(ifindex, 0);
    storage(gr, 8, family, group);
    const r = setsockoptRaw(fd, level, MCAST.JOIN_GROUP, gr);
    if (r < 0 || !f.sources.length) return r;
  }
  const gf = Buffer.alloc(144 + SS * Math.max(f.sources.length, 1));
  gf.writeUInt32LE(ifindex, 0);
  storage(gf, 8, family, group);
  gf.writeUInt32LE(f.mode === 'include' ? MCAST_MODE.INCLUDE : MCAST_MODE.EXCLUDE, 136);
  gf.writeUInt32LE(f.sources.length, 140);
  f.sources.forEach((s, i) => storage(gf, 144 + SS * i, family, s));
  return setsockoptRaw(fd, level, MCAST.MSFILTER, gf.subarray(0, 144 + SS * f.sources.length));
}

/** Every (interface index, interface name, group) the host's interfaces have joined, IPv4 (/proc/net/igmp) or IPv6 (/proc/net/igmp6). */
export function hostGroups(family: 4 | 6): Array<{ ifindex: number; ifname: string; group: string }> {
  const out: Array<{ ifindex: number; ifname: string; group: string }> = [];
  let text = '';
  try { text = fs.readFileSync(family === 4 ? '/proc/net/igmp' : '/proc/net/igmp6', 'utf8'); } catch { return out; }
  if (family === 4) {
    let cur: { ifindex: number; ifname: string } | null = null;
    for (const line of text.split('\n').slice(1)) {
      const dev = /^(\d+)\s+(\S+)\s*:/.exec(line);
      if (dev) { cur = { ifindex: Number(dev[1]), ifname: dev[2] }; continue; }
      const g = /^\s+([0-9A-Fa-f]{8})\s/.exec(line);
      if (g && cur) {
        // (the group is printed as the 32-bit word of its bytes on this little-endian machine)
        const w = Buffer.alloc(4);
        w.writeUInt32LE(parseInt(g[1], 16) >>> 0, 0);
        out.push({ ...cur, group: addrText(w) });
      }
    }
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(\S+)\s+([0-9a-f]{32})\s/.exec(line);
    if (m) out.push({ ifindex: Number(m[1]), ifname: m[2], group: addrText(Buffer.from(m[3], 'hex')) });
  }
  return out;
}

// ---------------------------------------------------------------- control messages of a peeked datagram

/** What the control messages of a received datagram say of its IP header. */
export interface DatagramMeta {
  /** Its destination address (IP_PKTINFO / IPV6_PKTINFO), and the interface it came in on. */
  dst?: string;
  ifindex?: number;
  ttl?: number;
  tos?: number;
  flowLabel?: number;
  /** IP options it carried (IP_RECVOPTS). */
  ipOptions?: Buffer;
  /** A GRO datagram's segment size (UDP_GRO). */
  gro?: number;
}

export function datagramMeta(cmsgs: Array<{ level: number; type: number; data: Buffer }>): DatagramMeta {
  const m: DatagramMeta = {};
  for (const c of cmsgs) {
    const d = c.data;
    if (c.level === SOL.IP) {
      if (c.type === IP.PKTINFO && d.length >= 12) { m.dst ??= addrText(d.subarray(8, 12)); m.ifindex ??= d.readInt32LE(0); }
      else if (c.type === IP.TTL && d.length >= 4) m.ttl = d.readInt32LE(0);
      else if (c.type === IP.TOS && d.length >= 1) m.tos = d[0];
      else if (c.type === IP.OPTIONS && d.length) m.ipOptions = Buffer.from(d);
    } else if (c.level === SOL.IPV6) {
      if (c.type === IPV6.PKTINFO && d.length >= 20) { m.dst = addrText(d.subarray(0, 16)); m.ifindex = d.readInt32LE(16); }
      else if (c.type === IPV6.HOPLIMIT && d.length >= 4) m.ttl = d.readInt32LE(0);
      else if (c.type === IPV6.TCLASS && d.length >= 4) m.tos = d.readInt32LE(0);
      else if (c.type === 11 /* IPV6_FLOWINFO */ && d.length >= 4) m.flowLabel = d.readUInt32BE(0) & 0xfffff;
    } else if ((c.level === SOL.UDP) && c.type === UDP_OPT.GRO && d.length >= 2) {
      m.gro = d.length >= 4 ? d.readInt32LE(0) : d.readUInt16LE(0);
    }
  }
  return m;
}

// ---------------------------------------------------------------- reuseport groups

/**
 * Steer what comes to the socket's SO_REUSEPORT group to its member number
 * `index` (SO_ATTACH_REUSEPORT_CBPF with a classic BPF program of one
 * instruction, "return index"): 0 or -errno.
 */
export function steerReuseport(fd: number, index: number): number {
  const prog = Buffer.alloc(8);
  prog.writeUInt16LE(0x06 /* BPF_RET | BPF_K */, 0);
  prog.writeUInt32LE(index >>> 0, 4);
  const f = Buffer.alloc(16);
  f.writeUInt16LE(1, 0);
  f.writeBigUInt64LE(addressOf(prog), 8);
  const r = setsockoptRaw(fd, SOL.SOCKET, 51 /* SO_ATTACH_REUSEPORT_CBPF */, f);
  void prog;
  return r;
}
/** Take the group's program away again (SO_DETACH_REUSEPORT_BPF): 0 or -errno. */
export function unsteerReuseport(fd: number): number { return setsockoptIntRaw(fd, SOL.SOCKET, 68 /* SO_DETACH_REUSEPORT_BPF */, 0); }

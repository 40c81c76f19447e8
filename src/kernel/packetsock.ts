// Packet sockets (AF_PACKET, linux/if_packet.h) and the network devices they
// name, as ckpt reads and rebuilds them on its own sockets: sock_diag for
// packet sockets (linux/packet_diag.h: bound device, protocol, version,
// reserve, copy threshold, timestamp source, flags, memberships, rings,
// fanout), bind to a sockaddr_ll, PACKET_ADD_MEMBERSHIP, and device names and
// indexes by ioctl (SIOCGIFNAME, SIOCGIFINDEX: these answer for the network
// namespace of the socket asked, where /sys may show another one's devices).

import { sys, syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, SOCK } from './consts.js';
import { sockDiagDump, nlAttrs } from './diagdump.js';

export const AF_PACKET = 17;
/** SOL_PACKET options. */
export const PACKET = {
  ADD_MEMBERSHIP: 1, DROP_MEMBERSHIP: 2, RX_RING: 5, STATISTICS: 6, COPY_THRESH: 7, AUXDATA: 8, ORIGDEV: 9, VERSION: 10, HDRLEN: 11,
  RESERVE: 12, TX_RING: 13, LOSS: 14, VNET_HDR: 15, TX_TIMESTAMP: 16, TIMESTAMP: 17, FANOUT: 18, TX_HAS_OFF: 19, QDISC_BYPASS: 20,
  ROLLOVER_STATS: 21, FANOUT_DATA: 22, IGNORE_OUTGOING: 23, VNET_HDR_SZ: 24,
} as const;
export const SOL_PACKET = 263;
/** packet_mreq mr_type. */
export const PACKET_MR = { MULTICAST: 0, PROMISC: 1, ALLMULTI: 2, UNICAST: 3 } as const;
/** Fanout modes (the low byte of type_flags) and flags (the high byte). */
export const PACKET_FANOUT = { HASH: 0, LB: 1, CPU: 2, ROLLOVER: 3, RND: 4, QM: 5, CBPF: 6, EBPF: 7, FLAG_ROLLOVER: 0x1000, FLAG_UNIQUEID: 0x2000, FLAG_IGNORE_OUTGOING: 0x4000, FLAG_DEFRAG: 0x8000 } as const;
/** packet_diag_info pdi_flags. */
export const PDI = { RUNNING: 1, AUXDATA: 2, ORIGDEV: 4, VNETHDR: 8, LOSS: 0x10 } as const;

const SHOW = { INFO: 1, MCLIST: 2, RING_CFG: 4, FANOUT: 8, MEMINFO: 0x10, FILTER: 0x20 } as const;
const ATTR = { INFO: 0, MCLIST: 1, RX_RING: 2, TX_RING: 3, FANOUT: 4, UID: 5, MEMINFO: 6, FILTER: 7 } as const;

export interface PacketMembership { ifindex: number; count: number; type: number; addr: Buffer }
export interface PacketDiag {
  ino: number;
  type: number;
  /** The protocol it receives (ETH_P_*, host order; 0: none). */
  num: number;
  /** The bound device (0: every device; -1: the device it was bound to is gone). */
  ifindex: number;
  version: number; reserve: number; copyThresh: number; tstamp: number; flags: number;
  mclist: PacketMembership[];
  rxRing: boolean; txRing: boolean;
  /** The fanout group: id | type << 16 | flags << 24, as PACKET_FANOUT gives it. */
  fanout: number | null;
  /** Receive memory in use (sk_rmem_alloc), when the kernel says. */
  rmem: number | null;
}

/** Every packet socket of ckpt's network namespace, by inode. */
export function packetDiagAll(): Map<number, PacketDiag> {
  const req = Buffer.alloc(20);
  req.writeUInt8(AF_PACKET, 0);
  req.writeUInt32LE(SHOW.INFO | SHOW.MCLIST | SHOW.RING_CFG | SHOW.FANOUT | SHOW.MEMINFO, 8);
  const out = new Map<number, PacketDiag>();
  sockDiagDump(req, 'AF_PACKET', (m) => {
    const a = nlAttrs(m, 16);
    const info = a.get(ATTR.INFO);
    const d: PacketDiag = {
      ino: m.readUInt32LE(4), type: m.readUInt8(1), num: m.readUInt16LE(2),
      ifindex: info ? info.readInt32LE(0) : 0, version: info ? info.readUInt32LE(4) : 0, reserve: info ? info.readUInt32LE(8) : 0,
      copyThresh: info ? info.readUInt32LE(12) : 0, tstamp: info ? info.readUInt32LE(16) : 0, flags: info ? info.readUInt32LE(20) : 0,
      mclist: [], rxRing: a.has(ATTR.RX_RING), txRing: a.has(ATTR.TX_RING),
      fanout: a.has(ATTR.FANOUT) ? a.get(ATTR.FANOUT)!.readUInt32LE(0) : null,
      rmem: a.has(ATTR.MEMINFO) ? a.get(ATTR.MEMINFO)!.readUInt32LE(0) : null,
    };
    const mc = a.get(ATTR.MCLIST);
    if (mc) {
      // (a plain array of struct packet_diag_mclist, 44 bytes each, without attribute headers)
      for (let at = 0; at + 44 <= mc.length; at += 44) {
        const e = mc.subarray(at, at + 44);
        const alen = e.readUInt16LE(10);
        d.mclist.push({ ifindex: e.readUInt32LE(0), count: e.readUInt32LE(4), type: e.readUInt16LE(8), addr: Buffer.from(e.subarray(12, 12 + Math.min(alen, 32))) });
      }
    }
    out.set(d.ino, d);
  });
  return out;
}

/** bind a packet socket to a device (0: every device) and protocol (host order): 0 or -errno. */
export function bindPacket(fd: number, ifindex: number, protocol: number): number {
  const a = Buffer.alloc(20); // struct sockaddr_ll
  a.writeUInt16LE(AF_PACKET, 0);
  a.writeUInt16BE(protocol, 2);
  a.writeInt32LE(ifindex, 4);
  return syscallRaw(NR.bind, fd, addressOf(a), a.length);
}

/** PACKET_ADD_MEMBERSHIP with a struct packet_mreq_max (addresses up to 32 bytes): 0 or -errno. */
export function addPacketMembership(fd: number, ifindex: number, type: number, addr: Buffer): number {
  const m = Buffer.alloc(40);
  m.writeInt32LE(ifindex, 0);
  m.writeUInt16LE(type, 4);
  m.writeUInt16LE(addr.length, 6);
  addr.copy(m, 8, 0, Math.min(addr.length, 32));
  return syscallRaw(NR.setsockopt, fd, SOL_PACKET, PACKET.ADD_MEMBERSHIP, addressOf(m), m.length);
}

const SIOCGIFNAME = 0x8910;
const SIOCGIFINDEX = 0x8933;
const SIOCGIFFLAGS = 0x8913;

function ifreq(fn: (fd: number, r: Buffer) => number): { r: Buffer; rc: number } {
  const fd = sys('socket(AF_UNIX, SOCK_DGRAM)', NR.socket, SOCK.AF_UNIX, SOCK.DGRAM | SOCK.CLOEXEC, 0);
  const r = Buffer.alloc(40); // struct ifreq
  try { return { r, rc: fn(fd, r) }; } finally { syscallRaw(NR.close, fd); }
}
/** The name of network device `ifindex` of ckpt's network namespace, or null when there is none. */
export function ifName(ifindex: number): string | null {
  const { r, rc } = ifreq((fd, b) => { b.writeInt32LE(ifindex, 16); return syscallRaw(NR.ioctl, fd, SIOCGIFNAME, addressOf(b)); });
  if (rc === -19 /* ENODEV */) return null;
  if (rc < 0) throw new SysError(`ioctl(SIOCGIFNAME ${ifindex})`, -rc);
  return r.subarray(0, 16).toString('latin1').replace(/\0.*$/s, '');
}
/** The index of network device `name` of ckpt's network namespace, or null when there is none. */
export function ifIndex(name: string): number | null {
  const { r, rc } = ifreq((fd, b) => { b.write(name.slice(0, 15), 0, 'latin1'); return syscallRaw(NR.ioctl, fd, SIOCGIFINDEX, addressOf(b)); });
  if (rc === -19 /* ENODEV */) return null;
  if (rc < 0) throw new SysError(`ioctl(SIOCGIFINDEX ${name})`, -rc);
  return r.readInt32LE(16);
}
/** The flags of network device `name` (IFF_*), or null when there is none. */
export function ifFlags(name: string): number | null {
  const { r, rc } = ifreq((fd, b) => { b.write(name.slice(0, 15), 0, 'latin1'); return syscallRaw(NR.ioctl, fd, SIOCGIFFLAGS, addressOf(b)); });
  if (rc === -19) return null;
  if (rc < 0) throw new SysError(`ioctl(SIOCGIFFLAGS ${name})`, -rc);
  return r.readUInt16LE(16);
}


// Netlink sockets (AF_NETLINK, man 7 netlink) as ckpt reads and rebuilds them
// on its own sockets: sock_diag for netlink sockets (linux/netlink_diag.h:
// port id, connected port and group, groups, flags, whether a dump is under
// way), the sockaddr_nl calls (bind with a port id, connect, names), group
// memberships beyond the first 32 (NETLINK_LIST_MEMBERSHIPS,
// NETLINK_ADD_MEMBERSHIP), and the audit status (AUDIT_GET: which port id the
// kernel sends audit records to).

import fs from 'node:fs';
import { sys, syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, SOCK, NETLINK } from './consts.js';
import { NLMSGHDR } from './structs.js';
import { sockDiagDump, nlAttrs } from './diagdump.js';

export const SOL_NETLINK = 270;
/** SOL_NETLINK options (linux/netlink.h). */
export const NETLINK_OPT = {
  ADD_MEMBERSHIP: 1, DROP_MEMBERSHIP: 2, PKTINFO: 3, BROADCAST_ERROR: 4, NO_ENOBUFS: 5, RX_RING: 6, TX_RING: 7, LISTEN_ALL_NSID: 8,
  LIST_MEMBERSHIPS: 9, CAP_ACK: 10, EXT_ACK: 11, GET_STRICT_CHK: 12,
} as const;
/** Netlink protocols (linux/netlink.h). */
export const NETLINK_PROTO = {
  ROUTE: 0, UNUSED: 1, USERSOCK: 2, FIREWALL: 3, SOCK_DIAG: 4, NFLOG: 5, XFRM: 6, SELINUX: 7, ISCSI: 8, AUDIT: 9, FIB_LOOKUP: 10,
  CONNECTOR: 11, NETFILTER: 12, IP6_FW: 13, DNRTMSG: 14, KOBJECT_UEVENT: 15, GENERIC: 16, SCSITRANSPORT: 18, ECRYPTFS: 19, RDMA: 20,
  CRYPTO: 21, SMC: 22,
} as const;
export const NETLINK_PROTO_NAMES: Record<number, string> = Object.fromEntries(Object.entries(NETLINK_PROTO).map(([k, v]) => [v, `NETLINK_${k}`]));
/** NDIAG_FLAG_*. */
export const NDIAG_FLAG = { CB_RUNNING: 1, PKTINFO: 2, BROADCAST_ERROR: 4, NO_ENOBUFS: 8, LISTEN_ALL_NSID: 0x10, CAP_ACK: 0x20 } as const;

export interface NetlinkDiag {
  ino: number; type: number; protocol: number;
  /** TCP_ESTABLISHED (connected) or TCP_CLOSE. */
  state: number;
  portid: number; dstPortid: number; dstGroup: number;
  /** Group bitmap words (group g is bit (g-1)%32 of word (g-1)/32). */
  groups: number[];
  flags: number;
  rmem: number | null;
}

/** Every bound netlink socket of ckpt's network namespace (of every protocol), by inode. */
export function netlinkDiagAll(): Map<number, NetlinkDiag> {
  const req = Buffer.alloc(20);
  req.writeUInt8(SOCK.AF_NETLINK, 0);
  req.writeUInt8(255, 1); // NDIAG_PROTO_ALL
  req.writeUInt32LE(1 | 2 | 8, 8); // NDIAG_SHOW_MEMINFO | GROUPS | FLAGS
  const out = new Map<number, NetlinkDiag>();
  sockDiagDump(req, 'AF_NETLINK', (m) => {
    const a = nlAttrs(m, 28);
    const g = a.get(1);
    const groups: number[] = [];
    if (g) for (let i = 0; i + 4 <= g.length; i += 4) groups.push(g.readUInt32LE(i));
    const d: NetlinkDiag = {
      type: m.readUInt8(1), protocol: m.readUInt8(2), state: m.readUInt8(3), portid: m.readUInt32LE(4), dstPortid: m.readUInt32LE(8),
      dstGroup: m.readUInt32LE(12), ino: m.readUInt32LE(16), groups, flags: a.get(4)?.readUInt32LE(0) ?? 0,
      rmem: a.get(0)?.readUInt32LE(0) ?? null,
    };
    out.set(d.ino, d);
  });
  return out;
}

function sockaddrNl(portid: number, groups: number): Buffer {
  const a = Buffer.alloc(12);
  a.writeUInt16LE(SOCK.AF_NETLINK, 0);
  a.writeUInt32LE(portid >>> 0, 4);
  a.writeUInt32LE(groups >>> 0, 8);
  return a;
}
/** bind a netlink socket: 0 or -errno. */
export function bindNetlink(fd: number, portid: number, groups = 0): number {
  const a = sockaddrNl(portid, groups);
  return syscallRaw(NR.bind, fd, addressOf(a), a.length);
}
/** connect a netlink socket to a port id and group (0, 0: disconnect): 0 or -errno. */
export function connectNetlink(fd: number, portid: number, group: number): number {
  const a = sockaddrNl(portid, group ? 1 << (group - 1) : 0);
  return syscallRaw(NR.connect, fd, addressOf(a), a.length);
}
/** getsockname (peer: getpeername) of a netlink socket: port id and the first 32 groups' bits. */
export function netlinkName(fd: number, peer: boolean): { portid: number; groups: number } {
  const a = Buffer.alloc(12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(12, 0);
  sys(peer ? 'getpeername' : 'getsockname', peer ? NR.getpeername : NR.getsockname, fd, addressOf(a), addressOf(len));
  return { portid: a.readUInt32LE(4), groups: a.readUInt32LE(8) };
}
/** Every group the socket is a member of (NETLINK_LIST_MEMBERSHIPS), ascending. */
export function netlinkGroups(fd: number): number[] {
  for (let words = 8; ; words *= 4) {
    const b = Buffer.alloc(4 * words);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length, 0);
    sys('getsockopt(NETLINK_LIST_MEMBERSHIPS)', NR.getsockopt, fd, SOL_NETLINK, NETLINK_OPT.LIST_MEMBERSHIPS, addressOf(b), addressOf(len));
    const need = len.readUInt32LE(0);
    if (need > b.length) continue;
    const out: number[] = [];
    for (let w = 0; w * 4 < need; w++) {
      const v = b.readUInt32LE(4 * w);
      for (let bit = 0; bit < 32; bit++) if (v & (1 << bit)) out.push(32 * w + bit + 1);
    }
    return out;
  }
}

/** The audit daemon as the kernel knows it (AUDIT_GET): its pid (0: none). Null when the kernel has no audit. */
export function auditPid(): number | null {
  let fd: number;
  try { fd = sys('socket(AF_NETLINK, NETLINK_AUDIT)', NR.socket, SOCK.AF_NETLINK, 3 /* SOCK_RAW */ | SOCK.CLOEXEC, NETLINK_PROTO.AUDIT); } catch (e) {
    if (e instanceof SysError && (e.errno === 93 /* EPROTONOSUPPORT */ || e.errno === 97)) return null;
    throw e;
  }
  try {
    const req = NLMSGHDR.encode({ len: NLMSGHDR.size, type: 1000 /* AUDIT_GET */, flags: NETLINK.F_REQUEST, seq: 1 });
    fs.writeSync(fd, req);
    const buf = Buffer.alloc(8192);
    for (let tries = 0; tries < 4; tries++) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n < NLMSGHDR.size) return null;
      const h = NLMSGHDR.decode(buf, 0);
      if (h.type === NETLINK.ERROR) {
        const e = -buf.readInt32LE(NLMSGHDR.size);
        if (e) return null;
        continue;
      }
      // struct audit_status: mask, enabled, failure, pid, ...
      if (h.type === 1000 && n >= NLMSGHDR.size + 16) return buf.readUInt32LE(NLMSGHDR.size + 12);
    }
    return null;
  } finally { fs.closeSync(fd); }
}

// Packet sockets (AF_PACKET, SOCK_RAW and SOCK_DGRAM; man 7 packet).
//
// Dump, from sock_diag (PACKET_DIAG) and getsockopt on ckpt's copy: the
// protocol it receives (ETH_P_*, 0: none), the device it is bound to (kept
// by name, found again by name on restore), its memberships
// (PACKET_ADD_MEMBERSHIP: multicast, promiscuous, all-multicast and unicast
// entries, each with its device, address and count), the ring version
// (PACKET_VERSION), PACKET_RESERVE, PACKET_COPY_THRESH, PACKET_TIMESTAMP,
// PACKET_AUXDATA, PACKET_ORIGDEV, PACKET_VNET_HDR(_SZ), PACKET_LOSS,
// PACKET_QDISC_BYPASS, PACKET_IGNORE_OUTGOING, PACKET_TX_HAS_OFF, its fanout
// group (id, mode and flags: every member made again joins the group of the
// same id, as the sockets of the tree did), and the SOL_SOCKET options that
// differ from a fresh socket's, classic socket filters included (sockopts.ts).
//
// Refused, naming the pid, the fd and why:
// - SOCK_PACKET sockets (the obsolete interface of Linux 2.0);
// - mapped rings (PACKET_RX_RING, PACKET_TX_RING): the ring is memory the
//   kernel shares with the process through mmap of the socket; a new socket
//   has a new ring, which the process's restored memory would not be;
// - frames waiting to be read: the only way to queue them again is to send
//   them again, on the wire;
// - a fanout group whose mode runs a BPF program (PACKET_FANOUT_CBPF,
//   PACKET_FANOUT_EBPF): the program cannot be read back;
// - a socket bound to a device that is gone.
//
// Not seen: a fanout group's member limit (max_num_members), and the packet
// statistics (PACKET_STATISTICS), which reading would reset.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, SOCK, errnoName } from '../kernel/consts.js';
import { pidfdGetfd, socket, setFl } from '../kernel/sys.js';
import {
  AF_PACKET, SOL_PACKET, PACKET, PACKET_FANOUT, PDI, packetDiagAll, PacketDiag, bindPacket, addPacketMembership, ifName, ifIndex,
} from '../kernel/packetsock.js';
import { getsockoptIntOrNull as intOpt, sockMeminfo } from '../kernel/inet.js';
import { setsockoptIntRaw } from '../kernel/inet.js';
import { refused, badImage, CkptError } from '../errors.js';
import { fileId, u32, int } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx } from './kind.js';
import { SockOpts, dumpSockOpts, restoreSockOpts } from './sockopts.js';

const MR_TYPES = ['multicast', 'promisc', 'allmulti', 'unicast'] as const;
const devName = z.string().check(z.minLength(1), z.maxLength(15));
const hexAddr = z.string().check(z.regex(/^([0-9a-f]{2}){0,32}$/, 'expected up to 32 bytes in hex'));

export const PacketSockFile = z.object({
  id: fileId,
  kind: z.literal('packetsock'),
  type: z.enum(['raw', 'dgram']),
  /** status flags of the description (O_NONBLOCK), without O_CLOEXEC and the access mode */
  flags: u32,
  /** The protocol it receives (ETH_P_*, host order); 0: none. */
  protocol: int(0, 0xffff),
  /** The device it is bound to, by name (none: every device). */
  device: z.optional(devName),
  /** PACKET_ADD_MEMBERSHIP entries, as the kernel lists them (newest first): device, kind, address (hex), how many times it was added. */
  memberships: z.optional(z.array(z.object({ device: devName, type: z.enum(MR_TYPES), addr: hexAddr, count: int(1, 0x7fffffff) }))),
  /** PACKET_VERSION (0: TPACKET_V1, 1: V2, 2: V3), when not 0. */
  version: z.optional(int(0, 2)),
  reserve: z.optional(u32),
  copyThresh: z.optional(u32),
  /** PACKET_TIMESTAMP: the SOF_TIMESTAMPING_* flags of the ring's timestamps. */
  tstamp: z.optional(u32),
  auxdata: z.optional(z.boolean()),
  origdev: z.optional(z.boolean()),
  loss: z.optional(z.boolean()),
  /** The virtio-net header's size (PACKET_VNET_HDR: 10; PACKET_VNET_HDR_SZ: 10, 12 or 20). */
  vnetHdrSz: z.optional(int(1, 255)),
  qdiscBypass: z.optional(z.boolean()),
  ignoreOutgoing: z.optional(z.boolean()),
  txHasOff: z.optional(z.boolean()),
  /** Its fanout group: id, mode (PACKET_FANOUT_HASH...) and flags (PACKET_FANOUT_FLAG_* >> 8). */
  fanout: z.optional(z.object({ id: int(0, 0xffff), mode: int(0, 5), flags: int(0, 255) })),
  opts: SockOpts,
});
export type PacketSockFile = z.infer<typeof PacketSockFile>;

const FANOUT_MODES = ['hash', 'lb', 'cpu', 'rollover', 'rnd', 'qm', 'cbpf', 'ebpf'];
const SOCK_RAW = 3;
const SOCK_PACKET = 10;

function diagOf(ctx: DumpFileCtx, w: string): Map<number, PacketDiag> {
  let m = ctx.state.get('packetsock') as Map<number, PacketDiag> | undefined;
  if (!m) {
    try { m = packetDiagAll(); } catch (e) { throw refused(`${w}: a packet socket, and ckpt cannot ask the kernel about packet sockets: ${(e as Error).message}`); }
    ctx.state.set('packetsock', m);
  }
  return m;
}

function dumpPacket(f: FdFacts, ctx: DumpFileCtx): Omit<PacketSockFile, 'id'> {
  const w = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
  const type = f.socket!.type;
  if (type === SOCK_PACKET) throw refused(`${w}: a SOCK_PACKET socket (the obsolete packet interface of Linux 2.0), which is not supported: use SOCK_RAW or SOCK_DGRAM`);
  if (type !== SOCK_RAW && type !== SOCK.DGRAM) throw refused(`${w}: a packet socket of type ${type}, which is not supported`);
  const d = diagOf(ctx, w).get(f.st.ino);
  if (!d) throw refused(`${w}: sock_diag does not list this packet socket (inode ${f.st.ino}); is it in another network namespace than ckpt?`);
  if (d.rxRing || d.txRing) {
    const which = [d.rxRing ? 'PACKET_RX_RING' : '', d.txRing ? 'PACKET_TX_RING' : ''].filter(Boolean).join(' and ');
    throw refused(`${w}: a packet socket with a mapped ring (${which}): the ring is memory the kernel shares with the process through mmap of the socket, which a new socket's ring would not be`);
  }
  if (d.ifindex < 0) throw refused(`${w}: a packet socket bound to a network device that is gone`);
  const copy = pidfdGetfd(f.pid, f.fd);
  try {
    const mem = sockMeminfo(copy)?.rmem ?? d.rmem ?? 0;
    if (mem > 0) throw refused(`${w}: a packet socket with frames queued to be read (${mem} bytes of receive memory): they could only be put back by sending them again, on the wire`);
    const out: Omit<PacketSockFile, 'id'> = { kind: 'packetsock', type: type === SOCK_RAW ? 'raw' : 'dgram', flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), protocol: d.num, opts: {} };
    const name = (i: number, what: string) => {
      const n = ifName(i);
      if (n === null) throw refused(`${w}: ${what} is network device ${i}, which ckpt cannot find`);
      return n;
    };
    if (d.ifindex > 0) out.device = name(d.ifindex, 'the device it is bound to');
    if (d.mclist.length) {
      out.memberships = d.mclist.map((m) => {
        if (m.type > 3) throw refused(`${w}: a packet membership of type ${m.type}, which this ckpt does not know`);
        return { device: name(m.ifindex, 'a membership\'s device'), type: MR_TYPES[m.type], addr: m.addr.toString('hex'), count: m.count };
      });
    }
    if (d.version) out.version = d.version;
    if (d.reserve) out.reserve = d.reserve;
    if (d.copyThresh) out.copyThresh = d.copyThresh;
    if (d.tstamp) out.tstamp = d.tstamp;
    if (d.flags & PDI.AUXDATA) out.auxdata = true;
    if (d.flags & PDI.ORIGDEV) out.origdev = true;
    if (d.flags & PDI.LOSS) out.loss = true;
    const sz = intOpt(copy, SOL_PACKET, PACKET.VNET_HDR_SZ) ?? (d.flags & PDI.VNETHDR ? 10 : 0);
    if (sz) out.vnetHdrSz = sz;
    if (intOpt(copy, SOL_PACKET, PACKET.QDISC_BYPASS)) out.qdiscBypass = true;
    if (intOpt(copy, SOL_PACKET, PACKET.IGNORE_OUTGOING)) out.ignoreOutgoing = true;
    if (intOpt(copy, SOL_PACKET, PACKET.TX_HAS_OFF)) out.txHasOff = true;
    const fan = intOpt(copy, SOL_PACKET, PACKET.FANOUT);
    if (fan) {
      const mode = (fan >>> 16) & 0xff;
      if (mode === PACKET_FANOUT.CBPF || mode === PACKET_FANOUT.EBPF) throw refused(`${w}: a packet socket in a fanout group of mode ${FANOUT_MODES[mode]}, whose BPF program cannot be read back`);
      if (mode > PACKET_FANOUT.QM) throw refused(`${w}: a packet socket in a fanout group of mode ${mode}, which this ckpt does not know`);
      out.fanout = { id: fan & 0xffff, mode, flags: (fan >>> 24) & 0xff };
    }
    out.opts = dumpSockOpts(copy, AF_PACKET, type, f.socket!.protocol, w, ctx.state);
    return out;
  } finally { fs.closeSync(copy); }
}

function fail(w: string, what: string, e: number): never {
  throw new CkptError('failed', `${w}: ${what} failed: ${errnoName(-e)}`);
}

function deviceIndex(w: string, name: string, what: string): number {
  const i = ifIndex(name);
  if (i === null) throw new CkptError('failed', `${w}: ${what}, network device ${name}, is not here`);
  return i;
}

function createPacket(d: PacketSockFile): number {
  const w = `packet socket (open file ${d.id})`;
  // (made receiving nothing: the protocol comes with bind, once it is configured)
  const fd = socket(AF_PACKET, (d.type === 'raw' ? SOCK_RAW : SOCK.DGRAM) | SOCK.NONBLOCK, 0);
  try {
    const set = (what: string, opt: number, v: number) => { const r = setsockoptIntRaw(fd, SOL_PACKET, opt, v); if (r < 0) fail(w, `setting ${what}`, r); };
    restoreSockOpts(fd, 17, d.opts, w, 'early');
    if (d.version) set('PACKET_VERSION', PACKET.VERSION, d.version);
    if (d.reserve) set('PACKET_RESERVE', PACKET.RESERVE, d.reserve);
    if (d.copyThresh) set('PACKET_COPY_THRESH', PACKET.COPY_THRESH, d.copyThresh);
    if (d.tstamp) set('PACKET_TIMESTAMP', PACKET.TIMESTAMP, d.tstamp);
    if (d.auxdata) set('PACKET_AUXDATA', PACKET.AUXDATA, 1);
    if (d.origdev) set('PACKET_ORIGDEV', PACKET.ORIGDEV, 1);
    if (d.loss) set('PACKET_LOSS', PACKET.LOSS, 1);
    if (d.vnetHdrSz) {
      const r = setsockoptIntRaw(fd, SOL_PACKET, PACKET.VNET_HDR_SZ, d.vnetHdrSz);
      if (r < 0 && d.vnetHdrSz === 10) set('PACKET_VNET_HDR', PACKET.VNET_HDR, 1);
      else if (r < 0) fail(w, `setting PACKET_VNET_HDR_SZ ${d.vnetHdrSz}`, r);
    }
    if (d.qdiscBypass) set('PACKET_QDISC_BYPASS', PACKET.QDISC_BYPASS, 1);
    if (d.ignoreOutgoing) set('PACKET_IGNORE_OUTGOING', PACKET.IGNORE_OUTGOING, 1);
    if (d.txHasOff) set('PACKET_TX_HAS_OFF', PACKET.TX_HAS_OFF, 1);
    // (the filter before bind: no frame gets in unfiltered)
    restoreSockOpts(fd, 17, d.opts, w, 'late');
    if (d.protocol || d.device) {
      const r = bindPacket(fd, d.device ? deviceIndex(w, d.device, 'the device it was bound to') : 0, d.protocol);
      if (r < 0) fail(w, `bind to ${d.device ?? 'every device'}, protocol 0x${d.protocol.toString(16)}`, r);
    }
    // (the kernel puts each new membership first: added last to first, they list as they did)
    for (const m of [...(d.memberships ?? [])].reverse()) {
      const i = deviceIndex(w, m.device, `a membership's device`);
      for (let n = 0; n < m.count; n++) {
        const r = addPacketMembership(fd, i, MR_TYPES.indexOf(m.type), Buffer.from(m.addr, 'hex'));
        if (r < 0) fail(w, `PACKET_ADD_MEMBERSHIP ${m.type} on ${m.device}`, r);
      }
    }
    if (d.fanout) {
      const v = d.fanout.id | (d.fanout.mode << 16) | (d.fanout.flags << 24);
      const r = setsockoptIntRaw(fd, SOL_PACKET, PACKET.FANOUT, v);
      if (r < 0) fail(w, `joining fanout group ${d.fanout.id} (${FANOUT_MODES[d.fanout.mode]}${r === -22 ? '; a group of that id with another mode or flags may exist' : ''})`, r);
    }
    setFl(fd, d.flags);
  } catch (e) { fs.closeSync(fd); throw e; }
  return fd;
}

export const packetSockKind = defineKind<PacketSockFile>({
  kind: 'packetsock',
  schema: PacketSockFile,
  takes: (f) => !!f.socket && f.socket.family === AF_PACKET,
  dump: dumpPacket,
  describe: (d) => `packet socket (${d.type === 'raw' ? 'SOCK_RAW' : 'SOCK_DGRAM'}), protocol 0x${d.protocol.toString(16).padStart(4, '0')}, ${d.device ? `on ${d.device}` : 'every device'}`
    + `${d.memberships?.length ? `, ${d.memberships.map((m) => `${m.type} on ${m.device}`).join(', ')}` : ''}${d.fanout ? `, fanout group ${d.fanout.id} (${FANOUT_MODES[d.fanout.mode]})` : ''}`
    + `${d.opts.filter ? ', filtered' : ''}${d.flags & O.NONBLOCK ? ', non-blocking' : ''}`,
  check(d) {
    if (d.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${d.id}: the status flags of a socket hold an access mode`);
    const w = `open file ${d.id} (packet socket)`;
    for (const n of new Set([d.device, ...(d.memberships ?? []).map((m) => m.device)])) if (n && ifIndex(n) === null) throw new CkptError('conflict', `${w}: network device ${n} is not here`);
  },
  phase: 'objects',
  create: (d) => ({ local: createPacket(d), closeAfter: true }),
});

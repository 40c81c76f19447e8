// Netlink sockets (AF_NETLINK, man 7 netlink) that a program holds: routing
// and address listeners (NETLINK_ROUTE), uevent listeners
// (NETLINK_KOBJECT_UEVENT), generic netlink, audit readers, sock_diag, xfrm
// and netfilter event sockets...
//
// Dump, on ckpt's copy (pidfd_getfd) and from sock_diag (NETLINK_DIAG): the
// protocol and type; the port id (nl_pid) it is bound to, whether the
// program chose it or the kernel did; every multicast group it is a member
// of (NETLINK_LIST_MEMBERSHIPS: all of them, not only the first 32 that
// getsockname shows); the port id and group it is connected to; the netlink
// options (NETLINK_PKTINFO, NETLINK_BROADCAST_ERROR, NETLINK_NO_ENOBUFS,
// NETLINK_LISTEN_ALL_NSID, NETLINK_CAP_ACK, NETLINK_EXT_ACK,
// NETLINK_GET_STRICT_CHK) and the SOL_SOCKET options that differ from a
// fresh socket's, classic filters included (sockopts.ts).
//
// Restore binds a new socket to the same port id: a port id that another
// socket took meanwhile makes the restore fail, naming it (the kernel and
// other programs send to the port id, so another one would not do).
//
// Refused, naming the pid, the fd and why:
// - messages waiting to be read (the kernel's answers and notifications
//   cannot be put back; the bytes of receive memory are named);
// - a dump under way (NDIAG_FLAG_CB_RUNNING: the kernel is answering a
//   NLM_F_DUMP request in parts and holds where it is);
// - the audit daemon's socket (the process is registered with AUDIT_SET as
//   the audit daemon: the kernel keeps it as its audit connection);
// - a netfilter socket bound to an nfnetlink_queue queue or an nfnetlink_log
//   group (that binding belongs to the port id and goes when it closes);
// - protocols whose kernel side keeps per-socket state that ckpt cannot read
//   (NETLINK_CONNECTOR's proc connector listeners, iSCSI, SCSI transport,
//   ecryptfs, SMC, and the obsolete ones).
//
// Not seen: a pending error (ENOBUFS after an overrun: SO_ERROR clears it when
// read). Generic netlink group numbers are the kernel's of the time
// (assigned when each family registered): restored on another kernel they
// may name other groups.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, SOCK, errnoName } from '../kernel/consts.js';
import { pidfdGetfd, socket, setFl } from '../kernel/sys.js';
import {
  SOL_NETLINK, NETLINK_OPT, NETLINK_PROTO, NETLINK_PROTO_NAMES, NDIAG_FLAG, netlinkDiagAll, NetlinkDiag, bindNetlink, connectNetlink, netlinkName,
  netlinkGroups, auditPid,
} from '../kernel/nlsock.js';
import { getsockoptIntOrNull as intOpt, sockMeminfo } from '../kernel/inet.js';
import { setsockoptIntRaw } from '../kernel/inet.js';
import { refused, badImage, CkptError } from '../errors.js';
import { fileId, u32, int } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx } from './kind.js';
import { SockOpts, dumpSockOpts, restoreSockOpts } from './sockopts.js';

const NL_OPTS = {
  pktinfo: NETLINK_OPT.PKTINFO, broadcastError: NETLINK_OPT.BROADCAST_ERROR, noEnobufs: NETLINK_OPT.NO_ENOBUFS,
  listenAllNsid: NETLINK_OPT.LISTEN_ALL_NSID, capAck: NETLINK_OPT.CAP_ACK, extAck: NETLINK_OPT.EXT_ACK, getStrictChk: NETLINK_OPT.GET_STRICT_CHK,
} as const;
type NlOpt = keyof typeof NL_OPTS;
const NL_OPT_NAMES = Object.keys(NL_OPTS) as [NlOpt, ...NlOpt[]];
const NL_OPT_SHOWN: Record<NlOpt, string> = {
  pktinfo: 'NETLINK_PKTINFO', broadcastError: 'NETLINK_BROADCAST_ERROR', noEnobufs: 'NETLINK_NO_ENOBUFS', listenAllNsid: 'NETLINK_LISTEN_ALL_NSID',
  capAck: 'NETLINK_CAP_ACK', extAck: 'NETLINK_EXT_ACK', getStrictChk: 'NETLINK_GET_STRICT_CHK',
};

export const NetlinkSockFile = z.object({
  id: fileId,
  kind: z.literal('netlinksock'),
  type: z.enum(['raw', 'dgram']),
  /** NETLINK_ROUTE (0), NETLINK_AUDIT (9), NETLINK_KOBJECT_UEVENT (15), NETLINK_GENERIC (16)... */
  protocol: int(0, 31),
  /** status flags of the description (O_NONBLOCK), without O_CLOEXEC and the access mode */
  flags: u32,
  /** The port id it is bound to (none: not bound yet). */
  portid: z.optional(u32),
  /** The multicast groups it is a member of (group numbers, from 1), ascending. */
  groups: z.optional(z.array(int(1, 0x7fffffff))),
  /** The port id and group it is connected to. */
  peer: z.optional(z.object({ portid: u32, group: int(0, 0x7fffffff) })),
  /** The netlink options that are on. */
  nlopts: z.optional(z.array(z.enum(NL_OPT_NAMES))),
  opts: SockOpts,
});
export type NetlinkSockFile = z.infer<typeof NetlinkSockFile>;

/** The protocols whose kernel side keeps nothing per socket beyond what is dumped here (or what is checked for below). */
const SUPPORTED = new Set<number>([
  NETLINK_PROTO.ROUTE, NETLINK_PROTO.USERSOCK, NETLINK_PROTO.SOCK_DIAG, NETLINK_PROTO.XFRM, NETLINK_PROTO.SELINUX, NETLINK_PROTO.AUDIT,
  NETLINK_PROTO.FIB_LOOKUP, NETLINK_PROTO.NETFILTER, NETLINK_PROTO.KOBJECT_UEVENT, NETLINK_PROTO.GENERIC, NETLINK_PROTO.RDMA, NETLINK_PROTO.CRYPTO,
]);
const protoName = (p: number) => NETLINK_PROTO_NAMES[p] ?? `netlink protocol ${p}`;

interface NlState { diag: Map<number, NetlinkDiag>; audit?: number | null; nfqueue?: Map<number, string> }
function state(ctx: DumpFileCtx, w: string): NlState {
  let st = ctx.state.get('netlinksock') as NlState | undefined;
  if (!st) {
    let diag: Map<number, NetlinkDiag>;
    try { diag = netlinkDiagAll(); } catch (e) { throw refused(`${w}: a netlink socket, and ckpt cannot ask the kernel about netlink sockets (whether a dump is under way): ${(e as Error).message}`); }
    st = { diag };
    ctx.state.set('netlinksock', st);
  }
  return st;
}

/** nfnetlink_queue queues and nfnetlink_log groups of ckpt's network namespace, by the port id they send to. */
function nfBindings(): Map<number, string> {
  const out = new Map<number, string>();
  const read = (file: string, what: string) => {
    let text = '';
    try { text = fs.readFileSync(file, 'utf8'); } catch { return; }
    for (const line of text.split('\n')) {
      const t = line.trim().split(/\s+/);
      if (t.length < 2 || !/^\d+$/.test(t[0]) || !/^\d+$/.test(t[1])) continue;
      out.set(Number(t[1]), `${what} ${t[0]}`);
    }
  };
  read('/proc/net/netfilter/nfnetlink_queue', 'nfnetlink_queue queue');
  read('/proc/net/netfilter/nfnetlink_log', 'nfnetlink_log group');
  return out;
}

function dumpNetlink(f: FdFacts, ctx: DumpFileCtx): Omit<NetlinkSockFile, 'id'> {
  const w = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
  const { type, protocol } = f.socket!;
  const what = `a ${protoName(protocol)} socket`;
  if (!SUPPORTED.has(protocol)) {
    throw refused(`${w}: ${what}, which is not supported: the kernel side of ${protoName(protocol)} may keep state for the socket${protocol === NETLINK_PROTO.CONNECTOR ? ' (a proc connector listener registered with PROC_CN_MCAST_LISTEN)' : ''} that ckpt cannot read back`);
  }
  if (type !== SOCK.DGRAM && type !== 3) throw refused(`${w}: ${what} of type ${type}, which is not supported`);
  const copy = pidfdGetfd(f.pid, f.fd);
  try {
    const st = state(ctx, w);
    const d = st.diag.get(f.st.ino);
    if (d && d.flags & NDIAG_FLAG.CB_RUNNING) throw refused(`${w}: ${what} with a dump under way (the kernel is answering an NLM_F_DUMP request in parts and keeps where it is)`);
    const mem = sockMeminfo(copy)?.rmem ?? d?.rmem ?? 0;
    if (mem > 0) throw refused(`${w}: ${what} with messages queued to be read (${mem} bytes of receive memory): the kernel's messages cannot be put back`);
    const name = netlinkName(copy, false);
    const out: Omit<NetlinkSockFile, 'id'> = { kind: 'netlinksock', type: type === SOCK.DGRAM ? 'dgram' : 'raw', protocol, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), opts: {} };
    if (name.portid) out.portid = name.portid;
    if (protocol === NETLINK_PROTO.AUDIT) {
      if (st.audit === undefined) st.audit = auditPid();
      if (st.audit && st.audit === f.pid) throw refused(`${w}: ${what} of the audit daemon (pid ${f.pid} is registered with AUDIT_SET): the kernel keeps its audit connection, which a new socket would not be`);
    }
    if (protocol === NETLINK_PROTO.NETFILTER && name.portid) {
      st.nfqueue ??= nfBindings();
      const b = st.nfqueue.get(name.portid);
      if (b) throw refused(`${w}: ${what} bound to ${b} (port id ${name.portid}): that binding belongs to the socket and goes with it`);
    }
    const groups = netlinkGroups(copy);
    if (groups.length) out.groups = groups;
    const peer = d ? { portid: d.dstPortid, group: d.dstGroup } : { portid: netlinkName(copy, true).portid, group: 0 };
    if (peer.portid || peer.group) out.peer = peer;
    const on = NL_OPT_NAMES.filter((n) => intOpt(copy, SOL_NETLINK, NL_OPTS[n]));
    if (on.length) out.nlopts = on;
    out.opts = dumpSockOpts(copy, 16, type, protocol, w, ctx.state);
    return out;
  } finally { fs.closeSync(copy); }
}

function fail(w: string, what: string, e: number): never {
  throw new CkptError('failed', `${w}: ${what} failed: ${errnoName(-e)}`);
}

function createNetlink(d: NetlinkSockFile): number {
  const w = `${protoName(d.protocol)} socket (open file ${d.id})`;
  const fd = socket(SOCK.AF_NETLINK, (d.type === 'raw' ? 3 : SOCK.DGRAM) | SOCK.NONBLOCK, d.protocol);
  try {
    restoreSockOpts(fd, 16, d.opts, w, 'early');
    if (d.portid !== undefined) {
      const r = bindNetlink(fd, d.portid);
      if (r === -98) throw new CkptError('conflict', `${w}: port id ${d.portid} is taken by another ${protoName(d.protocol)} socket; the kernel and other programs send to it by that id`);
      if (r < 0) fail(w, `bind to port id ${d.portid}`, r);
    }
    for (const g of d.groups ?? []) { const r = setsockoptIntRaw(fd, SOL_NETLINK, NETLINK_OPT.ADD_MEMBERSHIP, g); if (r < 0) fail(w, `joining group ${g}`, r); }
    for (const n of d.nlopts ?? []) { const r = setsockoptIntRaw(fd, SOL_NETLINK, NL_OPTS[n], 1); if (r < 0) fail(w, `setting ${NL_OPT_SHOWN[n]}`, r); }
    restoreSockOpts(fd, 16, d.opts, w, 'late');
    if (d.peer) { const r = connectNetlink(fd, d.peer.portid, d.peer.group); if (r < 0) fail(w, `connect to port id ${d.peer.portid}, group ${d.peer.group}`, r); }
    setFl(fd, d.flags);
  } catch (e) { fs.closeSync(fd); throw e; }
  return fd;
}

export const netlinkSockKind = defineKind<NetlinkSockFile>({
  kind: 'netlinksock',
  schema: NetlinkSockFile,
  takes: (f) => !!f.socket && f.socket.family === SOCK.AF_NETLINK,
  dump: dumpNetlink,
  describe: (d) => `${protoName(d.protocol)} socket${d.portid !== undefined ? `, port id ${d.portid}` : ', not bound'}${d.groups?.length ? `, groups ${d.groups.join(',')}` : ''}`
    + `${d.peer ? `, connected to port id ${d.peer.portid}${d.peer.group ? ` group ${d.peer.group}` : ''}` : ''}${d.nlopts?.length ? `, ${d.nlopts.map((n) => NL_OPT_SHOWN[n]).join(', ')}` : ''}${d.flags & O.NONBLOCK ? ', non-blocking' : ''}`,
  check(d) {
    if (d.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${d.id}: the status flags of a socket hold an access mode`);
    if (!SUPPORTED.has(d.protocol)) throw badImage(`image file files.json: open file ${d.id}: a ${protoName(d.protocol)} socket, which ckpt does not dump`);
    if (d.groups?.some((g, i) => i > 0 && g <= d.groups![i - 1])) throw badImage(`image file files.json: open file ${d.id}: the groups are not in ascending order`);
    // (a port id another socket holds now: said before any process is made)
    if (d.portid !== undefined) {
      const fd = socket(SOCK.AF_NETLINK, 3, d.protocol);
      try {
        if (bindNetlink(fd, d.portid) === -98) throw new CkptError('conflict', `open file ${d.id} (${protoName(d.protocol)} socket): port id ${d.portid} is taken by another ${protoName(d.protocol)} socket; the kernel and other programs send to it by that id`);
      } finally { fs.closeSync(fd); }
    }
  },
  phase: 'objects',
  create: (d) => ({ local: createNetlink(d), closeAfter: true }),
});

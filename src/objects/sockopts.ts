// The options of an inet socket that are not its protocol's own: SOL_SOCKET,
// IPPROTO_IP and IPPROTO_IPV6 options, shared by the TCP, UDP and raw kinds;
// and the SOL_SOCKET options of packet and netlink sockets (families 17, 16).
//
// Dump reads every option the kernel lets a program set and read back, and
// keeps those whose value differs from a fresh socket of the same family,
// type and protocol (made once per dump): the image lists what the program
// changed. Buffer sizes are kept only when the program fixed them (SO_BUF_LOCK:
// otherwise the kernel tunes them), and a socket filter only when it is a
// classic BPF program (an eBPF one cannot be read back: refused). Restore sets
// them again, those that must precede bind() first.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { SO, errnoName } from '../kernel/consts.js';
import { socket, getsockoptTimeval, setsockoptTimeval } from '../kernel/sys.js';
import { SOL, IP, IPV6, SO_MORE, getsockoptRaw, setsockoptRaw, setsockoptIntRaw, getSocketFilter, attachSocketFilter, addrBytes, getsockoptIntOrNull, getLinger, setLinger, getMulticastIf4, setMulticastIf4 } from '../kernel/inet.js';
import { refused, CkptError } from '../errors.js';
import { RawSenders } from '../kernel/rawsend.js';
import { PASS_MARK } from '../net/lock.js';
import type { RestoreFileCtx } from './kind.js';
import { i32, u32, int, count } from '../image/schema.js';

type Fam = 4 | 6;
/** 4, 6: inet (AF_INET, AF_INET6); 16: AF_NETLINK, 17: AF_PACKET, whose SOL_SOCKET options only are kept here. */
export type SockOptFamily = Fam | 16 | 17;
/** Does option `o` belong to sockets of `family`? */
const applies = (o: IntOpt, family: SockOptFamily) => (family === 16 || family === 17 ? o.level === SOL.SOCKET : o.fams.includes(family));
const SOCK_STREAM = 1;
/** An int option: its level and number, for which families, and whether it must be set before bind(). */
interface IntOpt { level: number; opt: number; fams: readonly Fam[]; early?: true; /** not for stream sockets (multicast: TCP refuses it, and an accepted socket's holds the SYN's TTL) */ dgram?: true }
const BOTH = [4, 6] as const;
const V4 = [4] as const;
const V6 = [6] as const;

const INT_OPTS = {
  reuseaddr: { level: SOL.SOCKET, opt: SO.REUSEADDR, fams: BOTH, early: true },
  reuseport: { level: SOL.SOCKET, opt: SO.REUSEPORT, fams: BOTH, early: true },
  keepalive: { level: SOL.SOCKET, opt: SO.KEEPALIVE, fams: BOTH },
  broadcast: { level: SOL.SOCKET, opt: SO.BROADCAST, fams: BOTH },
  dontroute: { level: SOL.SOCKET, opt: SO.DONTROUTE, fams: BOTH },
  oobinline: { level: SOL.SOCKET, opt: SO.OOBINLINE, fams: BOTH },
  mark: { level: SOL.SOCKET, opt: SO.MARK, fams: BOTH },
  rcvlowat: { level: SOL.SOCKET, opt: SO.RCVLOWAT, fams: BOTH },
  passcred: { level: SOL.SOCKET, opt: SO.PASSCRED, fams: BOTH },
  passsec: { level: SOL.SOCKET, opt: SO.PASSSEC, fams: BOTH },
  timestamp: { level: SOL.SOCKET, opt: SO.TIMESTAMP_OLD, fams: BOTH },
  timestampns: { level: SOL.SOCKET, opt: SO.TIMESTAMPNS_OLD, fams: BOTH },
  timestamping: { level: SOL.SOCKET, opt: SO_MORE.TIMESTAMPING_OLD, fams: BOTH },
  rxqOvfl: { level: SOL.SOCKET, opt: SO_MORE.RXQ_OVFL, fams: BOTH },
  nofcs: { level: SOL.SOCKET, opt: SO_MORE.NOFCS, fams: BOTH },
  selectErrQueue: { level: SOL.SOCKET, opt: SO_MORE.SELECT_ERR_QUEUE, fams: BOTH },
  busyPoll: { level: SOL.SOCKET, opt: SO_MORE.BUSY_POLL, fams: BOTH },
  preferBusyPoll: { level: SOL.SOCKET, opt: SO_MORE.PREFER_BUSY_POLL, fams: BOTH },
  busyPollBudget: { level: SOL.SOCKET, opt: SO_MORE.BUSY_POLL_BUDGET, fams: BOTH },
  maxPacingRate: { level: SOL.SOCKET, opt: SO_MORE.MAX_PACING_RATE, fams: BOTH },
  zerocopy: { level: SOL.SOCKET, opt: SO_MORE.ZEROCOPY, fams: BOTH },
  txrehash: { level: SOL.SOCKET, opt: SO_MORE.TXREHASH, fams: BOTH },
  rcvmark: { level: SOL.SOCKET, opt: SO_MORE.RCVMARK, fams: BOTH },
  peekOff: { level: SOL.SOCKET, opt: SO.PEEK_OFF, fams: BOTH },
  bindIfindex: { level: SOL.SOCKET, opt: SO_MORE.BINDTOIFINDEX, fams: BOTH, early: true },
  tos: { level: SOL.IP, opt: IP.TOS, fams: V4 },
  ttl: { level: SOL.IP, opt: IP.TTL, fams: V4 },
  recvopts: { level: SOL.IP, opt: IP.RECVOPTS, fams: V4 },
  retopts: { level: SOL.IP, opt: IP.RETOPTS, fams: V4 },
  pktinfo: { level: SOL.IP, opt: IP.PKTINFO, fams: V4 },
  mtuDiscover: { level: SOL.IP, opt: IP.MTU_DISCOVER, fams: V4 },
  recverr: { level: SOL.IP, opt: IP.RECVERR, fams: V4 },
  recvttl: { level: SOL.IP, opt: IP.RECVTTL, fams: V4 },
  recvtos: { level: SOL.IP, opt: IP.RECVTOS, fams: V4 },
  freebind: { level: SOL.IP, opt: IP.FREEBIND, fams: V4, early: true },
  ipPasssec: { level: SOL.IP, opt: IP.PASSSEC, fams: V4 },
  transparent: { level: SOL.IP, opt: IP.TRANSPARENT, fams: V4, early: true },
  recvorigdstaddr: { level: SOL.IP, opt: IP.RECVORIGDSTADDR, fams: V4 },
  minttl: { level: SOL.IP, opt: IP.MINTTL, fams: V4 },
  nodefrag: { level: SOL.IP, opt: IP.NODEFRAG, fams: V4 },
  checksum: { level: SOL.IP, opt: IP.CHECKSUM, fams: V4 },
  bindAddressNoPort: { level: SOL.IP, opt: IP.BIND_ADDRESS_NO_PORT, fams: V4, early: true },
  recvfragsize: { level: SOL.IP, opt: IP.RECVFRAGSIZE, fams: V4 },
  recverrRfc4884: { level: SOL.IP, opt: IP.RECVERR_RFC4884, fams: V4 },
  multicastTtl: { level: SOL.IP, opt: IP.MULTICAST_TTL, fams: V4, dgram: true },
  multicastLoop: { level: SOL.IP, opt: IP.MULTICAST_LOOP, fams: V4, dgram: true },
  multicastAll: { level: SOL.IP, opt: IP.MULTICAST_ALL, fams: V4, dgram: true },
  unicastIf: { level: SOL.IP, opt: IP.UNICAST_IF, fams: V4 },
  localPortRange: { level: SOL.IP, opt: IP.LOCAL_PORT_RANGE, fams: BOTH, early: true },
  v6only: { level: SOL.IPV6, opt: IPV6.V6ONLY, fams: V6, early: true },
  unicastHops: { level: SOL.IPV6, opt: IPV6.UNICAST_HOPS, fams: V6 },
  multicastIf6: { level: SOL.IPV6, opt: IPV6.MULTICAST_IF, fams: V6, dgram: true },
  multicastHops: { level: SOL.IPV6, opt: IPV6.MULTICAST_HOPS, fams: V6, dgram: true },
  multicastLoop6: { level: SOL.IPV6, opt: IPV6.MULTICAST_LOOP, fams: V6, dgram: true },
  multicastAll6: { level: SOL.IPV6, opt: IPV6.MULTICAST_ALL, fams: V6, dgram: true },
  mtuDiscover6: { level: SOL.IPV6, opt: IPV6.MTU_DISCOVER, fams: V6 },
  recverr6: { level: SOL.IPV6, opt: IPV6.RECVERR, fams: V6 },
  recverrRfc4884v6: { level: SOL.IPV6, opt: IPV6.RECVERR_RFC4884, fams: V6 },
  recvpktinfo: { level: SOL.IPV6, opt: IPV6.RECVPKTINFO, fams: V6 },
  recvhoplimit: { level: SOL.IPV6, opt: IPV6.RECVHOPLIMIT, fams: V6 },
  recvhopopts: { level: SOL.IPV6, opt: IPV6.RECVHOPOPTS, fams: V6 },
  recvrthdr: { level: SOL.IPV6, opt: IPV6.RECVRTHDR, fams: V6 },
  recvdstopts: { level: SOL.IPV6, opt: IPV6.RECVDSTOPTS, fams: V6 },
  recvpathmtu: { level: SOL.IPV6, opt: IPV6.RECVPATHMTU, fams: V6 },
  dontfrag: { level: SOL.IPV6, opt: IPV6.DONTFRAG, fams: V6 },
  recvtclass: { level: SOL.IPV6, opt: IPV6.RECVTCLASS, fams: V6 },
  tclass: { level: SOL.IPV6, opt: IPV6.TCLASS, fams: V6 },
  autoflowlabel: { level: SOL.IPV6, opt: IPV6.AUTOFLOWLABEL, fams: V6 },
  addrPreferences: { level: SOL.IPV6, opt: IPV6.ADDR_PREFERENCES, fams: V6, early: true },
  minhopcount: { level: SOL.IPV6, opt: IPV6.MINHOPCOUNT, fams: V6 },
  recvorigdstaddr6: { level: SOL.IPV6, opt: IPV6.RECVORIGDSTADDR, fams: V6 },
  transparent6: { level: SOL.IPV6, opt: IPV6.TRANSPARENT, fams: V6, early: true },
  unicastIf6: { level: SOL.IPV6, opt: IPV6.UNICAST_IF, fams: V6 },
  recvfragsize6: { level: SOL.IPV6, opt: IPV6.RECVFRAGSIZE, fams: V6 },
  freebind6: { level: SOL.IPV6, opt: IPV6.FREEBIND, fams: V6, early: true },
  routerAlert: { level: SOL.IPV6, opt: IPV6.ROUTER_ALERT, fams: V6 },
  routerAlertIsolate: { level: SOL.IPV6, opt: IPV6.ROUTER_ALERT_ISOLATE, fams: V6 },
  // (last: IP_TOS and IPV6_TCLASS set it too)
  priority: { level: SOL.SOCKET, opt: SO.PRIORITY, fams: BOTH },
} as const satisfies Record<string, IntOpt>;
type IntName = keyof typeof INT_OPTS;
const INT_NAMES = Object.keys(INT_OPTS) as [IntName, ...IntName[]];

/** struct sock_filter: a classic BPF instruction (code, jt, jf, k), 8 bytes. */
const Insn = z.tuple([int(0, 0xffff), int(0, 255), int(0, 255), int(0, 0xffffffff)]);

/** An inet address of the image: family, the address as printed, port, IPv6 flow info and scope. */
export const InetAddrSchema = z.object({
  family: z.union([z.literal(4), z.literal(6)]),
  addr: z.string().check(z.maxLength(64)),
  port: int(0, 65535),
  flowinfo: z.optional(u32),
  scope: z.optional(u32),
}).check(z.refine((a) => { try { addrBytes(a.addr, a.family); return true; } catch { return false; } }, 'not an address of its family'));

export const SockOpts = z.object({
  /** Int options whose value differs from a fresh socket's. */
  ints: z.optional(z.partialRecord(z.enum(INT_NAMES), i32)),
  /** SO_SNDBUF / SO_RCVBUF as getsockopt gives them (twice what was asked), only when the program fixed them. */
  sndbuf: z.optional(i32),
  rcvbuf: z.optional(i32),
  /** SO_LINGER: on, seconds. */
  linger: z.optional(z.tuple([z.boolean(), i32])),
  /** SO_RCVTIMEO / SO_SNDTIMEO: seconds, microseconds. */
  rcvtimeo: z.optional(z.tuple([count, int(0, 999999)])),
  sndtimeo: z.optional(z.tuple([count, int(0, 999999)])),
  /** SO_BINDTODEVICE: the interface's name. */
  device: z.optional(z.string().check(z.maxLength(15))),
  /** A classic BPF socket filter (SO_ATTACH_FILTER), and whether it is locked (SO_LOCK_FILTER). */
  filter: z.optional(z.array(Insn)),
  filterLocked: z.optional(z.boolean()),
  /** IP_OPTIONS (base64). */
  ipOptions: z.optional(z.string()),
  /** IP_MULTICAST_IF: the interface address. */
  multicastIf: z.optional(z.string()),
});
export type SockOpts = z.infer<typeof SockOpts>;

const getInt = getsockoptIntOrNull;

/** An int option: its level and number. */
export interface IntOptAt { level: number; opt: number }

/**
 * The int options among `names` (of `table`) whose value on `fd` differs
 * from what a fresh socket has (made by `fresh` once per dump under `key`,
 * and read for every name of the table): what the program changed.
 */
export function changedInts<N extends string>(fd: number, table: Readonly<Record<N, IntOptAt>>, names: readonly N[], state: Map<string, unknown>, key: string, fresh: () => number): Partial<Record<N, number>> {
  let ref = state.get(key) as Map<N, number | null> | undefined;
  if (!ref) {
    const r = new Map<N, number | null>();
    const f = fresh();
    try { for (const n of Object.keys(table) as N[]) r.set(n, getInt(f, table[n].level, table[n].opt)); } finally { fs.closeSync(f); }
    state.set(key, r);
    ref = r;
  }
  const out: Partial<Record<N, number>> = {};
  for (const n of names) {
    const v = getInt(fd, table[n].level, table[n].opt);
    if (v !== null && v !== ref.get(n)) out[n] = v;
  }
  return out;
}

/**
 * Read the options of socket `fd` (ckpt's copy) that the program changed.
 * `skip`: options its kind keeps itself. `mkRef`: how to make the fresh
 * socket compared with, when socket(family, type, protocol) from ckpt is not
 * how (a ping socket made with a group that may make one).
 */
export function dumpSockOpts(fd: number, family: SockOptFamily, type: number, protocol: number, where: string, state: Map<string, unknown>, skip: ReadonlySet<string> = new Set(), mkRef?: () => number): SockOpts {
  const out: SockOpts = {};
  const names = INT_NAMES.filter((n) => { const o: IntOpt = INT_OPTS[n]; return applies(o, family) && !skip.has(n) && !(o.dgram && type === SOCK_STREAM); });
  const ints = changedInts(fd, INT_OPTS, names, state, `sockopts:${family}:${type}:${protocol}`,
    mkRef ?? (() => socket(family === 4 ? 2 : family === 6 ? 10 : family, type, protocol)));
  if (Object.keys(ints).length) out.ints = ints;
  const lock = getInt(fd, SOL.SOCKET, SO_MORE.BUF_LOCK) ?? 0;
  if (lock & 1) out.sndbuf = getInt(fd, SOL.SOCKET, SO.SNDBUF) ?? undefined;
  if (lock & 2) out.rcvbuf = getInt(fd, SOL.SOCKET, SO.RCVBUF) ?? undefined;
  const l = getLinger(fd);
  if (l && (l[0] || l[1])) out.linger = l;
  const rt = getsockoptTimeval(fd, SO.RCVTIMEO_OLD, 'SO_RCVTIMEO');
  if (rt[0] || rt[1]) out.rcvtimeo = rt;
  const stt = getsockoptTimeval(fd, SO.SNDTIMEO_OLD, 'SO_SNDTIMEO');
  if (stt[0] || stt[1]) out.sndtimeo = stt;
  const dev = getsockoptRaw(fd, SOL.SOCKET, SO_MORE.BINDTODEVICE, 16);
  if (typeof dev !== 'number' && dev.length && dev[0]) out.device = dev.toString('latin1').replace(/\0.*$/s, '');
  // (the device is kept by name; its index may differ on another host)
  if (out.device && out.ints?.bindIfindex !== undefined) delete out.ints.bindIfindex;
  const filter = getSocketFilter(fd);
  if (filter === -13 /* EACCES */) throw refused(`${where}: the socket has an eBPF filter (SO_ATTACH_BPF), which cannot be read back`);
  if (typeof filter === 'number') throw refused(`${where}: its socket filter could not be read: ${errnoName(-filter)}`);
  if (filter) {
    out.filter = filter;
    if (getInt(fd, SOL.SOCKET, SO_MORE.LOCK_FILTER)) out.filterLocked = true;
  }
  if (family === 4) {
    const ipo = getsockoptRaw(fd, SOL.IP, IP.OPTIONS, 40);
    if (typeof ipo !== 'number' && ipo.length) out.ipOptions = ipo.toString('base64');
    const mif = type === SOCK_STREAM ? null : getMulticastIf4(fd);
    if (mif) out.multicastIf = mif;
  }
  return out;
}

/** Set the options again on a new socket: `early` ones (before bind), or the rest. */
export function restoreSockOpts(fd: number, family: SockOptFamily, o: SockOpts, where: string, phase: 'early' | 'late', skip: ReadonlySet<string> = new Set()): void {
  const fail = (what: string, e: number) => { throw new CkptError('failed', `${where}: setting ${what} again failed: ${errnoName(-e)}`); };
  const set = (what: string, level: number, opt: number, v: Buffer) => { const r = setsockoptRaw(fd, level, opt, v); if (r < 0) fail(what, r); };
  for (const [n, v] of Object.entries(o.ints ?? {}) as Array<[IntName, number]>) {
    const d: IntOpt = INT_OPTS[n];
    if (skip.has(n) || (phase === 'early') !== !!d.early || v === undefined) continue;
    const r = setsockoptIntRaw(fd, d.level, d.opt, v);
    if (r < 0) fail(n, r);
  }
  if (phase === 'early') {
    if (o.device) {
      const b = Buffer.alloc(16);
      b.write(o.device, 'latin1');
      set(`SO_BINDTODEVICE ${o.device}`, SOL.SOCKET, SO_MORE.BINDTODEVICE, b);
    }
    return;
  }
  // (as root the *FORCE options pass the system's limits, as the program's own call did when it was made)
  if (o.sndbuf !== undefined) { const r = setsockoptIntRaw(fd, SOL.SOCKET, SO.SNDBUFFORCE, Math.floor(o.sndbuf / 2)); if (r < 0) fail('SO_SNDBUF', r); }
  if (o.rcvbuf !== undefined) { const r = setsockoptIntRaw(fd, SOL.SOCKET, SO.RCVBUFFORCE, Math.floor(o.rcvbuf / 2)); if (r < 0) fail('SO_RCVBUF', r); }
  if (o.linger) { const r = setLinger(fd, o.linger[0], o.linger[1]); if (r < 0) fail('SO_LINGER', r); }
  if (o.rcvtimeo) setsockoptTimeval(fd, SO.RCVTIMEO_OLD, o.rcvtimeo, 'SO_RCVTIMEO');
  if (o.sndtimeo) setsockoptTimeval(fd, SO.SNDTIMEO_OLD, o.sndtimeo, 'SO_SNDTIMEO');
  if (o.ipOptions) set('IP_OPTIONS', SOL.IP, IP.OPTIONS, Buffer.from(o.ipOptions, 'base64'));
  if (o.multicastIf) { const r = setMulticastIf4(fd, o.multicastIf); if (r < 0) fail('IP_MULTICAST_IF', r); }
  if (o.filter?.length) {
    const r = attachSocketFilter(fd, o.filter);
    if (r < 0) fail('SO_ATTACH_FILTER', r);
    if (o.filterLocked) { const r = setsockoptIntRaw(fd, SOL.SOCKET, SO_MORE.LOCK_FILTER, 1); if (r < 0) fail('SO_LOCK_FILTER', r); }
  }
}

/** The raw senders of a restore (packets ckpt sends restored sockets: datagrams, FINs, ICMP errors), shared by the kinds, closed when the restore is done. */
export function restoreSenders(ctx: RestoreFileCtx): RawSenders {
  let s = ctx.state.get('inet:raw') as RawSenders | undefined;
  if (!s) {
    const made = new RawSenders(PASS_MARK);
    ctx.state.set('inet:raw', made);
    ctx.onDone(() => made.close());
    s = made;
  }
  return s;
}

// TCP sockets, IPv4 and IPv6: unconnected (bound or not), listening,
// connecting, and connections (established, and the half-closed states that
// a socket still held by a program can be in).
//
// Dump works on ckpt's copy of each socket (pidfd_getfd). A connection is
// put in repair mode (TCP_REPAIR, which needs CAP_NET_ADMIN; the network lock
// keeps the peer's packets away meanwhile), and the kernel gives what it
// takes to make it again: the sequence numbers of both queues
// (TCP_QUEUE_SEQ), their bytes (read with MSG_PEEK: the send queue, sent and
// not yet acknowledged, and never sent; the receive queue), the windows
// (TCP_REPAIR_WINDOW), the timestamp clock (TCP_TIMESTAMP) and what was
// negotiated (MSS from TCP_MAXSEG in repair mode; window scales, SACK and
// timestamps from TCP_INFO, since TCP_REPAIR_OPTIONS cannot be read). The
// socket stays in repair mode: when the tree is killed, its close sends
// nothing to the peer; when the tree goes on (--leave-running, or a failed
// dump) repair mode is left before it runs, and the peer notices nothing.
//
// Restore makes a connection in repair mode: sequence numbers set, bound to
// its address, "connected" without a packet, options of the connection set,
// the queues filled again, the windows set, repair mode left; then what had
// never been sent is sent, and a FIN the program had sent (shutdown or
// close) is sent again. Listeners are made before connections (a connection
// accepted from one is bound to its port). A listener's queue of connections
// not yet accepted cannot be filled again: they are refused, or left out
// with --skip-in-flight.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, SOCK, SO, POLL, EPOLL } from '../kernel/consts.js';
import { errnoName } from '../kernel/consts.js';
import { pidfdGetfd, socket, setFl, pollNow } from '../kernel/sys.js';
import {
  AF, SOL, SO_MORE, TCP, TCP_QUEUE, TCP_REPAIR, TCPOPT, TCPI_OPT, TCP_STATE, TCP_STATE_NAMES, SIOC, IPPROTO, InetAddr, InetDiag, TCP_REPAIR_WINDOW,
  getsocknameInet, getpeernameInet, bindInet, connectInet, getsockoptRaw, getsockoptU32, getsockoptI32, getsockoptBuf, setsockoptRaw, setsockoptIntRaw, sockIoctlInt,
  recvBytes, sendBytes, tcpInfo, tcpRepairOpts, inetDiagAll, showAddr, chownSocket, listenRaw as sysListen, shutdownRaw as sysShutdown,
} from '../kernel/inet.js';
import { refused, badImage, conflict, CkptError } from '../errors.js';
import { fileId, u32, i32, int, count } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx, RestoreFileCtx } from './kind.js';
import { SockOpts, InetAddrSchema, IntOptAt, changedInts, dumpSockOpts, restoreSockOpts, restoreSenders } from './sockopts.js';
import { tcpPacket, TCPF, onWire, familyOf } from '../net/packets.js';
import { holdsWithin } from '../cancel.js';
import { sendRawPacket } from '../kernel/rawsend.js';

/** TCP-level int options kept when they differ from a fresh socket's (those the stack changes itself on a connection are kept only for sockets that never connected: `any` false). */
const TCP_INT = {
  nodelay: { opt: TCP.NODELAY, any: true },
  cork: { opt: TCP.CORK, any: true },
  keepidle: { opt: TCP.KEEPIDLE, any: true },
  keepintvl: { opt: TCP.KEEPINTVL, any: true },
  keepcnt: { opt: TCP.KEEPCNT, any: true },
  syncnt: { opt: TCP.SYNCNT, any: true },
  linger2: { opt: TCP.LINGER2, any: true },
  userTimeout: { opt: TCP.USER_TIMEOUT, any: true },
  thinLinearTimeouts: { opt: TCP.THIN_LINEAR_TIMEOUTS, any: true },
  notsentLowat: { opt: TCP.NOTSENT_LOWAT, any: true },
  fastopenConnect: { opt: TCP.FASTOPEN_CONNECT, any: true },
  fastopenNoCookie: { opt: TCP.FASTOPEN_NO_COOKIE, any: true },
  inq: { opt: TCP.INQ, any: true },
  txDelay: { opt: TCP.TX_DELAY, any: true },
  saveSyn: { opt: TCP.SAVE_SYN, any: true },
  deferAccept: { opt: TCP.DEFER_ACCEPT, any: false },
  windowClamp: { opt: TCP.WINDOW_CLAMP, any: false },
  maxseg: { opt: TCP.MAXSEG, any: false },
  fastopen: { opt: TCP.FASTOPEN, any: false },
} as const;
type TcpIntName = keyof typeof TCP_INT;
/** (with their level, for changedInts) */
const TCP_INT_AT = Object.fromEntries(Object.entries(TCP_INT).map(([k, v]) => [k, { level: SOL.TCP, opt: v.opt }])) as Record<TcpIntName, IntOptAt>;
/** Options set before listen() or connect(); the others once the socket is made. */
const TCP_EARLY = ['maxseg', 'windowClamp', 'deferAccept', 'fastopen'] as const;
const TCP_INT_NAMES = Object.keys(TCP_INT) as [TcpIntName, ...TcpIntName[]];
/** The host's default congestion control (a fresh socket's). */
const defaultCongestion = () => { try { return fs.readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim(); } catch { return undefined; } };

const STATES = ['closed', 'listening', 'connecting', 'established', 'fin-wait1', 'fin-wait2', 'close-wait', 'last-ack', 'closing'] as const;
type State = typeof STATES[number];
const FROM_KERNEL: Record<number, State> = {
  [TCP_STATE.CLOSE]: 'closed', [TCP_STATE.LISTEN]: 'listening', [TCP_STATE.SYN_SENT]: 'connecting', [TCP_STATE.ESTABLISHED]: 'established',
  [TCP_STATE.FIN_WAIT1]: 'fin-wait1', [TCP_STATE.FIN_WAIT2]: 'fin-wait2', [TCP_STATE.CLOSE_WAIT]: 'close-wait', [TCP_STATE.LAST_ACK]: 'last-ack',
  [TCP_STATE.CLOSING]: 'closing',
};
/** Connection states: we sent a FIN (counted in our sequence numbers), it was acknowledged, the peer's FIN came. */
const FIN_SENT = new Set<State>(['fin-wait1', 'fin-wait2', 'last-ack', 'closing']);
const FIN_ACKED = new Set<State>(['fin-wait2']);
const FIN_RECEIVED = new Set<State>(['close-wait', 'last-ack', 'closing']);
const CONNECTED = new Set<State>(['established', 'fin-wait1', 'fin-wait2', 'close-wait', 'last-ack', 'closing']);

const Window = z.object({ sndWl1: u32, sndWnd: u32, maxWindow: u32, rcvWnd: u32, rcvWup: u32 });

export const TcpFile = z.object({
  id: fileId,
  kind: z.literal('tcp'),
  family: z.union([z.literal(4), z.literal(6)]),
  /** The socket's inode number at dump. */
  ino: count,
  /** status flags of the description (O_NONBLOCK), without O_CLOEXEC and the access mode */
  flags: u32,
  state: z.enum(STATES),
  /** Its address (bound, or given by connect); none: never bound. */
  local: z.optional(InetAddrSchema),
  /** The peer (connections, and a connection under way). */
  remote: z.optional(InetAddrSchema),
  /** The socket's owner (sock_diag uid). */
  uid: z.optional(u32),
  /** Listening: the backlog. */
  backlog: z.optional(i32),
  /** sk_shutdown: 1 no more receiving, 2 no more sending (shutdown(2), besides FINs). */
  shutdown: int(0, 3),
  opts: SockOpts,
  tcp: z.optional(z.partialRecord(z.enum(TCP_INT_NAMES), i32)),
  congestion: z.optional(z.string().check(z.maxLength(15))),
  /** A connection, as repair mode gave it. */
  conn: z.optional(z.object({
    /** write_seq: the sequence number after the last byte queued (and our FIN, when sent). */
    sndSeq: u32,
    /** rcv_nxt: the next one expected from the peer (after its FIN, when received). */
    rcvSeq: u32,
    /** Bytes of the send queue: sent but not yet acknowledged, then never sent; bytes of the receive queue. */
    sent: count,
    unsent: count,
    recv: count,
    /** The image file with the send queue's bytes, then the receive queue's. */
    data: z.optional(z.string()),
    mss: u32,
    /** Window scales: the peer's (snd) and ours (rcv), when negotiated. */
    wscale: z.optional(z.tuple([int(0, 14), int(0, 14)])),
    sack: z.boolean(),
    /** TCP timestamps negotiated, and our timestamp clock at dump (TCP_TIMESTAMP). */
    timestamps: z.boolean(),
    tsval: u32,
    window: Window,
  })),
});
export type TcpFile = z.infer<typeof TcpFile>;

// ---------------------------------------------------------------- dump

interface DumpState {
  /** sock_diag of every TCP socket, by inode (0: no file holds it). */
  byInode: Map<number, InetDiag>;
  all: InetDiag[];
}

function dumpState(ctx: DumpFileCtx): DumpState {
  let st = ctx.state.get('tcp') as DumpState | undefined;
  if (st) return st;
  const all = [...inetDiagAll(4, IPPROTO.TCP), ...inetDiagAll(6, IPPROTO.TCP)];
  st = { all, byInode: new Map(all.filter((d) => d.inode).map((d) => [d.inode, d])) };
  ctx.state.set('tcp', st);
  return st;
}

const getU32 = (fd: number, opt: number, name: string) => getsockoptU32(fd, SOL.TCP, opt, name);

/** Read `n` bytes of the selected queue without taking them (repair mode). */
function peekQueue(fd: number, n: number, where: string, which: string): Buffer {
  if (!n) return Buffer.alloc(0);
  const b = recvBytes(fd, n, SOCK.MSG_PEEK);
  if (typeof b === 'number') throw refused(`${where}: its ${which} could not be read: ${errnoName(-b)}`);
  if (b.length !== n) throw refused(`${where}: ${n} bytes are in its ${which} but ${b.length} could be read without taking them`);
  return b;
}

function dumpTcp(f: FdFacts, ctx: DumpFileCtx): Omit<TcpFile, 'id'> {
  const own = f.pid === process.pid; // (a socket in flight: ckpt's copy already)
  const where = own ? `a TCP socket in flight in a queue of the tree (${f.link})` : `pid ${f.pid}: fd ${f.fd} (${f.link})`;
  const st = dumpState(ctx);
  const family: 4 | 6 = f.socket!.family === AF.INET ? 4 : 6;
  const fd = own ? f.fd : pidfdGetfd(f.pid, f.fd);
  let keep = false;
  try {
    if (f.flags & O.ASYNC) throw refused(`${where}: the socket signals its owner when ready (O_ASYNC); not supported yet`);
    const info = tcpInfo(fd);
    const state = FROM_KERNEL[info.state];
    const d = st.byInode.get(f.st.ino);
    const local = getsocknameInet(fd) ?? undefined;
    const remote = (state === 'connecting' ? d?.dst : getpeernameInet(fd)) ?? undefined;
    const pair = `${local ? showAddr(local) : '(unbound)'}${remote ? ` -> ${showAddr(remote)}` : ''}`;
    if (!state) throw refused(`${where}: a TCP socket in state ${TCP_STATE_NAMES[info.state] ?? info.state} (${pair}), which is not supported`);
    if (d?.md5) throw refused(`${where}: TCP MD5 signatures are set on it (TCP_MD5SIG, ${pair}); their keys cannot be read back`);
    if (d?.ulp) throw refused(`${where}: an upper-layer protocol is attached to it (TCP_ULP, e.g. kernel TLS; ${pair}); its state cannot be read back`);
    const out: Omit<TcpFile, 'id'> = {
      kind: 'tcp', family, ino: f.st.ino, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), state, shutdown: 0,
      opts: dumpSockOpts(fd, family, SOCK.STREAM, IPPROTO.TCP, where, ctx.state),
    };
    if (local && (local.port !== 0 || state !== 'closed')) out.local = local;
    if (remote && state !== 'closed' && state !== 'listening') out.remote = remote;
    if (d && d.uid !== 0) out.uid = d.uid;
    else if (!d) {
      const uid = fs.fstatSync(fd).uid;
      if (uid !== 0) out.uid = uid;
    }
    const connected = CONNECTED.has(state) || state === 'connecting';
    const tcp = changedInts(fd, TCP_INT_AT, TCP_INT_NAMES.filter((n) => TCP_INT[n].any || !connected), ctx.state, `tcp:${family}`,
      () => socket(family === 4 ? AF.INET : AF.INET6, SOCK.STREAM, IPPROTO.TCP));
    if (Object.keys(tcp).length) out.tcp = tcp;
    const cong = getsockoptRaw(fd, SOL.TCP, TCP.CONGESTION, 16);
    const congestion = typeof cong === 'number' ? undefined : cong.toString('latin1').replace(/\0.*$/s, '');
    if (congestion && congestion !== defaultCongestion()) out.congestion = congestion;

    if (state === 'listening') {
      out.backlog = d?.wqueue ?? 0;
      const waiting = st.all.filter((x) => x.inode === 0 && x.src.port === local?.port && x.family === family &&
        (x.state === TCP_STATE.ESTABLISHED || x.state === TCP_STATE.CLOSE_WAIT || x.state === TCP_STATE.SYN_RECV || x.state === TCP_STATE.NEW_SYN_RECV) &&
        (local.addr === '0.0.0.0' || local.addr === '::' || x.src.addr === local.addr));
      if (waiting.length && !ctx.skipInFlight) {
        const who = waiting.slice(0, 4).map((x) => showAddr(x.dst)).join(', ') + (waiting.length > 4 ? ', ...' : '');
        throw refused(`${where}: listening on ${pair}, it has ${waiting.length} connection${waiting.length === 1 ? '' : 's'} the program has not accepted yet (from ${who}); ckpt cannot put connections back into a listener's queue: dump again (the program may accept them meanwhile), or dump with --skip-in-flight to leave them out (their clients will see a reset)`);
      }
    } else if (state === 'closed') {
      // (a socket whose connection ended has both directions shut; poll shows it; one never connected, what shutdown(2) did)
      const ev = pollNow(fd);
      if (ev & POLL.ERR) throw refused(`${where}: a TCP socket (${pair}) whose connection failed or was reset, with the error not yet read by the program; the kernel gives that error only by taking it`);
      out.shutdown = d ? d.shutdown & 3 : (ev & EPOLL.RDHUP) ? 3 : 0;
    } else if (state === 'connecting') {
      if (!remote) throw refused(`${where}: a TCP connection under way whose peer the kernel does not show`);
    } else {
      out.shutdown = (d?.shutdown ?? 0) & 3;
      if (!ctx.tcpEstablished) throw refused(`${where}: an established TCP connection ${pair} (${state}); dump with --tcp-established to keep it`);
      const r = setsockoptIntRaw(fd, SOL.TCP, TCP.REPAIR, TCP_REPAIR.ON);
      if (r < 0) throw refused(`${where}: TCP repair mode could not be entered (${errnoName(-r)}${r === -1 ? ': it needs CAP_NET_ADMIN' : ''}) for ${pair}`);
      // From here the socket is in repair mode until the dump ends: out of it before the tree runs again.
      keep = true;
      const reuse = out.opts.ints?.reuseaddr ?? 0;
      ctx.atEnd((goesOn) => {
        try {
          if (goesOn) {
            const a = setsockoptIntRaw(fd, SOL.TCP, TCP.REPAIR, TCP_REPAIR.OFF_NO_WP);
            // (leaving repair mode resets SO_REUSEADDR: the program's value is set again)
            const b = setsockoptIntRaw(fd, SOL.SOCKET, SO.REUSEADDR, reuse);
            if (a < 0 || b < 0) throw new CkptError('failed', `${where}: could not leave TCP repair mode: ${errnoName(-(a < 0 ? a : b))}`);
          }
        } finally { if (!own) fs.closeSync(fd); }
      });
      out.conn = readConnection(fd, state, where, ctx, f.st.ino);
    }
    return out;
  } finally {
    if (!own && !keep) fs.closeSync(fd);
  }
}

function readConnection(fd: number, state: State, where: string, ctx: DumpFileCtx, ino: number): NonNullable<TcpFile['conn']> {
  const info = tcpInfo(fd);
  setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.SEND, `${where}: TCP_REPAIR_QUEUE`);
  const sndSeq = getU32(fd, TCP.QUEUE_SEQ, 'TCP_QUEUE_SEQ');
  const outq = sockIoctlInt(fd, SIOC.OUTQ, 'SIOCOUTQ');
  const notSent = sockIoctlInt(fd, SIOC.OUTQNSD, 'SIOCOUTQNSD');
  // (our FIN, sent and not yet acknowledged, counts in the queue as one sequence number, and as not sent until it is)
  const finQueued = FIN_SENT.has(state) && !FIN_ACKED.has(state) ? 1 : 0;
  const sendLen = outq - finQueued;
  const unsent = Math.max(0, notSent - (finQueued && notSent > 0 ? 1 : 0));
  if (sendLen < 0 || unsent > sendLen) throw refused(`${where}: its send queue is not as TCP says it can be (${outq} queued, ${notSent} not sent, ${state})`);
  const sdata = peekQueue(fd, sendLen, where, 'send queue');
  setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.RECV, `${where}: TCP_REPAIR_QUEUE`);
  const rcvSeq = getU32(fd, TCP.QUEUE_SEQ, 'TCP_QUEUE_SEQ');
  const inq = sockIoctlInt(fd, SIOC.INQ, 'SIOCINQ');
  const rdata = peekQueue(fd, inq, where, 'receive queue');
  setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.NO, `${where}: TCP_REPAIR_QUEUE`);
  const w = TCP_REPAIR_WINDOW.decode(getsockoptBuf(fd, SOL.TCP, TCP.REPAIR_WINDOW, TCP_REPAIR_WINDOW.size, 'TCP_REPAIR_WINDOW'));
  const conn: NonNullable<TcpFile['conn']> = {
    sndSeq, rcvSeq, sent: sendLen - unsent, unsent, recv: inq,
    mss: getU32(fd, TCP.MAXSEG, 'TCP_MAXSEG'),
    sack: (info.options & TCPI_OPT.SACK) !== 0,
    timestamps: (info.options & TCPI_OPT.TIMESTAMPS) !== 0,
    tsval: getU32(fd, TCP.TIMESTAMP, 'TCP_TIMESTAMP'),
    window: w,
  };
  if (info.options & TCPI_OPT.WSCALE) conn.wscale = [info.sndWscale, info.rcvWscale];
  if (sdata.length + rdata.length) conn.data = ctx.writeData(`tcp-${ino}`, Buffer.concat([sdata, rdata]));
  return conn;
}

// ---------------------------------------------------------------- restore

function tcpOptsAgain(fd: number, d: TcpFile, where: string): void {
  for (const [n, v] of Object.entries(d.tcp ?? {}) as Array<[TcpIntName, number]>) {
    if ((TCP_EARLY as readonly string[]).includes(n)) continue; // (set before listen or connect)
    const r = setsockoptIntRaw(fd, SOL.TCP, TCP_INT[n].opt, v);
    if (r < 0) throw new CkptError('failed', `${where}: setting TCP option ${n} again failed: ${errnoName(-r)}`);
  }
}

function tcpOptsEarly(fd: number, d: TcpFile, where: string): void {
  for (const n of TCP_EARLY) {
    const v = d.tcp?.[n];
    if (v === undefined) continue;
    const r = setsockoptIntRaw(fd, SOL.TCP, TCP_INT[n].opt, v);
    if (r < 0) throw new CkptError('failed', `${where}: setting TCP option ${n} again failed: ${errnoName(-r)}`);
  }
  if (d.congestion) {
    const b = Buffer.alloc(16);
    b.write(d.congestion, 'latin1');
    const r = setsockoptRaw(fd, SOL.TCP, TCP.CONGESTION, b.subarray(0, Buffer.byteLength(d.congestion, 'latin1')));
    if (r < 0) throw conflict(`${where}: the congestion control ${d.congestion} is not available on this host (${errnoName(-r)})`);
  }
}

function bindOrFail(fd: number, a: InetAddr, where: string): void {
  const r = bindInet(fd, a);
  if (r === -98 /* EADDRINUSE */) throw conflict(`${where}: ${showAddr(a)} is in use on this host`);
  if (r === -99 /* EADDRNOTAVAIL */) throw conflict(`${where}: ${a.addr} is not an address of this host`);
  if (r < 0) throw new CkptError('failed', `${where}: bind to ${showAddr(a)} failed: ${errnoName(-r)}`);
}

function setI(fd: number, opt: number, v: number, what: string): void {
  const r = setsockoptIntRaw(fd, SOL.TCP, opt, v);
  if (r < 0) throw new CkptError('failed', `${what}: ${errnoName(-r)}`);
}

function sendAll(fd: number, data: Buffer, where: string, what: string): void {
  for (let at = 0; at < data.length;) {
    const n = sendBytes(fd, data.subarray(at, at + (1 << 20)), 0);
    if (n < 0) throw new CkptError('failed', `${where}: ${what}: ${errnoName(-n)} after ${at} of ${data.length} bytes`);
    at += n;
  }
}

/**
 * Run `fn` with room for `bytes` more in the socket's send or receive buffer
 * (the kernel counts a refilled queue's memory differently from the program's
 * writes, which fitted), then put the buffer back: the program's fixed size,
 * or the kernel's own, left for it to tune (SO_BUF_LOCK cleared).
 */
function withRoom(fd: number, which: 'snd' | 'rcv', bytes: number, fixed: number | undefined, fn: () => void): void {
  const [opt, force, lockBit] = which === 'snd' ? [SO.SNDBUF, SO.SNDBUFFORCE, 1] : [SO.RCVBUF, SO.RCVBUFFORCE, 2];
  const was = getsockoptI32(fd, SOL.SOCKET, opt, which === 'snd' ? 'SO_SNDBUF' : 'SO_RCVBUF');
  const need = 2 * bytes + 65536;
  if (need <= was) { fn(); return; }
  const lock = getsockoptI32(fd, SOL.SOCKET, SO_MORE.BUF_LOCK, 'SO_BUF_LOCK');
  setsockoptIntRaw(fd, SOL.SOCKET, force, Math.min(need, 0x3fffffff));
  try { fn(); } finally {
    setsockoptIntRaw(fd, SOL.SOCKET, force, Math.floor((fixed ?? was) / 2));
    setsockoptIntRaw(fd, SOL.SOCKET, SO_MORE.BUF_LOCK, fixed !== undefined ? lock | lockBit : lock & ~lockBit);
  }
}

/** A socket made: its fd, and (connections) what is left to do once every TCP socket of the image exists. */
interface MadeTcp { fd: number; then?: () => void }

function makeTcp(d: TcpFile, ctx: RestoreFileCtx): MadeTcp {
  const where = `open file ${d.id} (a TCP socket${d.local ? ` at ${showAddr(d.local)}` : ''}${d.remote ? ` to ${showAddr(d.remote)}` : ''})`;
  const fd = socket(d.family === 4 ? AF.INET : AF.INET6, SOCK.STREAM, IPPROTO.TCP);
  try {
    if (d.uid !== undefined) chownSocket(fd, d.uid);
    const conn = d.conn && CONNECTED.has(d.state) ? d.conn : undefined;
    // (repair mode binds with SO_REUSEADDR forced; the program's own is set after it)
    const skip = new Set(conn ? ['reuseaddr'] : []);
    restoreSockOpts(fd, d.family, d.opts, where, 'early', skip);
    tcpOptsEarly(fd, d, where);
    if (d.state === 'closed' || d.state === 'listening' || d.state === 'connecting') {
      if (d.local) bindOrFail(fd, d.local, where);
      restoreSockOpts(fd, d.family, d.opts, where, 'late');
      tcpOptsAgain(fd, d, where);
      if (d.state === 'listening') {
        listenOrFail(fd, d.backlog ?? 0, where);
      } else if (d.state === 'connecting') {
        setFl(fd, O.NONBLOCK);
        const r = connectInet(fd, d.remote!);
        if (r < 0 && r !== -115 /* EINPROGRESS */) throw new CkptError('failed', `${where}: connect again failed: ${errnoName(-r)}`);
      }
      if (d.shutdown) shutdownQuiet(fd, d.shutdown);
      setFl(fd, d.flags);
      return { fd };
    }
    if (!conn || !d.local || !d.remote) throw badImage(`image file files.json: open file ${d.id}: a TCP connection (${d.state}) without its connection state or addresses`);
    const then = makeConnection(fd, d, conn, where, ctx);
    return { fd, then: () => { then(); setFl(fd, d.flags); } };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function listenOrFail(fd: number, backlog: number, where: string): void {
  const r = sysListen(fd, backlog);
  if (r < 0) throw new CkptError('failed', `${where}: listen failed: ${errnoName(-r)}`);
}

function shutdownQuiet(fd: number, how: number): void {
  // (sk_shutdown bits 1 and 2 are shutdown(2)'s SHUT_RD + 1 and SHUT_WR + 1; an unconnected socket answers ENOTCONN but keeps them)
  sysShutdown(fd, how - 1);
}

/**
 * Make a connection in repair mode; returns what is left once every TCP
 * socket of the image exists (the peer of one may be another): leaving
 * repair mode (which sends the peer a window probe: a peer not there yet
 * would answer it with a reset), sending, FINs.
 */
function makeConnection(fd: number, d: TcpFile, c: NonNullable<TcpFile['conn']>, where: string, ctx: RestoreFileCtx): () => void {
  const finSent = FIN_SENT.has(d.state);
  const data = c.data ? ctx.readData(c.data) : Buffer.alloc(0);
  if (data.length !== c.sent + c.unsent + c.recv) throw badImage(`image file ${c.data ?? 'files.json'}: open file ${d.id}: ${data.length} bytes, but its queues hold ${c.sent + c.unsent + c.recv}`);
  const sent = data.subarray(0, c.sent), unsent = data.subarray(c.sent, c.sent + c.unsent), recv = data.subarray(c.sent + c.unsent);
  setI(fd, TCP.REPAIR, TCP_REPAIR.ON, `${where}: TCP repair mode`);
  // The first byte of each queue: the send queue's is after what is queued (and our FIN, sent again below).
  setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.SEND, `${where}: TCP_REPAIR_QUEUE`);
  setI(fd, TCP.QUEUE_SEQ, (c.sndSeq - (finSent ? 1 : 0) - c.sent - c.unsent) >>> 0, `${where}: TCP_QUEUE_SEQ (send)`);
  setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.RECV, `${where}: TCP_REPAIR_QUEUE`);
  // (the peer's FIN, when it came, is received again below: the queue ends before it)
  const finReceived = FIN_RECEIVED.has(d.state);
  setI(fd, TCP.QUEUE_SEQ, (c.rcvSeq - (finReceived ? 1 : 0) - c.recv) >>> 0, `${where}: TCP_QUEUE_SEQ (receive)`);
  bindOrFail(fd, d.local!, where);
  const r = connectInet(fd, d.remote!);
  if (r < 0) throw new CkptError('failed', `${where}: connect in repair mode failed: ${errnoName(-r)}`);
  const opts: Array<[number, number]> = [[TCPOPT.MSS, c.mss]];
  if (c.wscale) opts.push([TCPOPT.WINDOW, c.wscale[0] | (c.wscale[1] << 16)]);
  if (c.sack) opts.push([TCPOPT.SACK_PERM, 0]);
  if (c.timestamps) opts.push([TCPOPT.TIMESTAMP, 0]);
  const o = setsockoptRaw(fd, SOL.TCP, TCP.REPAIR_OPTIONS, tcpRepairOpts(opts));
  if (o < 0) throw new CkptError('failed', `${where}: TCP_REPAIR_OPTIONS: ${errnoName(-o)}`);
  if (c.timestamps) setI(fd, TCP.TIMESTAMP, c.tsval, `${where}: TCP_TIMESTAMP`);
  // (buffer sizes before the queues are filled)
  restoreSockOpts(fd, d.family, d.opts, where, 'late', new Set(['reuseaddr']));
  if (recv.length) {
    setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.RECV, `${where}: TCP_REPAIR_QUEUE`);
    withRoom(fd, 'rcv', recv.length, d.opts.rcvbuf, () => sendAll(fd, recv, where, 'refilling the receive queue'));
  }
  if (sent.length) {
    setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.SEND, `${where}: TCP_REPAIR_QUEUE`);
    withRoom(fd, 'snd', sent.length + unsent.length, d.opts.sndbuf, () => sendAll(fd, sent, where, 'refilling the send queue'));
  }
  setI(fd, TCP.REPAIR_QUEUE, TCP_QUEUE.NO, `${where}: TCP_REPAIR_QUEUE`);
  if (finReceived) receiveFinAgain(fd, d, c, where, ctx);
  const w = setsockoptRaw(fd, SOL.TCP, TCP.REPAIR_WINDOW, TCP_REPAIR_WINDOW.encode(c.window));
  if (w < 0) throw new CkptError('failed', `${where}: TCP_REPAIR_WINDOW: ${errnoName(-w)}`);
  return () => leaveRepair(fd, d, unsent, where, ctx);
}

/**
 * The peer's FIN, received again: the kernel has no call for it, so ckpt
 * sends the connection the segment the peer sent (FIN, at the sequence
 * number after the receive queue, acknowledging nothing new), from the
 * peer's address, through a raw socket whose packets pass the network lock;
 * the connection goes to CLOSE_WAIT as it did.
 */
function receiveFinAgain(fd: number, d: TcpFile, c: NonNullable<TcpFile['conn']>, where: string, ctx: RestoreFileCtx): void {
  const from = { addr: onWire(d.remote!.addr), port: d.remote!.port }, to = { addr: onWire(d.local!.addr), port: d.local!.port };
  const family = familyOf(to.addr);
  const sender = restoreSenders(ctx).get(family);
  const sndUna = (c.sndSeq - (FIN_SENT.has(d.state) ? 1 : 0) - c.sent - c.unsent) >>> 0;
  const pkt = tcpPacket({
    src: from.addr, dst: to.addr, sport: from.port, dport: to.port, seq: (c.rcvSeq - 1) >>> 0, ack: sndUna,
    flags: TCPF.FIN | TCPF.ACK, window: c.window.sndWnd >>> (c.wscale?.[0] ?? 0),
  });
  const r = sendRawPacket(sender, pkt, { family, ...to });
  if (r < 0) throw new CkptError('failed', `${where}: sending its peer's FIN again failed: ${errnoName(-r)}`);
  // (it is taken in by the kernel on its way in, at once; waited for a little while)
  if (!holdsWithin(2000, () => tcpInfo(fd).state === TCP_STATE.CLOSE_WAIT)) {
    throw new CkptError('failed', `${where}: its peer's FIN, sent again, was not taken (state ${TCP_STATE_NAMES[tcpInfo(fd).state]})`);
  }
}

const sendQueued = (fd: number) => sockIoctlInt(fd, SIOC.OUTQ, 'SIOCOUTQ');

function leaveRepair(fd: number, d: TcpFile, unsent: Buffer, where: string, ctx: RestoreFileCtx): void {
  setI(fd, TCP.REPAIR, TCP_REPAIR.OFF, `${where}: leaving TCP repair mode`);
  const ru = setsockoptIntRaw(fd, SOL.SOCKET, SO.REUSEADDR, d.opts.ints?.reuseaddr ?? 0);
  if (ru < 0) throw new CkptError('failed', `${where}: SO_REUSEADDR: ${errnoName(-ru)}`);
  tcpOptsAgain(fd, d, where);
  if (ctx.tcpClose) {
    // (--tcp-close: the connection is reset, as if by the peer: the program reads ECONNRESET)
    connectInet(fd, null);
    return;
  }
  if (unsent.length) withRoom(fd, 'snd', sendQueued(fd) + unsent.length, d.opts.sndbuf, () => sendAll(fd, unsent, where, 'sending what had not been sent'));
  if (FIN_SENT.has(d.state)) sysShutdown(fd, SOCK.SHUT_WR);
  if (d.shutdown & 1) sysShutdown(fd, SOCK.SHUT_RD);
}

export const tcpKind = defineKind<TcpFile>({
  kind: 'tcp',
  schema: TcpFile,
  takes: (f) => (f.socket?.family === AF.INET || f.socket?.family === AF.INET6) && f.socket.type === SOCK.STREAM && f.socket.protocol === IPPROTO.TCP,
  dump: dumpTcp,
  describe: (d) => {
    const parts = [`tcp ${d.state}`];
    if (d.local) parts.push(showAddr(d.local));
    if (d.remote) parts.push(`-> ${showAddr(d.remote)}`);
    if (d.backlog !== undefined) parts.push(`backlog ${d.backlog}`);
    if (d.conn) parts.push(`${d.conn.sent + d.conn.unsent} bytes to send (${d.conn.unsent} never sent), ${d.conn.recv} to read`);
    return parts.join(' ');
  },
  check(d, ctx) {
    if (d.conn?.data && !ctx.hasFile(d.conn.data)) throw badImage(`image file files.json: open file ${d.id}: its data file ${d.conn.data} is not in the manifest`);
    if (CONNECTED.has(d.state) && !d.conn) throw badImage(`image file files.json: open file ${d.id}: a TCP connection (${d.state}) without its connection state`);
  },
  phase: 'objects',
  create(d, _holder, ctx) {
    // Every TCP socket of the image is made at once, listeners first: a connection accepted from one is bound to its port.
    let made = ctx.state.get('tcp') as Map<number, number> | undefined;
    if (!made) {
      const m = new Map<number, number>();
      made = m;
      ctx.state.set('tcp', m);
      ctx.onDone(() => { for (const fd of m.values()) { try { fs.closeSync(fd); } catch { /* closed */ } } });
      const all = ctx.descs.filter((x) => x.kind === 'tcp') as unknown as TcpFile[];
      const order = [...all.filter((x) => x.state === 'listening'), ...all.filter((x) => x.state !== 'listening')];
      const thens: Array<() => void> = [];
      for (const x of order) {
        const t = makeTcp(x, ctx);
        m.set(x.id, t.fd);
        if (t.then) thens.push(t.then);
      }
      for (const t of thens) t();
    }
    const fd = made.get(d.id);
    if (fd === undefined) throw badImage(`image file files.json: open file ${d.id}: the TCP socket was not made`);
    return { local: fd, closeAfter: false };
  },
});

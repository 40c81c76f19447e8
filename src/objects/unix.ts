// Unix domain sockets (AF_UNIX), of type stream, datagram and seqpacket.
//
// Dump: ckpt takes a copy of each socket (pidfd_getfd) and asks the kernel
// (sock_diag, UNIX_DIAG) what it is: name, bound file, peer, connections
// waiting in a listener's queue, queue lengths, shutdown state. The receive
// queue is read without consuming it: MSG_PEEK at a moving SO_PEEK_OFF, with
// SO_PASSCRED on for the time of the reading (so that every message comes
// with the credentials the kernel attached to it, and a stream is cut where
// its writers change); the socket's own peek offset and options are put back
// afterwards. Files in flight (SCM_RIGHTS) arrive in ckpt as copies and are
// recorded in the open-file table like any other description.
//
// Sockets of other families are refused, naming the family.
//
// Restore: every unix socket of the image is made at once (the first time a
// description is asked for), in phases, because sockets refer to each other:
// sockets and socketpairs; connections whose ends have names, through a
// listener made for the moment at the accepting end's name; names bound; the
// listeners listen and the connections waiting in their queue are made
// again, in order; queues refilled (each message from a socket with its
// sender's name, with its credentials and its files); datagram sockets
// connected; deleted names unlinked; shutdowns; options. Where the kernel
// records who made a connection (SO_PEERCRED: socketpair, listen, connect),
// the call is made in that process of the tree, with its effective uid and
// gid of the time, so that the peer credentials come back right.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as z from 'zod/mini';
import { O, SOCK, SO, SK_STATE, E } from '../kernel/consts.js';
import {
  pidfdGetfd, setsockoptInt, getsockoptTimeval, setsockoptTimeval, getPeercred, getpeernameUnix,
  recvUnix, sendUnix, UnixMessage, socket, socketpair, bindUnix, connectUnix, accept, shutdown, setFl, inDirectory,
} from '../kernel/sys.js';
import { unixDiagAll, UnixDiag } from '../kernel/sockdiag.js';
import { getsockoptIntOrNull, getsockoptI32 } from '../kernel/inet.js';
import { readStatus } from '../kernel/proc.js';
import { RemoteTask } from '../kernel/remote.js';
import * as remote from '../kernel/rsys.js';
import { errnoName } from '../kernel/consts.js';
import { refused, badImage, conflict, UsageError } from '../errors.js';
import { fileId, u32, i32, count, int } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx, RestoreFileCtx } from './kind.js';

const b64 = z.string().check(z.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64'));
const Creds = z.object({ pid: int(0, 4194304), uid: u32, gid: u32 });
type Creds = z.infer<typeof Creds>;

const Message = z.object({
  /** Its bytes in the queue's data file. */
  len: count,
  /** The sender's name (datagram sockets), base64 of sun_path; empty: an unnamed sender. */
  from: z.optional(b64),
  /** The credentials the kernel attached to it (none: it carries none). */
  creds: z.optional(Creds),
  /** Files in flight with it (SCM_RIGHTS), by open-file id. */
  fds: z.optional(z.array(fileId)),
});
type Message = z.infer<typeof Message>;

export const UnixFile = z.object({
  id: fileId,
  kind: z.literal('unix'),
  /** The socket's inode number at dump (sockets of the image refer to each other by it). */
  ino: count,
  type: z.enum(['stream', 'dgram', 'seqpacket']),
  /** status flags of the description (O_NONBLOCK), without O_CLOEXEC and the access mode */
  flags: u32,
  state: z.enum(['unconnected', 'connected', 'listening']),
  /** Its name (base64 of sun_path as the kernel keeps it: an abstract name starts with a 0 byte, a path ends with one). */
  name: z.optional(b64),
  /** It got its name by being accepted: the name is its listener's. */
  accepted: z.optional(z.boolean()),
  /** A path name whose file was deleted (or replaced) at dump: restore binds and then unlinks it. */
  deleted: z.optional(z.boolean()),
  /** A name that is a relative path: the directory it was found in at dump (the holder's working directory). */
  dir: z.optional(z.string().check(z.regex(/^\/[^\0]*$/, 'expected an absolute path'))),
  /** The bound file as it was (path names that still had it): inode (to know it again), mode and owner. */
  file: z.optional(z.object({ ino: count, mode: u32, uid: u32, gid: u32 })),
  /** The peer, by inode: a socket of the image. */
  peer: z.optional(count),
  /** The peer's name (getpeername), when connected. */
  peerName: z.optional(b64),
  /** Connected, but the peer was closed (stream and seqpacket). */
  peerGone: z.optional(z.boolean()),
  /** Connected to a socket outside the tree, by name (--ext-unix-sk; datagram only). */
  external: z.optional(z.boolean()),
  /** Listening: the backlog, and the clients waiting to be accepted (inodes, oldest first). */
  backlog: z.optional(i32),
  pending: z.optional(z.array(count)),
  /** A client waiting in a listener's queue: the process that connected (its pid, euid and egid). */
  connector: z.optional(Creds),
  /** sk_shutdown: 1 no more receiving, 2 no more sending. */
  shutdown: int(0, 3),
  /** SO_PEERCRED (who made the pair, listened or connected). */
  peercred: z.optional(Creds),
  /** A pending error (ECONNRESET: the peer closed with data unread). */
  error: z.optional(int(0, 4095)),
  opts: z.object({
    passcred: z.boolean(),
    passsec: z.boolean(),
    passpidfd: z.optional(z.boolean()),
    rcvbuf: i32,
    sndbuf: i32,
    peekOff: i32,
    rcvlowat: i32,
    priority: i32,
    mark: z.optional(u32),
    rcvtimeo: z.tuple([count, int(0, 999999)]),
    sndtimeo: z.tuple([count, int(0, 999999)]),
    timestamp: z.optional(z.boolean()),
    timestampns: z.optional(z.boolean()),
    /** Boolean options a program may set and read back (set ones only): reuseaddr, reuseport, keepalive, dontroute, broadcast, oobinline. */
    flags: z.optional(z.array(z.enum(['reuseaddr', 'reuseport', 'keepalive', 'dontroute', 'broadcast', 'oobinline']))),
  }),
  /** The receive queue: its messages (stream: chunks, each with its writer's credentials), their bytes in `data`. */
  queue: z.optional(z.array(Message)),
  data: z.optional(z.string()),
});
export type UnixFile = z.infer<typeof UnixFile>;

const FLAG_OPTS = { reuseaddr: SO.REUSEADDR, reuseport: SO.REUSEPORT, keepalive: SO.KEEPALIVE, dontroute: SO.DONTROUTE, broadcast: SO.BROADCAST, oobinline: SO.OOBINLINE } as const;
const TYPES: Record<number, UnixFile['type']> = { [SOCK.STREAM]: 'stream', [SOCK.DGRAM]: 'dgram', [SOCK.SEQPACKET]: 'seqpacket' };
const TYPE_NR = { stream: SOCK.STREAM, dgram: SOCK.DGRAM, seqpacket: SOCK.SEQPACKET } as const;

/** A name for a user: a path as it is, an abstract name with @ for its 0 byte. */
export function showName(n: Buffer): string {
  if (!n.length) return '(unnamed)';
  if (n[0] === 0) return '@' + n.subarray(1).toString('latin1').replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return n.subarray(0, n.indexOf(0) >= 0 ? n.indexOf(0) : n.length).toString();
}
const nameOf = (s?: string) => Buffer.from(s ?? '', 'base64');
const isPath = (n: Buffer) => n.length > 0 && n[0] !== 0;
const pathOf = (n: Buffer) => n.subarray(0, n.indexOf(0) >= 0 ? n.indexOf(0) : n.length).toString();

// ---------------------------------------------------------------- dump

interface DumpState {
  diag: Map<number, UnixDiag>;
  /** Socket inode -> the processes outside the tree that hold it (pid, fd). */
  outside: Map<number, Array<[number, number]>>;
  /** Socket inode -> where the tree holds it (the first pid and fd met). */
  where: Map<number, string>;
  /** Stream sockets whose peer was closed: a pending error is looked for at the end (it can only be taken, not read). */
  probe: Array<{ ino: number; pid: number; fd: number; total: number }>;
}

function dumpState(ctx: DumpFileCtx): DumpState {
  let st = ctx.state.get('unix') as DumpState | undefined;
  if (st) return st;
  const outside = new Map<number, Array<[number, number]>>();
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || ctx.treeIds.has(Number(p))) continue;
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      if (ctx.isOwnCopy(Number(p), Number(fd))) continue;
      let link: string;
      try { link = fs.readlinkSync(`/proc/${p}/fd/${fd}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) outside.set(Number(m[1]), [...(outside.get(Number(m[1])) ?? []), [Number(p), Number(fd)]]);
    }
  }
  st = { diag: unixDiagAll(), outside, where: new Map(), probe: [] };
  ctx.state.set('unix', st);
  return st;
}


/** The euid and egid of a process (for a connection it made). */
function effectiveIds(pid: number): { uid: number; gid: number } {
  const s = readStatus(pid);
  return { uid: Number((s.get('Uid') ?? '0 0').split(/\s+/)[1]), gid: Number((s.get('Gid') ?? '0 0').split(/\s+/)[1]) };
}

function dumpUnix(f: FdFacts, ctx: DumpFileCtx): Omit<UnixFile, 'id'> {
  const own = f.pid === process.pid; // (a socket in flight: ckpt's copy already)
  const where = own ? `a socket in flight in a queue of the tree (${f.link})` : `pid ${f.pid}: fd ${f.fd} (${f.link})`;
  const st = dumpState(ctx);
  const fd = own ? f.fd : pidfdGetfd(f.pid, f.fd);
  try {
    if (f.flags & O.ASYNC) throw refused(`${where}: the socket signals its owner when ready (O_ASYNC); not supported yet`);
    const ino = f.st.ino;
    const d = st.diag.get(ino);
    if (!d) throw refused(`${where}: the kernel does not show this unix socket to ckpt (is it of another network namespace?)`);
    st.where.set(ino, where);
    const type = TYPES[d.type];
    if (!type) throw refused(`${where}: a unix socket of type ${d.type}, which is not supported`);
    // (a datagram socket that others connected to is "established" too: it is connected if it has a peer of its own)
    const peerName = d.state === SK_STATE.ESTABLISHED ? getpeernameUnix(fd) : null;
    const state = d.state === SK_STATE.LISTEN ? 'listening' : d.state === SK_STATE.ESTABLISHED && (type !== 'dgram' || peerName) ? 'connected' : 'unconnected';
    const out: Omit<UnixFile, 'id'> = {
      kind: 'unix', ino, type, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), state, shutdown: d.shutdown & 3, opts: readOpts(fd),
    };
    if (d.name.length) {
      out.name = d.name.toString('base64');
      if (isPath(d.name)) {
        let p = pathOf(d.name);
        if (!p.startsWith('/')) {
          // A relative name is resolved against the working directory of whoever binds or connects: found in the holder's.
          const cwd = fs.readlinkSync(`/proc/${own ? process.pid : f.pid}/cwd`);
          let here: fs.Stats | null = null;
          try { here = fs.statSync(`/proc/${own ? process.pid : f.pid}/cwd/${p}`); } catch { /* not there */ }
          if (!here || !d.vfs || here.ino !== d.vfs.ino) {
            throw refused(`${where}: the socket's name is the relative path ${JSON.stringify(p)}, and its file is not in the working directory of pid ${f.pid} (${cwd}); such names are not supported yet`);
          }
          out.dir = cwd;
          p = `${cwd}/${p}`;
        }
        let fst: fs.Stats | null = null;
        try { fst = fs.statSync(p); } catch { /* gone */ }
        if (fst && d.vfs && fst.ino === d.vfs.ino && fst.isSocket()) out.file = { ino: fst.ino, mode: fst.mode & 0o7777, uid: fst.uid, gid: fst.gid };
        else out.deleted = true;
      }
    }
    if (state === 'connected' || state === 'listening') {
      const pc = getPeercred(fd);
      if (pc.pid > 0) out.peercred = { pid: pc.pid, uid: pc.uid >>> 0, gid: pc.gid >>> 0 };
    }
    if (state === 'listening') {
      out.backlog = d.rqlen?.wqueue ?? 128;
      // (the kernel names the clients of the connections waiting: the connections themselves have no inode yet)
      out.pending = [];
      for (const c of d.icons) {
        if (!c) throw refused(`${where}: a connection waiting to be accepted whose client was closed; not supported yet`);
        const client = st.diag.get(c);
        // What a client sent into a connection not yet accepted is charged to it (its send queue) and cannot be read without accepting.
        if ((client?.rqlen?.wqueue ?? 0) > 0) {
          throw refused(`${where}: a connection waiting to be accepted (client socket ${c}) already holds data its client sent; ckpt cannot read it without accepting the connection (not supported yet)`);
        }
        out.pending.push(c);
      }
    }
    if (state === 'connected') {
      if (peerName?.length) out.peerName = peerName.toString('base64');
      const listeners = [...st.diag.values()].filter((l) => l.state === SK_STATE.LISTEN);
      // A client waiting in a listener's queue (its peer, the connection not yet accepted, has no inode): who connected is recorded.
      if (type !== 'dgram' && listeners.some((l) => l.icons.includes(ino))) out.connector = { pid: f.pid, ...effectiveIds(f.pid) };
      else if (d.peer) out.peer = d.peer;
      else if (type !== 'dgram') out.peerGone = true;
      else throw refused(`${where}: a datagram socket connected to a socket that was closed; not supported yet`);
      // Which end of a named connection was accepted: the one that has a listener's name, or the only named end.
      if (type !== 'dgram' && d.name.length && !out.connector) {
        const peer = d.peer ? st.diag.get(d.peer) : undefined;
        const asListener = listeners.some((l) => l.name.equals(d.name) && (!isPath(d.name) || (!!l.vfs && !!d.vfs && l.vfs.ino === d.vfs.ino)));
        if (asListener || (peer && !peer.name.length)) out.accepted = true;
      }
    }
    if (state !== 'listening') readQueue(fd, d, out, ctx, where);
    if (out.peerGone && type === 'stream') st.probe.push({ ino, pid: f.pid, fd: f.fd, total: d.rqlen?.rqueue ?? 0 });
    return out;
  } finally {
    if (!own) fs.closeSync(fd);
  }
}

function readOpts(fd: number): UnixFile['opts'] {
  const int = (o: number, n: string) => getsockoptI32(fd, SOCK.SOL_SOCKET, o, n);
  const o: UnixFile['opts'] = {
    passcred: int(SO.PASSCRED, 'SO_PASSCRED') !== 0,
    passsec: (getsockoptIntOrNull(fd, SOCK.SOL_SOCKET, SO.PASSSEC) ?? 0) !== 0,
    rcvbuf: int(SO.RCVBUF, 'SO_RCVBUF'),
    sndbuf: int(SO.SNDBUF, 'SO_SNDBUF'),
    peekOff: int(SO.PEEK_OFF, 'SO_PEEK_OFF'),
    rcvlowat: int(SO.RCVLOWAT, 'SO_RCVLOWAT'),
    priority: int(SO.PRIORITY, 'SO_PRIORITY'),
    rcvtimeo: getsockoptTimeval(fd, SO.RCVTIMEO_OLD, 'SO_RCVTIMEO') as [number, number],
    sndtimeo: getsockoptTimeval(fd, SO.SNDTIMEO_OLD, 'SO_SNDTIMEO') as [number, number],
  };
  const pidfd = getsockoptIntOrNull(fd, SOCK.SOL_SOCKET, SO.PASSPIDFD);
  if (pidfd !== null) o.passpidfd = pidfd !== 0;
  const mark = getsockoptIntOrNull(fd, SOCK.SOL_SOCKET, SO.MARK);
  if (mark) o.mark = mark >>> 0;
  const flags = (Object.keys(FLAG_OPTS) as Array<keyof typeof FLAG_OPTS>).filter((k) => getsockoptIntOrNull(fd, SOCK.SOL_SOCKET, FLAG_OPTS[k]));
  if (flags.length) o.flags = flags;
  if (getsockoptIntOrNull(fd, SOCK.SOL_SOCKET, SO.TIMESTAMP_OLD)) o.timestamp = true;
  if (getsockoptIntOrNull(fd, SOCK.SOL_SOCKET, SO.TIMESTAMPNS_OLD)) o.timestampns = true;
  return o;
}

/** Read the receive queue without consuming it; the socket's own options are put back. */
function readQueue(fd: number, d: UnixDiag, out: Omit<UnixFile, 'id'>, ctx: DumpFileCtx, where: string): void {
  const stream = out.type === 'stream';
  const total = d.rqlen?.rqueue ?? 0;
  if (stream && total === 0) return; // (nothing queued; a read would also take a pending error)
  if (stream && getsockoptIntOrNull(fd, SOCK.SOL_SOCKET, SO.OOBINLINE) === 0) {
    const oob = recvUnix(fd, 1, SOCK.MSG_PEEK | SOCK.MSG_OOB);
    if (oob && typeof oob === 'object') throw refused(`${where}: an out-of-band byte (MSG_OOB) is queued; not supported yet`);
  }
  if (!stream && out.peerGone && ctx.leaveRunning) {
    // (the kernel hands a pending error out before any message, and forgets it: reading would take it from the program)
    throw refused(`${where}: a ${out.type} socket whose peer was closed: its queue cannot be read without taking the error the kernel may hold for it; dump it without --leave-running`);
  }
  const o = out.opts;
  const messages: Message[] = [];
  const chunks: Buffer[] = [];
  let off = 0;
  let size = 64 * 1024;
  setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PASSCRED, 1, 'SO_PASSCRED');
  if (o.passpidfd) setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PASSPIDFD, 0, 'SO_PASSPIDFD');
  try {
    for (;;) {
      if (stream && off >= total) break;
      setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PEEK_OFF, off, 'SO_PEEK_OFF');
      const want = stream ? Math.min(total - off, 1 << 20) : size;
      const m = recvUnix(fd, want, SOCK.MSG_PEEK | (stream ? 0 : SOCK.MSG_TRUNC));
      if (m === null) break;
      if (typeof m === 'number') {
        // A pending error (the peer closed with data unread): the kernel gave it instead of data (and forgot it).
        if (-m === E.ECONNRESET || -m === E.EPIPE) { out.error = -m; continue; }
        throw refused(`${where}: reading its queue failed: ${errnoName(-m)}`);
      }
      // (a read of nothing without the credentials every message comes with now: the end of a shut-down seqpacket queue)
      if (!stream && m.len === 0 && !m.creds) break;
      if (!stream && m.len > size) { for (const x of m.fds) fs.closeSync(x); size = m.len; continue; } // (did not fit: again, bigger)
      if (m.flags & SOCK.MSG_CTRUNC) throw refused(`${where}: a queued message carries more control data than ckpt can read`);
      if (messages.length >= 1 << 20) throw refused(`${where}: more than ${1 << 20} messages queued`);
      if (stream && m.fds.length && m.data.length > 1) {
        // A stream read ends with the write that carried files, and takes the earlier writes of the same
        // writer with it; where that write began, the kernel does not tell (a peek of any byte of the run
        // comes with the files). The files go back on the last byte: exact for files sent with a one-byte
        // write (the usual way); for a longer write they come with the read that reaches its end.
        const k = m.data.length - 1;
        {
          messages.push(message({ ...m, data: m.data.subarray(0, k), fds: [] }, out.type, ctx, where));
          chunks.push(m.data.subarray(0, k));
          m.data = m.data.subarray(k);
          off += k;
        }
      }
      messages.push(message(m, out.type, ctx, where));
      chunks.push(m.data);
      off += m.data.length;
      if (stream && m.data.length === 0) break;
    }
  } finally {
    setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PEEK_OFF, o.peekOff, 'SO_PEEK_OFF');
    setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PASSCRED, o.passcred ? 1 : 0, 'SO_PASSCRED');
    if (o.passpidfd) setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PASSPIDFD, 1, 'SO_PASSPIDFD');
  }
  if (stream && off !== total) throw refused(`${where}: ${total} bytes are queued but ${off} could be read without consuming them`);
  if (!messages.length) return;
  out.queue = messages;
  const bytes = Buffer.concat(chunks);
  if (bytes.length) out.data = ctx.writeData(`unix-${out.ino}`, bytes);
}

function message(m: UnixMessage, type: UnixFile['type'], ctx: DumpFileCtx, where: string): Message {
  const msg: Message = { len: m.data.length };
  if (type === 'dgram') msg.from = (m.from ?? Buffer.alloc(0)).toString('base64');
  if (m.creds && m.creds.pid > 0) {
    if (!ctx.treeIds.has(m.creds.pid)) {
      for (const x of m.fds) fs.closeSync(x);
      throw refused(`${where}: a queued message carries the credentials of pid ${m.creds.pid}, which is not in the tree; the kernel would not attach them again`);
    }
    msg.creds = { pid: m.creds.pid, uid: m.creds.uid >>> 0, gid: m.creds.gid >>> 0 };
  }
  if (m.fds.length) msg.fds = ctx.describeOwnFds(m.fds, `${where}: a message in its queue`);
  return msg;
}

/** Once every fd is dumped: every peer and waiting client must be a socket of the image (or allowed outside). */
function finishUnix(descs: UnixFile[], ctx: DumpFileCtx): void {
  const st = ctx.state.get('unix') as DumpState | undefined;
  if (!st) return;
  const inImage = new Map(descs.map((d) => [d.ino, d]));
  const outsideWho = (ino: number) => {
    const h = st.outside.get(ino);
    return h?.length ? `pid ${h[0][0]} (fd ${h[0][1]}), outside the tree` : 'no process of the tree (it is held outside the tree or in flight outside it)';
  };
  const named = new Map<string, UnixFile[]>();
  for (const d of descs) {
    const where = st.where.get(d.ino) ?? `socket ${d.ino}`;
    if (d.name && !d.accepted && isPath(nameOf(d.name))) named.set(d.name, [...(named.get(d.name) ?? []), d]);
    for (const c of d.pending ?? []) {
      if (!inImage.has(c)) throw refused(`${where}: a client waiting in its queue (socket ${c}) is held by ${outsideWho(c)}`);
    }
    if (d.connector) {
      const waiting = [...st.diag.values()].find((l) => l.state === SK_STATE.LISTEN && l.icons.includes(d.ino));
      if (waiting && !inImage.has(waiting.ino)) throw refused(`${where}: it waits to be accepted by a listener (socket ${waiting.ino}, ${showName(waiting.name)}) held by ${outsideWho(waiting.ino)}`);
    }
    if (d.peer !== undefined && !inImage.has(d.peer)) {
      const pn = nameOf(d.peerName);
      if (ctx.extUnixSk && d.type === 'dgram' && pn.length && !(isPath(pn) && !pathOf(pn).startsWith('/'))) { d.external = true; delete d.peer; continue; }
      const hint = d.type === 'dgram' ? (pn.length ? ' (--ext-unix-sk lets it be connected to that name again on restore)' : '') : ' (a connection cannot be remade with one end only)';
      throw refused(`${where}: its peer, socket ${d.peer} (${showName(pn)}), is held by ${outsideWho(d.peer)}${hint}`);
    }
  }
  for (const d of descs) {
    const p = d.peer !== undefined ? inImage.get(d.peer) : undefined;
    if (d.type === 'dgram' && p && p.peer !== d.ino && !p.name) throw refused(`${st.where.get(d.ino)}: a datagram socket connected to an unnamed socket that is connected elsewhere; not supported yet`);
  }
  // Sockets outside the tree connected to one of the tree's (a datagram client of a server of the tree).
  for (const s of st.diag.values()) {
    const to = inImage.get(s.peer);
    if (!s.peer || !to || inImage.has(s.ino)) continue;
    const pending = [...st.diag.values()].some((l) => l.state === SK_STATE.LISTEN && l.icons.includes(s.ino));
    if (pending) continue; // (a connection waiting in the tree's listener: the client is checked above)
    if (ctx.extUnixSk && to.type === 'dgram') continue;
    const where = st.where.get(to.ino) ?? `socket ${to.ino}`;
    throw refused(`${where}: socket ${s.ino}, held by ${outsideWho(s.ino)}, is connected to it${to.type === 'dgram' ? ' (--ext-unix-sk lets it go: it will find the socket gone)' : ''}`);
  }
  for (const [n, list] of named) {
    if (list.length > 1) throw refused(`${st.where.get(list[0].ino)} and ${st.where.get(list[1].ino)}: two sockets bound to the path ${showName(nameOf(n))} (one of them deleted); not supported yet`);
  }
  // Credentials of connections: the process that made them must be in the tree, to make them again.
  for (const d of descs) {
    const where = st.where.get(d.ino) ?? `socket ${d.ino}`;
    for (const c of [d.peercred, d.connector]) {
      if (c && !ctx.treeIds.has(c.pid)) throw refused(`${where}: its peer credentials (SO_PEERCRED) name pid ${c.pid}, which is not in the tree; they could not be given back`);
    }
  }  // A stream socket whose peer closed with data unread reports ECONNRESET once, after its data: the
  // kernel has no way to read that but to take it, so it is looked for last, and only when the tree
  // is ended after the dump (a dump with --leave-running leaves it in place, and the image without it).
  if (!ctx.leaveRunning) {
    for (const p of st.probe) {
      const d = inImage.get(p.ino);
      if (!d) continue;
      const fd = p.pid === process.pid ? p.fd : pidfdGetfd(p.pid, p.fd);
      try {
        setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PEEK_OFF, p.total, 'SO_PEEK_OFF');
        const r = recvUnix(fd, 1, SOCK.MSG_PEEK);
        if (typeof r === 'number' && r < 0) d.error = -r;
        setsockoptInt(fd, SOCK.SOL_SOCKET, SO.PEEK_OFF, d.opts.peekOff, 'SO_PEEK_OFF');
      } finally { if (p.pid !== process.pid) fs.closeSync(fd); }
    }
  }

}

// ---------------------------------------------------------------- restore

/** The sockets made, by inode: ckpt's fd of each. */
interface Made { fds: Map<number, number>; temps: number[] }

function flagName(d: UnixFile): string {
  return `${d.type} socket${d.name ? ` ${showName(nameOf(d.name))}` : ''}`;
}

/** Run `fn` in process `pid` of the tree with the effective uid and gid `c` (then back to root's). */
function asProcess<T>(ctx: RestoreFileCtx, c: Creds, what: string, fn: (rt: RemoteTask) => T): T {
  const rt = ctx.task(c.pid);
  if (!rt) throw badImage(`image file files.json: ${what}: pid ${c.pid} (of its peer credentials) is not a process of the image`);
  const switchIds = c.uid !== 0 || c.gid !== 0;
  if (switchIds) { remote.setresgid(rt, -1, c.gid, -1); remote.setresuid(rt, -1, c.uid, -1); }
  try { return fn(rt); } finally {
    if (switchIds) { remote.setresuid(rt, -1, 0, -1); remote.setresgid(rt, -1, 0, -1); }
  }
}

/**
 * Sockets made in processes of the tree (so that the kernel records them as
 * the maker) are copied into ckpt (take) and closed there later all at once
 * (flush): made one after another, they sit at consecutive numbers, so one
 * close_range per process closes them.
 */
class RemoteMade {
  private readonly left = new Map<RemoteTask, number[]>();
  take(rt: RemoteTask, rfd: number): number {
    const list = this.left.get(rt) ?? [];
    this.left.set(rt, list);
    list.push(rfd);
    return pidfdGetfd(rt.pid, rfd);
  }
  flush(): void {
    for (const [rt, fds] of this.left) {
      const sorted = [...new Set(fds)].sort((a, b) => a - b);
      for (let i = 0; i < sorted.length;) {
        let j = i;
        while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
        remote.closeRange(rt, sorted[i], sorted[j]);
        i = j + 1;
      }
    }
    this.left.clear();
  }
}

/**
 * Make a path's name free for a bind. A socket that had its file at dump
 * (`d.file`) finds it again: the same file, or a socket file no socket is
 * bound to (left by the program's last run, a failed restore, or copied to
 * another host); that stale file is removed. Anything else is a conflict.
 */
function freePath(name: Buffer, p: string, d: UnixFile | null, what: string, bound: () => Set<number>): void {
  if (!isPath(name)) return;
  let st: fs.Stats;
  try { st = fs.lstatSync(p); } catch { return; }
  if (st.isSocket() && d?.file && (st.ino === d.file.ino || !bound().has(st.ino))) { fs.unlinkSync(p); return; }
  throw conflict(`${what}: it must be bound to ${p}, but that path exists (${!st.isSocket() ? 'not a socket file' : d?.file ? 'a socket file another socket is bound to' : 'and the socket\'s name had no file at dump'})`);
}

/** Where relative names are resolved on restore (see buildAll). */
let inDirOf: <T>(n: Buffer, fn: () => T) => T = (_n, fn) => fn();

function bindOrFail(fd: number, name: Buffer, what: string): void {
  const r = inDirOf(name, () => bindUnix(fd, name));
  if (r < 0) throw conflict(`${what}: bind to ${showName(name)} failed: ${errnoName(-r)}`);
}

function buildAll(ctx: RestoreFileCtx): Made {
  const all = ctx.descs.filter((x) => x.kind === 'unix') as unknown as UnixFile[];
  const byIno = new Map(all.map((d) => [d.ino, d]));
  const made: Made = { fds: new Map(), temps: [] };
  const inTree = new RemoteMade();
  ctx.onDone(() => { for (const fd of [...made.fds.values(), ...made.temps]) { try { fs.closeSync(fd); } catch { /* closed */ } } });
  const what = (d: UnixFile) => `open file ${d.id} (${flagName(d)})`;
  const tempPeers = new Map<number, number>(); // socket -> a peer made to be closed (its peer was gone)
  let boundInodes: Set<number> | null = null; // (the files live sockets of this host are bound to, looked up once if needed)
  const bound = () => boundInodes ??= new Set([...unixDiagAll().values()].flatMap((x) => (x.vfs ? [x.vfs.ino] : [])));
  // A name that is a relative path is bound and connected to from the directory it was found in at dump
  // (or, for a sender's name no socket of the image has, a directory made for the moment: only the name counts).
  const dirs = new Map<string, string>();
  for (const d of all) if (d.name && d.dir) dirs.set(d.name, d.dir);
  const tempDirs: string[] = [];
  ctx.onDone(() => { for (const t of tempDirs) fs.rmSync(t, { recursive: true, force: true }); });
  const dirFor = (n: Buffer): string | null => {
    if (!isPath(n) || pathOf(n).startsWith('/')) return null;
    const k = n.toString('base64');
    let dir = dirs.get(k);
    if (!dir) { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-name-')); tempDirs.push(dir); dirs.set(k, dir); }
    return dir;
  };
  const absOf = (n: Buffer) => { const dir = dirFor(n); return dir ? path.join(dir, pathOf(n)) : pathOf(n); };
  inDirOf = (n, fn) => { const dir = dirFor(n); return dir ? inDirectory(dir, fn) : fn(); };
  const connectIn = (rt: RemoteTask, r: number, n: Buffer) => { const dir = dirFor(n); if (dir) remote.chdir(rt, dir); return remote.tryConnectUnix(rt, r, n); };
  const freeName = (n: Buffer, d: UnixFile | null, label: string) => freePath(n, absOf(n), d, label, bound);
  const unlinkAfter: string[] = [];

  // 1. Sockets and socketpairs; named connections wait for step 2, listeners are made by the process that listened.
  const named: Array<{ client: UnixFile | null; server: UnixFile | null; name: Buffer }> = [];
  const pairs = new Set<number>(); // datagram sockets made as a pair (connected from birth)
  const listeners = new Map<number, { rt: RemoteTask; r: number }>();
  const pairIn = (d: UnixFile, pc: Creds | undefined) => (pc
    ? asProcess(ctx, pc, what(d), (rt) => remote.socketpairUnix(rt, TYPE_NR[d.type]).map((x) => inTree.take(rt, x)) as [number, number])
    : socketpair(TYPE_NR[d.type]));
  for (const d of all) {
    if (made.fds.has(d.ino)) continue;
    const peer = d.peer !== undefined && d.peer !== d.ino ? byIno.get(d.peer) : undefined;
    const mutual = !!peer && peer.peer === d.ino && peer.state === 'connected';
    if (d.state === 'connected' && d.type !== 'dgram' && (mutual || d.peerGone)) {
      // A connection: a pair if no end was accepted; else through a listener at the accepting end's name.
      const server = d.accepted ? d : peer?.accepted ? peer : null;
      if (server || (d.peerGone && d.peerName)) {
        // (a closed peer with a name was an accepted end: it had its listener's name)
        const client = server === d ? peer ?? null : d;
        named.push({ client, server, name: nameOf(server ? server.name : d.peerName) });
        for (const x of [client, server]) if (x) made.fds.set(x.ino, -1);
        continue;
      }
      const pair = pairIn(d, d.peercred ?? peer?.peercred);
      made.fds.set(d.ino, pair[0]);
      if (peer) made.fds.set(peer.ino, pair[1]); else tempPeers.set(d.ino, pair[1]);
      continue;
    }
    if (d.state === 'connected' && d.type === 'dgram' && mutual && (d.peercred || peer!.peercred)) {
      const pair = pairIn(d, d.peercred ?? peer!.peercred);
      made.fds.set(d.ino, pair[0]);
      made.fds.set(peer!.ino, pair[1]);
      pairs.add(d.ino); pairs.add(peer!.ino);
      continue;
    }
    if (d.connector) continue; // (a client waiting in a listener's queue: made by its connector in step 4)
    if (d.state === 'listening') {
      if (!d.peercred) throw badImage(`image file files.json: ${what(d)}: a listener without peer credentials`);
      const rt = ctx.task(d.peercred.pid);
      if (!rt) throw badImage(`image file files.json: ${what(d)}: pid ${d.peercred.pid} (which listened) is not a process of the image`);
      const r = remote.socketUnix(rt, TYPE_NR[d.type]);
      listeners.set(d.ino, { rt, r });
      made.fds.set(d.ino, pidfdGetfd(rt.pid, r));
      continue;
    }
    made.fds.set(d.ino, socket(SOCK.AF_UNIX, TYPE_NR[d.type]));
  }

  // 2. Named connections: a listener for the moment at the name, the client connects (in the process that did), the server end is accepted.
  for (const c of named) {
    const lcred = c.client?.peercred ?? c.server?.peercred ?? null;
    const ccred = c.server?.peercred ?? c.client?.peercred ?? null;
    const label = c.server ? what(c.server) : what(c.client!);
    const owner = c.server?.file ? c.server : all.find((x) => x.name === c.name.toString('base64') && x.file) ?? null;
    freeName(c.name, owner, label);
    if (!lcred) throw badImage(`image file files.json: ${label}: a connection without peer credentials`);
    const listener = asProcess(ctx, lcred, label, (rt) => {
      const r = remote.socketUnix(rt, TYPE_NR[(c.server ?? c.client)!.type]);
      try {
        const l = pidfdGetfd(rt.pid, r);
        try { bindOrFail(l, c.name, label); remote.listen(rt, r, 1); } catch (e) { fs.closeSync(l); throw e; }
        return l;
      } finally { remote.closeQuietly(rt, r); }
    });
    try {
      const client = ccred
        ? asProcess(ctx, ccred, label, (rt) => {
          const r = remote.socketUnix(rt, TYPE_NR[(c.server ?? c.client)!.type]);
          const e = connectIn(rt, r, c.name);
          if (e < 0) { remote.closeQuietly(rt, r); throw conflict(`${label}: connect to ${showName(c.name)} failed: ${errnoName(-e)}`); }
          return inTree.take(rt, r);
        })
        : (() => {
          const s = socket(SOCK.AF_UNIX, TYPE_NR[(c.server ?? c.client)!.type]);
          const e = inDirOf(c.name, () => connectUnix(s, c.name));
          if (e < 0) { fs.closeSync(s); throw conflict(`${label}: connect to ${showName(c.name)} failed: ${errnoName(-e)}`); }
          return s;
        })();
      const server = accept(listener);
      if (c.client) made.fds.set(c.client.ino, client); else tempPeers.set(c.server!.ino, client);
      if (c.server) made.fds.set(c.server.ino, server); else tempPeers.set(c.client!.ino, server);
    } finally {
      fs.closeSync(listener);
      if (isPath(c.name)) { try { fs.unlinkSync(absOf(c.name)); } catch { /* gone */ } }
    }
    // The listener's file was still there at dump though no socket of the image is bound to it any more: a stale file again.
    if (owner?.file && isPath(c.name) && !all.some((x) => x.name === owner.name && !x.accepted)) {
      const t = socket(SOCK.AF_UNIX, SOCK.DGRAM);
      try {
        if (inDirOf(c.name, () => bindUnix(t, c.name)) === 0) { fs.chmodSync(absOf(c.name), owner.file.mode); fs.chownSync(absOf(c.name), owner.file.uid, owner.file.gid); }
      } finally { fs.closeSync(t); }
    }
  }

  // 3. Names.
  const bindName = (d: UnixFile, fd: number) => {
    const n = nameOf(d.name);
    freeName(n, d, what(d));
    bindOrFail(fd, n, what(d));
    if (isPath(n)) {
      if (d.deleted) unlinkAfter.push(absOf(n));
      else if (d.file) { fs.chmodSync(absOf(n), d.file.mode); fs.chownSync(absOf(n), d.file.uid, d.file.gid); }
    }
  };
  for (const d of all) {
    if (!d.name || d.accepted) continue;
    const fd = made.fds.get(d.ino);
    if (fd === undefined || fd < 0) continue;
    bindName(d, fd);
  }

  // 4. Listeners listen (in the process that did), and the clients waiting in their queue connect again, in order.
  for (const d of all) {
    if (d.state !== 'listening') continue;
    const l = listeners.get(d.ino)!;
    try { asProcess(ctx, d.peercred!, what(d), (rt) => remote.listen(rt, l.r, d.backlog ?? 128)); } finally { remote.closeQuietly(l.rt, l.r); }
    for (const c of d.pending ?? []) {
      const cd = byIno.get(c);
      if (!cd || !cd.connector) throw badImage(`image file files.json: ${what(d)}: its waiting client ${c} is not a socket of the image`);
      const cfd = asProcess(ctx, cd.connector, what(cd), (rt) => {
        const r = remote.socketUnix(rt, TYPE_NR[cd.type]);
        const e = connectIn(rt, r, nameOf(d.name));
        if (e < 0) { remote.closeQuietly(rt, r); throw conflict(`${what(cd)}: connect to ${showName(nameOf(d.name))} failed: ${errnoName(-e)}`); }
        return inTree.take(rt, r);
      });
      made.fds.set(cd.ino, cfd);
      if (cd.name) bindName(cd, cfd);
    }
  }
  for (const d of all) if (made.fds.get(d.ino) === undefined || made.fds.get(d.ino)! < 0) throw badImage(`image file files.json: ${what(d)}: its connection is not complete in the image`);

  inTree.flush();

  // 5. Queues, each message from a socket with its sender's name, its credentials and files.
  const big = 64 << 20;
  const byName = new Map<string, number>();
  for (const d of all) if (d.name && !d.accepted) byName.set(d.name, made.fds.get(d.ino)!);
  for (const d of all) {
    if (!d.queue?.length) continue;
    const data = d.data ? ctx.readData(d.data) : Buffer.alloc(0);
    const peerFd = d.peer !== undefined ? made.fds.get(d.peer) : tempPeers.get(d.ino);
    let at = 0;
    for (const m of d.queue) {
      if (at + m.len > data.length) throw badImage(`image file ${d.data ?? 'files.json'}: open file ${d.id}: its queue has more bytes than its data file`);
      const bytes = data.subarray(at, at + m.len);
      at += m.len;
      const fds = (m.fds ?? []).map((id) => {
        const u = all.find((x) => x.id === id);
        return u ? made.fds.get(u.ino)! : ctx.open(id);
      });
      let from: number;
      let to: Buffer | null = null;
      if (d.type !== 'dgram' || pairs.has(d.ino)) {
        // (a connection, or a datagram pair: everything queued came from the peer)
        if (peerFd === undefined) throw badImage(`image file files.json: ${what(d)}: data queued but no peer`);
        from = peerFd;
      } else {
        const f = m.from ?? '';
        if (f && byName.has(f)) from = byName.get(f)!;
        else {
          from = socket(SOCK.AF_UNIX, SOCK.DGRAM);
          made.temps.push(from);
          if (f) {
            const n = nameOf(f);
            const label = `${what(d)}: the sender ${showName(n)} of a queued message`;
            freeName(n, null, label);
            bindOrFail(from, n, label);
            if (isPath(n)) unlinkAfter.push(absOf(n));
            byName.set(f, from);
          }
        }
        if (!d.name) throw badImage(`image file files.json: ${what(d)}: an unnamed socket with a message from a socket other than its peer`);
        to = nameOf(d.name);
      }
      setsockoptInt(from, SOCK.SOL_SOCKET, SO.SNDBUFFORCE, big, 'SO_SNDBUFFORCE');
      let sent = 0;
      do {
        const first = sent === 0;
        const r = sendUnix(from, bytes.subarray(sent), { to, creds: m.creds ?? null, fds: first ? fds : [] });
        if (r < 0 || (r < bytes.length - sent && d.type !== 'stream')) {
          throw conflict(`${what(d)}: its queue did not take its data back (${r < 0 ? errnoName(-r) : `${r} of ${bytes.length} bytes`})`);
        }
        sent += r;
      } while (sent < bytes.length);
    }
  }

  // 6. Datagram sockets connect to their peers (by name; outside the tree with --ext-unix-sk).
  for (const d of all) {
    if (d.type !== 'dgram' || d.state !== 'connected') continue;
    const fd = made.fds.get(d.ino)!;
    const peer = d.peer !== undefined ? byIno.get(d.peer) : undefined;
    if (pairs.has(d.ino)) continue;
    const n = peer ? nameOf(peer.name) : nameOf(d.peerName);
    if (d.external && !ctx.extUnixSk) throw new UsageError(`${what(d)} was connected to ${showName(n)} outside the tree: restore with --ext-unix-sk to connect it again`);
    if (!n.length) throw badImage(`image file files.json: ${what(d)}: connected to a socket without a name`);
    const r = inDirOf(n, () => connectUnix(fd, n));
    if (r < 0) throw conflict(`${what(d)}: connect to ${showName(n)} failed: ${errnoName(-r)}${d.external ? ' (the socket outside the tree is not there)' : ''}`);
  }

  // 7. Deleted names go; peers that were closed are closed (a pending error comes back with data left unread).
  for (const p of unlinkAfter) { try { fs.unlinkSync(p); } catch { /* gone */ } }
  for (const [ino, t] of tempPeers) {
    const d = byIno.get(ino)!;
    if (d.error === E.ECONNRESET) sendUnix(made.fds.get(ino)!, Buffer.from([0]));
    fs.closeSync(t);
  }

  // 8. Shutdowns and options.
  for (const d of all) {
    const fd = made.fds.get(d.ino)!;
    if (d.shutdown && !d.peerGone) shutdown(fd, d.shutdown === 3 ? SOCK.SHUT_RDWR : d.shutdown === 1 ? SOCK.SHUT_RD : SOCK.SHUT_WR);
    setOpts(fd, d.opts);
    setFl(fd, d.flags);
  }
  for (const t of made.temps.splice(0)) fs.closeSync(t);
  return made;
}

function setOpts(fd: number, o: UnixFile['opts']): void {
  const set = (opt: number, v: number, n: string) => setsockoptInt(fd, SOCK.SOL_SOCKET, opt, v, n);
  // (the kernel doubles what it is given; FORCE: above the host's maximum too)
  set(SO.SNDBUFFORCE, Math.floor(o.sndbuf / 2), 'SO_SNDBUFFORCE');
  set(SO.RCVBUFFORCE, Math.floor(o.rcvbuf / 2), 'SO_RCVBUFFORCE');
  set(SO.PASSCRED, o.passcred ? 1 : 0, 'SO_PASSCRED');
  if (o.passsec) set(SO.PASSSEC, 1, 'SO_PASSSEC');
  if (o.passpidfd) set(SO.PASSPIDFD, 1, 'SO_PASSPIDFD');
  if (o.peekOff !== -1) set(SO.PEEK_OFF, o.peekOff, 'SO_PEEK_OFF');
  if (o.rcvlowat !== 1) set(SO.RCVLOWAT, o.rcvlowat, 'SO_RCVLOWAT');
  if (o.priority) set(SO.PRIORITY, o.priority, 'SO_PRIORITY');
  if (o.mark) set(SO.MARK, o.mark, 'SO_MARK');
  for (const k of o.flags ?? []) set(FLAG_OPTS[k], 1, `SO_${k.toUpperCase()}`);
  if (o.timestamp) set(SO.TIMESTAMP_OLD, 1, 'SO_TIMESTAMP');
  if (o.timestampns) set(SO.TIMESTAMPNS_OLD, 1, 'SO_TIMESTAMPNS');
  if (o.rcvtimeo[0] || o.rcvtimeo[1]) setsockoptTimeval(fd, SO.RCVTIMEO_OLD, o.rcvtimeo, 'SO_RCVTIMEO');
  if (o.sndtimeo[0] || o.sndtimeo[1]) setsockoptTimeval(fd, SO.SNDTIMEO_OLD, o.sndtimeo, 'SO_SNDTIMEO');
}

export const unixKind = defineKind<UnixFile>({
  kind: 'unix',
  schema: UnixFile,
  takes: (f) => f.socket?.family === SOCK.AF_UNIX,
  dump: dumpUnix,
  finish: finishUnix,
  holds: (d) => (d.queue ?? []).flatMap((m) => m.fds ?? []),
  describe: (d) => {
    const parts = [`unix ${d.type} socket ${d.ino}`, d.state];
    if (d.name) parts.push(`name ${showName(nameOf(d.name))}${d.deleted ? ' (deleted)' : ''}${d.accepted ? ' (accepted)' : ''}`);
    if (d.peer !== undefined) parts.push(`peer ${d.peer}`);
    if (d.external) parts.push(`peer outside the tree at ${showName(nameOf(d.peerName))}`);
    if (d.peerGone) parts.push('peer closed');
    if (d.pending?.length) parts.push(`${d.pending.length} waiting to be accepted`);
    if (d.queue?.length) parts.push(`${d.queue.length} queued message${d.queue.length === 1 ? '' : 's'}`);
    if (d.shutdown) parts.push(`shut down ${['', 'for reading', 'for writing', 'both ways'][d.shutdown]}`);
    return parts.join(', ');
  },
  check(d, ctx) {
    if (d.data && !ctx.hasFile(d.data)) throw badImage(`image file files.json: open file ${d.id}: its data file ${d.data} is not in the manifest`);
    if (d.external && !ctx.extUnixSk) throw new UsageError(`open file ${d.id} (a unix ${d.type} socket) was connected to ${showName(nameOf(d.peerName))} outside the tree: restore with --ext-unix-sk to connect it again`);
    const total = (d.queue ?? []).reduce((s, m) => s + m.len, 0);
    if (total && !d.data) throw badImage(`image file files.json: open file ${d.id}: ${total} bytes queued but no data file`);
  },
  phase: 'objects',
  create(d, _holder, ctx) {
    let made = ctx.state.get('unix') as Made | undefined;
    if (!made) {
      made = buildAll(ctx);
      ctx.state.set('unix', made);
    }
    const fd = made.fds.get(d.ino);
    if (fd === undefined || fd < 0) throw badImage(`image file files.json: open file ${d.id}: socket ${d.ino} was not made`);
    return { local: fd, closeAfter: false };
  },
});


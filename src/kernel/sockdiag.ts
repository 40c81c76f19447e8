// sock_diag for unix sockets (NETLINK_SOCK_DIAG, man 7 sock_diag): what the
// kernel says of every unix socket of ckpt's network namespace, by inode:
// its type and state, name, the inode of its bound file, its peer, the
// connections waiting in a listener's queue, queue lengths and shutdown state.

import fs from 'node:fs';
import { sys } from './ffi.js';
import { NR, SOCK, NETLINK } from './consts.js';
import { NLMSGHDR, UNIX_DIAG_REQ, UNIX_DIAG_MSG, RTATTR, UNIX_DIAG_VFS, UNIX_DIAG_RQLEN } from './structs.js';
import { SysError } from './ffi.js';

export interface UnixDiag {
  ino: number;
  /** SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET */
  type: number;
  /** TCP_ESTABLISHED (connected), TCP_CLOSE (not connected) or TCP_LISTEN */
  state: number;
  /** sun_path as the kernel keeps it (empty: unnamed) */
  name: Buffer;
  /** The bound file (path names), as the kernel has it: its inode and device. */
  vfs: { ino: number; dev: number } | null;
  /** The peer's inode (0: none, or a peer that was closed). */
  peer: number;
  /** Listeners: the inodes of the connections waiting to be accepted, oldest first. */
  icons: number[];
  /** Listeners: connections waiting and the backlog; others: bytes queued to read and to send. */
  rqlen: { rqueue: number; wqueue: number } | null;
  /** sk_shutdown: 1 no more receives, 2 no more sends. */
  shutdown: number;
  uid: number | null;
}

/** Every unix socket of ckpt's network namespace, by inode. */
export function unixDiagAll(): Map<number, UnixDiag> {
  const fd = sys('socket(AF_NETLINK, NETLINK_SOCK_DIAG)', NR.socket, SOCK.AF_NETLINK, SOCK.DGRAM | SOCK.CLOEXEC, NETLINK.SOCK_DIAG);
  const out = new Map<number, UnixDiag>();
  try {
    const show = NETLINK.UDIAG_SHOW_NAME | NETLINK.UDIAG_SHOW_VFS | NETLINK.UDIAG_SHOW_PEER | NETLINK.UDIAG_SHOW_ICONS | NETLINK.UDIAG_SHOW_RQLEN | NETLINK.UDIAG_SHOW_UID;
    const req = Buffer.concat([
      NLMSGHDR.encode({ len: NLMSGHDR.size + UNIX_DIAG_REQ.size, type: NETLINK.SOCK_DIAG_BY_FAMILY, flags: NETLINK.F_REQUEST | NETLINK.F_DUMP, seq: 1 }),
      UNIX_DIAG_REQ.encode({ family: SOCK.AF_UNIX, states: 0xffffffff, show }),
    ]);
    fs.writeSync(fd, req);
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) throw new Error('sock_diag: the kernel closed the answer early');
      for (let at = 0; at + NLMSGHDR.size <= n;) {
        const h = NLMSGHDR.decode(buf, at);
        if (h.len < NLMSGHDR.size || at + h.len > n) throw new Error('sock_diag: a malformed answer');
        if (h.type === NETLINK.DONE) return out;
        if (h.type === NETLINK.ERROR) {
          const e = -buf.readInt32LE(at + NLMSGHDR.size);
          if (e === 0) return out;
          throw new SysError('sock_diag(AF_UNIX)', e);
        }
        if (h.type === NETLINK.SOCK_DIAG_BY_FAMILY) {
          const d = parseMsg(buf.subarray(at + NLMSGHDR.size, at + h.len));
          out.set(d.ino, d);
        }
        at += (h.len + 3) & ~3;
      }
    }
  } finally { fs.closeSync(fd); }
}

function parseMsg(b: Buffer): UnixDiag {
  const m = UNIX_DIAG_MSG.decode(b);
  const d: UnixDiag = { ino: m.ino, type: m.type, state: m.state, name: Buffer.alloc(0), vfs: null, peer: 0, icons: [], rqlen: null, shutdown: 0, uid: null };
  for (let at = UNIX_DIAG_MSG.size; at + RTATTR.size <= b.length;) {
    const a = RTATTR.decode(b, at);
    if (a.len < RTATTR.size) break;
    const p = b.subarray(at + RTATTR.size, at + a.len);
    switch (a.type) {
      case NETLINK.UNIX_DIAG_NAME: d.name = Buffer.from(p); break;
      case NETLINK.UNIX_DIAG_VFS: { const v = UNIX_DIAG_VFS.decode(Buffer.from(p)); d.vfs = { ino: v.ino, dev: v.dev }; break; }
      case NETLINK.UNIX_DIAG_PEER: d.peer = p.readUInt32LE(0); break;
      case NETLINK.UNIX_DIAG_ICONS: for (let i = 0; i + 4 <= p.length; i += 4) d.icons.push(p.readUInt32LE(i)); break;
      case NETLINK.UNIX_DIAG_RQLEN: d.rqlen = UNIX_DIAG_RQLEN.decode(Buffer.from(p)); break;
      case NETLINK.UNIX_DIAG_SHUTDOWN: d.shutdown = p.readUInt8(0); break;
      case NETLINK.UNIX_DIAG_UID: d.uid = p.readUInt32LE(0); break;
    }
    at += (a.len + 3) & ~3;
  }
  return d;
}

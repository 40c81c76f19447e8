// sock_diag for unix sockets (NETLINK_SOCK_DIAG, man 7 sock_diag): what the
// kernel says of every unix socket of ckpt's network namespace, by inode:
// its type and state, name, the inode of its bound file, its peer, the
// connections waiting in a listener's queue, queue lengths and shutdown state.

import { SOCK, NETLINK } from './consts.js';
import { UNIX_DIAG_REQ, UNIX_DIAG_MSG, RTATTR, UNIX_DIAG_VFS, UNIX_DIAG_RQLEN } from './structs.js';
import { sockDiagDump } from './diagdump.js';

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
  const out = new Map<number, UnixDiag>();
  const show = NETLINK.UDIAG_SHOW_NAME | NETLINK.UDIAG_SHOW_VFS | NETLINK.UDIAG_SHOW_PEER | NETLINK.UDIAG_SHOW_ICONS | NETLINK.UDIAG_SHOW_RQLEN | NETLINK.UDIAG_SHOW_UID;
  sockDiagDump(UNIX_DIAG_REQ.encode({ family: SOCK.AF_UNIX, states: 0xffffffff, show }), 'AF_UNIX', (m) => {
    const d = parseMsg(m);
    out.set(d.ino, d);
  });
  return out;
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

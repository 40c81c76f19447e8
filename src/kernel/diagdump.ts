// One sock_diag dump request (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY with
// NLM_F_DUMP) and its answers, for every family ckpt asks about (unix, inet,
// packet, netlink): the body of every answer message in turn.

import fs from 'node:fs';
import { sys, SysError } from './ffi.js';
import { NR, SOCK, NETLINK } from './consts.js';
import { NLMSGHDR, RTATTR } from './structs.js';

/** Send `body` (the family's request struct) as a dump request; call `each` with every answer's body. */
export function sockDiagDump(body: Buffer, what: string, each: (msg: Buffer) => void): void {
  const fd = sys('socket(AF_NETLINK, NETLINK_SOCK_DIAG)', NR.socket, SOCK.AF_NETLINK, SOCK.DGRAM | SOCK.CLOEXEC, NETLINK.SOCK_DIAG);
  try {
    const req = Buffer.concat([NLMSGHDR.encode({ len: NLMSGHDR.size + body.length, type: NETLINK.SOCK_DIAG_BY_FAMILY, flags: NETLINK.F_REQUEST | NETLINK.F_DUMP, seq: 1 }), body]);
    fs.writeSync(fd, req);
    const buf = Buffer.alloc(256 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) throw new Error(`sock_diag(${what}): the kernel closed the answer early`);
      for (let at = 0; at + NLMSGHDR.size <= n;) {
        const h = NLMSGHDR.decode(buf, at);
        if (h.len < NLMSGHDR.size || at + h.len > n) throw new Error(`sock_diag(${what}): a malformed answer`);
        if (h.type === NETLINK.DONE) {
          // (a family whose sock_diag module the kernel lacks answers DONE carrying -ENOENT)
          const e = h.len >= NLMSGHDR.size + 4 ? buf.readInt32LE(at + NLMSGHDR.size) : 0;
          if (e < 0) throw new SysError(`sock_diag(${what})`, -e, e === -2 ? 'this kernel has no sock_diag module for it' : undefined);
          return;
        }
        if (h.type === NETLINK.ERROR) {
          const e = -buf.readInt32LE(at + NLMSGHDR.size);
          if (e === 0) return;
          throw new SysError(`sock_diag(${what})`, e);
        }
        if (h.type === NETLINK.SOCK_DIAG_BY_FAMILY) each(Buffer.from(buf.subarray(at + NLMSGHDR.size, at + h.len)));
        at += (h.len + 3) & ~3;
      }
    }
  } finally { fs.closeSync(fd); }
}

/** The netlink attributes of a message from `from` on: type -> payload (the last of a type wins). */
export function nlAttrs(b: Buffer, from: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let at = from; at + RTATTR.size <= b.length;) {
    const a = RTATTR.decode(b, at);
    if (a.len < RTATTR.size || at + a.len > b.length) break;
    out.set(a.type, Buffer.from(b.subarray(at + RTATTR.size, at + a.len)));
    at += (a.len + 3) & ~3;
  }
  return out;
}

// What `ckpt check` asks of the kernel's TCP: whether ckpt may put a socket
// in repair mode (TCP_REPAIR needs CAP_NET_ADMIN in the socket's network
// namespace), tried on a fresh socket of ckpt's own.

import fs from 'node:fs';
import { syscallRaw, addressOf } from './ffi.js';
import { NR, SOCK } from './consts.js';

const AF_INET = 2;
const SOL_TCP = 6;
const TCP_REPAIR = 19;

/** 0 if setsockopt(TCP_REPAIR, 1) works on a new TCP socket, else the errno (of socket() or of setsockopt()). */
export function tcpRepairErrno(): number {
  const fd = syscallRaw(NR.socket, AF_INET, SOCK.STREAM | SOCK.CLOEXEC, 0);
  if (fd < 0) return -fd;
  try {
    const one = Buffer.alloc(4);
    one.writeInt32LE(1, 0);
    const r = syscallRaw(NR.setsockopt, fd, SOL_TCP, TCP_REPAIR, addressOf(one), 4);
    return r < 0 ? -r : 0;
  } finally { fs.closeSync(fd); }
}

// Passing open files into a target: ckpt sends fds over a unix datagram
// socket with SCM_RIGHTS, and the target, stopped under ptrace, receives them
// with a remote recvmsg. The target gets its end of the socket by
// inheritance (every restored process descends from the husk, which is
// spawned holding it).
//
// struct msghdr (x86_64): name 0, namelen 8, iov 16, iovlen 24, control 32,
// controllen 40, flags 48; 56 bytes. struct cmsghdr: len (size_t) 0, level 8,
// type 12, data 16. struct iovec: base 0, len 8; 16 bytes.

import { sys, addressOf } from './ffi.js';
import { NR, SOCK } from './consts.js';
import { RemoteTask } from './remote.js';

const MSGHDR_SIZE = 56;
const CMSGHDR_SIZE = 16;
const IOVEC_SIZE = 16;
const align8 = (n: number) => (n + 7) & ~7;
/** CMSG_SPACE for n ints. */
const cmsgSpace = (n: number) => CMSGHDR_SIZE + align8(4 * n);

function msghdr(iov: bigint, control: bigint, controlLen: number): Buffer {
  const m = Buffer.alloc(MSGHDR_SIZE);
  m.writeBigUInt64LE(iov, 16);
  m.writeBigUInt64LE(1n, 24);
  m.writeBigUInt64LE(control, 32);
  m.writeBigUInt64LE(BigInt(controlLen), 40);
  return m;
}

/** A connected pair of unix datagram sockets, close-on-exec, open in ckpt. */
export function datagramPair(): [number, number] {
  const fds = Buffer.alloc(8);
  sys('socketpair(AF_UNIX, SOCK_DGRAM)', NR.socketpair, SOCK.AF_UNIX, SOCK.DGRAM | SOCK.CLOEXEC, 0, addressOf(fds));
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/** The most fds one message carries (SCM_MAX_FD). */
export const MAX_FDS_PER_MESSAGE = SOCK.SCM_MAX_FD;

/** Send ckpt's fds `fds` (at most MAX_FDS_PER_MESSAGE) as one message on socket `sock`. */
export function sendFds(sock: number, fds: number[]): void {
  if (fds.length === 0 || fds.length > MAX_FDS_PER_MESSAGE) throw new Error(`internal: sendFds of ${fds.length} fds`);
  const data = Buffer.from([0x63]);
  const iov = Buffer.alloc(IOVEC_SIZE);
  iov.writeBigUInt64LE(addressOf(data), 0);
  iov.writeBigUInt64LE(1n, 8);
  const control = Buffer.alloc(cmsgSpace(fds.length));
  control.writeBigUInt64LE(BigInt(CMSGHDR_SIZE + 4 * fds.length), 0);
  control.writeInt32LE(SOCK.SOL_SOCKET, 8);
  control.writeInt32LE(SOCK.SCM_RIGHTS, 12);
  fds.forEach((fd, i) => control.writeInt32LE(fd, CMSGHDR_SIZE + 4 * i));
  const m = msghdr(addressOf(iov), addressOf(control), control.length);
  sys('sendmsg(SCM_RIGHTS)', NR.sendmsg, sock, addressOf(m), 0);
  // (the buffers must live until the call returns)
  void data; void iov; void control;
}

/** Bytes of scratch memory recvFdsRemote uses in the target. */
export const RECV_SCRATCH = MSGHDR_SIZE + IOVEC_SIZE + 8 + cmsgSpace(MAX_FDS_PER_MESSAGE);

/**
 * In the target: receive one message of `count` fds on its socket `sock`
 * (close-on-exec, at the lowest free numbers), using scratch memory at
 * offset `off`. Returns their numbers in the target, in the order sent.
 */
export function recvFdsRemote(rt: RemoteTask, sock: number, count: number, off: number): number[] {
  const ctlLen = cmsgSpace(count);
  const base = rt.scratch + BigInt(off);
  const iovAt = base + BigInt(MSGHDR_SIZE);
  const dataAt = iovAt + BigInt(IOVEC_SIZE);
  const ctlAt = dataAt + 8n;
  const iov = Buffer.alloc(IOVEC_SIZE);
  iov.writeBigUInt64LE(dataAt, 0);
  iov.writeBigUInt64LE(1n, 8);
  const block = Buffer.concat([msghdr(iovAt, ctlAt, ctlLen), iov, Buffer.alloc(8), Buffer.alloc(ctlLen)]);
  rt.put(block, off);
  rt.call(`recvmsg(${count} fds)`, NR.recvmsg, sock, base, SOCK.MSG_CMSG_CLOEXEC);
  const back = rt.read(base, block.length);
  const flags = back.readInt32LE(48);
  if (flags & SOCK.MSG_CTRUNC) throw new Error(`pid ${rt.pid}: the fds sent to it did not all arrive (MSG_CTRUNC)`);
  const ctl = back.subarray(MSGHDR_SIZE + IOVEC_SIZE + 8);
  const len = Number(ctl.readBigUInt64LE(0));
  if (ctl.readInt32LE(8) !== SOCK.SOL_SOCKET || ctl.readInt32LE(12) !== SOCK.SCM_RIGHTS || len !== CMSGHDR_SIZE + 4 * count) {
    throw new Error(`pid ${rt.pid}: expected ${count} fds over the restore socket, got a control message of ${len} bytes`);
  }
  return Array.from({ length: count }, (_, i) => ctl.readInt32LE(CMSGHDR_SIZE + 4 * i));
}

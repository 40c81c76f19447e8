// Passing open files into a target: ckpt sends fds over a unix datagram
// socket with SCM_RIGHTS, and the target, stopped under ptrace, receives them
// with a remote recvmsg. The target gets its end of the socket by
// inheritance (every restored process descends from the husk, which is
// spawned holding it).
//
// (The layouts of struct msghdr, cmsghdr and iovec are in structs.ts.)

import { sys, addressOf } from './ffi.js';
import { NR, SOCK } from './consts.js';
import { RemoteTask } from './remote.js';
import { MSGHDR, CMSGHDR, IOVEC, cmsgSpace, cmsgLen, iovecArray } from './structs.js';

function msghdr(iov: bigint, control: bigint, controlLen: number): Buffer {
  return MSGHDR.encode({ iov, iovlen: 1, control, controllen: controlLen });
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
  const iov = iovecArray([[addressOf(data), 1]]);
  const control = Buffer.alloc(cmsgSpace(fds.length));
  CMSGHDR.encodeInto(control, { len: cmsgLen(fds.length), level: SOCK.SOL_SOCKET, type: SOCK.SCM_RIGHTS });
  fds.forEach((fd, i) => control.writeInt32LE(fd, CMSGHDR.size + 4 * i));
  const m = msghdr(addressOf(iov), addressOf(control), control.length);
  sys('sendmsg(SCM_RIGHTS)', NR.sendmsg, sock, addressOf(m), 0);
  // (the buffers must live until the call returns)
  void data; void iov; void control;
}

/**
 * In the target: receive one message of `count` fds on its socket `sock`
 * (close-on-exec unless `cloexec` is false; at the lowest free numbers, in
 * order), in a frame of its scratch area. Returns their numbers in the
 * target, in the order sent.
 */
export function recvFdsRemote(rt: RemoteTask, sock: number, count: number, cloexec = true): number[] {
  const ctlLen = cmsgSpace(count);
  // One block: the msghdr, its iovec, one byte of data (8 with padding), the control buffer.
  const iovOff = MSGHDR.size, dataOff = iovOff + IOVEC.size, ctlOff = dataOff + 8;
  const size = ctlOff + ctlLen;
  const back = rt.withScratch((s) => {
    const base = s.alloc(size);
    const block = Buffer.concat([msghdr(base + BigInt(iovOff), base + BigInt(ctlOff), ctlLen), iovecArray([[base + BigInt(dataOff), 1]]), Buffer.alloc(8 + ctlLen)]);
    rt.write(base, block);
    rt.call(`recvmsg(${count} fds)`, NR.recvmsg, sock, base, cloexec ? SOCK.MSG_CMSG_CLOEXEC : 0);
    return s.read(base, size);
  });
  if (MSGHDR.get(back, 'flags') & SOCK.MSG_CTRUNC) throw new Error(`pid ${rt.pid}: the fds sent to it did not all arrive (MSG_CTRUNC)`);
  const ctl = back.subarray(ctlOff);
  const c = CMSGHDR.decode(ctl);
  if (c.level !== SOCK.SOL_SOCKET || c.type !== SOCK.SCM_RIGHTS || c.len !== BigInt(cmsgLen(count))) {
    throw new Error(`pid ${rt.pid}: expected ${count} fds over the restore socket, got a control message of ${c.len} bytes`);
  }
  return Array.from({ length: count }, (_, i) => ctl.readInt32LE(CMSGHDR.size + 4 * i));
}

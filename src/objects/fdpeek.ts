// Looking at a target's fd from ckpt: pidfd_getfd gives ckpt a duplicate of
// the same open file description without touching the target's fd table.

import fs from 'node:fs';
import { sys, addressOf } from '../kernel/ffi.js';
import { NR, IOCTL } from '../kernel/consts.js';

export function peekFd<T>(pid: number, fd: number, fn: (localFd: number) => T): T {
  const pidfd = sys(`pidfd_open(${pid})`, NR.pidfd_open, pid, 0);
  try {
    const local = sys(`pidfd_getfd(${pid}, ${fd})`, NR.pidfd_getfd, pidfd, fd, 0);
    try { return fn(local); } finally { fs.closeSync(local); }
  } finally { fs.closeSync(pidfd); }
}

export function peekFionread(fd: number): number {
  const b = Buffer.alloc(4);
  sys('ioctl(FIONREAD)', NR.ioctl, fd, IOCTL.FIONREAD, addressOf(b));
  return b.readInt32LE(0);
}

/** A duplicate of the target's fd, kept open in ckpt (the caller closes it). */
export function peekFdKeep(pid: number, fd: number): number {
  const pidfd = sys(`pidfd_open(${pid})`, NR.pidfd_open, pid, 0);
  try {
    return sys(`pidfd_getfd(${pid}, ${fd})`, NR.pidfd_getfd, pidfd, fd, 0);
  } finally { fs.closeSync(pidfd); }
}

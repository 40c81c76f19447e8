// userfaultfd for restore: the deferred anonymous areas of a task are
// registered with a userfaultfd made in the task, ckpt copies their pages in
// through a duplicate of it (UFFDIO_COPY, bulk/jobs.ts), and then they are
// unregistered.

import { RemoteTask } from '../../kernel/remote.js';
import { NR, O, F } from '../../kernel/consts.js';
import { big } from './areas.js';
import { DeferredPages, lockArea } from './map.js';

const UFFDIO_API = 0xc018aa3fn;
const UFFDIO_REGISTER = 0xc020aa00n;
const UFFDIO_UNREGISTER = 0x8010aa01n;
const UFFD_API = 0xaa;
const UFFDIO_REGISTER_MODE_MISSING = 1;

/** Create a userfaultfd in the task and register the deferred areas with it; returns its fd (in the task). */
export function registerUffd(rt: RemoteTask, d: DeferredPages, scratchOff: number, minFd: number): number {
  // Keep it above every fd number the image uses: the fd table is rebuilt meanwhile.
  const first = rt.callN('userfaultfd', NR.userfaultfd, O.CLOEXEC);
  const ufd = rt.callN('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, first, F.DUPFD_CLOEXEC, minFd);
  rt.call('close', NR.close, first);
  const api = Buffer.alloc(24);
  api.writeBigUInt64LE(BigInt(UFFD_API), 0);
  rt.call('ioctl(UFFDIO_API)', NR.ioctl, ufd, UFFDIO_API, rt.put(api, scratchOff));
  for (const a of d.areas) {
    const reg = Buffer.alloc(32);
    reg.writeBigUInt64LE(big(a.start), 0);
    reg.writeBigUInt64LE(big(a.end) - big(a.start), 8);
    reg.writeBigUInt64LE(BigInt(UFFDIO_REGISTER_MODE_MISSING), 16);
    rt.call(`ioctl(UFFDIO_REGISTER ${a.start})`, NR.ioctl, ufd, UFFDIO_REGISTER, rt.put(reg, scratchOff));
  }
  return ufd;
}

/** Undo registerUffd once the pages are in; mlock what asked for it. */
export function unregisterUffd(rt: RemoteTask, d: DeferredPages, ufd: number, scratchOff: number): void {
  for (const a of d.areas) {
    const r = Buffer.alloc(16);
    r.writeBigUInt64LE(big(a.start), 0);
    r.writeBigUInt64LE(big(a.end) - big(a.start), 8);
    rt.call(`ioctl(UFFDIO_UNREGISTER ${a.start})`, NR.ioctl, ufd, UFFDIO_UNREGISTER, rt.put(r, scratchOff));
  }
  rt.call('close(userfaultfd)', NR.close, ufd);
  for (const a of d.mlock) lockArea(rt, a);
}


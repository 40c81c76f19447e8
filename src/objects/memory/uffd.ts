// userfaultfd for restore: the deferred anonymous areas of a task are
// registered with a userfaultfd made in the task, ckpt copies their pages in
// through a duplicate of it (UFFDIO_COPY, bulk/jobs.ts), and then they are
// unregistered.

import { RemoteTask } from '../../kernel/remote.js';
import { NR, O, F, UFFD } from '../../kernel/consts.js';
import { uffdioApiArg, uffdioRegisterArg, uffdioRangeArg } from '../../kernel/sys.js';
import { big } from './areas.js';
import { DeferredPages, lockArea } from './map.js';

/** Create a userfaultfd in the task and register the deferred areas with it; returns its fd (in the task). */
export function registerUffd(rt: RemoteTask, d: DeferredPages, scratchOff: number, minFd: number): number {
  // Keep it above every fd number the image uses: the fd table is rebuilt meanwhile.
  const first = rt.callN('userfaultfd', NR.userfaultfd, O.CLOEXEC);
  const ufd = rt.callN('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, first, F.DUPFD_CLOEXEC, minFd);
  rt.call('close', NR.close, first);
  rt.call('ioctl(UFFDIO_API)', NR.ioctl, ufd, UFFD.IOC_API, rt.put(uffdioApiArg(), scratchOff));
  for (const a of d.areas) {
    const reg = uffdioRegisterArg(big(a.start), big(a.end) - big(a.start));
    rt.call(`ioctl(UFFDIO_REGISTER ${a.start})`, NR.ioctl, ufd, UFFD.IOC_REGISTER, rt.put(reg, scratchOff));
  }
  return ufd;
}

/** Undo registerUffd once the pages are in; mlock what asked for it. */
export function unregisterUffd(rt: RemoteTask, d: DeferredPages, ufd: number, scratchOff: number): void {
  for (const a of d.areas) {
    const r = uffdioRangeArg(big(a.start), big(a.end) - big(a.start));
    rt.call(`ioctl(UFFDIO_UNREGISTER ${a.start})`, NR.ioctl, ufd, UFFD.IOC_UNREGISTER, rt.put(r, scratchOff));
  }
  rt.call('close(userfaultfd)', NR.close, ufd);
  for (const a of d.mlock) lockArea(rt, a);
}


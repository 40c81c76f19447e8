// userfaultfd for restore: the deferred anonymous areas of a task are
// registered with a userfaultfd made in the task, the page source copies
// their pages in through ckpt's duplicate of it (UFFDIO_COPY, bulk/jobs.ts),
// and then they are unregistered.

import { closeSync } from 'node:fs';
import { RemoteTask } from '../../kernel/remote.js';
import { NR, O, F, UFFD } from '../../kernel/consts.js';
import { pidfdGetfd, uffdioApiArg, uffdioRegisterArg, uffdioRangeArg } from '../../kernel/sys.js';
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

/**
 * Put the deferred pages of a task in place through a userfaultfd: register
 * the areas, take a duplicate of the fd (pidfd_getfd), let the page source
 * copy the pages in, unregister. With nothing deferred the source still
 * reads (and so checks) all its pages. Returns what each thread copied.
 */
export async function copyInDeferred(rt: RemoteTask, d: DeferredPages, scratchOff: number): Promise<Array<{ bytes: number; ms: number }>> {
  let ufd = -1;
  let local = -1;
  try {
    if (d.segs.length) {
      ufd = registerUffd(rt, d, scratchOff, 3);
      local = pidfdGetfd(rt.pid, ufd);
    }
    const results = await d.pages.copyIn(local, d.segs);
    if (ufd >= 0) unregisterUffd(rt, d, ufd, scratchOff);
    return results;
  } finally {
    if (local >= 0) closeSync(local);
  }
}

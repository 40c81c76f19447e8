// userfaultfd for restore: the deferred anonymous areas of a task are
// registered with a userfaultfd made in the task, the page source copies
// their pages in through ckpt's duplicate of it (UFFDIO_COPY, bulk/jobs.ts),
// and then they are unregistered.

import { closeSync } from 'node:fs';
import { RemoteTask } from '../../kernel/remote.js';
import { O } from '../../kernel/consts.js';
import { pidfdGetfd } from '../../kernel/sys.js';
import * as remote from '../../kernel/rsys.js';
import { big } from './areas.js';
import { DeferredPages, lockArea } from './map.js';

/** Create a userfaultfd in the task and register the deferred areas with it; returns its fd (in the task). */
export function registerUffd(rt: RemoteTask, d: DeferredPages, minFd: number): number {
  // Keep it above every fd number the image uses: the fd table is rebuilt meanwhile.
  const first = remote.userfaultfd(rt, O.CLOEXEC);
  const ufd = remote.fcntlDupfdCloexec(rt, first, minFd);
  remote.close(rt, first);
  remote.uffdioApi(rt, ufd);
  for (const a of d.areas) remote.uffdioRegister(rt, ufd, big(a.start), big(a.end) - big(a.start), a.start);
  return ufd;
}

/** Undo registerUffd once the pages are in; mlock what asked for it. */
export function unregisterUffd(rt: RemoteTask, d: DeferredPages, ufd: number): void {
  for (const a of d.areas) remote.uffdioUnregister(rt, ufd, big(a.start), big(a.end) - big(a.start), a.start);
  remote.close(rt, ufd, 'userfaultfd');
  for (const a of d.mlock) lockArea(rt, a);
}

/**
 * Put the deferred pages of a task in place through a userfaultfd: register
 * the areas, take a duplicate of the fd (pidfd_getfd), let the page source
 * copy the pages in, unregister. With nothing deferred the source still
 * reads (and so checks) all its pages. Returns what each thread copied.
 */
export async function copyInDeferred(rt: RemoteTask, d: DeferredPages): Promise<Array<{ bytes: number; ms: number }>> {
  let ufd = -1;
  let local = -1;
  try {
    if (d.segs.length) {
      ufd = registerUffd(rt, d, 3);
      local = pidfdGetfd(rt.pid, ufd);
    }
    const results = await d.pages.copyIn(local, d.segs);
    if (ufd >= 0) unregisterUffd(rt, d, ufd);
    return results;
  } finally {
    if (local >= 0) closeSync(local);
  }
}

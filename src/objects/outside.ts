// Event objects (eventfd, signalfd, timerfd, inotify, fanotify, pidfd) held
// by a process outside the dumped tree too: after restore that process would
// keep the old object and the tree a new one, so the two would no longer
// see each other (an eventfd used to signal between them, a timer or a
// queue of events they share). The kinds refuse such objects. Their fds all
// name one anonymous inode, so candidates are found by the name of the
// link and compared with kcmp. One scan of /proc per dump.

import fs from 'node:fs';
import { KCMP } from '../kernel/consts.js';
import { kcmpSame } from '../kernel/sys.js';
import { DumpFileCtx, FdFacts } from './kind.js';

type Holders = Map<string, Array<{ pid: number; fd: number }>>;

/** Fds of processes outside the tree, by the link they show (anon_inode:[eventfd], ...), for links matching `re`. */
function outsideFds(ctx: DumpFileCtx): Holders {
  let m = ctx.state.get('anon:outside') as Holders | undefined;
  if (m) return m;
  m = new Map();
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || ctx.treeIds.has(Number(p)) || Number(p) === process.pid) continue;
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link: string;
      try { link = fs.readlinkSync(`/proc/${p}/fd/${fd}`); } catch { continue; }
      if (!link.startsWith('anon_inode:')) continue;
      const list = m.get(link) ?? [];
      list.push({ pid: Number(p), fd: Number(fd) });
      m.set(link, list);
    }
  }
  ctx.state.set('anon:outside', m);
  return m;
}

/** A PID outside the tree that holds the same open file description as this fd, if any. */
export function outsideHolder(f: FdFacts, ctx: DumpFileCtx): number | undefined {
  for (const c of outsideFds(ctx).get(f.link) ?? []) {
    if (kcmpSame(f.pid, c.pid, KCMP.FILE, f.fd, c.fd)) return c.pid;
  }
  return undefined;
}

/** Refuse an object also held outside the tree: the message names both processes. */
export function refuseOutside(f: FdFacts, ctx: DumpFileCtx, what: string, refuse: (msg: string) => Error): void {
  const other = outsideHolder(f, ctx);
  if (other !== undefined) {
    throw refuse(`pid ${f.pid}: fd ${f.fd} (${f.link}): the ${what} is also held by pid ${other}, outside the tree; ${what}s shared with processes outside the tree are not supported (the two would no longer share it after restore)`);
  }
}

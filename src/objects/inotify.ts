// inotify: an instance with its watches. Each watch is kept with its watch
// descriptor (programs keep the numbers inotify_add_watch gave them), its
// mask (events, IN_ONESHOT, IN_EXCL_UNLINK) and its inode (a file handle
// from fdinfo; see fshandle.ts). Events already queued cannot be put back
// into a new instance: a dump with events queued is refused, naming how
// many bytes wait (FIONREAD).
//
// On restore ckpt makes the instance itself. The kernel gives watch
// descriptors in rising order from 1 (cyclically: a removed number is not
// given again), so ckpt adds the watches in the order of their numbers and
// fills each gap with a watch on a directory of its own that it removes at
// once; then it reads and drops what that queued (IN_IGNORED), and with it
// anything that happened while the program was checkpointed.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as z from 'zod/mini';
import { O, IN } from '../kernel/consts.js';
import { inotifyInit, inotifyAddWatch, inotifyRmWatch, drainInotify, setFl } from '../kernel/sys.js';
import { fdinfoLines } from '../kernel/proc.js';
import { refused, badImage, conflict } from '../errors.js';
import { fileId, u32, int, superRefine } from '../image/schema.js';
import { defineKind } from './kind.js';
import { InodeRef, fields, inodeAtDump, openInode, refuseNotifyState } from './fshandle.js';

/** The highest watch descriptor ckpt makes again (each number below it is made and removed once). */
export const MAX_WD = 1 << 20;
const WATCH_MASK = IN.ALL_EVENTS | IN.EXCL_UNLINK | IN.ONESHOT;

export const InotifyWatch = z.object({
  wd: int(1, MAX_WD),
  /** Events and flags (IN_ONESHOT, IN_EXCL_UNLINK), as fdinfo gives them. */
  mask: u32.check(z.refine((m) => (m & ~WATCH_MASK) === 0 && (m & IN.ALL_EVENTS) !== 0, 'not the mask of an inotify watch')),
  inode: InodeRef,
});

export const InotifyFile = z.object({
  id: fileId,
  kind: z.literal('inotify'),
  watches: z.array(InotifyWatch).check(superRefine((ws, ctx) => {
    const seen = new Set<number>();
    ws.forEach((w, i) => {
      if (seen.has(w.wd)) ctx.addIssue({ code: 'custom', message: `watch descriptor ${w.wd} is listed twice`, path: [i, 'wd'], input: w.wd });
      seen.add(w.wd);
    });
  })),
  /** status flags (O_NONBLOCK...), without O_CLOEXEC and the access mode */
  flags: u32,
});
export type InotifyFile = z.infer<typeof InotifyFile>;

export const inotifyKind = defineKind<InotifyFile>({
  kind: 'inotify',
  schema: InotifyFile,
  takes: (f) => f.object.type === 'inotify',
  dump(f, ctx) {
    refuseNotifyState(f, ctx, 'an inotify instance');
    const where = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
    const watches: InotifyFile['watches'] = [];
    for (const line of fdinfoLines(f.pid, f.fd)) {
      if (!line.startsWith('inotify ')) continue;
      const m = fields(line);
      const wd = parseInt(m.get('wd') ?? '', 16), mask = parseInt(m.get('mask') ?? '', 16);
      if (!(wd > 0) || !Number.isFinite(mask)) throw refused(`${where}: a watch line this ckpt cannot read: ${line}`);
      if (wd > MAX_WD) throw refused(`${where}: watch descriptor ${wd} is above ${MAX_WD}; ckpt makes watch descriptors again one by one from 1, and does not go that high`);
      if ((mask & ~WATCH_MASK) !== 0 || (mask & IN.ALL_EVENTS) === 0) throw refused(`${where}: watch ${wd} has mask ${mask.toString(16)}, which this ckpt does not know`);
      let inode;
      try { inode = inodeAtDump(m); } catch (e) { throw refused(`${where}: watch ${wd}: ${(e as Error).message}`); }
      watches.push({ wd, mask, inode });
    }
    watches.sort((a, b) => a.wd - b.wd);
    return { kind: 'inotify', watches, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE) };
  },
  describe: (i) => `inotify instance, ${i.watches.length} watches${i.watches.length ? ': ' + i.watches.map((w) => `${w.wd} ${w.inode.path}`).join(', ') : ''}`,
  check(i) {
    if (i.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${i.id}: the status flags of an inotify instance hold an access mode`);
  },
  phase: 'objects',
  create(i) {
    const fd = inotifyInit(O.CLOEXEC | O.NONBLOCK);
    let spare = '';
    try {
      let next = 1;
      const watches = [...i.watches].sort((a, b) => a.wd - b.wd);
      for (const w of watches) {
        // Each number below this watch's is taken and given back once.
        for (; next < w.wd; next++) {
          if (!spare) spare = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-inotify-'));
          const got = inotifyAddWatch(fd, spare, IN.ALL_EVENTS);
          if (got !== next) throw new Error(`a watch to skip watch descriptor ${next} got ${got}`);
          inotifyRmWatch(fd, got);
          if (next % 4096 === 0) drainInotify(fd);
        }
        let pfd: number;
        try { pfd = openInode(w.inode); } catch (e) { throw conflict(`open file ${i.id}: inotify watch ${w.wd}: ${(e as Error).message}`); }
        let got: number;
        try { got = inotifyAddWatch(fd, `/proc/self/fd/${pfd}`, w.mask); } finally { fs.closeSync(pfd); }
        if (got < 0) throw conflict(`open file ${i.id}: inotify watch ${w.wd} on ${w.inode.path}: inotify_add_watch failed (errno ${-got})`);
        if (got !== w.wd) throw new Error(`inotify watch ${w.wd} on ${w.inode.path} got watch descriptor ${got}`);
        next = w.wd + 1;
      }
      drainInotify(fd);
      setFl(fd, i.flags);
    } catch (e) { fs.closeSync(fd); throw e; } finally { if (spare) fs.rmdirSync(spare); }
    return { local: fd, closeAfter: true };
  },
});

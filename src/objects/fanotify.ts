// fanotify: a group with its init flags (notification class, FAN_REPORT_*
// modes, limits), the open flags of the files its events carry
// (event_f_flags), and its marks: on inodes (a file handle, see
// fshandle.ts), on mounts (the mount's point and root) and on filesystems
// (a mount of the filesystem), each with its mask, its ignore mask and its
// flags (FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_IGNORE, FAN_MARK_EVICTABLE).
// Events already queued cannot be put back: a dump with events queued is
// refused, naming how many bytes wait (FIONREAD). Marks for permission
// events are refused: an event the program read but did not answer yet
// cannot be seen, and the process waiting for the answer would be let go.
// On restore ckpt makes the group itself and marks each object again.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, FAN, AT_FDCWD } from '../kernel/consts.js';
import { fanotifyInit, fanotifyMark, setFl, setCloexec } from '../kernel/sys.js';
import { fdinfoLines, readMountinfo, kernelDev, MountEntry } from '../kernel/proc.js';
import { refused, badImage, conflict } from '../errors.js';
import { fileId, u32, absPath, hexMask } from '../image/schema.js';
import { defineKind } from './kind.js';
import { InodeRef, fields, inodeAtDump, openInode, refuseNotifyState } from './fshandle.js';

/** The mark flags fdinfo reports (mflags) and ckpt gives again. */
const MARK_FLAGS = FAN.MARK_IGNORED_SURV_MODIFY | FAN.MARK_EVICTABLE | FAN.MARK_IGNORE;

const MountRef = z.object({
  /** Where it is mounted, the directory of its filesystem it shows, and the filesystem's device (kernel encoding). */
  point: absPath, root: absPath, dev: u32,
});
type MountRef = z.infer<typeof MountRef>;

const markCommon = {
  /** The events (hex, 64 bits). */
  mask: hexMask,
  /** The events ignored (hex). */
  ignored: hexMask,
  /** FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_EVICTABLE, FAN_MARK_IGNORE */
  mflags: u32.check(z.refine((f) => (f & ~MARK_FLAGS) === 0, 'not fanotify mark flags this ckpt knows')),
};

export const FanotifyMark = z.discriminatedUnion('type', [
  z.object({ type: z.literal('inode'), inode: InodeRef, ...markCommon }),
  z.object({ type: z.literal('mount'), mount: MountRef, ...markCommon }),
  z.object({ type: z.literal('filesystem'), mount: MountRef, ...markCommon }),
]);
export type FanotifyMark = z.infer<typeof FanotifyMark>;

export const FanotifyFile = z.object({
  id: fileId,
  kind: z.literal('fanotify'),
  /** fanotify_init flags as fdinfo shows them (FAN_CLOEXEC and FAN_NONBLOCK as they were given; what the fd has now is in the fd table and `flags`). */
  initFlags: u32,
  /** fanotify_init event_f_flags: the open flags of the files events carry. */
  eventFlags: u32,
  marks: z.array(FanotifyMark),
  /** status flags (O_NONBLOCK...), without O_CLOEXEC and the access mode */
  flags: u32,
});
export type FanotifyFile = z.infer<typeof FanotifyFile>;

/**
 * The mount with that id, or (by device) one of the filesystem, preferring
 * one that shows its whole filesystem. From ckpt's own mount table (the
 * tree is in ckpt's mount namespace), so that the paths are ckpt's even for
 * a program in a chroot.
 */
function mountOf(m: { id?: number; dev?: number }): MountRef | undefined {
  const all = readMountinfo('self');
  let e: MountEntry | undefined;
  if (m.id !== undefined) e = all.find((x) => x.id === m.id);
  else e = all.filter((x) => x.dev === m.dev).sort((a, b) => Number(b.root === '/') - Number(a.root === '/'))[0];
  return e && { point: e.point, root: e.root, dev: e.dev };
}

export const fanotifyKind = defineKind<FanotifyFile>({
  kind: 'fanotify',
  schema: FanotifyFile,
  takes: (f) => f.object.type === 'fanotify',
  dump(f, ctx) {
    refuseNotifyState(f, ctx, 'a fanotify group');
    const where = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
    let initFlags = -1, eventFlags = -1;
    const marks: FanotifyMark[] = [];
    for (const line of fdinfoLines(f.pid, f.fd)) {
      if (!line.startsWith('fanotify ')) continue;
      const m = fields(line);
      if (m.has('flags') && m.has('event-flags')) {
        initFlags = parseInt(m.get('flags')!, 16);
        eventFlags = parseInt(m.get('event-flags')!, 16);
        continue;
      }
      const mflags = parseInt(m.get('mflags') ?? '', 16), mask = m.get('mask'), ignored = m.get('ignored_mask');
      if (!Number.isFinite(mflags) || mask === undefined || ignored === undefined || !/^[0-9a-f]{1,16}$/.test(mask) || !/^[0-9a-f]{1,16}$/.test(ignored)) {
        throw refused(`${where}: a mark line this ckpt cannot read: ${line}`);
      }
      if ((mflags & ~MARK_FLAGS) !== 0) throw refused(`${where}: a mark with flags ${mflags.toString(16)}, which this ckpt does not know: ${line}`);
      if ((BigInt('0x' + mask) | BigInt('0x' + ignored)) & BigInt(FAN.PERM_EVENTS)) {
        throw refused(`${where}: a fanotify mark for permission events (mask ${mask}); an event read but not answered yet cannot be seen, so such marks are not supported yet`);
      }
      const common = { mask: BigInt('0x' + mask).toString(16), ignored: BigInt('0x' + ignored).toString(16), mflags };
      if (m.has('ino')) {
        let inode;
        try { inode = inodeAtDump(m); } catch (e) { throw refused(`${where}: an inode mark: ${(e as Error).message}`); }
        marks.push({ type: 'inode', inode, ...common });
      } else if (m.has('mnt_id')) {
        const id = parseInt(m.get('mnt_id')!, 16);
        const mount = mountOf({ id });
        if (!mount) throw refused(`${where}: a mount mark on mount ${id}, which is not in ckpt's mount table`);
        marks.push({ type: 'mount', mount, ...common });
      } else if (m.has('sdev')) {
        const dev = parseInt(m.get('sdev')!, 16);
        const mount = mountOf({ dev });
        if (!mount) throw refused(`${where}: a filesystem mark on device ${m.get('sdev')}, of which ckpt's mount table has no mount`);
        marks.push({ type: 'filesystem', mount, ...common });
      } else {
        throw refused(`${where}: a fanotify mark of a kind this ckpt does not know: ${line}`);
      }
    }
    if (initFlags < 0) throw refused(`${where}: its fdinfo has no fanotify flags line this ckpt can read`);
    return { kind: 'fanotify', initFlags, eventFlags, marks, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE) };
  },
  describe: (g) => `fanotify group, flags ${g.initFlags.toString(16)}, ${g.marks.length} marks${g.marks.length ? ': ' + g.marks.map((m) => `${m.type} ${m.type === 'inode' ? m.inode.path : m.mount.point} mask ${m.mask}${m.ignored !== '0' ? ` ignoring ${m.ignored}` : ''}`).join(', ') : ''}`,
  check(g) {
    if (g.flags & O.ACCMODE) throw badImage(`image file files.json: open file ${g.id}: the status flags of a fanotify group hold an access mode`);
  },
  phase: 'objects',
  create(g) {
    const fd = fanotifyInit(g.initFlags, g.eventFlags);
    try {
      setCloexec(fd);
      for (const m of g.marks) addMark(fd, g, m);
      setFl(fd, g.flags);
    } catch (e) { fs.closeSync(fd); throw e; }
    return { local: fd, closeAfter: true };
  },
});

/** An O_PATH fd of ckpt's at a mount's point, checked to be that mount (or, for a filesystem mark, on that filesystem). */
function openMount(g: FanotifyFile, r: MountRef, whole: boolean): number {
  let fd: number;
  try { fd = fs.openSync(r.point, O.PATH | O.CLOEXEC); } catch (e) { throw conflict(`open file ${g.id}: the mount at ${r.point} of a fanotify mark: ${(e as Error).message}`); }
  const st = fs.fstatSync(fd, { bigint: true });
  let ok = kernelDev(st.dev) === r.dev;
  if (ok && !whole) {
    const id = Number(fdinfoLines('self', fd).find((l) => l.startsWith('mnt_id:'))?.slice(7).trim());
    const here = readMountinfo('self').find((x) => x.id === id);
    ok = !!here && here.point === r.point && here.root === r.root && here.dev === r.dev;
  }
  if (!ok) { fs.closeSync(fd); throw conflict(`open file ${g.id}: a fanotify ${whole ? 'filesystem' : 'mount'} mark was on ${r.point} (device ${r.dev.toString(16)}, root ${r.root}); that mount is not there`); }
  return fd;
}

function addMark(fd: number, g: FanotifyFile, m: FanotifyMark): void {
  let target: number;
  let type = 0;
  if (m.type === 'inode') {
    try { target = openInode(m.inode); } catch (e) { throw conflict(`open file ${g.id}: a fanotify inode mark: ${(e as Error).message}`); }
  } else {
    target = openMount(g, m.mount, m.type === 'filesystem');
    type = m.type === 'mount' ? FAN.MARK_MOUNT : FAN.MARK_FILESYSTEM;
  }
  const what = m.type === 'inode' ? m.inode.path : m.mount.point;
  try {
    const base = FAN.MARK_ADD | type | (m.mflags & FAN.MARK_EVICTABLE);
    const at = `/proc/self/fd/${target}`;
    const mask = BigInt('0x' + m.mask), ignored = BigInt('0x' + m.ignored);
    if (mask !== 0n) {
      const r = fanotifyMark(fd, base, mask, AT_FDCWD, at);
      if (r < 0) throw conflict(`open file ${g.id}: fanotify_mark of ${m.type} ${what} with mask ${m.mask} failed (errno ${-r})`);
    }
    if (ignored !== 0n) {
      const how = (m.mflags & FAN.MARK_IGNORE ? FAN.MARK_IGNORE : FAN.MARK_IGNORED_MASK) | (m.mflags & FAN.MARK_IGNORED_SURV_MODIFY);
      const r = fanotifyMark(fd, base | how, ignored, AT_FDCWD, at);
      if (r < 0) throw conflict(`open file ${g.id}: fanotify_mark of ${m.type} ${what} ignoring ${m.ignored} failed (errno ${-r})`);
    }
  } finally { fs.closeSync(target); }
}

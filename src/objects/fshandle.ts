// The inodes that inotify watches and fanotify marks are on: fdinfo names
// each by its filesystem's device, its inode number and a file handle
// (name_to_handle_at). At dump ckpt opens the handle (open_by_handle_at on
// a mount of that filesystem) to learn the inode's path, for `ckpt info`
// and for a host where that filesystem is not mounted; on restore it opens
// the same handle again, which finds the very inode even if it was renamed
// since, and checks its inode number. Where no mount of the device exists,
// the path is opened (the inode is then the one at that path). Also what
// both kinds refuse alike (refuseNotifyState).

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O } from '../kernel/consts.js';
import { openByHandleAt, pidfdGetfd, fionread } from '../kernel/sys.js';
import { refused } from '../errors.js';
import { DumpFileCtx, FdFacts } from './kind.js';
import { refuseOutside } from './outside.js';
import { readMountinfo, kernelDev } from '../kernel/proc.js';
import { u32, i32, regex, absPath } from '../image/schema.js';

export const InodeRef = z.object({
  /** The filesystem's device, as the kernel encodes it (major << 20 | minor). */
  dev: u32,
  /** The inode number (decimal). */
  ino: z.string().check(regex(/^(0|[1-9][0-9]{0,19})$/, 'expected a decimal inode number')),
  /** The file handle: its type and its bytes in hex. */
  handleType: i32,
  handle: z.string().check(regex(/^([0-9a-f]{2}){1,128}$/, 'expected the bytes of a file handle in hex')),
  /** Its path at dump. */
  path: absPath,
});
export type InodeRef = z.infer<typeof InodeRef>;

/** Fields of one fdinfo line: `key:value` words after the line's first word(s). */
export function fields(line: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of line.split(/\s+/)) {
    const i = w.indexOf(':');
    if (i > 0) m.set(w.slice(0, i), w.slice(i + 1));
  }
  return m;
}

/** An fd of ckpt's on the filesystem of device `dev` (kernel encoding), or -1; the caller closes it. */
function mountFd(dev: number): number {
  const mounts = readMountinfo('self').filter((m) => m.dev === dev);
  mounts.sort((a, b) => Number(b.root === '/') - Number(a.root === '/'));
  for (const m of mounts) {
    try { return fs.openSync(m.point, O.RDONLY | O.NONBLOCK | O.CLOEXEC); } catch { /* try the next */ }
  }
  return -1;
}

/** Open the inode of a handle (O_PATH), or -errno; -ENODEV when no mount of its filesystem is there. */
function openHandle(dev: number, type: number, handle: Buffer): number {
  const mfd = mountFd(dev);
  if (mfd < 0) return -19;
  try { return openByHandleAt(mfd, type, handle, O.PATH | O.CLOEXEC); } finally { fs.closeSync(mfd); }
}

/**
 * At dump: the inode of an fdinfo line (fields sdev, ino, fhandle-type,
 * f_handle), with its path. Throws an Error with the reason when it cannot
 * be named.
 */
export function inodeAtDump(f: Map<string, string>): InodeRef {
  const sdev = f.get('sdev'), ino = f.get('ino'), type = f.get('fhandle-type'), h = f.get('f_handle');
  if (sdev === undefined || ino === undefined) throw new Error('fdinfo names no inode');
  if (type === undefined || h === undefined) throw new Error(`inode ${parseInt(ino, 16)} on device ${sdev} has no file handle (its filesystem cannot export one)`);
  const dev = parseInt(sdev, 16);
  const fd = openHandle(dev, parseInt(type, 16), Buffer.from(h, 'hex'));
  if (fd < 0) throw new Error(`inode ${parseInt(ino, 16)} on device ${sdev}: its file handle cannot be opened (errno ${-fd})`);
  try {
    const path = fs.readlinkSync(`/proc/self/fd/${fd}`);
    if (!path.startsWith('/') || path.endsWith(' (deleted)')) throw new Error(`inode ${parseInt(ino, 16)} on device ${sdev} has no path (${path}): it was deleted`);
    return { dev, ino: BigInt('0x' + ino).toString(), handleType: parseInt(type, 16), handle: h.toLowerCase(), path };
  } finally { fs.closeSync(fd); }
}

/** On restore: an O_PATH fd of ckpt's on the inode (the caller closes it). Throws an Error with the reason. */
export function openInode(r: InodeRef): number {
  let fd = openHandle(r.dev, r.handleType, Buffer.from(r.handle, 'hex'));
  if (fd === -19) {
    // No mount of that filesystem here: the inode at the path.
    try { fd = fs.openSync(r.path, O.PATH | O.CLOEXEC); } catch (e) { throw new Error(`${r.path}: ${(e as Error).message}`); }
    return fd;
  }
  if (fd < 0) throw new Error(`${r.path} (inode ${r.ino}): its file handle cannot be opened (errno ${-fd}): it was deleted`);
  const st = fs.fstatSync(fd, { bigint: true });
  if (st.ino.toString() !== r.ino || kernelDev(st.dev) !== r.dev) {
    fs.closeSync(fd);
    throw new Error(`${r.path}: the file handle opens inode ${st.ino}, not ${r.ino}`);
  }
  return fd;
}

/**
 * What an inotify instance or a fanotify group (`what`, with its article)
 * cannot be dumped with: signal-driven I/O (its owner is not kept), a holder
 * outside the tree, and events queued but not read (they cannot be put back).
 */
export function refuseNotifyState(f: FdFacts, ctx: DumpFileCtx, what: string): void {
  const where = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
  if (f.flags & O.ASYNC) throw refused(`${where}: ${what} with signal-driven I/O (O_ASYNC); its owner is not kept yet`);
  refuseOutside(f, ctx, what.replace(/^an? /, ''), refused);
  const dup = pidfdGetfd(f.pid, f.fd);
  let queued: number;
  try { queued = fionread(dup); } finally { fs.closeSync(dup); }
  if (queued > 0) throw refused(`${where}: ${what} with ${queued} bytes of events queued, not yet read; queued events cannot be put back on restore (dump again once the program has read them)`);
}

// Files opened by path: regular files, directories, FIFOs and the harmless
// character devices (/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom),
// and anything a path leads to held with O_PATH (symbolic links opened with
// O_PATH|O_NOFOLLOW are the link itself). They are reopened by path with the
// same flags and offset.
//
// Files, directories and FIFOs deleted (or replaced by another file) while
// open are `ghost` descriptions: the inode itself is stored in the image
// (inodes.ts) and each description is a new open of it.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, SEEK } from '../kernel/consts.js';
import { major, minor } from '../kernel/fdtype.js';
import { refused, conflict, badImage } from '../errors.js';
import { pipeSize, setPipeSize, peekPipe, lseek, pidfdGetfd } from '../kernel/sys.js';
import { fileId, u32, dec63, count, pid, absPath, refine, int } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx, RestoreFileCtx } from './kind.js';
import { isGhostName, O_TMPFILE_BIT, inodeOpenKind } from './inodes.js';

/** A 64-bit stat number as a JSON number: a whole number, not negative, below 2^64. */
const statNum = z.number().check(z.gte(0), z.lt(2 ** 64), refine((n) => Number.isInteger(n), 'expected a whole number'));

export const PathFile = z.object({
  id: fileId,
  kind: z.literal('path'),
  // (lnk, sock, blk: held with O_PATH only)
  type: z.enum(['reg', 'dir', 'chr', 'fifo', 'lnk', 'sock', 'blk']),
  path: absPath,
  /** open flags, without O_CLOEXEC (a property of each fd) */
  flags: u32,
  pos: dec63,
  mode: u32,
  size: count,
  dev: statNum, // (stat's numbers: an inode above 2^53 is rounded, as fs.stat gives it; informational at restore)
  ino: statNum,
  rdev: count,
  /** The path is under /proc/PID of a process of the tree: checked once that process exists again. */
  procPid: z.optional(pid),
  /** A FIFO: its capacity (F_GETPIPE_SZ) while it was open. */
  pipeSize: z.optional(int(4096, 2 ** 31)),
  /** A FIFO: the image file with the bytes buffered in it, when there were some. */
  data: z.optional(z.string()),
  /** A symbolic link held with O_PATH|O_NOFOLLOW: where it points (checked at restore). */
  target: z.optional(z.string()),
});
export type PathFile = z.infer<typeof PathFile>;

const SAFE_CHR = new Set(['1:3', '1:5', '1:7', '1:8', '1:9']); // null, zero, full, random, urandom

function dumpPath(f: FdFacts, ctx: DumpFileCtx): Omit<PathFile, 'id'> {
  const { pid, st } = f;
  const where = `pid ${pid}: fd ${f.fd} (${f.link})`;
  if (f.link.endsWith(' (deleted)')) throw refused(`${where}: a deleted ${f.object.noun.replace(/^an? /, '')}; only deleted files, directories and FIFOs are supported`);
  if (!f.link.startsWith('/')) throw refused(`${where}: not a file reachable by path`);
  const oPath = (f.flags & O.PATH) !== 0;
  let type: PathFile['type'];
  if (st.isSymbolicLink()) type = 'lnk'; // (only O_PATH|O_NOFOLLOW holds a link itself)
  else if (f.object.type === 'file') type = 'reg';
  else if (f.object.type === 'dir') type = 'dir';
  else if (f.object.type === 'fifo') type = 'fifo';
  else if (oPath && st.isSocket()) type = 'sock';
  else if (oPath && st.isBlockDevice()) type = 'blk';
  else if (oPath && st.isCharacterDevice()) type = 'chr';
  else {
    const id = `${major(st.rdev)}:${minor(st.rdev)}`;
    if (!SAFE_CHR.has(id) || !st.isCharacterDevice()) throw refused(`${where}: character device ${id} is not supported`);
    type = 'chr';
  }
  // A path that now leads to another file (a mount over it, another root) would restore the wrong file.
  let byPath: fs.Stats | null = null;
  try { byPath = type === 'lnk' ? fs.lstatSync(f.link) : fs.statSync(f.link); } catch { /* checked below */ }
  if (!byPath || byPath.ino !== st.ino || byPath.dev !== st.dev) {
    throw refused(`${where}: the path now leads to a different file than the one open (a mount over it?); such files are not supported yet`);
  }
  const d: Omit<PathFile, 'id'> = {
    kind: 'path', type, path: f.link, flags: f.flags & ~(O.CLOEXEC | O_TMPFILE_BIT), pos: f.pos.toString(), mode: st.mode,
    size: type === 'reg' ? st.size : 0, dev: st.dev, ino: st.ino, rdev: st.rdev,
  };
  if (type === 'lnk') d.target = fs.readlinkSync(f.link);
  const proc = /^\/proc\/([0-9]+)(\/|$)/.exec(f.link);
  if (proc && ctx.treeIds.has(Number(proc[1]))) d.procPid = Number(proc[1]);
  if (type === 'fifo' && !oPath) Object.assign(d, dumpFifo(f, ctx));
  return d;
}

/**
 * A FIFO's capacity and the data buffered in it, read once per FIFO without
 * consuming it: tee from a copy of this fd when it reads (pidfd_getfd: no new
 * reader comes and goes, which would wake the FIFO's waiters), else from a
 * read end of ckpt's own, opened through /proc/PID/fd/N (which opens the
 * FIFO itself).
 */
function dumpFifo(f: FdFacts, ctx: DumpFileCtx): { pipeSize: number; data?: string } {
  const fifos = (ctx.state.get('fifo') ?? new Map()) as Map<number, { pipeSize: number; data?: string }>;
  ctx.state.set('fifo', fifos);
  let got = fifos.get(f.st.ino);
  if (!got) {
    const reads = (f.flags & O.PATH) === 0 && (f.flags & O.ACCMODE) !== O.WRONLY;
    const r = reads ? pidfdGetfd(f.pid, f.fd) : fs.openSync(`/proc/${f.pid}/fd/${f.fd}`, O.RDONLY | O.NONBLOCK | O.CLOEXEC);
    try {
      const size = pipeSize(r);
      const bytes = peekPipe(r, size);
      got = { pipeSize: size, ...(bytes.length ? { data: ctx.writeData(`fifo-${f.st.ino}`, bytes) } : {}) };
    } finally { fs.closeSync(r); }
    fifos.set(f.st.ino, got);
  }
  return got;
}

/**
 * Before a FIFO with data (or a capacity of its own) is opened in the tree:
 * ckpt opens it too (read-write, which never blocks), gives it its capacity
 * and writes the data in, and holds it until every fd is installed, so the
 * data stays buffered until the tree holds the FIFO.
 */
function prepareFifo(f: PathFile, ctx: RestoreFileCtx): void {
  if (!f.data && !f.pipeSize) return;
  const done = (ctx.state.get('fifo') ?? new Set()) as Set<string>;
  ctx.state.set('fifo', done);
  if (done.has(f.path)) return;
  done.add(f.path);
  const fd = fs.openSync(f.path, O.RDWR | O.NONBLOCK | O.CLOEXEC);
  ctx.onDone(() => fs.closeSync(fd));
  if (f.pipeSize && pipeSize(fd) !== f.pipeSize) {
    const set = setPipeSize(fd, f.pipeSize);
    if (set < 0) throw conflict(`open file ${f.id}: the FIFO ${f.path} had a capacity of ${f.pipeSize} bytes; this host refuses it (errno ${-set})`);
  }
  if (f.data) {
    const data = ctx.readData(f.data);
    let at = 0;
    while (at < data.length) at += fs.writeSync(fd, data, at, data.length - at);
  }
}

/** Is the file still there and the same? */
function checkPath(f: PathFile): void {
  let st: fs.Stats;
  try { st = f.type === 'lnk' ? fs.lstatSync(f.path) : fs.statSync(f.path); } catch {
    throw conflict(`open file ${f.id}: ${f.path} no longer exists`);
  }
  const kindOk = f.type === 'reg' ? st.isFile() : f.type === 'dir' ? st.isDirectory() : f.type === 'fifo' ? st.isFIFO()
    : f.type === 'lnk' ? st.isSymbolicLink() : f.type === 'sock' ? st.isSocket() : f.type === 'blk' ? st.isBlockDevice() && st.rdev === f.rdev
    : st.isCharacterDevice() && st.rdev === f.rdev;
  if (!kindOk) throw conflict(`open file ${f.id}: ${f.path} is no longer a ${f.type}`);
  if (f.type === 'lnk' && f.target !== undefined && fs.readlinkSync(f.path) !== f.target) {
    throw conflict(`open file ${f.id}: the symbolic link ${f.path} now points to ${fs.readlinkSync(f.path)}, not ${f.target}`);
  }
  if (f.type === 'reg' && st.size !== f.size && !f.path.startsWith('/proc/')) {
    throw conflict(`open file ${f.id}: ${f.path} changed size since the dump (${f.size} -> ${st.size} bytes); restoring would give the program a file it did not have`);
  }
}

export const pathKind = defineKind<PathFile>({
  kind: 'path',
  schema: PathFile,
  takes: (f) => !isGhost(f) && f.object.type !== 'memfd' &&
    (['file', 'dir', 'fifo', 'chr'].includes(f.object.type) || ((f.flags & O.PATH) !== 0 && f.link.startsWith('/'))),
  dump: dumpPath,
  describe: (f) => `${f.type} ${f.path} flags 0${f.flags.toString(8)} pos ${f.pos}`,
  // (a file of the tree's own /proc entries exists only once the tree does: checked when it is opened)
  check: (f, ctx) => {
    if (f.procPid === undefined) checkPath(f);
    if (f.data && !ctx.hasFile(f.data)) throw badImage(`image file files.json: open file ${f.id}: its data file ${f.data} is not in the manifest`);
  },
  phase: 'objects',
  // Opened by ckpt (as root, as the restored process still is at this point) and sent to the tree: no remote call.
  create(f, _rt, ctx) {
    if (f.procPid !== undefined) checkPath(f);
    const oPath = (f.flags & O.PATH) !== 0;
    if (f.type === 'fifo' && !oPath) prepareFifo(f, ctx);
    // (a file made with O_TMPFILE, and linked since, has O_DIRECTORY in its flags, which no open of a file can have again)
    const notDir = f.type !== 'dir' ? O.DIRECTORY : 0;
    const flags = oPath ? (f.flags & ~O_TMPFILE_BIT) | O.CLOEXEC : (f.flags & ~(O.CREAT | O.TRUNC | O.EXCL | O.NOCTTY | O_TMPFILE_BIT | notDir)) | O.CLOEXEC;
    // Opening one end of a FIFO blocks until the other end exists: hold both ends briefly.
    const helper = f.type === 'fifo' && !oPath ? fs.openSync(f.path, O.RDWR | O.CLOEXEC | O.NONBLOCK) : -1;
    let fd: number;
    try {
      fd = fs.openSync(f.path, flags);
    } catch (e) {
      throw conflict(`open file ${f.id}: cannot open ${f.path}: ${(e as Error).message}`);
    } finally {
      if (helper >= 0) fs.closeSync(helper);
    }
    if (oPath) return { local: fd, closeAfter: true };
    if ((f.type === 'reg' || f.type === 'dir') && f.pos !== '0') lseek(fd, BigInt(f.pos), SEEK.SET);
    return { local: fd, closeAfter: true };
  },
});

// ---- files deleted while open ----

/** A file, directory or FIFO deleted (or replaced) while open, or anything held with O_PATH so: its inode is in the image. */
function isGhost(f: FdFacts): boolean {
  return f.link.startsWith('/') && f.object.type !== 'memfd' && isGhostName(f.link) &&
    (['file', 'dir', 'fifo'].includes(f.object.type) || (f.flags & O.PATH) !== 0);
}

export const ghostKind = inodeOpenKind('ghost', 'deleted file', isGhost, O_TMPFILE_BIT);

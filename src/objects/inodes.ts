// Files whose contents travel in the image: files deleted (or replaced)
// while still open or mapped ("ghost" files, directories and FIFOs) and
// memfds. No path leads to them any more, so the image holds the inode
// itself: its type, mode, owner, times, size and the ranges of data it holds
// (holes stay holes), a memfd's name and seals, a FIFO's buffered bytes.
//
// Each inode is stored once, whoever holds it: fds of the tree (the kinds
// `ghost`, regfile.ts, and `memfd`, memfd.ts), memory areas (kind `inode`,
// memory/plan.ts) and working directories refer to it by its id. On restore
// ckpt makes every inode before any task exists and holds it open until the
// restore ends: the tasks map it (through /proc/CKPT/fd/N) while their
// memory is built, the fds are new opens of it (/proc/self/fd/N in ckpt), and
// the seals, which could forbid those mappings, are added once every task
// has its memory.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, SEAL, MFD, FS_MAGIC } from '../kernel/consts.js';
import { major, minor } from '../kernel/fdtype.js';
import {
  memfdCreate, getSeals, addSeals, mkfifo, futimens, copyFileRange, dataRanges, pipeSize, setPipeSize, peekPipe, lseek, setFl,
} from '../kernel/sys.js';
import { refused, conflict, badImage, CkptError } from '../errors.js';
import { fileId, u32, count, dec63, absPath, int, refine } from '../image/schema.js';
import { crcChunks, CHUNK } from '../bulk/jobs.js';
import { defineKind, FdFacts } from './kind.js';

/** __O_TMPFILE alone (O_TMPFILE without O_DIRECTORY): kept in the flags of a file made so, never to be opened with again. */
export const O_TMPFILE_BIT = O.TMPFILE & ~O.DIRECTORY;

const byteRun = z.tuple([count, z.int().check(z.gte(1), z.lte(Number.MAX_SAFE_INTEGER))]);

export const StoredInode = z.object({
  id: fileId,
  type: z.enum(['reg', 'dir', 'fifo', 'memfd']),
  /** reg, dir, fifo: the path it had (what the kernel showed, without " (deleted)"). */
  path: z.optional(absPath),
  /** memfd: its name (without the "memfd:" the kernel puts before it). */
  name: z.optional(z.string().check(z.maxLength(249), refine((s) => !s.includes('\0') && Buffer.byteLength(s) <= 249, 'not a memfd name'))),
  mode: u32,
  uid: u32,
  gid: u32,
  /** Size in bytes (reg, memfd). */
  size: count,
  /** Access and modification times, in nanoseconds since the epoch. */
  atime: dec63,
  mtime: dec63,
  /** reg, memfd: the data ranges [offset, length], in order; everything else is a hole. */
  runs: z.optional(z.array(byteRun)),
  /** The image file with the data of the runs one after another (reg, memfd), or the bytes buffered (fifo). */
  data: z.optional(z.string()),
  /** memfd: its seals (F_GET_SEALS). */
  seals: z.optional(int(0, 0x3f)),
  /** fifo: its capacity. */
  pipeSize: z.optional(int(4096, 2 ** 31)),
}).check(
  refine((n) => (n.type === 'memfd') === (n.name !== undefined) && (n.type === 'memfd') !== (n.path !== undefined), { message: 'a memfd has a name, and other inodes a path', path: ['type'] }),
  refine((n) => {
    let next = 0;
    for (const [off, len] of n.runs ?? []) { if (off < next || off + len > n.size) return false; next = off + len; }
    return true;
  }, { message: 'data ranges are out of order or past the size', path: ['runs'] }),
);
export type StoredInode = z.infer<typeof StoredInode>;

const where = (n: StoredInode) => (n.type === 'memfd' ? `memfd ${JSON.stringify(n.name)}` : `deleted ${n.type === 'reg' ? 'file' : n.type === 'dir' ? 'directory' : 'FIFO'} ${n.path}`);
export function describeInode(n: StoredInode): string {
  const data = n.runs ? `, ${n.runs.reduce((s, r) => s + r[1], 0)} bytes of data` : '';
  return `${where(n)} (inode ${n.id}, mode 0${(n.mode & 0o7777).toString(8)}, ${n.size} bytes${data}${n.seals ? `, seals 0x${n.seals.toString(16)}` : ''})`;
}

// ---- dump ----

/** What the inode table needs of the image being written. */
export interface InodeImage {
  createRaw(name: string): string;
  addRaw(name: string, sums: string[]): void;
  writeRaw(name: string, data: Buffer): void;
}

const DELETED = ' (deleted)';

/** Is this name (an fd's link, a mapped file's path) one of an inode that no path leads to? */
export function isGhostName(shown: string): boolean {
  return shown.startsWith('/memfd:') || shown.endsWith(DELETED);
}

function openForReading(p: string, extra = 0): number {
  try { return fs.openSync(p, O.RDONLY | O.NOATIME | O.CLOEXEC | extra); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return fs.openSync(p, O.RDONLY | O.CLOEXEC | extra);
  }
}

/** The inodes of a dump, each stored once, found through the fds, areas and working directories of the tree. */
export class InodeTable {
  readonly inodes: StoredInode[] = [];
  private readonly byKey = new Map<string, StoredInode>();
  private readonly devs = new Map<number, { dev: bigint; ino: bigint }>();
  /** Inodes the tree holds by an fd, maps shared or has as its cwd (not only mapped privately). */
  private readonly exposed = new Set<number>();

  constructor(private readonly image: InodeImage) {}

  /**
   * The inode that `open` leads to (a path ckpt can open it by:
   * /proc/PID/fd/N, /proc/PID/map_files/START-END, /proc/PID/cwd), as
   * `shown` names it (its fd link or mapped path). `what` names it in refusals.
   */
  add(open: string, shown: string, what: string, privateMapping = false): number {
    const st = fs.statSync(open, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    const had = this.byKey.get(key);
    if (had) { if (!privateMapping) this.exposed.add(had.id); return had.id; }
    const id = this.inodes.length + 1;
    const base = {
      id, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: 0,
      atime: st.atimeNs.toString(), mtime: st.mtimeNs.toString(),
    };
    let n: StoredInode;
    if (shown.startsWith('/memfd:')) {
      const fsType = Number(fs.statfsSync(open).type);
      if (fsType === FS_MAGIC.HUGETLBFS) throw refused(`${what}: a memfd of huge pages (MFD_HUGETLB); not supported yet`);
      if (fsType !== FS_MAGIC.TMPFS || !st.isFile()) throw refused(`${what}: ${shown} is not a memfd ckpt knows (file system 0x${fsType.toString(16)})`);
      let name = shown.slice('/memfd:'.length);
      if (name.endsWith(DELETED)) name = name.slice(0, -DELETED.length);
      n = { ...base, type: 'memfd', name, size: Number(st.size) };
      this.storeData(n, open);
      const fd = openForReading(open);
      try {
        const seals = getSeals(fd);
        if (seals < 0) throw refused(`${what}: the seals of ${shown} cannot be read (errno ${-seals})`);
        n.seals = seals;
      } finally { fs.closeSync(fd); }
    } else if (shown.endsWith(DELETED)) {
      const path = shown.slice(0, -DELETED.length);
      if (!path.startsWith('/')) throw refused(`${what}: ${shown} is not a file reachable by path`);
      const fsType = Number(fs.statfsSync(open).type);
      if (fsType === FS_MAGIC.HUGETLBFS) throw refused(`${what}: ${shown} is a deleted file of hugetlbfs; not supported yet`);
      // (memfd_secret memory cannot be read, and other anonymous inodes are no files)
      if (fsType === FS_MAGIC.SECRETMEM || fsType === FS_MAGIC.ANON_INODE) throw refused(`${what}: ${shown} is ${fsType === FS_MAGIC.SECRETMEM ? 'memfd_secret memory' : 'an anonymous inode'}; not supported`);
      if (st.nlink > 0n && !st.isDirectory()) {
        throw refused(`${what}: ${shown} was unlinked from this path but still has ${st.nlink} other link${st.nlink === 1n ? '' : 's'}, which ckpt cannot find; restoring a copy would separate it from them`);
      }
      if (st.isFile()) {
        n = { ...base, type: 'reg', path, size: Number(st.size) };
        this.storeData(n, open);
      } else if (st.isDirectory()) {
        n = { ...base, type: 'dir', path };
      } else if (st.isFIFO()) {
        n = { ...base, type: 'fifo', path };
        const fd = openForReading(open, O.NONBLOCK);
        try {
          n.pipeSize = pipeSize(fd);
          const bytes = peekPipe(fd, n.pipeSize);
          if (bytes.length) { n.data = `file-inode-${id}.img`; this.image.writeRaw(n.data, bytes); }
        } finally { fs.closeSync(fd); }
      } else {
        const type = st.isSymbolicLink() ? 'symbolic link' : st.isSocket() ? 'socket file' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'special file';
        throw refused(`${what}: ${shown} is a deleted ${type}; deleted ${type}s are not supported yet`);
      }
    } else {
      throw new CkptError('failed', `${what}: ${shown} is neither deleted nor a memfd`);
    }
    this.inodes.push(n);
    if (!privateMapping) this.exposed.add(id);
    this.byKey.set(key, n);
    this.devs.set(id, { dev: st.dev, ino: st.ino });
    return id;
  }

  /** Copy the data ranges of a regular file or memfd into the image, a piece at a time. */
  private storeData(n: StoredInode, open: string): void {
    if (n.size === 0) return;
    const fd = openForReading(open);
    try {
      const runs = dataRanges(fd, n.size);
      n.runs = runs;
      if (!runs.length) return;
      const name = `file-inode-${n.id}.img`;
      const target = this.image.createRaw(name);
      // The ranges one after another, copied in the kernel (copy_file_range) where it can, then checksummed through a mapping.
      const out = fs.openSync(target, O.WRONLY | O.CLOEXEC);
      let total = 0;
      try {
        for (const [off, len] of runs) { copyRange(fd, off, out, total, len, () => new CkptError('failed', `the ${where(n)} ended while ckpt read it (at ${off}, ${len} bytes expected)`)); total += len; }
      } finally { fs.closeSync(out); }
      const sums = crcChunks({ op: 'crc', path: target, size: total, chunks: Array.from({ length: Math.max(1, Math.ceil(total / CHUNK)) }, (_, i) => i) }).map(([, v]) => v);
      this.image.addRaw(name, sums);
      n.data = name;
    } finally { fs.closeSync(fd); }
  }

  /**
   * Once the whole tree is dumped: an inode that a process outside the tree
   * also holds or maps would be a copy of its own after restore, and the
   * two would no longer see each other's writes. Refused, unless both only
   * map it privately (a library replaced by an upgrade, mapped by many
   * programs: no one can write it through those mappings).
   */
  checkOutside(treeIds: Set<number>): void {
    if (!this.inodes.length) return;
    const want = new Map<string, StoredInode>();
    for (const n of this.inodes) {
      const d = this.devs.get(n.id)!;
      want.set(`${d.dev}:${d.ino}`, n);
      want.set(`${major(Number(d.dev))}:${minor(Number(d.dev))}:${d.ino}`, n);
    }
    const refuse = (n: StoredInode, pid: string, how: string) => {
      throw refused(`the ${where(n)} is also ${how} by pid ${pid}, outside the tree; it would be a separate copy after restore`);
    };
    for (const p of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || treeIds.has(Number(p)) || Number(p) === process.pid) continue;
      let fds: string[] = [];
      try { fds = fs.readdirSync(`/proc/${p}/fd`); } catch { continue; }
      for (const fd of fds) {
        let link: string;
        try { link = fs.readlinkSync(`/proc/${p}/fd/${fd}`); } catch { continue; }
        if (!isGhostName(link)) continue;
        try {
          const st = fs.statSync(`/proc/${p}/fd/${fd}`, { bigint: true });
          const n = want.get(`${st.dev}:${st.ino}`);
          if (n) refuse(n, p, 'held');
        } catch (e) { if (e instanceof CkptError) throw e; }
      }
      let maps = '';
      try { maps = fs.readFileSync(`/proc/${p}/maps`, 'utf8'); } catch { continue; }
      for (const line of maps.split('\n')) {
        const m = /^\S+ (\S+) \S+ ([0-9a-f]+):([0-9a-f]+) (\d+)\s+(.*)$/.exec(line);
        if (!m || !isGhostName(m[5])) continue;
        const n = want.get(`${parseInt(m[2], 16)}:${parseInt(m[3], 16)}:${m[4]}`);
        if (n && (m[1][3] === 's' || this.exposed.has(n.id))) refuse(n, p, 'mapped');
      }
    }
  }
}

// ---- restore ----

/** Image files and references: every inode's data file is in the manifest and has the size of its runs. */
export function checkInodes(inodes: StoredInode[], files: Record<string, { size: number }>): void {
  const ids = new Set<number>();
  inodes.forEach((n, i) => {
    if (ids.has(n.id)) throw badImage(`image file files.json: field inodes[${i}].id: inode ${n.id} is listed twice`);
    ids.add(n.id);
    if (!n.data) {
      if (n.runs?.length) throw badImage(`image file files.json: field inodes[${i}].data: inode ${n.id} has data ranges but no data file`);
      return;
    }
    const f = files[n.data];
    if (!f) throw badImage(`image file files.json: field inodes[${i}].data: ${n.data} is not in the manifest`);
    if (n.type === 'reg' || n.type === 'memfd') {
      const want = (n.runs ?? []).reduce((s, r) => s + r[1], 0);
      if (f.size !== want) throw badImage(`image file files.json: field inodes[${i}].runs: they hold ${want} bytes, but ${n.data} has ${f.size}`);
    } else if (n.type === 'fifo' && n.pipeSize !== undefined && f.size > n.pipeSize) {
      throw badImage(`image file ${n.data}: ${f.size} bytes of data for a FIFO of ${n.pipeSize}`);
    }
  });
}

/** The nearest directory at or above `dir` that exists. */
function existingAncestor(dir: string): string {
  let d = dir;
  while (d !== '/' && !fs.existsSync(d)) d = d.slice(0, d.lastIndexOf('/')) || '/';
  return d;
}

const parentOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';
const codeOf = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * Make a new inode of `type` that no path leads to. It is made at the path
 * it had and unlinked at once, so that its fds show that path with
 * " (deleted)" as before; when that path is taken (the file was replaced)
 * or its directory is gone, it is made elsewhere nearby: an unnamed file
 * (O_TMPFILE) in the nearest directory that exists, or a hidden name there.
 */
function makeUnlinked(n: StoredInode): number {
  const path = n.path!;
  const attempt = (p: string): number | null => {
    try {
      if (n.type === 'reg') {
        const fd = fs.openSync(p, O.RDWR | O.CREAT | O.EXCL | O.CLOEXEC, 0o600);
        fs.unlinkSync(p);
        return fd;
      }
      if (n.type === 'dir') {
        fs.mkdirSync(p, 0o700);
        let fd: number;
        try { fd = fs.openSync(p, O.RDONLY | O.DIRECTORY | O.CLOEXEC); } finally { fs.rmdirSync(p); }
        return fd;
      }
      const r = mkfifo(p, 0o600);
      if (r < 0) { const e = new Error(`mkfifo ${p}: errno ${-r}`) as NodeJS.ErrnoException; e.code = -r === 17 ? 'EEXIST' : -r === 2 ? 'ENOENT' : 'EOTHER'; throw e; }
      let fd: number;
      try { fd = fs.openSync(p, O.RDWR | O.NONBLOCK | O.CLOEXEC); } finally { fs.unlinkSync(p); }
      return fd;
    } catch (e) {
      failures.push(`${p}: ${codeOf(e) ?? (e as Error).message}`);
      return null;
    }
  };
  const failures: string[] = [];
  // A file made with O_TMPFILE (shown as DIR/#INODE) is made the same way again, so that it stays linkable.
  const tmpName = /\/#\d+$/.test(path);
  if (!tmpName) { const fd = attempt(path); if (fd !== null) return fd; }
  const dir = existingAncestor(parentOf(path));
  if (n.type === 'reg') {
    try { return fs.openSync(dir, O.TMPFILE | O.RDWR | O.CLOEXEC, 0o600); } catch (e) { failures.push(`O_TMPFILE in ${dir}: ${codeOf(e)}`); }
  }
  for (let i = 0; i < 3; i++) {
    const fd = attempt(`${dir === '/' ? '' : dir}/.ckpt-ghost-${process.pid}-${n.id}-${i}`);
    if (fd !== null) return fd;
  }
  throw conflict(`the ${where(n)} cannot be made again here (${failures.join('; ')})`);
}

/** Copy `len` bytes of `src` at `from` into `dst` at `to` (in the kernel when it can, else 1 MiB at a time); `short()`: the error when `src` ends first. */
export function copyRange(src: number, from: number, dst: number, to: number, len: number, short: () => Error): void {
  let done = 0;
  let kernel = true;
  let buf: Buffer | null = null;
  while (done < len) {
    const want = Math.min(len - done, 1 << 30);
    if (kernel) {
      const r = copyFileRange(src, from + done, dst, to + done, want);
      if (r > 0) { done += r; continue; }
      if (r === 0) throw short();
      kernel = false;
    }
    buf ??= Buffer.allocUnsafe(1 << 20);
    const n = Math.min(buf.length, len - done);
    const got = fs.readSync(src, buf, 0, n, from + done);
    if (got <= 0) throw short();
    let w = 0;
    while (w < got) w += fs.writeSync(dst, buf, w, got - w, to + done + w);
    done += got;
  }
}

/** The inodes of an image once made, held open by ckpt until the restore ends. */
export class MadeInodes {
  private readonly fds = new Map<number, number>();
  private readonly byId: Map<number, StoredInode>;

  constructor(inodes: StoredInode[], private readonly imagePath: (name: string) => string) {
    this.byId = new Map(inodes.map((n) => [n.id, n]));
  }

  get(id: number): StoredInode {
    const n = this.byId.get(id);
    if (!n) throw badImage(`image file files.json: inode ${id} is not listed`);
    return n;
  }

  /** Make every inode, with its contents, owner, mode and times (not yet its seals). */
  make(): void {
    for (const n of this.byId.values()) {
      const fd = n.type === 'memfd' ? this.makeMemfd(n) : makeUnlinked(n);
      this.fds.set(n.id, fd);
      this.fill(n, fd);
      if (n.type === 'reg') {
        // Held read-only from here on: a file open for writing cannot become a process's executable (PR_SET_MM_MAP).
        const ro = fs.openSync(`/proc/self/fd/${fd}`, O.RDONLY | O.CLOEXEC);
        this.fds.set(n.id, ro);
        fs.closeSync(fd);
      }
    }
  }

  private makeMemfd(n: StoredInode): number {
    const seals = n.seals ?? 0;
    const exec = (n.mode & 0o111) !== 0 ? MFD.EXEC : seals & SEAL.EXEC ? MFD.NOEXEC_SEAL : 0;
    let fd = memfdCreate(n.name!, MFD.CLOEXEC | MFD.ALLOW_SEALING | exec);
    if (fd === -22 /* EINVAL: a kernel without MFD_EXEC */ && exec) fd = memfdCreate(n.name!, MFD.CLOEXEC | MFD.ALLOW_SEALING);
    if (fd < 0) throw conflict(`the ${where(n)} cannot be made here: memfd_create failed with errno ${-fd}`);
    return fd;
  }

  private fill(n: StoredInode, fd: number): void {
    if (n.type === 'fifo') {
      if (n.pipeSize && pipeSize(fd) !== n.pipeSize) {
        const set = setPipeSize(fd, n.pipeSize);
        if (set < 0) throw conflict(`the ${where(n)} had a capacity of ${n.pipeSize} bytes; this host refuses it (errno ${-set})`);
      }
      if (n.data) {
        const data = fs.readFileSync(this.imagePath(n.data));
        let at = 0;
        while (at < data.length) at += fs.writeSync(fd, data, at, data.length - at);
      }
    } else if (n.type === 'reg' || n.type === 'memfd') {
      if (n.data) {
        const src = fs.openSync(this.imagePath(n.data), O.RDONLY | O.CLOEXEC);
        try {
          let at = 0;
          for (const [off, len] of n.runs ?? []) { copyRange(src, at, fd, off, len, () => badImage(`image file ${n.data} is short at offset ${at}`)); at += len; }
        } finally { fs.closeSync(src); }
      }
      fs.ftruncateSync(fd, n.size);
    }
    fs.fchownSync(fd, n.uid, n.gid);
    fs.fchmodSync(fd, n.mode & 0o7777);
    futimens(fd, BigInt(n.atime), BigInt(n.mtime));
  }

  /** Once every task has its memory: the seals (which could have forbidden its mappings). */
  seal(): void {
    for (const n of this.byId.values()) {
      if (n.type !== 'memfd' || !n.seals) continue;
      const fd = this.fds.get(n.id)!;
      const missing = n.seals & ~getSeals(fd);
      if (missing) addSeals(fd, missing);
    }
  }

  /** ckpt's fd of an inode. */
  fd(id: number): number {
    const fd = this.fds.get(id);
    if (fd === undefined) throw new CkptError('failed', `inode ${id} was not made`);
    return fd;
  }

  /** A path that a task of the tree can open the inode by (ckpt's fd, seen through /proc). */
  procPath(id: number): string { return `/proc/${process.pid}/fd/${this.fd(id)}`; }

  /**
   * A new open file description of the inode, in ckpt, with the flags
   * `flags` (O_CLOEXEC aside) and the offset `pos`.
   */
  reopen(id: number, flags: number, pos: string): number {
    const n = this.get(id);
    const path = `/proc/self/fd/${this.fd(id)}`;
    // (opening a FIFO blocks until its other end is open: ckpt's own fd holds both, and O_NONBLOCK is put back after)
    // (a file made with O_TMPFILE has O_DIRECTORY in its flags, which no open of a file can have again)
    const notDir = n.type !== 'dir' ? O.DIRECTORY : 0;
    const open = (flags & ~(O.CREAT | O.TRUNC | O.EXCL | O.NOCTTY | O_TMPFILE_BIT | O.CLOEXEC | notDir)) | O.CLOEXEC;
    const fd = fs.openSync(path, n.type === 'fifo' && !(flags & O.PATH) ? open | O.NONBLOCK : open);
    try {
      if (n.type === 'fifo' && !(flags & O.PATH) && !(flags & O.NONBLOCK)) setFl(fd, flags & ~(O.ACCMODE | O.CLOEXEC | O.LARGEFILE | O_TMPFILE_BIT));
      if (pos !== '0' && !(flags & O.PATH) && n.type !== 'fifo') lseek(fd, BigInt(pos), 0);
    } catch (e) { fs.closeSync(fd); throw e; }
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) { try { fs.closeSync(fd); } catch { /* closed */ } }
    this.fds.clear();
  }
}

/**
 * A kind whose descriptions are new opens of a stored inode (a deleted file,
 * a memfd): the inode, the open flags (without O_CLOEXEC and `dropFlags`)
 * and the offset. The kinds differ only in what they take and their name.
 */
export function inodeOpenKind<K extends string>(kind: K, noun: string, takes: (f: FdFacts) => boolean, dropFlags = 0) {
  const schema = z.object({
    id: fileId,
    kind: z.literal(kind),
    /** The stored inode (files.json `inodes`). */
    inode: fileId,
    /** open flags, without O_CLOEXEC (a property of each fd) */
    flags: u32,
    pos: dec63,
  });
  return defineKind<z.infer<typeof schema>>({
    kind,
    schema,
    takes,
    dump(f, ctx) {
      const inode = ctx.inodes.add(`/proc/${f.pid}/fd/${f.fd}`, f.link, `pid ${f.pid}: fd ${f.fd} (${f.link})`);
      return { kind, inode, flags: f.flags & ~(O.CLOEXEC | dropFlags), pos: f.pos.toString() } as Omit<z.infer<typeof schema>, 'id'>;
    },
    describe: (f) => `${noun} (inode ${f.inode}) flags 0${f.flags.toString(8)} pos ${f.pos}`,
    check: () => {},
    phase: 'objects',
    create: (f, _rt, ctx) => ({ local: ctx.inodes.reopen(f.inode, f.flags, f.pos), closeAfter: true }),
  });
}

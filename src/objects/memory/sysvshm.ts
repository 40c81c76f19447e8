// System V shared memory (shmget/shmat): the segments that processes of
// the tree have attached, as a kind of memory area.
//
// What belongs to the tree: a segment lives in the IPC namespace, not in a
// process, and may exist with nobody attached. ckpt stores the segments
// that some process of the tree has attached (an area of kind 'sysvshm'),
// whole, with their key, id, size, owner and permission bits, and whether
// they were removed (IPC_RMID: they live on while attached) or locked
// (SHM_LOCK). Segments of the namespace that no process of the tree has
// attached are not part of the tree's state and are not dumped; neither
// are other SysV IPC objects (semaphores, message queues).
//
// Dump: each segment once, whole pages of the extents that hold data
// (SEEK_DATA on its shmem file, opened through /proc/PID/map_files of one of
// its areas; holes are not stored and stay holes), read by ckpt through an
// attach of its own (read-only). Only the IPC namespace ckpt runs in is
// supported: a tree in another one is refused.
//
// Restore, before any task exists: a segment that is still there with the
// same id, key, size and owner is the same segment, and is attached again
// (which keeps it shared with whoever outside the tree attached it too); its
// contents are put back as they were at dump only when nobody has it
// attached. Otherwise it is made again with the same id
// (/proc/sys/kernel/shm_next_id), key, size, owner and permissions, and
// filled; a removed one is made under IPC_PRIVATE and removed again once
// every task has attached it. An id or key taken by another segment is a
// conflict. Each area is attached by its task at its address (shmat), with
// SHM_RDONLY where the original could not be made writable, then cut to the
// window it was (an area that is part of the segment) and given its
// protection. The creator's PID and uid, and the times, are those of the
// restore; SHM_NORESERVE (swap accounting of the segment, which nothing
// shows from outside) is not kept.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { PAGE_SIZE, PROT, SHM, IPC, MREMAP, E, errnoName } from '../../kernel/consts.js';
import { shmStat, shmCreate, shmSetPerm, shmRemove, shmLock, attachShm, ShmStat } from '../../kernel/sys.js';
import { dataExtents } from '../../kernel/mm.js';
import type { MapEntry } from '../../kernel/proc.js';
import { RemoteTask } from '../../kernel/remote.js';
import * as remote from '../../kernel/rsys.js';
import { refused, badImage, conflict, CkptError } from '../../errors.js';
import { log } from '../../log.js';
import { u32, i32, int, regex, refine } from '../../image/schema.js';
import { Run, runSegments, findHole, Range } from './runs.js';

const countPages = (runs: Run[]) => runs.reduce((n, r) => n + r[1], 0);
import type { Area } from './areas.js';
import type { PageSink } from './pages-io.js';

export const shmId = int(0, 0x7fffffff);
const runList = z.array(z.tuple([z.int().check(z.gte(0), z.lte(2 ** 36)), z.int().check(z.gte(1), z.lte(2 ** 36))]));

export const SysvShmSegment = z.object({
  /** Its id (the inode number its areas show in /proc/PID/maps). */
  id: shmId,
  /** Its key; 0 (IPC_PRIVATE) for a private or removed segment. */
  key: i32,
  /** Its size in bytes, as given to shmget. */
  size: int(1, 2 ** 46),
  /** Permission bits. */
  mode: int(0, 0o777),
  uid: u32,
  gid: u32,
  cuid: u32,
  cgid: u32,
  /** Removed (IPC_RMID) at dump: it lived on only while attached. */
  deleted: z.optional(z.boolean()),
  /** Locked in memory (SHM_LOCK). */
  locked: z.optional(z.boolean()),

  /** Attached at dump by processes outside the tree too. */
  outside: z.optional(z.boolean()),
  /** Its stored pages (pages not stored are zeros), in `pagesFile`. */
  runs: runList,
  pagesFile: z.optional(z.string().check(regex(/^sysvshm-[0-9]+\.img$/, 'expected a page file name sysvshm-ID.img'))),
}).check(
  refine((s) => (s.runs.length > 0) === (s.pagesFile !== undefined), { message: 'a segment with stored pages, and only one, names its page file', path: ['pagesFile'] }),
  refine((s) => { let next = 0; for (const [a, n] of s.runs) { if (a < next || (a + n) * PAGE_SIZE > roundUp(s.size)) return false; next = a + n; } return true; },
    { message: 'page runs are out of order or outside the segment', path: ['runs'] }),
);
export type SysvShmSegment = z.infer<typeof SysvShmSegment>;
export const SysvShmImage = z.object({ segments: z.array(SysvShmSegment) });
export type SysvShmImage = z.infer<typeof SysvShmImage>;

export const SYSV_NAME = /^\/SYSV[0-9a-f]{8}( \(deleted\))?$/;
export const isSysvName = (p: string) => SYSV_NAME.test(p);

function roundUp(n: number): number { return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE; }
const toHex = (v: bigint) => '0x' + v.toString(16);
const keyHex = (k: number) => '0x' + (k >>> 0).toString(16).padStart(8, '0');

// ---------------------------------------------------------------- dump

/** The segments the tree has attached, gathered process by process, then stored while the tree is still frozen. */
export class SysvShmDump {
  private readonly areas = new Map<number, number>();
  private readonly where = new Map<number, string>();
  /** An area of each segment, to read it through. */
  private readonly first = new Map<number, { pid: number; start: bigint; end: bigint }>();
  private ownNs: number | null = null;

  /** Note the areas of a process that map SysV segments (its maps as read for its memory plan). */
  note(pid: number, maps: MapEntry[]): void {
    for (const m of maps) {
      if (!isSysvName(m.path)) continue;
      const what = `pid ${pid}: memory area 0x${m.start.toString(16)}-0x${m.end.toString(16)} ${m.path}`;
      if (this.ownNs === null) this.ownNs = fs.statSync('/proc/self/ns/ipc').ino;
      if (fs.statSync(`/proc/${pid}/ns/ipc`).ino !== this.ownNs) throw refused(`${what}: System V shared memory of an IPC namespace other than ckpt's is not supported yet`);
      this.areas.set(m.inode, (this.areas.get(m.inode) ?? 0) + 1);
      if (!this.where.has(m.inode)) { this.where.set(m.inode, what); this.first.set(m.inode, { pid, start: m.start, end: m.end }); }
    }
  }

  get empty(): boolean { return this.areas.size === 0; }

  /** Store every segment noted: its attributes and its pages that hold data. */
  async write(sink: PageSink): Promise<Array<{ seg: SysvShmSegment; sums: string[] }>> {
    const out: Array<{ seg: SysvShmSegment; sums: string[] }> = [];
    for (const [id, treeAreas] of [...this.areas].sort((a, b) => a[0] - b[0])) {
      const st = shmStat(id);
      if (!st) throw refused(`${this.where.get(id)}: segment ${id} is not in ckpt's IPC namespace`);
      const seg: SysvShmSegment = {
        id, key: st.key, size: st.size, mode: st.mode & 0o777, uid: st.uid, gid: st.gid, cuid: st.cuid, cgid: st.cgid, runs: [],
        ...(st.mode & SHM.DEST ? { deleted: true } : {}),
        ...(st.mode & SHM.LOCKED ? { locked: true } : {}),
        ...(st.nattch > treeAreas ? { outside: true } : {}),
      };
      if (seg.outside) log.info(`System V shared memory segment ${id} (key ${keyHex(st.key)}) is attached outside the tree too (${st.nattch} attaches, ${treeAreas} in the tree)`);
      // Which pages hold data: SEEK_DATA on the segment's shmem file, which /proc/PID/map_files of one of
      // its areas opens (it also finds swapped-out pages; holes are not stored and stay holes). The pages
      // are read through an attach of ckpt's own, whole pages: a process may have written past the
      // segment's size in its last page, which read() would not give.
      const a = this.first.get(id)!;
      const src = fs.openSync(`/proc/${a.pid}/map_files/${a.start.toString(16)}-${a.end.toString(16)}`, 'r');
      let runs: Run[];
      try { runs = dataExtents(src, st.size); } finally { fs.closeSync(src); }
      seg.runs = runs;
      if (!runs.length) { out.push({ seg, sums: [] }); continue; }
      const at = attachShm(id, roundUp(st.size), SHM.RDONLY);
      try {
        const stream = sink.open({ kind: 'sysvshm', id, runs: runSegments(at.addr, runs, 0), bytes: countPages(runs) * PAGE_SIZE });
        stream.copy({ pid: process.pid }, stream.runs);
        const stored = await stream.finish();
        seg.pagesFile = stored.file;
        out.push({ seg, sums: stored.sums });
      } finally { at.detach(); }
    }
    return out;
  }
}

// ---------------------------------------------------------------- restore

/**
 * The segments of an image at restore: found or made (`make`, before any
 * task), attached by the tasks (`attach`), finished once every task is
 * made (`finish`), taken away again if the restore fails (`undo`).
 */
export class MadeSysvShm {
  private readonly segs: Map<number, SysvShmSegment>;
  /** Areas attached so far, as PID:address. */
  private readonly attached = new Set<string>();
  /** Segments ckpt made (taken away on failure). */
  private readonly made: number[] = [];

  constructor(segments: SysvShmSegment[], private readonly pagePath: (name: string) => string) {
    this.segs = new Map(segments.map((s) => [s.id, s]));
  }

  has(id: number): boolean { return this.segs.has(id); }

  make(): void {
    for (const s of this.segs.values()) {
      const st = shmStat(s.id);
      const what = `System V shared memory segment ${s.id} (key ${keyHex(s.key)}, ${s.size} bytes)`;
      if (st) {
        const deleted = (st.mode & SHM.DEST) !== 0;
        if (st.key !== s.key || st.size !== s.size || st.uid !== s.uid || (deleted && !s.deleted)) {
          throw conflict(`${what}: its id is taken by another segment here (key ${keyHex(st.key)}, ${st.size} bytes, owner ${st.uid}${deleted ? ', removed' : ''})`);
        }
        if (st.nattch === 0) {
          this.fill(s, false);
          if (s.locked && !(st.mode & SHM.LOCKED)) shmLock(s.id);
        } else log.info(`${what} is still attached by ${st.nattch} areas: it is attached again as it is, shared with them`);
        continue;
      }
      this.create(s, what);
      this.made.push(s.id);
      this.fill(s, true);
      if (s.locked) shmLock(s.id);
    }
  }

  private create(s: SysvShmSegment, what: string): void {
    const key = s.deleted ? IPC.PRIVATE : s.key;
    try {
      fs.writeFileSync('/proc/sys/kernel/shm_next_id', String(s.id));
    } catch (e) {
      throw new CkptError('failed', `${what}: cannot choose its id (/proc/sys/kernel/shm_next_id): ${(e as Error).message}`);
    }
    const id = shmCreate(key, s.size, s.mode);
    if (id < 0) {
      try { fs.writeFileSync('/proc/sys/kernel/shm_next_id', '-1'); } catch { /* as it was */ }
      if (id === -E.EEXIST) throw conflict(`${what}: its key is taken here by another segment`);
      throw new CkptError('failed', `${what}: shmget failed: ${errnoName(-id)}`);
    }
    if (id !== s.id) {
      shmRemove(id);
      throw conflict(`${what}: made with id ${id} instead (another segment was made at the same time?)`);
    }
    shmSetPerm(id, s.uid, s.gid, s.mode);
  }

  /**
   * Put the stored contents in (from ckpt, which attaches the segment for
   * the time of it); in a segment that was there already (`fresh` false),
   * the pages not stored are zeroed, as they were.
   */
  private fill(s: SysvShmSegment, fresh: boolean): void {
    const len = roundUp(s.size);
    const at = attachShm(s.id, len, 0);
    try {
      if (!fresh) {
        let next = 0;
        for (const [p, n] of [...s.runs, [len / PAGE_SIZE, 0] as Run]) {
          if (p > next) at.view.fill(0, next * PAGE_SIZE, p * PAGE_SIZE);
          next = p + n;
        }
      }
      if (!s.runs.length) return;
      const fd = fs.openSync(this.pagePath(s.pagesFile!), 'r');
      try {
        let off = 0;
        for (const [p, n] of s.runs) {
          const want = n * PAGE_SIZE;
          const got = fs.readSync(fd, at.view, p * PAGE_SIZE, want, off);
          if (got !== want) throw badImage(`image file ${s.pagesFile}: short (wanted ${want} bytes at ${off}, got ${got})`);
          off += want;
        }
      } finally { fs.closeSync(fd); }
    } finally { at.detach(); }
  }

  /**
   * Attach the segment of area `a` in the task, at the area's address, as
   * the window it was. Areas of one attach (the same segment, at offsets
   * from the same base address: an attach split by mprotect or partly
   * unmapped) are made from one shmat, so that they stay one attach (shmdt
   * of the base address detaches them all); the first of them does it for
   * all. `areas` are the process's, `used` the ranges it has or will have.
   */
  attach(rt: RemoteTask, a: Area, areas: Area[], used: Range[], pid: number): void {
    if (this.attached.has(`${pid}:${a.start}`)) return;
    const s = this.segs.get(a.sysvshm!);
    if (!s) throw badImage(`image file process-${pid}.json: area ${a.start} maps System V segment ${a.sysvshm}, which sysvshm.json does not hold`);
    const segLen = BigInt(roundUp(s.size));
    const base = BigInt(a.start) - BigInt(a.offset);
    const group = areas.filter((x) => x.kind === 'sysvshm' && x.sysvshm === s.id && !x.inherit && BigInt(x.start) - BigInt(x.offset) === base);
    const rdonly = !a.vmflags.includes('mw');
    for (const x of group) {
      if (BigInt(x.offset) + BigInt(x.end) - BigInt(x.start) > segLen) throw badImage(`image file process-${pid}.json: area ${x.start} maps past the end of System V segment ${s.id} (${s.size} bytes)`);
      if (!x.vmflags.includes('mw') !== rdonly) throw badImage(`image file process-${pid}.json: areas ${a.start} and ${x.start} are one attach of segment ${s.id}, read-only and not`);
      this.attached.add(`${pid}:${x.start}`);
    }
    const flags = rdonly ? SHM.RDONLY : 0;
    // The windows cover the whole attach: attach it in place.
    let at = base;
    for (const x of group) if (BigInt(x.start) === at) at = BigInt(x.end);
    if (at === base + segLen) {
      remote.shmat(rt, s.id, base, flags, `${s.id} at ${toHex(base)}`);
    } else {
      // Attach it in a free spot, move each window into place, let the rest go.
      const tmp = findHole(used, Number(segLen));
      remote.shmat(rt, s.id, tmp, flags, `${s.id}, staging`);
      let next = 0n;
      for (const x of group) {
        const off = BigInt(x.offset);
        const len = BigInt(x.end) - BigInt(x.start);
        if (off > next) remote.munmap(rt, tmp + next, off - next, `${s.id} staging`);
        remote.mremap(rt, tmp + off, len, len, MREMAP.MAYMOVE | MREMAP.FIXED, BigInt(x.start), `${s.id} at ${x.start}`);
        next = off + len;
      }
      if (next < segLen) remote.munmap(rt, tmp + next, segLen - next, `${s.id} staging`);
    }
    const attachProt = PROT.READ | (rdonly ? 0 : PROT.WRITE);
    for (const x of group) {
      const prot = (x.prot[0] === 'r' ? PROT.READ : 0) | (x.prot[1] === 'w' ? PROT.WRITE : 0) | (x.prot[2] === 'x' ? PROT.EXEC : 0);
      if (prot !== attachProt) remote.mprotect(rt, BigInt(x.start), BigInt(x.end) - BigInt(x.start), prot, `${s.id} at ${x.start}`);
    }
  }

  /** Every task is made and has attached its segments: remove again those that were removed. */
  finish(): void {
    for (const s of this.segs.values()) {
      if (!s.deleted) continue;
      const st = shmStat(s.id);
      if (st && !(st.mode & SHM.DEST)) {
        const r = shmRemove(s.id);
        if (r < 0) throw new CkptError('failed', `System V shared memory segment ${s.id}: IPC_RMID failed: ${errnoName(-r)}`);
      }
    }
  }

  /** The restore failed: remove the segments it made (a removed one goes when its last task dies). */
  undo(): void {
    for (const id of this.made) shmRemove(id);
    this.made.length = 0;
  }
}

export type { ShmStat };

// Building the address space of a restored process: the husk's own
// mappings cleared, the vDSO moved to the image's address, every area
// mapped at its address with its protection, flags and madvise settings,
// shared memory objects made once and mapped by all, and the pages put in
// (by the task itself, from outside, or left for userfaultfd: uffd.ts).

import { statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { readSmaps, readMaps } from '../../kernel/proc.js';
import { RemoteTask } from '../../kernel/remote.js';
import { PROT, MAP, MADV, MREMAP, MLOCK, O, PAGE_SIZE } from '../../kernel/consts.js';
import * as remote from '../../kernel/rsys.js';
import { badImage, CkptError } from '../../errors.js';
import { Run, runSegments, findHole, Range, TASK_TOP } from './runs.js';
import { Area, MemoryImage, ShmemObject, SPECIAL, big, toHex, protBits, areaRanges } from './areas.js';
import { readPages, writeFromOutside } from './transfer.js';
import { PageSource, PageReader, PageRun } from './pages-io.js';
import type { MadeSysvShm } from './sysvshm.js';

const MADVISE_FOR_FLAG: Record<string, number> = {
  dc: MADV.DONTFORK, dd: MADV.DONTDUMP, wf: MADV.WIPEONFORK, hg: MADV.HUGEPAGE, nh: MADV.NOHUGEPAGE, mg: MADV.MERGEABLE,
  sr: MADV.SEQUENTIAL, rr: MADV.RANDOM,
};

/**
 * Before any process is created: the files the process maps (its program,
 * its libraries) must be the ones it had, or it would run other code.
 */
export function checkMappedFiles(pid: number, mem: MemoryImage): void {
  const seen = new Set<string>();
  for (const a of mem.areas) {
    if (a.kind !== 'file' || seen.has(a.name) || a.fileSize === undefined) continue;
    seen.add(a.name);
    let st: Stats;
    try { st = statSync(a.name); } catch {
      throw new CkptError('conflict', `pid ${pid}: the file it maps, ${a.name}, does not exist here`);
    }
    if (st.size !== a.fileSize || (a.fileMtime !== undefined && Math.floor(st.mtimeMs / 1000) !== a.fileMtime)) {
      throw new CkptError('conflict', `pid ${pid}: the file it maps, ${a.name}, changed since the dump (size ${a.fileSize} -> ${st.size}${a.fileMtime !== undefined ? `, modified ${new Date(a.fileMtime * 1000).toISOString()} -> ${st.mtime.toISOString()}` : ''}); restoring it would run other code`);
    }
  }
}

/**
 * In a freshly cloned husk task: drop everything the husk had (except the
 * scratch area and the vDSO, which is moved to where the program had it).
 */
export function clearAndMoveSpecials(rt: RemoteTask, mem: MemoryImage, scratch: Range, vdsoGadgetOffset: bigint): void {
  const current = readSmaps(rt.pid);
  // Unmap everything between the mappings to keep (the specials, the scratch
  // area, and areas a forked child keeps from its parent), a few big ranges at
  // a time (munmap does not mind holes).
  const inherited = mem.areas.filter((a) => a.inherit).map((a) => ({ start: big(a.start), end: big(a.end) }));
  const keep = [...current.filter((m) => SPECIAL.has(m.path)), { start: scratch.start, end: scratch.end }, ...inherited]
    .filter((r) => r.start < TASK_TOP).sort((x, y) => (x.start < y.start ? -1 : 1));
  let from = BigInt(PAGE_SIZE);
  for (const r of [...keep, { start: TASK_TOP, end: TASK_TOP }]) {
    if (r.start > from) remote.munmap(rt, from, r.start - from, `${toHex(from)}-${toHex(r.start)}`);
    if (r.end > from) from = r.end;
  }
  const wanted = mem.areas.filter((a) => a.kind === 'special' && a.name !== '[vsyscall]');
  const have = current.filter((m) => SPECIAL.has(m.path) && m.path !== '[vsyscall]');
  const sig = (xs: Array<{ name: string; size: bigint }>) => xs.map((x) => `${x.name}:${x.size}`).sort().join(',');
  const wantSig = sig(wanted.map((a) => ({ name: a.name, size: big(a.end) - big(a.start) })));
  const haveSig = sig(have.map((m) => ({ name: m.path, size: m.end - m.start })));
  if (wantSig !== haveSig) {
    throw new CkptError('conflict', `the vDSO layout of this kernel (${haveSig}) differs from the image's (${wantSig}); restoring across such kernels is not supported yet`);
  }
  // Move each special mapping to its recorded address. Go through a temporary
  // spot when a target overlaps a current special mapping.
  const overlaps = wanted.some((a) => have.some((m) => big(a.start) < m.end && m.start < big(a.end) && !(m.start === big(a.start) && m.path === a.name)));
  let moves = have.map((m) => ({ from: m.start, size: m.end - m.start, name: m.path }));
  if (overlaps) {
    let tmp = findHole([...areaRanges(mem), ...current.map((m) => ({ start: m.start, end: m.end })), scratch], Number(moves.reduce((s, m) => s + m.size, 0n)) + PAGE_SIZE);
    moves = moves.map((m) => {
      const to = tmp; tmp += m.size;
      remap(rt, m.from, m.size, to, m.name, vdsoGadgetOffset);
      return { ...m, from: to };
    });
  }
  for (const m of moves) {
    const target = wanted.find((a) => a.name === m.name)!;
    if (big(target.start) !== m.from) remap(rt, m.from, m.size, big(target.start), m.name, vdsoGadgetOffset);
  }
}

function remap(rt: RemoteTask, from: bigint, size: bigint, to: bigint, name: string, gadgetOffset: bigint): void {
  remote.mremap(rt, from, size, size, MREMAP.MAYMOVE | MREMAP.FIXED, to, name);
  if (name === '[vdso]') rt.gadget = to + gadgetOffset;
}

export interface DeferredPages {
  /** Anonymous areas whose pages are to be filled by UFFDIO_COPY from ckpt's side. */
  areas: Area[];
  /** Their runs of pages, and where they come from. */
  segs: PageRun[];
  pages: PageReader;
  bytes: number;
  /** Areas to mlock once their pages are in (mlock would fault them in as zeros). */
  mlock: Area[];
}

/** Shared memory objects during a restore: what the image holds, and where each one made so far is mapped. */
export interface ShmemCtx {
  objects: Map<string, ShmemObject>;
  /** An area of a restored process (its final PID) that maps the object. */
  sources: Map<string, { pid: number; start: bigint; end: bigint }>;
  /** The stored inodes (deleted files, memfds), made by ckpt before any task: a path the task opens each by. */
  inodes?: { procPath(id: number): string };
  /** The System V segments of the image, found or made by ckpt before any task. */
  sysv?: MadeSysvShm;
}

/**
 * Map every area of the image and fill in its pages from `source`. With
 * `deferAnon`, the pages of readable private anonymous areas are not read
 * here but returned, for ckpt to copy in with userfaultfd (uffd.ts). `pid`
 * is the PID the process will have (the husk's task becomes the root's).
 */
export function restoreAreas(rt: RemoteTask, mem: MemoryImage, source: PageSource, deferAnon: boolean, shm: ShmemCtx, pid: number): DeferredPages {
  const pages = source.process(pid, mem);
  const deferred: DeferredPages = { areas: [], segs: [], pages, bytes: 0, mlock: [] };
  const files = new Map<string, number>();
  let prev: Area | null = null;
  // The page file, opened in the task when it first reads pages itself.
  let pagesFd = -1;
  const fill = (start: bigint, runs: Run[], dataOffset: number, what: string) => {
    if (pages.targetPath === null) { writeFromOutside(rt, pages, start, runs, dataOffset); return; }
    if (pagesFd < 0) pagesFd = remote.openat(rt, pages.targetPath, O.RDONLY | O.CLOEXEC, 0, 'page file');
    readPages(rt, pagesFd, start, runs, dataOffset, what);
  };
  try {
    for (const a of mem.areas) {
      const before = prev;
      prev = a;
      if (a.kind === 'special') continue;
      const start = big(a.start);
      const len = big(a.end) - start;
      if (a.inherit) {
        // Kept from the parent across fork: write the child's own pages (breaking
        // the copy-on-write sharing for them only) and drop what the child had not.
        if (a.runs.length) writeFromOutside(rt, pages, start, a.runs as Run[], a.dataOffset);
        for (const [i, n] of a.drop ?? []) {
          remote.madvise(rt, start + BigInt(i * PAGE_SIZE), n * PAGE_SIZE, MADV.DONTNEED, `${a.start}, DONTNEED`);
        }
        continue;
      }
      const prot = protBits(a.prot);
      if (a.shmem) {
        mapShmem(rt, a, mem, shm, source, pid);
      } else if (a.kind === 'sysvshm') {
        if (!shm.sysv) throw badImage(`image file process-${pid}.json: area ${a.start} maps System V segment ${a.sysvshm}, and the image has no sysvshm.json`);
        shm.sysv.attach(rt, a, mem.areas, [...areaRanges(mem), ...readMapsRanges(rt.pid)], pid);
        if (a.vmflags.includes('lo')) lockArea(rt, a);
      } else {
        const hasPages = a.runs.length > 0;
        const defer = deferAnon && hasPages && a.kind === 'anon' && !a.shared && a.prot[0] === 'r';
        const addWrite = hasPages && !defer && !(prot & PROT.WRITE);
        // Mapping a private area writable marks it accountable (VM_ACCOUNT, "ac") for good:
        // when the original was not, write its pages from outside (/proc/PID/mem) instead.
        const outside = addWrite && !a.shared && !a.vmflags.includes('ac');
        const mapProt = addWrite && !outside ? prot | PROT.WRITE : prot;
        // MAP_DROPPABLE is a mapping type of its own (its pages may be dropped under memory pressure).
        let flags = MAP.FIXED | (a.shared ? MAP.SHARED : a.vmflags.includes('dp') ? MAP.DROPPABLE : MAP.PRIVATE);
        if (a.vmflags.includes('gd')) flags |= MAP.GROWSDOWN;
        if (a.vmflags.includes('nr')) flags |= MAP.NORESERVE;
        let fd = -1;
        if (a.kind === 'file' || a.kind === 'inode') {
          // A shared mapping that may be made writable (VM_MAYWRITE, "mw") needs a file open for writing, even if it is read-only now.
          const acc = a.shared && (a.prot[1] === 'w' || a.vmflags.includes('mw')) ? O.RDWR : O.RDONLY;
          const key = a.kind === 'inode' ? `${acc}:inode ${a.inode}` : `${acc}:${a.name}`;
          if (!files.has(key)) {
            if (a.kind === 'inode' && !shm.inodes) throw badImage(`image file process-${pid}.json: area ${a.start} maps stored inode ${a.inode}, which files.json does not hold`);
            const p = a.kind === 'inode' ? shm.inodes!.procPath(a.inode!) : a.name;
            const r = remote.tryOpenat(rt, p, acc | O.CLOEXEC);
            if (r < 0) throw new CkptError('conflict', `cannot open ${a.name} to map it at ${a.start}: errno ${-r}`);
            files.set(key, r);
          }
          fd = files.get(key)!;
        } else {
          flags |= MAP.ANONYMOUS;
        }
        if (a.kind === 'anon' && before && mayMerge(before, a)) {
          // The two areas were separate VMAs although alike: they differed in
          // what maps cannot show (the page offset of an area that was
          // mremap'ed). Map this one elsewhere and move it into place, which
          // gives it a page offset that keeps it from merging.
          // (The moved area keeps its page offset, and still merges if that
          // happens to continue the offsets of the area below: then it is
          // split off again and staged a page further on.)
          for (let attempt = 0; ; attempt++) {
            const skip = BigInt(attempt * PAGE_SIZE);
            const tmp = remote.mmap(rt, 0, len + skip, mapProt, flags & ~MAP.FIXED, fd, 0, `${a.start} staging`);
            if (skip) remote.munmap(rt, tmp, skip, `${a.start} staging`);
            remote.mremap(rt, tmp + skip, len, len, MREMAP.MAYMOVE | MREMAP.FIXED, start, a.start);
            if (readMaps(rt.pid).some((m) => m.start === start)) break;
            remote.munmap(rt, start, len, `${a.start} merged`);
            if (attempt === 3) throw new CkptError('failed', `pid ${pid}: area ${a.start} merges with the area below it however it is placed`);
          }
        } else {
          remote.mmap(rt, start, len, mapProt, flags, fd, a.kind === 'file' || a.kind === 'inode' ? big(a.offset) : 0n, `${a.start} ${a.name || 'anon'}`);
        }
        if (defer) {
          deferred.areas.push(a);
          for (const g of runSegments(start, a.runs as Run[], a.dataOffset)) {
            deferred.segs.push(g);
            deferred.bytes += g.len;
          }
        } else if (hasPages) {
          if (outside) writeFromOutside(rt, pages, start, a.runs as Run[], a.dataOffset);
          else fill(start, a.runs as Run[], a.dataOffset, `area ${a.start}`);
          if (mapProt !== prot) remote.mprotect(rt, start, len, prot, a.start);
        }
        if (a.vmflags.includes('lo')) {
          if (defer) deferred.mlock.push(a);
          else lockArea(rt, a);
        }
      }
      for (const f of a.vmflags) {
        const adv = MADVISE_FOR_FLAG[f];
        if (adv !== undefined) remote.madvise(rt, start, len, adv, `${a.start}, ${f}`);
      }
      if (a.shmem && a.vmflags.includes('lo')) lockArea(rt, a);
      if (a.name.startsWith('[anon:')) {
        remote.prctlSetVmaAnonName(rt, start, len, a.name.slice(6, -1));
      }
    }
  } finally {
    for (const fd of files.values()) remote.closeQuietly(rt, fd);
    if (pagesFd >= 0) remote.closeQuietly(rt, pagesFd);
  }
  return deferred;
}

/** mlock, or mlock2(MLOCK_ONFAULT) for an area locked on fault ("lf"). */
export function lockArea(rt: RemoteTask, a: Area): void {
  const start = big(a.start);
  const len = big(a.end) - start;
  if (a.vmflags.includes('lf')) remote.mlock2(rt, start, len, MLOCK.ONFAULT, `${a.start}, MLOCK_ONFAULT`);
  else remote.mlock(rt, start, len, a.start);
}

/**
 * Seal the areas that were sealed (mseal, "sl"). Done last, once nothing
 * more is to be mapped or changed in the process (and its children exist).
 */
export function sealAreas(rt: RemoteTask, mem: MemoryImage): void {
  for (const a of mem.areas) {
    if (a.kind !== 'special' && a.vmflags.includes('sl')) remote.mseal(rt, big(a.start), big(a.end) - big(a.start), a.start);
  }
}

/**
 * A shared anonymous area: the first process of the tree that maps the
 * object creates it (MAP_SHARED | MAP_ANONYMOUS, the same kind of object as
 * before) and reads its pages in; every later area, in this process or
 * another one, maps the same object through /proc/PID/map_files at its
 * offset. (Areas a child inherited across fork are kept, not mapped again.)
 */
function mapShmem(rt: RemoteTask, a: Area, mem: MemoryImage, shm: ShmemCtx, source: PageSource, pid: number): void {
  const obj = shm.objects.get(a.shmem!);
  if (!obj) throw badImage(`image file process-${pid}.json: area ${a.start} refers to shared memory object ${a.shmem}, which shmem.json does not hold`);
  const start = big(a.start);
  const len = big(a.end) - start;
  const off = big(a.offset);
  if (off + len > BigInt(obj.size)) throw badImage(`image file process-${pid}.json: area ${a.start} maps past the end of shared memory object ${obj.id} (${obj.size} bytes)`);
  const prot = protBits(a.prot);
  const nr = a.vmflags.includes('nr') ? MAP.NORESERVE : 0;
  const src = shm.sources.get(obj.id);
  const fill = (base: bigint) => {
    if (!obj.runs.length) return;
    const pages = source.shmem(obj);
    if (pages.targetPath === null) { writeFromOutside(rt, pages, base, obj.runs as Run[], 0); return; }
    const fd = remote.openat(rt, pages.targetPath, O.RDONLY | O.CLOEXEC, 0, pages.name);
    try { readPages(rt, fd, base, obj.runs as Run[], 0, `shared memory object ${obj.id}`); } finally { remote.closeQuietly(rt, fd); }
  };
  const mapFrom = (where: { pid: number; start: bigint; end: bigint }) => {
    const p = `/proc/${where.pid === pid ? 'self' : where.pid}/map_files/${where.start.toString(16)}-${where.end.toString(16)}`;
    const fd = remote.openat(rt, p, O.RDWR | O.CLOEXEC);
    try {
      remote.mmap(rt, start, len, prot, MAP.SHARED | MAP.FIXED | nr, fd, off, `${a.start} shared memory ${obj.id}`);
    } finally { remote.closeQuietly(rt, fd); }
  };
  if (src) { mapFrom(src); return; }
  if (off === 0n && len === BigInt(obj.size)) {
    // The common case: the area is the whole object.
    const addWrite = obj.runs.length > 0 && !(prot & PROT.WRITE);
    remote.mmap(rt, start, len, addWrite ? prot | PROT.WRITE : prot, MAP.SHARED | MAP.ANONYMOUS | MAP.FIXED | nr, -1, 0, `${a.start} shared`);
    fill(start);
    if (addWrite) remote.mprotect(rt, start, len, prot, a.start);
  } else {
    // Make the whole object in a free spot, fill it, map the window, let the spot go.
    const used = [...areaRanges(mem), ...readMapsRanges(rt.pid)];
    const tmp = findHole(used, obj.size);
    remote.mmap(rt, tmp, obj.size, PROT.READ | PROT.WRITE, MAP.SHARED | MAP.ANONYMOUS | MAP.FIXED_NOREPLACE | nr, -1, 0, `shared memory ${obj.id}`);
    try {
      fill(tmp);
      mapFrom({ pid, start: tmp, end: tmp + BigInt(obj.size) });
    } finally {
      remote.munmap(rt, tmp, obj.size, `shared memory ${obj.id} staging`);
    }
  }
  shm.sources.set(obj.id, { pid, start, end: big(a.end) });
}

function readMapsRanges(pid: number): Range[] {
  return readSmaps(pid).map((m) => ({ start: m.start, end: m.end }));
}

/** Would the kernel merge `b` into the area `a` just below it if both were mapped plainly? */
function mayMerge(a: Area, b: Area): boolean {
  return a.end === b.start && a.kind === 'anon' && !a.shared && !b.shared && a.prot === b.prot &&
    a.name === b.name && a.vmflags.join(' ') === b.vmflags.join(' ');
}


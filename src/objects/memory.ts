// Memory areas: image schema, dump (areas from smaps, present pages from
// pagemap, page data written by the target itself) and restore (areas mapped
// at their addresses in the new task, pages read by the task itself).

import fs from 'node:fs';
import * as z from 'zod/mini';
import { MapEntry, readSmaps } from '../kernel/proc.js';
import { RemoteTask } from '../kernel/remote.js';
import { NR, PROT, MAP, MADV, MREMAP, O, F, AT_FDCWD, PAGE_SIZE, PR } from '../kernel/consts.js';
import { populatedRegions, samePageFrames, PAGE_IS, dataExtents } from '../kernel/mm.js';
import { refused, badImage, CkptError } from '../errors.js';
import { log } from '../log.js';
import { Pool } from '../bulk/pool.js';
import { CHUNK, crcChunks, runJob } from '../bulk/jobs.js';
import { pageAddr, hex64, count, PAGE, regex, refine, superRefine, noNul } from '../image/schema.js';
import {
  Run, runsWhere, intersectRuns, subtractRuns, normalizeRuns, countPages, batches, trimIov, iovBuffer, runSegments,
  findHole, Range, TASK_TOP, IOV_MAX,
} from './pages.js';

export { findHole } from './pages.js';

const pageCount = z.int().check(z.gte(0), z.lte(2 ** 36));
const runList = z.array(z.tuple([pageCount, z.int().check(z.gte(1), z.lte(2 ** 36))]));

/** Runs sorted, not overlapping, within `pages` pages. */
function runsOk(runs: Run[], pages: number): boolean {
  let next = 0;
  for (const [s, n] of runs) {
    if (s < next || s + n > pages) return false;
    next = s + n;
  }
  return true;
}
const big = (s: string) => BigInt(s);

export const Area = z.object({
  start: pageAddr,
  end: pageAddr,
  prot: z.string().check(regex(/^[r-][w-][x-]$/, 'expected a protection such as "r-x"')),
  shared: z.boolean(),
  // 'shmem': a window of a shared memory object (shmem.json). A new kind rather than an 'anon' area with
  // a new field, so that a ckpt that does not know objects refuses such an image instead of misreading it.
  kind: z.enum(['anon', 'file', 'special', 'shmem']),
  name: noNul,                 // path, [heap], [stack], [vdso], [anon:NAME] or ''
  offset: hex64,
  vmflags: z.array(z.string().check(regex(/^[a-z0-9]{2}$/, 'expected a two-letter VmFlags mnemonic'))),
  fileSize: z.optional(count),
  fileMtime: z.optional(z.int()), // seconds; with fileSize, to tell a changed file at restore
  dataOffset: count.check(z.multipleOf(PAGE)), // where this area's pages start in the page file
  runs: runList,               // [first page index in area, page count]
  inherit: z.optional(z.boolean()),  // a child's area kept from its parent across fork (see planMemory)
  drop: z.optional(runList),   // pages to drop in such an area
  shmem: z.optional(z.string().check(regex(/^[0-9a-f]+:[0-9a-f]+:[0-9]+$/, 'expected a shared memory object id dev:ino'))),
}).check(
  refine((a) => big(a.start) < big(a.end), { message: 'the area ends before it starts', path: ['end'] }),
  refine((a) => big(a.offset) % 4096n === 0n, { message: 'the offset is not page-aligned', path: ['offset'] }),
  refine((a) => runsOk(a.runs as Run[], Number((big(a.end) - big(a.start)) / 4096n)), { message: 'page runs are out of order or outside the area', path: ['runs'] }),
  refine((a) => !a.drop || runsOk(a.drop as Run[], Number((big(a.end) - big(a.start)) / 4096n)), { message: 'page runs are out of order or outside the area', path: ['drop'] }),
  refine((a) => (a.kind === 'special' ? SPECIAL.has(a.name) : a.kind === 'file' ? a.name.startsWith('/') : a.kind === 'shmem' ? a.name === '' :
    a.name === '' || a.name === '[heap]' || a.name === '[stack]' || /^\[anon:[^\]]{1,80}\]$/.test(a.name)), { message: 'not a name an area of this kind has', path: ['name'] }),
  refine((a) => (a.kind === 'shmem') === (a.shmem !== undefined) && (a.kind !== 'shmem' || (a.shared && a.runs.length === 0)), { message: 'a shmem area, and only one, refers to a shared memory object, and holds no pages of its own', path: ['shmem'] }),
);
export type Area = z.infer<typeof Area>;

export const MemoryImage = z.object({
  pagesFile: z.string().check(regex(/^pages-[0-9]+\.img$/, 'expected a page file name pages-PID.img')),
  pageBytes: count.check(z.multipleOf(PAGE)),
  areas: z.array(Area),
}).check(superRefine((m, ctx) => {
  // Areas in address order, without overlap; their pages one after another in the page file, from 0 to pageBytes.
  let prevEnd = 0n;
  let offset = 0;
  m.areas.forEach((a, i) => {
    const s = big(a.start);
    if (s < prevEnd) ctx.addIssue({ code: 'custom', message: 'areas are out of order or overlap', path: ['areas', i, 'start'], input: a.start });
    prevEnd = big(a.end);
    if (a.dataOffset !== offset) ctx.addIssue({ code: 'custom', message: `expected ${offset}, where the pages of the areas before it end`, path: ['areas', i, 'dataOffset'], input: a.dataOffset });
    offset = a.dataOffset + countPages(a.runs as Run[]) * PAGE_SIZE;
  });
  if (offset !== m.pageBytes) ctx.addIssue({ code: 'custom', message: `the areas hold ${offset} bytes of pages`, path: ['pageBytes'], input: m.pageBytes });
  if (!m.areas.some((a) => a.name === '[vdso]')) ctx.addIssue({ code: 'custom', message: 'no [vdso] area (every process has one)', path: ['areas'], input: m.areas });
}));
export type MemoryImage = z.infer<typeof MemoryImage>;

/**
 * A shared memory object (MAP_SHARED anonymous memory, /dev/zero mapped
 * shared): stored once, whole, whoever mapped or wrote its pages.
 */
export const ShmemObject = z.object({
  id: z.string().check(regex(/^[0-9a-f]+:[0-9a-f]+:[0-9]+$/, 'expected a shared memory object id dev:ino')),
  size: count.check(z.multipleOf(PAGE), z.gte(PAGE)),
  pagesFile: z.string().check(regex(/^shmem-[0-9]+\.img$/, 'expected a page file name shmem-INODE.img')),
  runs: runList,
}).check(refine((o) => runsOk(o.runs as Run[], o.size / PAGE_SIZE), { message: 'page runs are out of order or outside the object', path: ['runs'] }));
export type ShmemObject = z.infer<typeof ShmemObject>;
export const ShmemImage = z.object({ objects: z.array(ShmemObject) });
export type ShmemImage = z.infer<typeof ShmemImage>;

export const SPECIAL = new Set(['[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]']);

const toHex = (v: bigint) => '0x' + v.toString(16);

function protBits(perms: string): number {
  return (perms[0] === 'r' ? PROT.READ : 0) | (perms[1] === 'w' ? PROT.WRITE : 0) | (perms[2] === 'x' ? PROT.EXEC : 0);
}

/** Decide, for one mapping of the target, how it can be captured; refuse what cannot. */
function classify(pid: number, m: MapEntry): Pick<Area, 'kind' | 'shared' | 'name'> {
  const shared = m.perms[3] === 's';
  const where = `pid ${pid}: memory area ${toHex(m.start)}-${toHex(m.end)} ${m.path || '(anonymous)'}`;
  if (SPECIAL.has(m.path)) return { kind: 'special', shared, name: m.path };
  if (m.vmflags.includes('io') || m.vmflags.includes('pf')) throw refused(`${where}: device memory (VM_IO/VM_PFNMAP) cannot be checkpointed`);
  if (m.vmflags.includes('ss')) throw refused(`${where}: shadow stacks are not supported yet`);
  if (m.vmflags.includes('ht')) throw refused(`${where}: hugetlbfs memory is not supported yet`);
  if (m.vmflags.includes('um') || m.vmflags.includes('uw')) throw refused(`${where}: the area is registered with a userfaultfd; not supported yet`);
  if (m.path === '' || m.path === '[heap]' || m.path === '[stack]' || m.path.startsWith('[anon:')) {
    if (shared) throw refused(`${where}: unexpected shared anonymous area without a shmem file`);
    return { kind: 'anon', shared: false, name: m.path };
  }
  if (shared && (m.path === '/dev/zero (deleted)' || m.path === '/dev/zero')) {
    return { kind: 'anon', shared: true, name: '' };
  }
  if (m.path.startsWith('[')) throw refused(`${where}: special mapping ${m.path} is not supported`);
  if (m.path.startsWith('/memfd:')) throw refused(`${where}: memfd mappings are not supported yet`);
  if (m.path.startsWith('/SYSV')) throw refused(`${where}: System V shared memory is not supported yet`);
  if (m.path.endsWith(' (deleted)')) throw refused(`${where}: the mapped file was deleted; deleted files are not supported yet`);
  return { kind: 'file', shared, name: m.path };
}

export interface Segment { addr: bigint; len: number; fileOff: number; readable: boolean }
export interface MemoryPlan {
  areas: Area[];
  /** Runs of pages to store, in page-file order. */
  segments: Segment[];
  pageBytes: number;
  /** Shared memory objects first met in this process: to be stored whole. */
  shmem: Array<{ id: string; ino: number; start: bigint; end: bigint }>;
}

/** The parent's mapping this one was inherited from across fork, unchanged since. */
function inheritedFrom(m: MapEntry, parentMaps: MapEntry[] | null): MapEntry | null {
  if (!parentMaps) return null;
  if (m.vmflags.includes('dc') || m.vmflags.includes('wf')) return null; // not copied, or wiped, by fork
  const p = parentMaps.find((x) => x.start === m.start && x.end === m.end);
  if (!p || p.perms !== m.perms || p.offset !== m.offset || p.path !== m.path || p.inode !== m.inode || p.dev !== m.dev) return null;
  if (p.vmflags.join(' ') !== m.vmflags.join(' ')) return null;
  return p;
}

/**
 * Read the target's areas and choose the pages to store: the present (or
 * swapped out) pages of private anonymous areas, and in private file areas
 * only the pages that no longer match the file (anonymous copies). Shared
 * anonymous memory is an object of its own, stored whole once (see
 * `shmem`), whoever of the tree mapped or wrote its pages. Which pages exist
 * comes from PAGEMAP_SCAN, so untouched reservations cost nothing.
 *
 * For a child in a tree (`parentPid`), an area it still shares with its parent
 * since fork is marked `inherit`: restore forks the child from its restored
 * parent and keeps the area. Only the pages the child no longer shares with
 * the parent (a different page frame) are stored for it, and pages the parent
 * has but the child has not are listed in `drop`, to be dropped again in the
 * child.
 */
export function planMemory(pid: number, parentPid: number | undefined, seenShmem: Set<string>, knownParentMaps?: MapEntry[]): MemoryPlan & { maps: MapEntry[] } {
  const parentMaps = parentPid ? knownParentMaps ?? readSmaps(parentPid) : null;
  const maps = readSmaps(pid);
  const pm = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  const ppm = parentPid ? fs.openSync(`/proc/${parentPid}/pagemap`, 'r') : -1;
  const areas: Area[] = [];
  const segments: Segment[] = [];
  const shmem: MemoryPlan['shmem'] = [];
  let offset = 0;
  try {
    for (const m of maps) {
      if (m.path === '[vsyscall]') continue;
      const c = classify(pid, m);
      const area: Area = {
        start: toHex(m.start), end: toHex(m.end), prot: m.perms.slice(0, 3), shared: c.shared, kind: c.kind,
        name: c.name, offset: toHex(m.offset), vmflags: m.vmflags, dataOffset: offset, runs: [],
      };
      if (c.kind === 'file') {
        try {
          const st = fs.statSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`);
          area.fileSize = st.size;
          area.fileMtime = Math.floor(st.mtimeMs / 1000);
        } catch { /* no size */ }
      }
      areas.push(area);
      const from = c.kind !== 'special' ? inheritedFrom(m, parentMaps) : null;
      if (from) area.inherit = true;
      if (c.kind === 'anon' && c.shared) {
        const id = `${m.dev}:${m.inode}`;
        area.kind = 'shmem';
        area.shmem = id;
        if (!seenShmem.has(id)) {
          seenShmem.add(id);
          shmem.push({ id, ino: m.inode, start: m.start, end: m.end });
        }
        continue;
      }
      const wantPages = c.kind === 'anon' || (c.kind === 'file' && !c.shared);
      if (!wantPages) continue;
      const fileArea = c.kind === 'file';
      // A page of its own: an anonymous page (in a file area: a private copy), present or swapped out; not the shared zero page.
      const own = (cat: number) => (cat & PAGE_IS.SWAPPED) !== 0 ||
        ((cat & PAGE_IS.PRESENT) !== 0 && !(cat & PAGE_IS.PFNZERO) && !(fileArea && cat & PAGE_IS.FILE));
      const mine = runsWhere(populatedRegions(pm, m.start, m.end), own);
      let take = mine;
      if (from) {
        // Pages still the parent's (same page frame) come back with the fork at restore.
        const theirs = runsWhere(populatedRegions(ppm, m.start, m.end), own);
        const shared = intersectRuns(mine, theirs).flatMap(([s, n]) => samePageFrames(pm, ppm, m.start, s, n));
        take = subtractRuns(mine, normalizeRuns(shared));
        const drop = subtractRuns(theirs, mine);
        if (drop.length) area.drop = drop;
      }
      area.runs = take;
      for (const [s, n] of take) {
        segments.push({ addr: m.start + BigInt(s * PAGE_SIZE), len: n * PAGE_SIZE, fileOff: offset, readable: m.perms[0] === 'r' });
        offset += n * PAGE_SIZE;
      }
    }
  } finally {
    fs.closeSync(pm);
    if (ppm >= 0) fs.closeSync(ppm);
  }
  return { areas, segments, pageBytes: offset, shmem, maps };
}

/**
 * Store a shared memory object whole: its data extents (SEEK_DATA, which
 * also finds pages that are swapped out) read from the object itself
 * through /proc/PID/map_files, with their checksums.
 */
export function dumpShmem(pid: number, o: MemoryPlan['shmem'][number], pagesPath: string): { obj: Omit<ShmemObject, 'pagesFile'>; sums: string[] } {
  const src = fs.openSync(`/proc/${pid}/map_files/${o.start.toString(16)}-${o.end.toString(16)}`, 'r');
  try {
    const size = fs.fstatSync(src).size;
    const runs = dataExtents(src, size);
    const segs = runSegments(0n, runs, 0).map((g) => ({ addr: toHex(g.addr), len: g.len, fileOff: g.fileOff }));
    const sums = chunkSums(countPages(runs) * PAGE_SIZE);
    sums.take(runJob({ op: 'copy-out', fd: src, path: pagesPath, segs }));
    sums.take({ sums: crcChunks({ op: 'crc', path: pagesPath, size: countPages(runs) * PAGE_SIZE, chunks: sums.missing() }) });
    return { obj: { id: o.id, size: Math.max(size, PAGE_SIZE), runs }, sums: sums.all(pagesPath) };
  } finally { fs.closeSync(src); }
}

/**
 * The chunk checksums of a page file of `total` bytes, gathered from the
 * results of the jobs that wrote or read it; a job's final partial chunk
 * counts when it ends where the file ends.
 */
function chunkSums(total: number) {
  const sums: Array<string | undefined> = new Array(Math.max(1, Math.ceil(total / CHUNK)));
  return {
    take(r: { sums?: Array<[number, string]> }): void {
      for (const [c, v] of r.sums ?? []) {
        if (!v.startsWith('partial:')) sums[c] = v;
        else if (Number(v.split(':')[1]) === total) sums[c] = v.split(':')[2];
      }
    },
    missing: (): number[] => range(0, sums.length).filter((c) => sums[c] === undefined),
    all(path: string): string[] {
      return sums.map((v, c) => { if (v === undefined) throw new Error(`no checksum for chunk ${c} of ${path}`); return v; });
    },
  };
}

export const IOV_SCRATCH = IOV_MAX * 16;

/**
 * Write the planned pages into `pagesPath` and return the checksum of each
 * chunk of it. The target writes its own memory (pwritev from its address
 * space: one copy, in 64 MiB steps); with a pool, a worker checksums each
 * chunk as soon as the target has finished it, on the other core. Pages the
 * target cannot read (no PROT_READ), or all when it cannot open the file (it
 * may run with other credentials), are copied from outside.
 * (Copying part of the pages from outside at the same time was tried: with
 * two copies per byte it only slowed the whole down on two cores.)
 */
export async function writePages(rt: RemoteTask, plan: MemoryPlan, pagesPath: string, pool: Pool | null, insideOk: boolean, progress?: (done: number, total: number) => void): Promise<string[]> {
  const total = plan.pageBytes;
  const sums = chunkSums(total);
  const take = (r: { sums?: Array<[number, string]> }) => sums.take(r);
  const jobs: Array<Promise<void>> = [];
  const outsideJob = (segs: Segment[], worker?: number) => {
    const job = { op: 'copy-out' as const, pid: rt.pid, path: pagesPath, segs: segs.map((g) => ({ addr: toHex(g.addr), len: g.len, fileOff: g.fileOff })) };
    if (pool) jobs.push(pool.run(job, worker).then(take));
    else take(runJob(job));
  };

  if (total > 0) {
    // (insideOk is false when a limit of the target, such as RLIMIT_FSIZE,
    // would make its own writes fail: then ckpt copies every page itself.)
    const fdr = insideOk ? rt.callRaw(NR.openat, AT_FDCWD, rt.putString(pagesPath, IOV_SCRATCH), O.WRONLY | O.CLOEXEC, 0) : -1n;
    if (fdr < 0n) log.info(`pid ${rt.pid} ${insideOk ? `cannot open the page file itself (errno ${-fdr})` : 'has a file size limit'}; copying pages from outside`);
    const split = fdr < 0n ? 0 : total;
    const inside: Segment[] = [];
    const outside: Segment[] = [];
    for (const g of plan.segments) {
      if (!g.readable || fdr < 0n) { outside.push(g); continue; }
      if (g.fileOff + g.len <= split) inside.push(g);
      else if (g.fileOff >= split) outside.push(g);
      else {
        const head = split - g.fileOff;
        inside.push({ ...g, len: head });
        outside.push({ ...g, addr: g.addr + BigInt(head), len: g.len - head, fileOff: split });
      }
    }
    if (outside.length) outsideJob(outside, 0);
    if (fdr >= 0n) {
      const fd = Number(fdr);
      let done = 0;
      let hashedUpTo = 0;
      try {
        for (const b of batches(inside)) {
          let at = 0;
          while (at < b.bytes) {
            const iov = trimIov(b.iov, at);
            const iovAddr = rt.put(iovBuffer(iov), 0);
            const n = Number(rt.call('pwritev(pages)', NR.pwritev, fd, iovAddr, iov.length, b.fileOff + at, 0));
            if (n <= 0) throw new CkptError('failed', `pid ${rt.pid}: writing pages at 0x${iov[0][0].toString(16)} made no progress: is the image file system full?`);
            at += n;
          }
          done += b.bytes;
          progress?.(done, total);
          // Chunks the target has finished (and that hold no outside data) can be checksummed now.
          const upTo = Math.floor((b.fileOff + b.bytes) / CHUNK);
          if (pool && upTo > hashedUpTo) {
            const chunks = range(hashedUpTo, upTo).filter((c) => !outside.some((g) => overlapsChunk(g, c)));
            if (chunks.length) jobs.push(pool.run({ op: 'crc', path: pagesPath, size: total, chunks }, pool.size - 1).then(take));
            hashedUpTo = upTo;
          }
        }
      } finally {
        rt.callRaw(NR.close, fd);
      }
    }
  }
  await Promise.all(jobs);
  const missing = sums.missing();
  if (missing.length) {
    if (pool && missing.length > 1) {
      const parts = range(0, pool.size).map((w) => missing.filter((_, i) => i % pool.size === w));
      await Promise.all(parts.map((chunks, w) => (chunks.length ? pool.run({ op: 'crc', path: pagesPath, size: total, chunks }, w).then(take) : null)));
    } else take({ sums: crcChunks({ op: 'crc', path: pagesPath, size: total, chunks: missing }) });
  }
  progress?.(total, total);
  return sums.all(pagesPath);
}

const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
const overlapsChunk = (g: Segment, c: number) => g.fileOff < (c + 1) * CHUNK && g.fileOff + g.len > c * CHUNK;

// ---------------------------------------------------------------- restore

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
    let st: fs.Stats;
    try { st = fs.statSync(a.name); } catch {
      throw new CkptError('conflict', `pid ${pid}: the file it maps, ${a.name}, does not exist here`);
    }
    if (st.size !== a.fileSize || (a.fileMtime !== undefined && Math.floor(st.mtimeMs / 1000) !== a.fileMtime)) {
      throw new CkptError('conflict', `pid ${pid}: the file it maps, ${a.name}, changed since the dump (size ${a.fileSize} -> ${st.size}${a.fileMtime !== undefined ? `, modified ${new Date(a.fileMtime * 1000).toISOString()} -> ${st.mtime.toISOString()}` : ''}); restoring it would run other code`);
    }
  }
}

export function areaRanges(mem: MemoryImage): Range[] {
  return mem.areas.map((a) => ({ start: big(a.start), end: big(a.end) }));
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
    if (r.start > from) rt.call(`munmap(${toHex(from)}-${toHex(r.start)})`, NR.munmap, from, r.start - from);
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
  rt.call(`mremap(${name})`, NR.mremap, from, size, size, MREMAP.MAYMOVE | MREMAP.FIXED, to);
  if (name === '[vdso]') rt.gadget = to + gadgetOffset;
}

export interface DeferredPages {
  /** Anonymous areas whose pages are to be filled by UFFDIO_COPY from ckpt's side. */
  areas: Area[];
  segs: Array<{ addr: string; len: number; fileOff: number }>;
  bytes: number;
  /** Areas to mlock once their pages are in (mlock would fault them in as zeros). */
  mlock: Area[];
}

/** Shared memory objects during a restore: what the image holds, and where each one made so far is mapped. */
export interface ShmemCtx {
  objects: Map<string, ShmemObject>;
  /** An area of a restored process (its final PID) that maps the object. */
  sources: Map<string, { pid: number; start: bigint; end: bigint }>;
  pagesPath(name: string): string;
}

/**
 * Map every area of the image and fill in its pages. `pagesFd` is open in the
 * task. With `deferAnon`, the pages of readable private anonymous areas are
 * not read here but returned, for ckpt to copy in with userfaultfd. `pid` is
 * the PID the process will have (the husk's task becomes the root's).
 */
export function restoreAreas(rt: RemoteTask, mem: MemoryImage, pagesFd: number, pagesPath: string, deferAnon: boolean, shm: ShmemCtx, pid: number): DeferredPages {
  const deferred: DeferredPages = { areas: [], segs: [], bytes: 0, mlock: [] };
  const files = new Map<string, number>();
  let prev: Area | null = null;
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
        if (a.runs.length) writeAreaFromOutside(rt, a, pagesPath);
        for (const [i, n] of a.drop ?? []) {
          rt.call(`madvise(${a.start}, DONTNEED)`, NR.madvise, start + BigInt(i * PAGE_SIZE), n * PAGE_SIZE, MADV.DONTNEED);
        }
        continue;
      }
      const prot = protBits(a.prot);
      if (a.shmem) {
        mapShmem(rt, a, mem, shm, pid);
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
        if (a.kind === 'file') {
          // A shared mapping that may be made writable (VM_MAYWRITE, "mw") needs a file open for writing, even if it is read-only now.
          const acc = a.shared && (a.prot[1] === 'w' || a.vmflags.includes('mw')) ? O.RDWR : O.RDONLY;
          const key = `${acc}:${a.name}`;
          if (!files.has(key)) {
            const p = rt.putString(a.name, IOV_SCRATCH);
            const r = rt.callRaw(NR.openat, AT_FDCWD, p, acc | O.CLOEXEC, 0);
            if (r < 0n) throw new CkptError('conflict', `cannot open ${a.name} to map it at ${a.start}: errno ${-r}`);
            files.set(key, Number(r));
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
          const tmp = rt.call(`mmap(${a.start} staging)`, NR.mmap, 0, len, mapProt, flags & ~MAP.FIXED, fd, 0);
          rt.call(`mremap(${a.start})`, NR.mremap, tmp, len, len, MREMAP.MAYMOVE | MREMAP.FIXED, start);
        } else {
          rt.call(`mmap(${a.start} ${a.name || 'anon'})`, NR.mmap, start, len, mapProt, flags, fd, a.kind === 'file' ? big(a.offset) : 0n);
        }
        if (defer) {
          deferred.areas.push(a);
          for (const g of runSegments(start, a.runs as Run[], a.dataOffset)) {
            deferred.segs.push({ addr: toHex(g.addr), len: g.len, fileOff: g.fileOff });
            deferred.bytes += g.len;
          }
        } else if (hasPages) {
          if (outside) writeAreaFromOutside(rt, a, pagesPath);
          else readPages(rt, pagesFd, start, a.runs as Run[], a.dataOffset, `area ${a.start}`);
          if (mapProt !== prot) rt.call(`mprotect(${a.start})`, NR.mprotect, start, len, prot);
        }
        if (a.vmflags.includes('lo')) {
          if (defer) deferred.mlock.push(a);
          else lockArea(rt, a);
        }
      }
      for (const f of a.vmflags) {
        const adv = MADVISE_FOR_FLAG[f];
        if (adv !== undefined) rt.call(`madvise(${a.start}, ${f})`, NR.madvise, start, len, adv);
      }
      if (a.shmem && a.vmflags.includes('lo')) lockArea(rt, a);
      if (a.name.startsWith('[anon:')) {
        const nm = rt.putString(a.name.slice(6, -1), IOV_SCRATCH);
        rt.call('prctl(PR_SET_VMA_ANON_NAME)', NR.prctl, PR.SET_VMA, PR.SET_VMA_ANON_NAME, start, len, nm);
      }
    }
  } finally {
    for (const fd of files.values()) rt.callRaw(NR.close, fd);
  }
  return deferred;
}

/** mlock, or mlock2(MLOCK_ONFAULT) for an area locked on fault ("lf"). */
function lockArea(rt: RemoteTask, a: Area): void {
  const start = big(a.start);
  const len = big(a.end) - start;
  if (a.vmflags.includes('lf')) rt.call(`mlock2(${a.start}, MLOCK_ONFAULT)`, NR.mlock2, start, len, 1);
  else rt.call(`mlock(${a.start})`, NR.mlock, start, len);
}

/**
 * Seal the areas that were sealed (mseal, "sl"). Done last, once nothing
 * more is to be mapped or changed in the process (and its children exist).
 */
export function sealAreas(rt: RemoteTask, mem: MemoryImage): void {
  for (const a of mem.areas) {
    if (a.kind !== 'special' && a.vmflags.includes('sl')) rt.call(`mseal(${a.start})`, NR.mseal, big(a.start), big(a.end) - big(a.start), 0);
  }
}

/**
 * A shared anonymous area: the first process of the tree that maps the
 * object creates it (MAP_SHARED | MAP_ANONYMOUS, the same kind of object as
 * before) and reads its pages in; every later area, in this process or
 * another one, maps the same object through /proc/PID/map_files at its
 * offset. (Areas a child inherited across fork are kept, not mapped again.)
 */
function mapShmem(rt: RemoteTask, a: Area, mem: MemoryImage, shm: ShmemCtx, pid: number): void {
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
    const p = shm.pagesPath(obj.pagesFile);
    const fd = rt.callN(`open(${obj.pagesFile})`, NR.openat, AT_FDCWD, rt.putString(p, IOV_SCRATCH), O.RDONLY | O.CLOEXEC, 0);
    try { readPages(rt, fd, base, obj.runs as Run[], 0, `shared memory object ${obj.id}`); } finally { rt.callRaw(NR.close, fd); }
  };
  const mapFrom = (where: { pid: number; start: bigint; end: bigint }) => {
    const p = `/proc/${where.pid === pid ? 'self' : where.pid}/map_files/${where.start.toString(16)}-${where.end.toString(16)}`;
    const fd = rt.callN(`open(${p})`, NR.openat, AT_FDCWD, rt.putString(p, IOV_SCRATCH), O.RDWR | O.CLOEXEC, 0);
    try {
      rt.call(`mmap(${a.start} shared memory ${obj.id})`, NR.mmap, start, len, prot, MAP.SHARED | MAP.FIXED | nr, fd, off);
    } finally { rt.callRaw(NR.close, fd); }
  };
  if (src) { mapFrom(src); return; }
  if (off === 0n && len === BigInt(obj.size)) {
    // The common case: the area is the whole object.
    const addWrite = obj.runs.length > 0 && !(prot & PROT.WRITE);
    rt.call(`mmap(${a.start} shared)`, NR.mmap, start, len, addWrite ? prot | PROT.WRITE : prot, MAP.SHARED | MAP.ANONYMOUS | MAP.FIXED | nr, -1, 0);
    fill(start);
    if (addWrite) rt.call(`mprotect(${a.start})`, NR.mprotect, start, len, prot);
  } else {
    // Make the whole object in a free spot, fill it, map the window, let the spot go.
    const used = [...areaRanges(mem), ...readMapsRanges(rt.pid)];
    const tmp = findHole(used, obj.size);
    rt.call(`mmap(shared memory ${obj.id})`, NR.mmap, tmp, obj.size, PROT.READ | PROT.WRITE, MAP.SHARED | MAP.ANONYMOUS | MAP.FIXED_NOREPLACE | nr, -1, 0);
    try {
      fill(tmp);
      mapFrom({ pid, start: tmp, end: tmp + BigInt(obj.size) });
    } finally {
      rt.call(`munmap(shared memory ${obj.id} staging)`, NR.munmap, tmp, obj.size);
    }
  }
  shm.sources.set(obj.id, { pid, start, end: big(a.end) });
}

function readMapsRanges(pid: number): Range[] {
  return readSmaps(pid).map((m) => ({ start: m.start, end: m.end }));
}

const UFFDIO_API = 0xc018aa3fn;
const UFFDIO_REGISTER = 0xc020aa00n;
const UFFDIO_UNREGISTER = 0x8010aa01n;
const UFFD_API = 0xaa;
const UFFDIO_REGISTER_MODE_MISSING = 1;

/** Create a userfaultfd in the task and register the deferred areas with it; returns its fd (in the task). */
export function registerUffd(rt: RemoteTask, d: DeferredPages, scratchOff: number, minFd: number): number {
  // Keep it above every fd number the image uses: the fd table is rebuilt meanwhile.
  const first = rt.callN('userfaultfd', NR.userfaultfd, O.CLOEXEC);
  const ufd = rt.callN('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, first, F.DUPFD_CLOEXEC, minFd);
  rt.call('close', NR.close, first);
  const api = Buffer.alloc(24);
  api.writeBigUInt64LE(BigInt(UFFD_API), 0);
  rt.call('ioctl(UFFDIO_API)', NR.ioctl, ufd, UFFDIO_API, rt.put(api, scratchOff));
  for (const a of d.areas) {
    const reg = Buffer.alloc(32);
    reg.writeBigUInt64LE(big(a.start), 0);
    reg.writeBigUInt64LE(big(a.end) - big(a.start), 8);
    reg.writeBigUInt64LE(BigInt(UFFDIO_REGISTER_MODE_MISSING), 16);
    rt.call(`ioctl(UFFDIO_REGISTER ${a.start})`, NR.ioctl, ufd, UFFDIO_REGISTER, rt.put(reg, scratchOff));
  }
  return ufd;
}

/** Undo registerUffd once the pages are in; mlock what asked for it. */
export function unregisterUffd(rt: RemoteTask, d: DeferredPages, ufd: number, scratchOff: number): void {
  for (const a of d.areas) {
    const r = Buffer.alloc(16);
    r.writeBigUInt64LE(big(a.start), 0);
    r.writeBigUInt64LE(big(a.end) - big(a.start), 8);
    rt.call(`ioctl(UFFDIO_UNREGISTER ${a.start})`, NR.ioctl, ufd, UFFDIO_UNREGISTER, rt.put(r, scratchOff));
  }
  rt.call('close(userfaultfd)', NR.close, ufd);
  for (const a of d.mlock) lockArea(rt, a);
}

/** Would the kernel merge `b` into the area `a` just below it if both were mapped plainly? */
function mayMerge(a: Area, b: Area): boolean {
  return a.end === b.start && a.kind === 'anon' && !a.shared && !b.shared && a.prot === b.prot &&
    a.name === b.name && a.vmflags.join(' ') === b.vmflags.join(' ');
}

/** Read pages from an image file open in the task into its memory at `base` (preadv, one call per batch). */
function readPages(rt: RemoteTask, fd: number, base: bigint, runs: Run[], dataOffset: number, what: string): void {
  for (const b of batches(runSegments(base, runs, dataOffset))) {
    const iovAddr = rt.put(iovBuffer(b.iov), 0);
    const n = rt.call(`preadv(${what})`, NR.preadv, fd, iovAddr, b.iov.length, b.fileOff, 0);
    if (Number(n) !== b.bytes) throw new CkptError('bad-image', `page file is short: ${what} wanted ${b.bytes} bytes at offset ${b.fileOff}, got ${n}`);
  }
}

/** Write an area's pages from outside (/proc/PID/mem), 1 MiB at a time. */
function writeAreaFromOutside(rt: RemoteTask, a: Area, pagesPath: string): void {
  const fd = fs.openSync(pagesPath, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (const g of runSegments(big(a.start), a.runs as Run[], a.dataOffset)) {
      for (let o = 0; o < g.len; o += buf.length) {
        const n = Math.min(buf.length, g.len - o);
        if (fs.readSync(fd, buf, 0, n, g.fileOff + o) !== n) throw new CkptError('bad-image', `page file ${pagesPath} is short at offset ${g.fileOff + o}`);
        rt.write(g.addr + BigInt(o), buf.subarray(0, n));
      }
    }
  } finally { fs.closeSync(fd); }
}

export function describeAreas(mem: MemoryImage): Array<{ range: string; size: number; prot: string; kind: string; name: string; stored: number; object?: string }> {
  return mem.areas.map((a) => ({
    range: `${a.start}-${a.end}`, size: Number(big(a.end) - big(a.start)), prot: a.prot + (a.shared ? 's' : 'p'),
    kind: a.kind === 'anon' ? (a.shared ? 'shared-anon' : 'anon') : a.kind === 'shmem' ? 'shared-anon' : a.kind, name: a.shmem ? `[shared memory ${a.shmem} at offset ${a.offset}]` : a.name,
    stored: countPages(a.runs as Run[]) * PAGE_SIZE,
    ...(a.shmem ? { object: a.shmem } : {}),
  }));
}

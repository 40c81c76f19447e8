// Memory areas: image schema, dump (areas from smaps, present pages from
// pagemap, page data written by the target itself) and restore (areas mapped
// at their addresses in the new task, pages read by the task itself).

import fs from 'node:fs';
import * as z from 'zod/mini';
import { MapEntry, readSmaps } from '../kernel/proc.js';
import { RemoteTask } from '../kernel/remote.js';
import { NR, PROT, MAP, MADV, MREMAP, O, AT_FDCWD, PAGE_SIZE, PR } from '../kernel/consts.js';
import { refused, CkptError } from '../errors.js';
import { log } from '../log.js';
import { Pool } from '../bulk/pool.js';
import { CHUNK, crcChunks, runJob } from '../bulk/jobs.js';

const hex = z.string();
export const Area = z.object({
  start: hex,
  end: hex,
  prot: z.string(),            // "rwx" subset, e.g. "r-x"
  shared: z.boolean(),
  kind: z.enum(['anon', 'file', 'special']),
  name: z.string(),            // path, [heap], [stack], [vdso], [anon:NAME] or ''
  offset: hex,
  vmflags: z.array(z.string()),
  fileSize: z.optional(z.number()),
  fileMtime: z.optional(z.number()), // seconds; with fileSize, to tell a changed file at restore
  dataOffset: z.number(),      // where this area's pages start in the page file
  runs: z.array(z.tuple([z.number(), z.number()])), // [first page index in area, page count]
  inherit: z.optional(z.boolean()),  // a child's area kept from its parent across fork (see planMemory)
  drop: z.optional(z.array(z.tuple([z.number(), z.number()]))), // pages to drop in such an area
});
export type Area = z.infer<typeof Area>;

export const MemoryImage = z.object({
  pagesFile: z.string(),
  pageBytes: z.number(),
  areas: z.array(Area),
});
export type MemoryImage = z.infer<typeof MemoryImage>;

export const SPECIAL = new Set(['[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]']);

const toHex = (v: bigint) => '0x' + v.toString(16);
const big = (s: string) => BigInt(s);

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
}

/**
 * Read the target's areas and choose the pages to store: all present pages of
 * private anonymous and shared anonymous areas, and in private file areas only
 * the pages that no longer match the file (anonymous copies).
 */
function readPagemap(fd: number, m: { start: bigint; end: bigint }): { lo: Uint32Array; hi: Uint32Array; n: number } {
  const npages = Number((m.end - m.start) / BigInt(PAGE_SIZE));
  const buf = Buffer.allocUnsafe(npages * 8);
  const n = fs.readSync(fd, buf, 0, buf.length, Number(m.start / BigInt(PAGE_SIZE)) * 8);
  if (n !== buf.length) throw new Error(`short pagemap read for ${toHex(m.start)}`);
  const words = new Uint32Array(buf.buffer, buf.byteOffset, npages * 2);
  // Low and high halves of each 64-bit entry (little endian).
  return { lo: words.filter((_, i) => !(i & 1)), hi: words.filter((_, i) => (i & 1) === 1), n: npages };
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
 * Read the target's areas and choose the pages to store: all present pages of
 * private anonymous and shared anonymous areas, and in private file areas only
 * the pages that no longer match the file (anonymous copies).
 *
 * For a child in a tree (`parentPid`), an area it still shares with its parent
 * since fork is marked `inherit`: restore forks the child from its restored
 * parent and keeps the area. Only the pages the child no longer shares with
 * the parent (a different page frame) are stored for it, and pages the parent
 * has but the child has not are listed in `drop`, to be dropped again in the
 * child. Shared anonymous memory it inherited is not stored again at all.
 */
export function planMemory(pid: number, parentPid?: number): MemoryPlan {
  const maps = readSmaps(pid);
  const parentMaps = parentPid ? readSmaps(parentPid) : null;
  const pm = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  const ppm = parentPid ? fs.openSync(`/proc/${parentPid}/pagemap`, 'r') : -1;
  const areas: Area[] = [];
  const segments: Segment[] = [];
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
      if (from && c.shared) continue; // the same shared object: its pages are stored with the parent
      if (parentMaps && c.kind === 'anon' && c.shared && !from && parentMaps.some((x) => x.inode === m.inode && x.dev === m.dev)) {
        throw refused(`pid ${pid}: shared memory at ${toHex(m.start)} is shared with its parent ${parentPid} at another address; not supported yet`);
      }
      const wantPages = c.kind === 'anon' || (c.kind === 'file' && !c.shared);
      if (!wantPages) continue;
      const mine = readPagemap(pm, m);
      const theirs = from ? readPagemap(ppm, m) : null;
      const fileArea = c.kind === 'file';
      // A private copy: present and not a page of the file (or swapped out).
      const own = (hi: number) => {
        const present = (hi & 0x80000000) !== 0;
        const swapped = (hi & 0x40000000) !== 0;
        const filePage = (hi & 0x20000000) !== 0;
        return fileArea ? (present && !filePage) || swapped : present || swapped;
      };
      const pfn = (lo: number, hi: number) => (hi & 0x007fffff) * 0x100000000 + lo; // bits 0-54
      let runStart = -1;
      let dropStart = -1;
      for (let i = 0; i <= mine.n; i++) {
        let take = false;
        let drop = false;
        if (i < mine.n) {
          const h = mine.hi[i];
          take = own(h);
          if (theirs) {
            const ph = theirs.hi[i];
            // Page frames read as 0 without CAP_SYS_ADMIN: then nothing counts as shared.
            const frame = pfn(mine.lo[i], h);
            const shared = take && own(ph) && (h & 0x40000000) === 0 && (ph & 0x40000000) === 0 && frame !== 0 && frame === pfn(theirs.lo[i], ph);
            if (shared) take = false; // still the parent's page: the fork at restore gives it back
            else if (!take && own(ph)) drop = true; // the parent has a page here the child has not
          }
        }
        if (take && runStart < 0) runStart = i;
        else if (!take && runStart >= 0) {
          const count = i - runStart;
          area.runs.push([runStart, count]);
          segments.push({ addr: m.start + BigInt(runStart * PAGE_SIZE), len: count * PAGE_SIZE, fileOff: offset, readable: m.perms[0] === 'r' });
          offset += count * PAGE_SIZE;
          runStart = -1;
        }
        if (drop && dropStart < 0) dropStart = i;
        else if (!drop && dropStart >= 0) {
          (area.drop ??= []).push([dropStart, i - dropStart]);
          dropStart = -1;
        }
      }
    }
  } finally {
    fs.closeSync(pm);
    if (ppm >= 0) fs.closeSync(ppm);
  }
  return { areas, segments, pageBytes: offset };
}

const IOV_MAX = 1024;
const MAX_CALL_BYTES = 64 << 20; // = CHUNK: each call completes a checksum chunk

/**
 * Group segments into calls of at most IOV_MAX iovecs and MAX_CALL_BYTES, splitting
 * segments where needed. Returns per call the iovec list and its file offset.
 */
function* batches(segments: Array<{ addr: bigint; len: number; fileOff: number }>): Generator<{ iov: Array<[bigint, number]>; bytes: number; fileOff: number }> {
  let iov: Array<[bigint, number]> = [];
  let bytes = 0;
  let fileOff = 0;
  for (const g of segments) {
    let { addr, len } = g;
    let off = g.fileOff;
    // A batch covers one contiguous stretch of the page file.
    if (iov.length && fileOff + bytes !== off) { yield { iov, bytes, fileOff }; iov = []; bytes = 0; }
    while (len > 0) {
      if (!iov.length) fileOff = off;
      const take = Math.min(len, MAX_CALL_BYTES - bytes);
      iov.push([addr, take]);
      bytes += take; addr += BigInt(take); len -= take; off += take;
      if (iov.length === IOV_MAX || bytes === MAX_CALL_BYTES) { yield { iov, bytes, fileOff }; iov = []; bytes = 0; }
    }
  }
  if (iov.length) yield { iov, bytes, fileOff };
}

function iovBuffer(iov: Array<[bigint, number]>): Buffer {
  const b = Buffer.alloc(iov.length * 16);
  iov.forEach(([a, l], i) => { b.writeBigUInt64LE(a, i * 16); b.writeBigUInt64LE(BigInt(l), i * 16 + 8); });
  return b;
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
export async function writePages(rt: RemoteTask, plan: MemoryPlan, pagesPath: string, pool: Pool | null, progress?: (done: number, total: number) => void): Promise<string[]> {
  const total = plan.pageBytes;
  const nChunks = Math.max(1, Math.ceil(total / CHUNK));
  const sums: Array<string | undefined> = new Array(nChunks);
  const jobs: Array<Promise<void>> = [];
  const take = (r: { sums?: Array<[number, string]> }) => {
    for (const [c, v] of r.sums ?? []) {
      if (!v.startsWith('partial:')) sums[c] = v;
      else if (Number(v.split(':')[1]) === total) sums[c] = v.split(':')[2];
    }
  };
  const outsideJob = (segs: Segment[], worker?: number) => {
    const job = { op: 'copy-out' as const, pid: rt.pid, path: pagesPath, segs: segs.map((g) => ({ addr: toHex(g.addr), len: g.len, fileOff: g.fileOff })) };
    if (pool) jobs.push(pool.run(job, worker).then(take));
    else take(runJob(job));
  };

  if (total > 0) {
    const pathAddr = rt.putString(pagesPath, IOV_SCRATCH);
    const fdr = rt.callRaw(NR.openat, AT_FDCWD, pathAddr, O.WRONLY | O.CLOEXEC, 0);
    if (fdr < 0n) log.info(`pid ${rt.pid} cannot open the page file itself (errno ${-fdr}); copying pages from outside`);
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
  const missing = range(0, nChunks).filter((c) => sums[c] === undefined);
  if (missing.length) {
    if (pool && missing.length > 1) {
      const parts = range(0, pool.size).map((w) => missing.filter((_, i) => i % pool.size === w));
      await Promise.all(parts.map((chunks, w) => (chunks.length ? pool.run({ op: 'crc', path: pagesPath, size: total, chunks }, w).then(take) : null)));
    } else take({ sums: crcChunks({ op: 'crc', path: pagesPath, size: total, chunks: missing }) });
  }
  progress?.(total, total);
  return sums.map((v, c) => {
    if (v === undefined) throw new Error(`no checksum for chunk ${c} of ${pagesPath}`);
    return v;
  });
}

const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
const overlapsChunk = (g: Segment, c: number) => g.fileOff < (c + 1) * CHUNK && g.fileOff + g.len > c * CHUNK;

/** Drop the first `skip` bytes of an iovec list. */
function trimIov(iov: Array<[bigint, number]>, skip: number): Array<[bigint, number]> {
  if (skip === 0) return iov;
  const out: Array<[bigint, number]> = [];
  for (const [a, l] of iov) {
    if (skip >= l) { skip -= l; continue; }
    out.push([a + BigInt(skip), l - skip]);
    skip = 0;
  }
  return out;
}

// ---------------------------------------------------------------- restore

const MADVISE_FOR_FLAG: Record<string, number> = {
  dc: MADV.DONTFORK, dd: MADV.DONTDUMP, wf: MADV.WIPEONFORK, hg: MADV.HUGEPAGE, nh: MADV.NOHUGEPAGE, mg: MADV.MERGEABLE,
};

export interface Range { start: bigint; end: bigint }
const TASK_TOP = 0x7ffffffff000n;

/** Find a free range of `size` bytes that overlaps none of `used`. */
export function findHole(used: Range[], size: number, above = 0x100000000n): bigint {
  const sorted = [...used].sort((a, b) => (a.start < b.start ? -1 : 1));
  let cand = above;
  for (const r of sorted) {
    if (r.end <= cand) continue;
    if (r.start >= cand + BigInt(size)) break;
    cand = r.end;
  }
  if (cand + BigInt(size) > 0x7ffffffff000n) throw new Error('no free address range for the scratch area');
  return cand;
}

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

/**
 * Map every area of the image and fill in its pages. `pagesFd` is open in the
 * task. With `deferAnon`, the pages of readable private anonymous areas are
 * not read here but returned, for ckpt to copy in with userfaultfd.
 */
export function restoreAreas(rt: RemoteTask, mem: MemoryImage, pagesFd: number, pagesPath: string, deferAnon = false): DeferredPages {
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
          rt.call(`madvise(${a.start}, DONTNEED)`, NR.madvise, start + BigInt(i * PAGE_SIZE), n * PAGE_SIZE, 4 /* MADV_DONTNEED */);
        }
        continue;
      }
      const prot = protBits(a.prot);
      const hasPages = a.runs.length > 0;
      const defer = deferAnon && hasPages && a.kind === 'anon' && !a.shared && a.prot[0] === 'r';
      const addWrite = hasPages && !defer && !(prot & PROT.WRITE);
      // Mapping a private area writable marks it accountable (VM_ACCOUNT, "ac") for good:
      // when the original was not, write its pages from outside (/proc/PID/mem) instead.
      const outside = addWrite && !a.shared && !a.vmflags.includes('ac');
      const mapProt = addWrite && !outside ? prot | PROT.WRITE : prot;
      let flags = MAP.FIXED | (a.shared ? MAP.SHARED : MAP.PRIVATE);
      if (a.vmflags.includes('gd')) flags |= MAP.GROWSDOWN;
      if (a.vmflags.includes('nr')) flags |= MAP.NORESERVE;
      let fd = -1;
      if (a.kind === 'file') {
        const acc = a.shared && a.prot[1] === 'w' ? O.RDWR : O.RDONLY;
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
        let off = a.dataOffset;
        for (const [i, n] of a.runs) {
          deferred.segs.push({ addr: toHex(start + BigInt(i * PAGE_SIZE)), len: n * PAGE_SIZE, fileOff: off });
          off += n * PAGE_SIZE;
          deferred.bytes += n * PAGE_SIZE;
        }
      } else if (hasPages) {
        if (outside) writeAreaFromOutside(rt, a, pagesPath);
        else readAreaPages(rt, a, pagesFd);
        if (mapProt !== prot) rt.call(`mprotect(${a.start})`, NR.mprotect, start, len, prot);
      }
      for (const f of a.vmflags) {
        const adv = MADVISE_FOR_FLAG[f];
        if (adv !== undefined) rt.call(`madvise(${a.start}, ${f})`, NR.madvise, start, len, adv);
      }
      if (a.vmflags.includes('lo')) {
        if (defer) deferred.mlock.push(a);
        else rt.call(`mlock(${a.start})`, NR.mlock, start, len);
      }
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

const UFFDIO_API = 0xc018aa3fn;
const UFFDIO_REGISTER = 0xc020aa00n;
const UFFDIO_UNREGISTER = 0x8010aa01n;
const UFFD_API = 0xaa;
const UFFDIO_REGISTER_MODE_MISSING = 1;
const NR_USERFAULTFD = 323;

/** Create a userfaultfd in the task and register the deferred areas with it; returns its fd (in the task). */
export function registerUffd(rt: RemoteTask, d: DeferredPages, scratchOff: number, minFd: number): number {
  // Keep it above every fd number the image uses: the fd table is rebuilt meanwhile.
  const first = rt.callN('userfaultfd', NR_USERFAULTFD, O.CLOEXEC);
  const ufd = rt.callN('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, first, 1030 /* F_DUPFD_CLOEXEC */, minFd);
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
  for (const a of d.mlock) rt.call(`mlock(${a.start})`, NR.mlock, big(a.start), big(a.end) - big(a.start));
}

/** Would the kernel merge `b` into the area `a` just below it if both were mapped plainly? */
function mayMerge(a: Area, b: Area): boolean {
  return a.end === b.start && a.kind === 'anon' && !a.shared && !b.shared && a.prot === b.prot &&
    a.name === b.name && a.vmflags.join(' ') === b.vmflags.join(' ');
}

function readAreaPages(rt: RemoteTask, a: Area, pagesFd: number): void {
  const start = big(a.start);
  let off = a.dataOffset;
  const segs = a.runs.map(([i, n]) => {
    const g = { addr: start + BigInt(i * PAGE_SIZE), len: n * PAGE_SIZE, fileOff: off };
    off += g.len;
    return g;
  });
  for (const b of batches(segs)) {
    const iovAddr = rt.put(iovBuffer(b.iov), 0);
    const n = rt.call(`preadv(${a.start})`, NR.preadv, pagesFd, iovAddr, b.iov.length, b.fileOff, 0);
    if (Number(n) !== b.bytes) throw new CkptError('bad-image', `page file is short: area ${a.start} wanted ${b.bytes} bytes at offset ${b.fileOff}, got ${n}`);
  }
}

function writeAreaFromOutside(rt: RemoteTask, a: Area, pagesPath: string): void {
  const fd = fs.openSync(pagesPath, 'r');
  try {
    let off = a.dataOffset;
    for (const [i, n] of a.runs) {
      const buf = Buffer.allocUnsafe(n * PAGE_SIZE);
      fs.readSync(fd, buf, 0, buf.length, off);
      rt.write(big(a.start) + BigInt(i * PAGE_SIZE), buf);
      off += buf.length;
    }
  } finally { fs.closeSync(fd); }
}

export function describeAreas(mem: MemoryImage): Array<{ range: string; size: number; prot: string; kind: string; name: string; stored: number }> {
  return mem.areas.map((a) => ({
    range: `${a.start}-${a.end}`, size: Number(big(a.end) - big(a.start)), prot: a.prot + (a.shared ? 's' : 'p'),
    kind: a.kind === 'anon' ? (a.shared ? 'shared-anon' : 'anon') : a.kind, name: a.name,
    stored: a.runs.reduce((s, r) => s + r[1], 0) * PAGE_SIZE,
  }));
}


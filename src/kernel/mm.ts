// Memory inspection from outside a process: which pages of a range exist
// (the PAGEMAP_SCAN ioctl on /proc/PID/pagemap, Linux 6.7+, with a chunked
// read of the page map where it is missing), their page-frame numbers, and
// the data extents of a file (SEEK_DATA / SEEK_HOLE), for shared memory
// objects. The work done never grows with the size of untouched memory when
// PAGEMAP_SCAN is there.

import fs from 'node:fs';
import { syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, PAGE_SIZE } from './consts.js';

/** Page categories (the PAGE_IS_* bits of the kernel's uapi). */
export const PAGE_IS = { FILE: 1 << 2, PRESENT: 1 << 3, SWAPPED: 1 << 4, PFNZERO: 1 << 5 } as const;

/** A stretch of pages with the same categories: [first page, page count, categories], pages relative to a base. */
export type Region = [number, number, number];

const PM_SCAN_ARG_SIZE = 96; // 12 x u64
const PAGEMAP_SCAN = 0xc0606610; // _IOWR('f', 16, struct pm_scan_arg)
const REGION_SIZE = 24;        // struct page_region: start, end, categories
const VEC_LEN = 4096;
const PAGE = BigInt(PAGE_SIZE);

let scanWorks: boolean | null = null;
/** For the test of the fallback (debug switch fail = pagemap-scan): read page maps as on a kernel without PAGEMAP_SCAN. */
export function pretendNoPagemapScan(on: boolean): void { if (on) scanWorks = false; }
/** Whether PAGEMAP_SCAN was found to work (null: not tried yet). */
export function pagemapScanWorks(): boolean | null { return scanWorks; }

/**
 * The pages of [start, end) that are present or swapped out, as regions
 * relative to `start`, with their PAGE_IS_* categories (PRESENT, SWAPPED,
 * FILE, PFNZERO). `pagemapFd` is an open /proc/PID/pagemap.
 */
export function populatedRegions(pagemapFd: number, start: bigint, end: bigint): Region[] {
  if (scanWorks !== false) {
    const r = scanRegions(pagemapFd, start, end);
    if (r) { scanWorks = true; return r; }
    scanWorks = false;
  }
  return readRegions(pagemapFd, start, end);
}

const argBuf = Buffer.alloc(PM_SCAN_ARG_SIZE);
const vecBuf = Buffer.alloc(REGION_SIZE * VEC_LEN);

function scanRegions(fd: number, start: bigint, end: bigint): Region[] | null {
  const out: Region[] = [];
  const wanted = PAGE_IS.PRESENT | PAGE_IS.SWAPPED;
  let at = start;
  while (at < end) {
    argBuf.fill(0);
    const w = (i: number, v: bigint | number) => argBuf.writeBigUInt64LE(BigInt(v), i * 8);
    w(0, PM_SCAN_ARG_SIZE); w(1, 0); w(2, at); w(3, end); w(5, addressOf(vecBuf)); w(6, VEC_LEN);
    w(7, 0); w(8, 0); w(9, 0); w(10, wanted); w(11, wanted | PAGE_IS.FILE | PAGE_IS.PFNZERO);
    const n = syscallRaw(NR.ioctl, fd, PAGEMAP_SCAN, addressOf(argBuf));
    if (n < 0) {
      if (out.length === 0 && at === start && (-n === 25 /* ENOTTY */ || -n === 22 /* EINVAL */)) return null;
      throw new SysError('ioctl(PAGEMAP_SCAN)', -n);
    }
    for (let i = 0; i < n; i++) {
      const rs = vecBuf.readBigUInt64LE(i * REGION_SIZE);
      const re = vecBuf.readBigUInt64LE(i * REGION_SIZE + 8);
      const cat = Number(vecBuf.readBigUInt64LE(i * REGION_SIZE + 16));
      const first = Number((rs - start) / PAGE);
      const count = Number((re - rs) / PAGE);
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === first && last[2] === cat) last[1] += count;
      else out.push([first, count, cat]);
    }
    const walkEnd = argBuf.readBigUInt64LE(4 * 8);
    if (walkEnd <= at) throw new Error(`PAGEMAP_SCAN made no progress at 0x${at.toString(16)}`);
    at = walkEnd;
  }
  return out;
}

const CHUNK_PAGES = 1 << 16; // 512 KiB of page-map entries at a time
const bufA = Buffer.alloc(CHUNK_PAGES * 8);
const bufB = Buffer.alloc(CHUNK_PAGES * 8);

function readEntries(fd: number, buf: Buffer, page: number, n: number): void {
  const got = fs.readSync(fd, buf, 0, n * 8, page * 8);
  if (got !== n * 8) throw new Error(`short read of the page map at page 0x${page.toString(16)}`);
}

/**
 * Pages [first, first + count) of the range at `base` that are the same page
 * frame in two page maps (a child's and its parent's): present, not swapped,
 * and with a frame number that is not hidden (0 without CAP_SYS_ADMIN).
 * Read in bounded chunks, compared without allocating per page.
 */
export function samePageFrames(fdA: number, fdB: number, base: bigint, first: number, count: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const basePage = Number(base / PAGE);
  let runStart = -1;
  for (let done = 0; done < count; done += CHUNK_PAGES) {
    const n = Math.min(CHUNK_PAGES, count - done);
    readEntries(fdA, bufA, basePage + first + done, n);
    readEntries(fdB, bufB, basePage + first + done, n);
    for (let i = 0; i < n; i++) {
      const loA = bufA.readUInt32LE(i * 8), hiA = bufA.readUInt32LE(i * 8 + 4);
      const hiB = bufB.readUInt32LE(i * 8 + 4);
      // both present and not swapped (bits 63, 62), the same frame (bits 0-54), not a hidden 0
      const same = hiA >>> 30 === 2 && hiB >>> 30 === 2 && (loA !== 0 || (hiA & 0x7fffff) !== 0) &&
        loA === bufB.readUInt32LE(i * 8) && (hiA & 0x7fffff) === (hiB & 0x7fffff);
      const idx = first + done + i;
      if (same && runStart < 0) runStart = idx;
      else if (!same && runStart >= 0) { out.push([runStart, idx - runStart]); runStart = -1; }
    }
  }
  if (runStart >= 0) out.push([runStart, first + count - runStart]);
  return out;
}

/** Without PAGEMAP_SCAN: the page map read in bounded chunks (time grows with the range). */
function readRegions(fd: number, start: bigint, end: bigint): Region[] {
  const out: Region[] = [];
  const total = Number((end - start) / PAGE);
  const basePage = Number(start / PAGE);
  for (let done = 0; done < total; done += CHUNK_PAGES) {
    const n = Math.min(CHUNK_PAGES, total - done);
    readEntries(fd, bufA, basePage + done, n);
    for (let i = 0; i < n; i++) {
      const hi = bufA.readUInt32LE(i * 8 + 4);
      // bits 63 present, 62 swapped, 61 file-page or shared-anon
      const cat = (hi & 0x80000000 ? PAGE_IS.PRESENT : 0) | (hi & 0x40000000 ? PAGE_IS.SWAPPED : 0) | (hi & 0x20000000 ? PAGE_IS.FILE : 0);
      if (!(cat & (PAGE_IS.PRESENT | PAGE_IS.SWAPPED))) continue;
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === done + i && last[2] === cat) last[1]++;
      else out.push([done + i, 1, cat]);
    }
  }
  return out;
}

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** Data extents of an open file, in pages: [first page, page count]. */
export function dataExtents(fd: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = 0;
  while (at < size) {
    const d = syscallRaw(NR.lseek, fd, at, SEEK_DATA);
    if (d < 0) {
      if (-d === 6 /* ENXIO: no data after `at` */) break;
      throw new SysError('lseek(SEEK_DATA)', -d);
    }
    const h = syscallRaw(NR.lseek, fd, d, SEEK_HOLE);
    if (h < 0) throw new SysError('lseek(SEEK_HOLE)', -h);
    const first = Math.floor(d / PAGE_SIZE);
    const endPage = Math.ceil(Math.min(h, size) / PAGE_SIZE);
    if (endPage > first) out.push([first, endPage - first]);
    at = endPage * PAGE_SIZE;
  }
  return out;
}

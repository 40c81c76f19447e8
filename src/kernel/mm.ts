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

/** Page-map entries of pages [first, first + count) of the range at `base`, read in bounded chunks. */
export function* pagemapEntries(fd: number, base: bigint, first: number, count: number): Generator<[number, bigint]> {
  const entryBuf = Buffer.allocUnsafe(Math.min(CHUNK_PAGES, count) * 8); // one per walk: two may run side by side
  const basePage = Number(base / PAGE);
  for (let done = 0; done < count;) {
    const n = Math.min(CHUNK_PAGES, count - done);
    const got = fs.readSync(fd, entryBuf, 0, n * 8, (basePage + first + done) * 8);
    if (got !== n * 8) throw new Error(`short read of the page map at 0x${(base + BigInt(first + done) * PAGE).toString(16)}`);
    for (let i = 0; i < n; i++) yield [first + done + i, entryBuf.readBigUInt64LE(i * 8)];
    done += n;
  }
}

const PM_PRESENT = 1n << 63n;
const PM_SWAP = 1n << 62n;
const PM_FILE = 1n << 61n;
const PFN_MASK = (1n << 55n) - 1n;

/** The page frame of a page-map entry (0 when hidden, or not present). */
export function entryFrame(e: bigint): bigint {
  return e & PM_PRESENT && !(e & PM_SWAP) ? e & PFN_MASK : 0n;
}

function entryCategories(e: bigint): number {
  let c = 0;
  if (e & PM_PRESENT) c |= PAGE_IS.PRESENT;
  if (e & PM_SWAP) c |= PAGE_IS.SWAPPED;
  if (e & PM_FILE) c |= PAGE_IS.FILE;
  return c;
}

/** Without PAGEMAP_SCAN: the page map read in bounded chunks (time grows with the range). */
function readRegions(fd: number, start: bigint, end: bigint): Region[] {
  const out: Region[] = [];
  const total = Number((end - start) / PAGE);
  for (const [i, e] of pagemapEntries(fd, start, 0, total)) {
    const cat = entryCategories(e);
    if (!(cat & (PAGE_IS.PRESENT | PAGE_IS.SWAPPED))) continue;
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === i && last[2] === cat) last[1]++;
    else out.push([i, 1, cat]);
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

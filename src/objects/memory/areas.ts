// The memory part of the image: the areas of a process (address range,
// protection, kind, VmFlags, where their pages are in the page file) and the
// shared memory objects stored once for the whole tree, as zod schemas, with
// small helpers on areas used by dump, restore and `ckpt info`.

import * as z from 'zod/mini';
import { PROT, PAGE_SIZE } from '../../kernel/consts.js';
import { pageAddr, hex64, count, PAGE, regex, refine, superRefine, noNul } from '../../image/schema.js';
import { Run, countPages, Range } from './runs.js';
import { SYSV_NAME } from './sysvshm.js';

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
export const big = (s: string) => BigInt(s);

export const Area = z.object({
  start: pageAddr,
  end: pageAddr,
  prot: z.string().check(regex(/^[r-][w-][x-]$/, 'expected a protection such as "r-x"')),
  shared: z.boolean(),
  // 'shmem': a window of a shared memory object (shmem.json). A new kind rather than an 'anon' area with
  // a new field, so that a ckpt that does not know objects refuses such an image instead of misreading it.
  // 'inode': a mapping of a file whose inode is stored in the image (a deleted file, a memfd: files.json `inodes`).
  // 'sysvshm': an attached System V shared memory segment (sysvshm.json `segments`, by id).
  kind: z.enum(['anon', 'file', 'special', 'shmem', 'inode', 'sysvshm']),
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
  inode: z.optional(z.int().check(z.gte(1), z.lte(0x7fffffff))), // the stored inode an 'inode' area maps
  sysvshm: z.optional(z.int().check(z.gte(0), z.lte(0x7fffffff))), // the id of the System V segment a 'sysvshm' area maps
}).check(
  refine((a) => big(a.start) < big(a.end), { message: 'the area ends before it starts', path: ['end'] }),
  refine((a) => big(a.offset) % 4096n === 0n, { message: 'the offset is not page-aligned', path: ['offset'] }),
  refine((a) => runsOk(a.runs as Run[], Number((big(a.end) - big(a.start)) / 4096n)), { message: 'page runs are out of order or outside the area', path: ['runs'] }),
  refine((a) => !a.drop || runsOk(a.drop as Run[], Number((big(a.end) - big(a.start)) / 4096n)), { message: 'page runs are out of order or outside the area', path: ['drop'] }),
  refine((a) => (a.kind === 'inode') === (a.inode !== undefined), { message: 'an inode area, and only one, refers to a stored inode', path: ['inode'] }),
  refine((a) => (a.kind === 'sysvshm') === (a.sysvshm !== undefined) && (a.kind !== 'sysvshm' || (a.shared && a.runs.length === 0)), { message: 'a sysvshm area, and only one, refers to a System V segment, and holds no pages of its own', path: ['sysvshm'] }),
  refine((a) => (a.kind === 'special' ? SPECIAL.has(a.name) : a.kind === 'file' || a.kind === 'inode' ? a.name.startsWith('/') : a.kind === 'shmem' ? a.name === '' : a.kind === 'sysvshm' ? SYSV_NAME.test(a.name) :
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

export const toHex = (v: bigint) => '0x' + v.toString(16);

export function protBits(perms: string): number {
  return (perms[0] === 'r' ? PROT.READ : 0) | (perms[1] === 'w' ? PROT.WRITE : 0) | (perms[2] === 'x' ? PROT.EXEC : 0);
}

export function areaRanges(mem: MemoryImage): Range[] {
  return mem.areas.map((a) => ({ start: big(a.start), end: big(a.end) }));
}

export function describeAreas(mem: MemoryImage): Array<{ range: string; size: number; prot: string; kind: string; name: string; stored: number; object?: string }> {
  return mem.areas.map((a) => ({
    range: `${a.start}-${a.end}`, size: Number(big(a.end) - big(a.start)), prot: a.prot + (a.shared ? 's' : 'p'),
    kind: a.kind === 'anon' ? (a.shared ? 'shared-anon' : 'anon') : a.kind === 'shmem' ? 'shared-anon' : a.kind,
    name: a.shmem ? `[shared memory ${a.shmem} at offset ${a.offset}]` : a.kind === 'sysvshm' ? `[System V segment ${a.sysvshm} at offset ${a.offset}]` : a.name,
    stored: countPages(a.runs as Run[]) * PAGE_SIZE,
    ...(a.shmem ? { object: a.shmem } : {}),
  }));
}

// Planning a dump of memory: the target's areas from smaps, how each one is
// captured (or refused), and which of its pages are stored, from the page
// map. Nothing is moved here: the plan lists the runs of pages, in the order
// they take in the process's page stream, for the transfer (transfer.ts).

import { openSync, statSync, closeSync } from 'node:fs';
import { MapEntry, readSmaps } from '../../kernel/proc.js';
import { PAGE_SIZE } from '../../kernel/consts.js';
import { populatedRegions, samePageFrames, PAGE_IS } from '../../kernel/mm.js';
import { refused } from '../../errors.js';
import { runsWhere, intersectRuns, subtractRuns, normalizeRuns } from './runs.js';
import { Area, SPECIAL, toHex } from './areas.js';
import { isGhostName } from '../inodes.js';
import { isSysvName } from './sysvshm.js';

/** Where the inodes of mapped deleted files and memfds are stored (objects/inodes.ts). */
export interface MappedInodes { add(open: string, shown: string, what: string, privateMapping?: boolean): number }

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
  // A System V shared memory segment (sysvshm.ts): the inode number is its id.
  if (isSysvName(m.path) && shared) return { kind: 'sysvshm', shared, name: m.path };
  if (m.path.startsWith('/SYSV')) throw refused(`${where}: a System V shared memory area ckpt does not know`);
  // A deleted file or a memfd: its inode goes into the image (objects/inodes.ts).
  if (isGhostName(m.path)) return { kind: 'inode', shared, name: m.path };
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
export function planMemory(pid: number, parentPid: number | undefined, seenShmem: Set<string>, knownParentMaps?: MapEntry[], inodes?: MappedInodes): MemoryPlan & { maps: MapEntry[] } {
  const parentMaps = parentPid ? knownParentMaps ?? readSmaps(parentPid) : null;
  const maps = readSmaps(pid);
  const pm = openSync(`/proc/${pid}/pagemap`, 'r');
  const ppm = parentPid ? openSync(`/proc/${parentPid}/pagemap`, 'r') : -1;
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
          const st = statSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`);
          area.fileSize = st.size;
          area.fileMtime = Math.floor(st.mtimeMs / 1000);
        } catch { /* no size */ }
      }
      if (c.kind === 'inode') {
        const what = `pid ${pid}: memory area ${toHex(m.start)}-${toHex(m.end)} ${m.path}`;
        if (!inodes) throw refused(`${what}: a mapped deleted file or memfd; not supported here`);
        area.inode = inodes.add(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`, m.path, what, !c.shared);
      }
      if (c.kind === 'sysvshm') area.sysvshm = m.inode;
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
      const wantPages = c.kind === 'anon' || ((c.kind === 'file' || c.kind === 'inode') && !c.shared);
      if (!wantPages) continue;
      const fileArea = c.kind === 'file' || c.kind === 'inode';
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
    closeSync(pm);
    if (ppm >= 0) closeSync(ppm);
  }
  return { areas, segments, pageBytes: offset, shmem, maps };
}

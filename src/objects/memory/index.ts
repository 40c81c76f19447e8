// Memory of a process: what dump.ts, restore.ts and info.ts use.
//   areas.ts     the image's memory documents (schemas) and helpers on areas
//   runs.ts      pure logic on page runs, batches of transfers, free ranges
//   plan.ts      which areas and pages a dump stores
//   transfer.ts  moving page data between a process and a page sink or source
//   map.ts       mapping the areas of a restored process
//   uffd.ts      userfaultfd registration for pages copied in by ckpt
//   sysvshm.ts   System V shared memory segments attached by the tree
//   pages-io.ts  the page sink (dump) and page source (restore) interfaces;
//                the image directory's are in image/pages.ts

export { Area, MemoryImage, ShmemObject, ShmemImage, SPECIAL, areaRanges, describeAreas } from './areas.js';
export { findHole } from './runs.js';
export { SysvShmDump, MadeSysvShm, SysvShmImage, SysvShmSegment } from './sysvshm.js';
export { planMemory } from './plan.js';
export type { MemoryPlan, Segment } from './plan.js';
export { writePages, dumpShmem } from './transfer.js';
export { checkMappedFiles, clearAndMoveSpecials, restoreAreas, sealAreas } from './map.js';
export type { DeferredPages, ShmemCtx } from './map.js';
export { registerUffd, unregisterUffd, copyInDeferred } from './uffd.js';
export type { PageRun, PageSet, PageOrigin, StoredPages, PageSink, PageStream, PageSource, PageReader } from './pages-io.js';

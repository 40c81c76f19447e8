// `ckpt image upgrade`: rewrite an image of an older format version in the
// current one. Each version has one converter step to the next (a change
// that is not purely additive bumps the version and adds a step here). The
// old image is checked whole first; the new one is staged next to it and
// replaces it only once it is complete (ImageWriter's commit), so an
// interrupted upgrade leaves the old image or the new one, never a mix.
// Page files do not change between versions: they are hard-linked into the
// new image, not copied.

import fs from 'node:fs';
import path from 'node:path';
import { ImageReader, ImageWriter, FORMAT_VERSION, Manifest, validate } from './store.js';
import { ManifestV1, ProcessImageV1, FdImageV1 } from './v1.js';
import { ProcessImage } from '../objects/process.js';
import { FilesImage, FileDesc, FdRef } from '../objects/files.js';
import { ShmemImage, SysvShmImage } from '../objects/memory/index.js';
import { O } from '../kernel/consts.js';
import { badImage } from '../errors.js';

/** An image in the making: its manifest and JSON documents by file name; raw files pass through. */
interface Docs { manifest: Record<string, unknown>; json: Map<string, unknown> }

interface Step { from: number; describe: string; run(d: Docs): void }

/** Version 1 -> 2: per-process fd kinds (path, tty, dup, inherit) become an open-file table. */
const v1to2: Step = {
  from: 1,
  describe: 'open files recorded once, in files.json',
  run(d) {
    const m = validate(ManifestV1, d.manifest, 'manifest.json');
    const files: FileDesc[] = [];
    const idOf = new Map<string, number>(); // "pid:fd" -> open file id
    for (const p of m.processes) {
      if (p.zombie) continue;
      const name = `process-${p.pid}.json`;
      const doc = validate(ProcessImageV1, d.json.get(name), name);
      const fds: FdRef[] = [];
      for (const f of [...doc.fds].sort((a, b) => a.fd - b.fd) as FdImageV1[]) {
        let id: number | undefined;
        let cloexec: boolean;
        if (f.kind === 'dup' || f.kind === 'inherit') {
          id = f.kind === 'dup' ? idOf.get(`${p.pid}:${f.of}`) : idOf.get(`${p.ppid}:${f.parentFd}`);
          if (id === undefined) throw badImage(`image file ${name}: fd ${f.fd} is a copy of ${f.kind === 'dup' ? `fd ${f.of}` : `the parent's fd ${f.parentFd}`}, which is not in the image`);
          cloexec = f.cloexec;
        } else {
          id = files.length + 1;
          cloexec = (f.flags & O.CLOEXEC) !== 0;
          const { fd: _fd, ...desc } = f;
          files.push({ ...desc, id, flags: f.flags & ~O.CLOEXEC } as FileDesc);
        }
        idOf.set(`${p.pid}:${f.fd}`, id);
        fds.push({ fd: f.fd, file: id, cloexec });
      }
      d.json.set(name, { ...doc, fds });
    }
    d.json.set('files.json', { files });
    d.manifest = { ...d.manifest, version: 2 };
  },
};

/**
 * Version 2 -> 3: new kinds of open file and memory area, and fields an older
 * reader would drop and so restore wrongly (timers, seccomp, shared fd tables,
 * deleted working directories, locks.json). A version 2 image has none of
 * them: it is a version 3 image as it is (the current schemas, a superset of
 * version 2's, check it below).
 */
const v2to3: Step = {
  from: 2,
  describe: 'stored inodes, event objects, sockets, ptys, epoll, locks, timers, seccomp and shared fd tables (nothing to convert)',
  run(d) { d.manifest = { ...d.manifest, version: 3 }; },
};

/**
 * Version 3 -> 4: new kinds of open file (`tcp`, `udp`, `rawsock`,
 * `pingsock`, `packetsock`, `netlinksock`) and of memory area (`sysvshm`),
 * and files an older reader would ignore and so restore wrongly
 * (`network.json`: a network lock to release; `sysvshm.json`). A version 3
 * image has none of them.
 */
const v3to4: Step = {
  from: 3,
  describe: 'inet, packet and netlink sockets, the network lock, System V shared memory (nothing to convert)',
  run(d) { d.manifest = { ...d.manifest, version: 4 }; },
};

const STEPS: Step[] = [v1to2, v2to3, v3to4];

export interface UpgradeResult { dir: string; from: number; to: number; steps: string[] }

export async function upgradeImage(dirArg: string): Promise<UpgradeResult> {
  const dir = path.resolve(dirArg);
  const old = new ImageReader(dir, { olderVersions: true });
  const from = old.version;
  if (from === FORMAT_VERSION) return { dir, from, to: from, steps: [] };
  // The whole old image is checked first: a damaged image is not converted.
  await old.verify(null);
  const raw = old.manifest as unknown as Record<string, unknown>;
  const listed = Object.keys(old.manifest.files);
  const d: Docs = { manifest: raw, json: new Map() };
  for (const name of listed) {
    if (!name.endsWith('.json')) continue;
    try { d.json.set(name, JSON.parse(fs.readFileSync(old.path(name), 'utf8'))); } catch (e) {
      throw badImage(`image file ${name} is not valid JSON: ${(e as Error).message}`);
    }
  }
  const done: string[] = [];
  for (let v = from; v < FORMAT_VERSION; v++) {
    const step = STEPS.find((s) => s.from === v);
    if (!step) throw new Error(`internal: no converter from image format version ${v}`);
    step.run(d);
    done.push(`${v} -> ${v + 1}: ${step.describe}`);
  }
  // The result must be a valid image of this version before anything is written.
  for (const [name, doc] of d.json) {
    if (name.startsWith('process-')) validate(ProcessImage, doc, name);
    else if (name === 'files.json') validate(FilesImage, doc, name);
    else if (name === 'shmem.json') validate(ShmemImage, doc, name);
    else if (name === 'sysvshm.json') validate(SysvShmImage, doc, name);
  }
  const w = new ImageWriter(dir);
  try {
    for (const [name, doc] of d.json) w.writeJson(name, doc);
    for (const name of listed) {
      if (name.endsWith('.json')) continue;
      try { fs.linkSync(old.path(name), w.path(name)); } catch { fs.copyFileSync(old.path(name), w.path(name)); }
      w.addRaw(name, old.manifest.files[name].crc32c);
    }
    const full = validate(Manifest, { ...d.manifest, files: w.files }, 'manifest.json');
    const { format: _f, version: _v, chunkSize: _c, files: _files, ...rest } = full;
    w.commit(rest);
  } catch (e) {
    w.discard();
    throw e;
  }
  return { dir, from, to: FORMAT_VERSION, steps: done };
}

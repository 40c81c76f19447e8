// The image directory: a versioned manifest, JSON documents checked against
// schemas when read, and raw page files. Files are 0600 inside a 0700 directory.
//
// Every file has a checksum in the manifest: crc32c of each 64 MiB chunk, so
// that big page files can be checked by both cores at once. A new image is
// written into a staging directory inside the image directory and moved into
// place only when complete, so a failed dump never destroys an older image.

import fs from 'node:fs';
import path from 'node:path';
import * as z from 'zod/mini';
import { crc32c } from '@node-rs/crc32';
import { badImage } from '../errors.js';
import { debugSwitches } from '../cancel.js';
import { count, hex64, int, pid, PID_MAX, regex, superRefine } from './schema.js';
import { CHUNK, crcChunks, shareJob } from '../bulk/jobs.js';
import { Pool } from '../bulk/pool.js';

export const FORMAT = 'ckpt-image';
export const FORMAT_VERSION = 4;

export const FileEntry = z.object({
  size: count,
  crc32c: z.array(z.string().check(regex(/^[0-9a-f]{8}$/, 'expected a crc32c as 8 hex digits'))).check(z.minLength(1)), // one per CHUNK bytes
});
export type FileEntry = z.infer<typeof FileEntry>;

/** A file of the image: a plain name inside the directory (no path, no dot files). */
const fileName = z.string().check(regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/, 'expected a plain file name'));

const ProcessEntry = z.object({
  pid, ppid: int(0, PID_MAX), comm: z.string().check(z.maxLength(15)), threads: int(0, 1 << 22),
  zombie: z.optional(z.object({ status: int(0, 0xffff), pgid: pid, sid: pid, exitSignal: int(0, 64) })),
});

export const Manifest = z.object({
  format: z.literal(FORMAT),
  version: z.int(),
  ckptVersion: z.string(),
  created: z.string(),
  kernel: z.string(),
  arch: z.string(),
  cpu: z.object({ xcr0: hex64, xsaveSize: int(0, 1 << 20), used: hex64 }),
  root: pid,
  processes: z.array(ProcessEntry).check(z.minLength(1)),
  options: z.object({ shellJob: z.boolean(), leaveRunning: z.boolean(), fileLocks: z.optional(z.boolean()), tcpEstablished: z.optional(z.boolean()) }),
  chunkSize: z.int(),
  files: z.record(fileName, FileEntry),
}).check(superRefine((m, ctx) => {
  // The tree: each PID once, the root first, every other process after its parent, live processes with threads.
  const seen = new Set<number>();
  m.processes.forEach((p, i) => {
    const at = (field: string) => ['processes', i, field];
    if (seen.has(p.pid)) ctx.addIssue({ code: 'custom', message: `pid ${p.pid} is listed twice`, path: at('pid'), input: p.pid });
    if (i === 0 && p.pid !== m.root) ctx.addIssue({ code: 'custom', message: `the first process is not the root ${m.root}`, path: at('pid'), input: p.pid });
    if (i > 0 && !seen.has(p.ppid)) ctx.addIssue({ code: 'custom', message: `its parent ${p.ppid} is not listed before it`, path: at('ppid'), input: p.ppid });
    if (i === 0 && m.processes.some((q) => q.pid === p.ppid)) ctx.addIssue({ code: 'custom', message: `the root's parent ${p.ppid} is a process of the image`, path: at('ppid'), input: p.ppid });
    if (i === 0 && p.zombie) ctx.addIssue({ code: 'custom', message: 'the root is a zombie', path: at('zombie'), input: p.zombie });
    if (p.zombie && p.threads !== 0) ctx.addIssue({ code: 'custom', message: 'a zombie has no threads', path: at('threads'), input: p.threads });
    if (!p.zombie && p.threads < 1) ctx.addIssue({ code: 'custom', message: 'a live process has at least one thread', path: at('threads'), input: p.threads });
    if (!p.zombie && !m.files[`process-${p.pid}.json`]) ctx.addIssue({ code: 'custom', message: `process-${p.pid}.json is not in the manifest's files`, path: at('pid'), input: p.pid });
    seen.add(p.pid);
  });
  if (!m.files['files.json']) ctx.addIssue({ code: 'custom', message: 'files.json is not in the manifest\'s files', path: ['files'], input: m.files });
}));
export type Manifest = z.infer<typeof Manifest>;

/** What every format version's manifest has: its files and their checksums. */
const OlderManifest = z.looseObject({ version: z.int(), chunkSize: z.int(), files: z.record(fileName, FileEntry) });

function describeIssue(file: string, err: z.core.$ZodError): string {
  const i = err.issues[0];
  const where = i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
  // (a missing field reads as "received undefined" in zod's words)
  const msg = i.message.replace(/^Invalid input: expected (\w+), received undefined$/, 'missing (expected $1)');
  return `image file ${file}: field ${where}: ${msg}`;
}

/** Validate a parsed JSON document against a schema, naming the file and field on failure. */
export function validate<T>(schema: z.ZodMiniType<T>, data: unknown, file: string): T {
  const r = schema.safeParse(data);
  if (!r.success) throw badImage(describeIssue(file, r.error));
  return r.data;
}

const hex = (n: number) => n.toString(16).padStart(8, '0');
export function chunkCount(size: number): number { return Math.max(1, Math.ceil(size / CHUNK)); }

// Replacing an image (docs/image-format.md, "The directory"). The complete
// staging directory is renamed to .ckpt-commit: that rename is the commit
// point. From then on the commit only rolls forward, in commit() or, after a
// crash, in the next ImageWriter or ImageReader to open the directory.
const COMMIT_DIR = '.ckpt-commit';
const STAGE_PREFIX = '.ckpt-new-';
/**
 * Names of image files: a file of this name that the new manifest does not
 * list is left over from the old image, and a commit removes it. A new kind
 * of image file must be added here. Other files (logs written with -o) stay.
 */
const IMAGE_FILE = /^(manifest\.json|shmem\.json|sysvshm\.json|files\.json|locks\.json|process-[^/]+\.json|(pages|shmem|sysvshm|file)-[^/]+\.img)$/;

function errCode(e: unknown): string | undefined { return (e as NodeJS.ErrnoException)?.code; }
function unlessGone(fn: () => void): void {
  try { fn(); } catch (e) { if (errCode(e) !== 'ENOENT') throw e; }
}

/**
 * For tests: the debug switch crash = commit:N (CKPT_DEBUG_CRASH) kills ckpt
 * (SIGKILL) just before the N-th filesystem operation (rename, unlink,
 * rmdir; from 0) of commit().
 */
function commitOps(): () => void {
  const m = /^commit:(\d+)$/.exec(debugSwitches().crash ?? '');
  let i = 0;
  return m ? () => { if (i++ === Number(m[1])) process.kill(process.pid, 'SIGKILL'); } : () => {};
}

/** The files a manifest lists (null if there is no such manifest); only `files` is looked at here. */
function listedFiles(manifest: string): string[] | null {
  let text: string;
  try { text = fs.readFileSync(manifest, 'utf8'); } catch (e) { if (errCode(e) === 'ENOENT') return null; throw e; }
  let files: unknown;
  try { files = (JSON.parse(text) as { files?: unknown })?.files; } catch { files = undefined; }
  if (typeof files !== 'object' || files === null) throw badImage(`${manifest} is not a valid manifest (truncated or corrupted)`);
  const names = Object.keys(files);
  const bad = names.find((n) => n === 'manifest.json' || n === '.' || n === '..' || n.includes('/'));
  if (bad !== undefined) throw badImage(`${manifest} lists ${JSON.stringify(bad)}, which cannot be an image file`);
  return names;
}

/** fsync a file or directory (directories: so that renames in them are on disk). */
function syncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/**
 * Finish a commit past its commit point: move the new image's files from
 * .ckpt-commit into the directory, each replacing the old file of that name,
 * manifest.json last; then remove the old image's files that the new
 * manifest does not list, and .ckpt-commit. Every step may have been done
 * already by an interrupted run (or one running at the same time): a file
 * already moved or removed is skipped. `op` is called before each operation.
 */
function rollForward(dir: string, op: () => void): void {
  const cdir = path.join(dir, COMMIT_DIR);
  const moving = listedFiles(path.join(cdir, 'manifest.json'));
  if (moving) {
    // Each file is renamed over the old one of that name. (Removing the old
    // one first would be faster on ext4, whose auto_da_alloc makes a rename
    // over a file start writing the new one out, but a second roll-forward
    // running at the same time could then remove a new file.)
    for (const f of moving) { op(); unlessGone(() => fs.renameSync(path.join(cdir, f), path.join(dir, f))); }
    op(); unlessGone(() => fs.renameSync(path.join(cdir, 'manifest.json'), path.join(dir, 'manifest.json')));
    syncPath(dir);
  }
  const listed = listedFiles(path.join(dir, 'manifest.json'));
  if (!listed) throw badImage(`${dir} has an unfinished commit (${COMMIT_DIR}) but no manifest.json`);
  const keep = new Set(listed);
  for (const f of fs.readdirSync(dir).sort()) {
    if (f === 'manifest.json' || keep.has(f) || !IMAGE_FILE.test(f)) continue;
    op(); unlessGone(() => fs.unlinkSync(path.join(dir, f)));
  }
  op(); fs.rmSync(cdir, { recursive: true, force: true });
}

/**
 * Before a new image is staged in `dir`: finish a commit that a crash
 * interrupted, and remove the staging directories of dumps that were killed
 * before their commit point (nothing else uses them: two dumps into one
 * directory at once are not supported).
 */
function prepareImageDir(dir: string): void {
  if (fs.existsSync(path.join(dir, COMMIT_DIR))) {
    try { rollForward(dir, () => {}); } catch (e) {
      // Its manifest is unreadable (power loss?): the image being written replaces it.
      if ((e as { kind?: string }).kind !== 'bad-image') throw e;
      fs.rmSync(path.join(dir, COMMIT_DIR), { recursive: true, force: true });
    }
  }
  for (const f of fs.readdirSync(dir)) {
    if (f.startsWith(STAGE_PREFIX)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  }
}

/**
 * Before an image is read: finish a commit that a crash interrupted. If the
 * directory is read-only, the image can still be read as it is once the new
 * manifest has been moved in (only unlisted leftovers remain); before that,
 * the new image is split between two directories and this says so.
 */
function finishCommitForReading(dir: string): void {
  const cdir = path.join(dir, COMMIT_DIR);
  if (!fs.existsSync(cdir)) return;
  try {
    rollForward(dir, () => {});
  } catch (e) {
    const code = errCode(e);
    if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM') throw e;
    if (!fs.existsSync(path.join(cdir, 'manifest.json'))) return;
    throw badImage(`the image in ${dir} was being replaced when ckpt was interrupted, and the new image cannot be moved into place ` +
      `(${code}): part of it is still in ${cdir}. Make ${dir} writable and run \`ckpt info -D ${dir}\` to finish the move`);
  }
}

export class ImageWriter {
  readonly files: Record<string, FileEntry> = {};
  readonly stage: string;
  constructor(public readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    prepareImageDir(dir);
    this.stage = fs.mkdtempSync(path.join(dir, STAGE_PREFIX));
    fs.chmodSync(this.stage, 0o700);
  }
  /** Path of a file being written (in the staging directory). */
  path(name: string): string { return path.join(this.stage, name); }
  /** Remove the unfinished image (after a failed dump). */
  discard(): void {
    fs.rmSync(this.stage, { recursive: true, force: true });
  }
  writeJson(name: string, data: unknown): void {
    this.writeRaw(name, Buffer.from(JSON.stringify(data, null, 1) + '\n'));
  }
  /** Write a whole file from memory (small data: a JSON document, a pipe's contents). */
  writeRaw(name: string, data: Buffer): void {
    fs.writeFileSync(this.path(name), data, { mode: 0o600 });
    const sums: string[] = [];
    for (let at = 0; at < Math.max(1, data.length); at += CHUNK) sums.push(hex(crc32c(data.subarray(at, at + CHUNK))));
    this.files[name] = { size: data.length, crc32c: sums };
  }
  /** Create an empty file (for page data written by the target itself). */
  createRaw(name: string, size = 0): string {
    const p = this.path(name);
    fs.writeFileSync(p, '', { mode: 0o600 });
    if (size) fs.truncateSync(p, size);
    return p;
  }
  /** Record a raw file written by someone else, with its chunk checksums. */
  addRaw(name: string, sums: string[]): void {
    this.files[name] = { size: fs.statSync(this.path(name)).size, crc32c: sums };
  }
  /** Write the manifest and move the image into place, replacing an older one. */
  commit(m: Omit<Manifest, 'files' | 'format' | 'version' | 'chunkSize'>): Manifest {
    const full: Manifest = { format: FORMAT, version: FORMAT_VERSION, ...m, chunkSize: CHUNK, files: this.files };
    const op = commitOps();
    const fd = fs.openSync(this.path('manifest.json'), 'w', 0o600);
    try { fs.writeFileSync(fd, JSON.stringify(full, null, 1) + '\n'); fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    // Only listed files may go into the image directory.
    for (const f of fs.readdirSync(this.stage)) {
      if (f !== 'manifest.json' && !Object.hasOwn(this.files, f)) { op(); fs.unlinkSync(this.path(f)); }
    }
    op(); fs.renameSync(this.stage, path.join(this.dir, COMMIT_DIR)); // the commit point
    syncPath(this.dir);
    rollForward(this.dir, op);
    return full;
  }
}

export class ImageReader {
  readonly manifest: Manifest;
  /** The image's format version: FORMAT_VERSION, or older when opened with `olderVersions`. */
  readonly version: number;
  /**
   * With `olderVersions` (for the converter), an image of an older format
   * version opens too: then only the manifest's `files` and `chunkSize` are
   * checked here, and `manifest` is the old manifest as it is (the converter
   * reads it with the frozen schemas of its version).
   */
  constructor(public readonly dir: string, opts: { olderVersions?: boolean } = {}) {
    const mp = path.join(dir, 'manifest.json');
    if (!fs.existsSync(dir)) throw badImage(`image directory ${dir} does not exist`);
    finishCommitForReading(dir);
    if (!fs.existsSync(mp)) throw badImage(`${dir} is not a ckpt image: manifest.json is missing`);
    let raw: unknown;
    try { raw = JSON.parse(fs.readFileSync(mp, 'utf8')); } catch (e) {
      throw badImage(`image file manifest.json is not valid JSON (truncated or corrupted): ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || (raw as { format?: unknown }).format !== FORMAT) {
      throw badImage(`image file manifest.json: not a ckpt image (format is ${JSON.stringify((raw as { format?: unknown })?.format) ?? "missing"}, expected "${FORMAT}")`);
    }
    const v = (raw as { version?: unknown }).version;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw badImage(`image file manifest.json: field version: ${v === undefined ? 'missing' : `${JSON.stringify(v)} is not a version number`}`);
    this.version = v;
    if (v >= 1 && v < FORMAT_VERSION && opts.olderVersions) {
      this.manifest = validate(OlderManifest, raw, 'manifest.json') as unknown as Manifest;
    } else if (v >= 1 && v < FORMAT_VERSION) {
      throw badImage(`the image in ${dir} has format version ${v}; this ckpt reads version ${FORMAT_VERSION}. ` +
        `Upgrade it with \`ckpt image upgrade -D ${dir}\` (it is rewritten in place; the old image is replaced only once the new one is complete)`);
    } else if (v !== FORMAT_VERSION) {
      throw badImage(`image file manifest.json: image format version ${v} is not supported by this ckpt (reads version ${FORMAT_VERSION})`);
    } else {
      this.manifest = validate(Manifest, raw, 'manifest.json');
    }
    if (this.manifest.chunkSize !== CHUNK) throw badImage(`image file manifest.json: chunk size ${this.manifest.chunkSize} is not ${CHUNK}`);
  }
  path(name: string): string { return path.join(this.dir, name); }

  /**
   * Check that every file the manifest lists is present and whole, and that
   * its checksums match (for the files `hash` selects; the others are checked
   * by whoever reads them, with checkSums()).
   */
  async verify(hash: ((name: string) => boolean) | null, pool: Pool | null = null): Promise<void> {
    const big: Array<{ name: string; size: number; chunks: number[]; check: (s: Array<[number, string]>) => void }> = [];
    for (const [name, e] of Object.entries(this.manifest.files)) {
      const p = this.path(name);
      let st: fs.Stats;
      try { st = fs.statSync(p); } catch { throw badImage(`image file ${name} is missing`); }
      if (st.size !== e.size) {
        throw badImage(`image file ${name} is ${st.size < e.size ? 'truncated' : 'too long'}: ${st.size} bytes, manifest says ${e.size}`);
      }
      const n = chunkCount(e.size);
      if (e.crc32c.length !== n) throw badImage(`image file manifest.json: ${name} has ${e.crc32c.length} checksums for ${n} chunks`);
      const check = (sums: Array<[number, string]>) => {
        for (const [c, sum] of sums) {
          if (sum !== e.crc32c[c]) throw badImage(`image file ${name} is corrupted: the checksum of bytes ${c * CHUNK}-${Math.min(e.size, (c + 1) * CHUNK)} does not match the manifest`);
        }
      };
      if (hash && !hash(name)) continue;
      const all = Array.from({ length: n }, (_, i) => i);
      if (!pool || n < 2) { check(crcChunks({ op: 'crc', path: p, size: e.size, chunks: all })); continue; }
      big.push({ name: p, size: e.size, chunks: all, check });
    }
    // Big files: this thread and the worker share the chunks.
    for (const b of big) {
      const results = await shareJob({ op: 'crc', path: b.name, size: b.size, chunks: b.chunks }, pool);
      for (const r of results) b.check(r.sums!);
    }
  }

  /** Compare checksums computed elsewhere with the manifest's; every chunk must be covered. */
  checkSums(name: string, sums: Array<[number, string]>): void {
    const e = this.manifest.files[name];
    const seen = new Set<number>();
    for (const [c, sum] of sums) {
      if (sum !== e.crc32c[c]) throw badImage(`image file ${name} is corrupted: the checksum of bytes ${c * CHUNK}-${Math.min(e.size, (c + 1) * CHUNK)} does not match the manifest`);
      seen.add(c);
    }
    if (seen.size !== e.crc32c.length) throw new Error(`internal: ${name} was checked in ${seen.size} of ${e.crc32c.length} chunks`);
  }

  readJson<T>(name: string, schema: z.ZodMiniType<T>): T {
    const entry = this.manifest.files[name];
    if (!entry) throw badImage(`image file ${name} is not listed in the manifest`);
    let raw: unknown;
    try { raw = JSON.parse(fs.readFileSync(this.path(name), 'utf8')); } catch (e) {
      throw badImage(`image file ${name} is not valid JSON: ${(e as Error).message}`);
    }
    return validate(schema, raw, name);
  }
}

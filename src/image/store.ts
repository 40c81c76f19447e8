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
import { CHUNK, crcChunks, shareJob } from '../bulk/jobs.js';
import { Pool } from '../bulk/pool.js';

export const FORMAT = 'ckpt-image';
export const FORMAT_VERSION = 1;

export const FileEntry = z.object({
  size: z.number(),
  crc32c: z.array(z.string()), // one per CHUNK bytes (at least one)
});
export type FileEntry = z.infer<typeof FileEntry>;

export const Manifest = z.object({
  format: z.literal(FORMAT),
  version: z.number(),
  ckptVersion: z.string(),
  created: z.string(),
  kernel: z.string(),
  arch: z.string(),
  cpu: z.object({ xcr0: z.string(), xsaveSize: z.number(), used: z.string() }),
  root: z.number(),
  processes: z.array(z.object({
    pid: z.number(), ppid: z.number(), comm: z.string(), threads: z.number(),
    zombie: z.optional(z.object({ status: z.number(), pgid: z.number(), sid: z.number(), exitSignal: z.number() })),
  })),
  options: z.object({ shellJob: z.boolean(), leaveRunning: z.boolean() }),
  chunkSize: z.number(),
  files: z.record(z.string(), FileEntry),
});
export type Manifest = z.infer<typeof Manifest>;

function describeIssue(file: string, err: z.core.$ZodError): string {
  const i = err.issues[0];
  const where = i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
  return `image file ${file}: field ${where}: ${i.message}`;
}

/** Validate a parsed JSON document against a schema, naming the file and field on failure. */
export function validate<T>(schema: z.ZodMiniType<T>, data: unknown, file: string): T {
  const r = schema.safeParse(data);
  if (!r.success) throw badImage(describeIssue(file, r.error));
  return r.data;
}

const hex = (n: number) => n.toString(16).padStart(8, '0');
export function chunkCount(size: number): number { return Math.max(1, Math.ceil(size / CHUNK)); }

export class ImageWriter {
  readonly files: Record<string, FileEntry> = {};
  readonly stage: string;
  constructor(public readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    this.stage = fs.mkdtempSync(path.join(dir, '.ckpt-new-'));
    fs.chmodSync(this.stage, 0o700);
  }
  /** Path of a file being written (in the staging directory). */
  path(name: string): string { return path.join(this.stage, name); }
  /** Remove the unfinished image (after a failed dump). */
  discard(): void {
    fs.rmSync(this.stage, { recursive: true, force: true });
  }
  writeJson(name: string, data: unknown): void {
    const text = Buffer.from(JSON.stringify(data, null, 1) + '\n');
    fs.writeFileSync(this.path(name), text, { mode: 0o600 });
    this.files[name] = { size: text.length, crc32c: [hex(crc32c(text))] };
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
    fs.writeFileSync(this.path('manifest.json'), JSON.stringify(full, null, 1) + '\n', { mode: 0o600 });
    const old = fs.readdirSync(this.dir).filter((f) => f === 'manifest.json' || /^(process|pages)-/.test(f));
    fs.rmSync(path.join(this.dir, 'manifest.json'), { force: true }); // an image without manifest is never taken for whole
    for (const f of old) fs.rmSync(path.join(this.dir, f), { force: true });
    for (const f of Object.keys(this.files)) fs.renameSync(this.path(f), path.join(this.dir, f));
    fs.renameSync(this.path('manifest.json'), path.join(this.dir, 'manifest.json'));
    fs.rmdirSync(this.stage);
    return full;
  }
}

export class ImageReader {
  readonly manifest: Manifest;
  constructor(public readonly dir: string) {
    const mp = path.join(dir, 'manifest.json');
    if (!fs.existsSync(dir)) throw badImage(`image directory ${dir} does not exist`);
    if (!fs.existsSync(mp)) throw badImage(`${dir} is not a ckpt image: manifest.json is missing`);
    let raw: unknown;
    try { raw = JSON.parse(fs.readFileSync(mp, 'utf8')); } catch (e) {
      throw badImage(`image file manifest.json is not valid JSON (truncated or corrupted): ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || (raw as { format?: unknown }).format !== FORMAT) {
      throw badImage(`image file manifest.json: not a ckpt image (format is ${JSON.stringify((raw as { format?: unknown })?.format)}, expected "${FORMAT}")`);
    }
    const v = (raw as { version?: unknown }).version;
    if (v !== FORMAT_VERSION) {
      throw badImage(`image format version ${String(v)} is not supported by this ckpt (reads version ${FORMAT_VERSION})`);
    }
    this.manifest = validate(Manifest, raw, 'manifest.json');
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

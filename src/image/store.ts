// The image directory: a versioned manifest, JSON documents checked against
// schemas when read, and raw page files. Files are 0600 inside a 0700 directory.

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import * as z from 'zod/mini';
import { badImage } from '../errors.js';

export const FORMAT = 'ckpt-image';
export const FORMAT_VERSION = 1;

export const FileEntry = z.object({ size: z.number(), sha256: z.string() });
export const Manifest = z.object({
  format: z.literal(FORMAT),
  version: z.number(),
  ckptVersion: z.string(),
  created: z.string(),
  kernel: z.string(),
  arch: z.string(),
  cpu: z.object({ xcr0: z.string(), xsaveSize: z.number(), used: z.string() }),
  root: z.number(),
  processes: z.array(z.object({ pid: z.number(), ppid: z.number(), comm: z.string(), threads: z.number() })),
  options: z.object({ shellJob: z.boolean(), leaveRunning: z.boolean() }),
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

export class ImageWriter {
  readonly files: Record<string, { size: number; sha256: string }> = {};
  constructor(public readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    const stale = fs.readdirSync(dir).filter((f) => f === 'manifest.json' || /^(process|pages)-/.test(f));
    // An old image in the same directory is replaced whole.
    for (const f of stale) fs.rmSync(path.join(dir, f));
  }
  private created: string[] = [];
  path(name: string): string { return path.join(this.dir, name); }
  /** Remove what this writer created (after a failed dump). */
  discard(): void {
    for (const f of this.created) fs.rmSync(this.path(f), { force: true });
  }
  writeJson(name: string, data: unknown): void {
    const text = JSON.stringify(data, null, 1) + '\n';
    this.created.push(name);
    fs.writeFileSync(this.path(name), text, { mode: 0o600 });
    this.files[name] = { size: Buffer.byteLength(text), sha256: sha256(Buffer.from(text)) };
  }
  /** Create an empty file (for page data written by the target itself). */
  createRaw(name: string): string {
    const p = this.path(name);
    this.created.push(name);
    fs.writeFileSync(p, '', { mode: 0o600 });
    return p;
  }
  /** Record a raw file written by someone else. */
  addRaw(name: string): void {
    const p = this.path(name);
    this.files[name] = { size: fs.statSync(p).size, sha256: hashFile(p) };
  }
  writeManifest(m: Omit<Manifest, 'files' | 'format' | 'version'>): Manifest {
    const full: Manifest = { format: FORMAT, version: FORMAT_VERSION, ...m, files: this.files };
    fs.writeFileSync(this.path('manifest.json'), JSON.stringify(full, null, 1) + '\n', { mode: 0o600 });
    return full;
  }
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

export function hashFile(p: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally { fs.closeSync(fd); }
  return h.digest('hex');
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
  }
  path(name: string): string { return path.join(this.dir, name); }

  /** Check that every file the manifest lists is present, whole and unchanged. */
  verify(opts: { hashPages?: boolean } = {}): void {
    for (const [name, e] of Object.entries(this.manifest.files)) {
      const p = this.path(name);
      let st: fs.Stats;
      try { st = fs.statSync(p); } catch { throw badImage(`image file ${name} is missing`); }
      if (st.size !== e.size) {
        throw badImage(`image file ${name} is ${st.size < e.size ? 'truncated' : 'too long'}: ${st.size} bytes, manifest says ${e.size}`);
      }
      if (opts.hashPages === false && name.startsWith('pages-')) continue;
      if (hashFile(p) !== e.sha256) throw badImage(`image file ${name} is corrupted: its checksum does not match the manifest`);
    }
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

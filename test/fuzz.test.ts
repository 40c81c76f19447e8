// Fuzz test: restore many mutated images and check that every one is refused
// cleanly: exit status 4 (bad image) or 5 (host conflict), a message naming
// the image file at fault, no JavaScript error text, within a time limit, and
// nothing left behind (no process of the image, no husk, no new file).
//
// Base images of a few subjects are dumped once (on /dev/shm); each case
// copies one and applies ONE mutation:
//   - flip, truncate, remove, empty: damage to a file, checksums left as they
//     are (the size or checksum check must catch it; manifest.json, which has
//     no checksum, is only damaged so that it is no longer JSON);
//   - type, missing, range, consistency: a change to manifest.json, a
//     process document or files.json (the open-file table) that is still
//     valid JSON, with the checksums in the manifest fixed up, so that only
//     the schema and the consistency checks can catch it. Only wrong types,
//     out-of-range and inconsistent values are generated
//     (docs/image-format.md), never a different valid value. The open-file
//     table has its own: an fd naming an open file files.json lacks, a
//     description listed twice or held by no fd, an unknown kind, bad fields
//     of a path description, an fd's file that is no integer; the bases
//     hold descriptions shared between processes and by dups (fd_flags).
//
// Repeatable: CKPT_FUZZ_SEED (default below) picks the mutations,
// CKPT_FUZZ_CASES (default 1000) how many, CKPT_FUZZ_ONLY=3,17 replays some
// cases only, CKPT_FUZZ_KEEP=1 keeps the directories of failing cases,
// CKPT_FUZZ_DRY=1 only prints the mutations the cases would make,
// CKPT_FUZZ_LOG=FILE writes one line per case (mutation, exit status, message).
// Two ckpt processes run at a time: worker w runs the cases i with i % 2 = w,
// on its own set of base images, so that the two never share PIDs.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { Subject, CKPT, ckpt, ckptOk, cleanupAll, treeGone, readText } from './harness.js';
import { waitNoHang } from '../src/kernel/ptrace.js';

const DEFAULT_SEED = 0x0c4b7f22;
const SEED = parseSeed(process.env.CKPT_FUZZ_SEED);
const CASES = Number(process.env.CKPT_FUZZ_CASES ?? 1000);
const ONLY = (process.env.CKPT_FUZZ_ONLY ?? '').split(',').filter(Boolean).map(Number);
const KEEP = !!process.env.CKPT_FUZZ_KEEP;
const DRY = !!process.env.CKPT_FUZZ_DRY;
const LOG = process.env.CKPT_FUZZ_LOG;
const TIMEOUT_MS = 20000;
const WORKERS = 2;
const SHOWN = Number(process.env.CKPT_FUZZ_SHOW ?? 20);
const CHUNK = 64 * 1024 * 1024;

function parseSeed(s: string | undefined): number {
  if (!s) return DEFAULT_SEED;
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new Error(`CKPT_FUZZ_SEED must be an integer, not ${s}`);
  return n >>> 0;
}

// ---------------------------------------------------------------- randomness

/** A small seeded generator (32-bit state, multiply-xorshift output): floats in [0, 1). */
function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}
/** Each case has its own generator, so that a case can be replayed alone. */
const caseRng = (i: number) => makeRng((Math.imul(SEED ^ 0x5bd1e995, 0x27d4eb2d) ^ Math.imul(i + 1, 0x165667b1)) >>> 0);

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)];
function weighted<T>(rng: Rng, xs: ReadonlyArray<readonly [number, T]>): T {
  let r = rng() * xs.reduce((s, [w]) => s + w, 0);
  for (const [w, x] of xs) { if ((r -= w) < 0) return x; }
  return xs[xs.length - 1][1];
}

// ---------------------------------------------------------------- base images

type J = any;
type P = Array<string | number>;

interface Base {
  set: number;
  kind: string;
  dir: string;
  files: string[];                 // manifest.json first
  bytes: Record<string, Buffer>;
  manifest: J;
  docs: Record<string, J>;         // process documents by file name
  filesDoc: J;                     // files.json
  pids: number[];
  ids: number[];                   // PIDs and TIDs
}

const SUBJECT_KINDS: Array<{ kind: string; name: string; args: string[]; weight: number }> = [
  { kind: 'counter', name: 'counter', args: [], weight: 3 },
  { kind: 'threads', name: 'threads', args: ['8'], weight: 2.5 },
  { kind: 'zombie', name: 'zombie', args: [], weight: 2 },
  { kind: 'tree', name: 'tree', args: ['2'], weight: 2.5 }, // 1 + 2 + 4 processes
  // A parent and a child sharing 15 descriptions (files, a directory, O_PATH), dups with their own close-on-exec.
  { kind: 'files', name: 'fd_flags', args: [], weight: 3 },
];

const FILES = 'files.json';
const jsonText = (v: J) => Buffer.from(JSON.stringify(v, null, 1) + '\n');
const hex8 = (n: number) => n.toString(16).padStart(8, '0');
function fileEntry(b: Buffer): { size: number; crc32c: string[] } {
  const sums: string[] = [];
  for (let off = 0; off < b.length || sums.length === 0; off += CHUNK) sums.push(hex8(crc32c(b.subarray(off, off + CHUNK))));
  return { size: b.length, crc32c: sums };
}

function loadBase(set: number, kind: string, dir: string): Base {
  const names = fs.readdirSync(dir).sort();
  const files = ['manifest.json', ...names.filter((f) => f !== 'manifest.json')];
  const bytes: Record<string, Buffer> = {};
  for (const f of files) bytes[f] = fs.readFileSync(path.join(dir, f));
  const manifest = JSON.parse(bytes['manifest.json'].toString('utf8'));
  const docs: Record<string, J> = {};
  const parsed: Record<string, J> = {};
  for (const f of files.filter((x) => /^process-\d+\.json$/.test(x) || x === FILES)) {
    parsed[f] = JSON.parse(bytes[f].toString('utf8'));
    if (f !== FILES) docs[f] = parsed[f];
    // The fix-up below rewrites documents this way: it must give the same bytes.
    assert.ok(jsonText(parsed[f]).equals(bytes[f]), `${f} is written as JSON.stringify(v, null, 1) + newline`);
    assert.deepEqual(fileEntry(bytes[f]), manifest.files[f], `checksum of ${f} as computed here`);
  }
  assert.ok(parsed[FILES], `${dir} has a ${FILES}`);
  const pids = manifest.processes.map((p: J) => p.pid as number);
  const tids = Object.values(docs).flatMap((d: J) => d.threads.map((t: J) => t.tid as number));
  return { set, kind, dir, files, bytes, manifest, docs, filesDoc: parsed[FILES], pids, ids: [...new Set([...pids, ...tids])] };
}

// ---------------------------------------------------------------- JSON paths

function getAt(root: J, p: P): J { return p.reduce((o: J, k) => o?.[k], root); }
function setAt(root: J, p: P, v: J): void { getAt(root, p.slice(0, -1))[p[p.length - 1]] = v; }
function deleteAt(root: J, p: P): void { delete getAt(root, p.slice(0, -1))[p[p.length - 1]]; }
const isObj = (v: J) => v !== null && typeof v === 'object' && !Array.isArray(v);

function nodesOf(root: J): Array<{ p: P; v: J }> {
  const out: Array<{ p: P; v: J }> = [];
  const walk = (v: J, p: P) => {
    out.push({ p, v });
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
    else if (isObj(v)) for (const k of Object.keys(v)) walk(v[k], [...p, k]);
  };
  walk(root, []);
  return out.filter((n) => n.p.length > 0);
}

/** A path as printed: memory.areas[3].start. */
const showPath = (p: P) => p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('').replace(/^\./, '');
/** A path with indices and names of registers and files generalized: memory.areas[].start, threads[].regs.*. */
function fieldOf(p: P): string {
  return p.map((k, i) => {
    if (typeof k === 'number') return '[]';
    if (p[i - 1] === 'regs') return '.*';
    if (p[i - 1] === 'files' && i === 1) return `.${k.replace(/\d+/, 'N')}`;
    return `.${k}`;
  }).join('').replace(/^\./, '');
}
const fileClass = (f: string) => f.replace(/\d+/, 'N');

function show(v: unknown): string {
  if (v === undefined) return '(missing)';
  const s = JSON.stringify(v);
  return s.length > 70 ? `${s.slice(0, 60)}...(${s.length} chars)` : s;
}
/** ckpt's message, control characters made visible (a path with a NUL byte in it, say). */
const visible = (s: string) => s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

// ---------------------------------------------------------------- mutations

type Kind = 'flip' | 'truncate' | 'remove' | 'empty' | 'type' | 'missing' | 'range' | 'consistency';
interface Mutation {
  kind: Kind;
  file: string;                     // the file changed (the main one)
  field: string;                    // generalized JSON path or what was done, for grouping
  where: string;                    // concrete JSON path or byte positions
  old?: unknown;
  value?: unknown;
  what: string;                     // for consistency mutations: what was made inconsistent
  names: string[];                  // files an exit-4 message may name
  dupIds?: boolean;                 // makes two processes or threads share a number
  writes: Map<string, Buffer | null>; // relative to the image directory; null removes
}

/** Copies of the base's JSON documents being changed; fixes the manifest's checksums of changed documents. */
class Edit {
  readonly m: J;
  private readonly docs = new Map<string, J>();
  private manifestChanged = false;
  readonly extra = new Map<string, Buffer>();
  constructor(private readonly base: Base) { this.m = structuredClone(base.manifest); }
  doc(name: string): J {
    if (name === 'manifest.json') { this.manifestChanged = true; return this.m; }
    if (!this.docs.has(name)) this.docs.set(name, structuredClone(name === FILES ? this.base.filesDoc : this.base.docs[name]));
    return this.docs.get(name)!;
  }
  writes(): Map<string, Buffer | null> {
    const w = new Map<string, Buffer | null>();
    for (const [name, d] of this.docs) {
      const text = jsonText(d);
      w.set(name, text);
      if (isObj(this.m.files) && isObj(this.m.files[name])) { this.m.files[name] = fileEntry(text); this.manifestChanged = true; }
    }
    if (this.manifestChanged) w.set('manifest.json', jsonText(this.m));
    for (const [name, b] of this.extra) w.set(name, b);
    return w;
  }
}

// Keys whose absence is valid (optional in the format), and keys the format requires.
const REQUIRED_MANIFEST = new Set([
  'format', 'version', 'ckptVersion', 'created', 'kernel', 'arch', 'cpu', 'cpu.xcr0', 'cpu.xsaveSize', 'cpu.used', 'root',
  'processes', 'processes[].pid', 'processes[].ppid', 'processes[].comm', 'processes[].threads',
  'processes[].zombie.status', 'processes[].zombie.pgid', 'processes[].zombie.sid', 'processes[].zombie.exitSignal',
  'options', 'options.shellJob', 'options.leaveRunning', 'chunkSize', 'files',
  'files.process-N.json.size', 'files.process-N.json.crc32c', 'files.pages-N.img.size', 'files.pages-N.img.crc32c',
]);
const REQUIRED_DOC = new Set([
  'pid', 'ppid', 'pgid', 'sid', 'comm', 'exe', 'cwd', 'root', 'umask', 'personality', 'rlimits',
  'creds', ...['uid', 'gid', 'groups', 'capInh', 'capPrm', 'capEff', 'capBnd', 'capAmb', 'securebits'].map((k) => `creds.${k}`),
  'misc', ...['dumpable', 'pdeathsig', 'noNewPrivs', 'subreaper', 'xcompPerm'].map((k) => `misc.${k}`),
  'itimers', 'mm', ...['startCode', 'endCode', 'startData', 'endData', 'startBrk', 'brk', 'startStack', 'argStart', 'argEnd', 'envStart', 'envEnd', 'auxv'].map((k) => `mm.${k}`),
  'memory', 'memory.pagesFile', 'memory.pageBytes', 'memory.areas',
  ...['start', 'end', 'prot', 'shared', 'kind', 'name', 'offset', 'vmflags', 'dataOffset', 'runs'].map((k) => `memory.areas[].${k}`),
  ...['fd', 'file', 'cloexec'].map((k) => `fds[].${k}`),
  'fds', 'sigactions', ...['sig', 'handler', 'flags', 'restorer', 'mask'].map((k) => `sigactions[].${k}`),
  'pendingShared', 'threads',
  ...['tid', 'regs', 'xstate', 'sigmask', 'pending', 'altstack', 'rseq', 'tidAddress', 'robustList',
    'altstack.sp', 'altstack.flags', 'altstack.size', 'rseq.address', 'rseq.size', 'rseq.signature', 'robustList.head', 'robustList.len',
    'sched.policy', 'sched.priority', 'sched.nice', 'sched.affinity'].map((k) => `threads[].${k}`),
]);
// files.json: every field a description has is required for its kind (procPid is optional).
const REQUIRED_FILES = new Set(['files', ...['id', 'kind', 'type', 'path', 'flags', 'pos', 'mode', 'size', 'dev', 'ino', 'rdev'].map((k) => `files[].${k}`)]);
const NULLABLE = new Set(['threads[].rseq']);

function wrongTypes(v: J): J[] {
  if (typeof v === 'number') return [String(v), null, true, [], {}, [v]];
  if (typeof v === 'string') return [v.startsWith('0x') ? 4096 : 7, null, false, [], {}, [v]];
  if (typeof v === 'boolean') return [v ? 1 : 0, String(v), null, [], {}];
  if (v === null) return [0, '', false, [], {}];
  if (Array.isArray(v)) return [{}, '', 0, null, true];
  return [[], '', 0, null, false];
}

const BAD_INT = [1.5, 1e300, 2 ** 64];
const BAD_HEX = ['zz', '0x', '-0x1', '0xg1', '', '0x1' + '0'.repeat(16)];
const BAD_DEC = ['abc', '-1', '1.5', '', '18446744073709551616', '0x10'];
const BAD_B64 = ['%%%%', 'not base64!', ''];
const PID_LIMIT = 4194304;
/** A PID in range that no process of this host can have (pid_max is lower) and that is not in the image. */
const unusedPid = (rng: Rng) => 4000000 + int(rng, 100000);
const hexOf = (b: bigint) => '0x' + b.toString(16);
const b64Len = (s: string, n: number) => {
  const b = Buffer.from(s, 'base64');
  return (n <= b.length ? b.subarray(0, n) : Buffer.concat([b, Buffer.alloc(n - b.length)])).toString('base64');
};

/** Values out of range (or of the wrong form) for the node at p, or [] when the field has no range to break. */
function rangeValues(file: string, root: J, p: P, v: J): J[] {
  const last = p[p.length - 1];
  const key = [...p].reverse().find((k) => typeof k === 'string') as string;
  const parentKey = [...p.slice(0, p.lastIndexOf(key))].reverse().find((k) => typeof k === 'string');
  const f = fieldOf(p);
  const inManifest = file === 'manifest.json';
  const inFiles = file === FILES;
  if (typeof v === 'number') {
    switch (key) {
      case 'pid': case 'tid': case 'pgid': case 'sid': return [0, -1, -v, PID_LIMIT + 1, ...BAD_INT];
      case 'root': return inManifest ? [0, -1, PID_LIMIT + 1, ...BAD_INT] : [];
      case 'ppid': return [-1, PID_LIMIT + 1, ...BAD_INT];
      case 'fd': return [-1, 1e9, 2 ** 31, ...BAD_INT];
      case 'file': return [0, -1, 2 ** 31, ...BAD_INT];
      case 'id': return inFiles ? [0, -1, 2 ** 31, ...BAD_INT] : BAD_INT;
      case 'sig': return [0, 65, -1, 9, 19, ...BAD_INT];
      case 'pdeathsig': case 'exitSignal': return [65, -1, ...BAD_INT];
      case 'stopSignal': return [0, 18, 23, 65, 1.5];
      case 'status': return [-1, 65, 0x7f, 0x10000, 10752 + 9, 1.5, 2 ** 64];
      case 'threads': return getAt(root, [...p.slice(0, -1), 'zombie']) ? [-1, 1.5, 2 ** 64] : [0, -1, 1.5, 2 ** 64];
      case 'size':
        if (parentKey === 'rseq') return [-1, 1.5, 2 ** 32];
        return [-1, ...BAD_INT];
      case 'version': case 'chunkSize': return [];
      case 'xsaveSize': return [-1, 0, 575, 65537, 1.5];
      case 'pageBytes': return [-1, v + 1, ...BAD_INT];
      case 'dataOffset': return [-1, v + 1, ...BAD_INT];
      case 'runs': case 'drop': return last === 1 ? [0, -1, ...BAD_INT] : [-1, ...BAD_INT];
      case 'fileSize': return [-1, ...BAD_INT];
      case 'fileMtime': return BAD_INT;
      case 'umask': return [-1, 0o1000, 1.5];
      case 'personality': return [-1, 2 ** 32, 1.5];
      case 'uid': case 'gid': case 'groups': case 'loginuid': return [-1, 2 ** 32, 1.5];
      case 'securebits': return [-1, 2 ** 32, 1.5];
      case 'dumpable': return [-1, 3, 1.5];
      case 'noNewPrivs': case 'subreaper': return [-1, 2, 1.5];
      case 'thpDisable': return [-1, 2, 4, 1.5];
      case 'oomScoreAdj': return [-1001, 1001, 1.5];
      case 'policy': return [-1, 7, 1.5];
      case 'priority': return [-1, 100, 1.5];
      case 'nice': return [-21, 20, 1.5];
      case 'signature': return [-1, 2 ** 32, 1.5];
      case 'flags': return parentKey === 'altstack' ? [1.5, 2 ** 32, 2 ** 64] : [-1, 2 ** 32, 1.5];
      case 'mode': return [-1, 2 ** 32, 1.5];
      case 'dev': case 'ino': case 'rdev': case 'len': return [-1, ...BAD_INT];
      default: return BAD_INT;
    }
  }
  if (typeof v === 'string') {
    if (key === 'comm') return ['x'.repeat(16)];
    if (f.startsWith('files.') && f.endsWith('crc32c[]')) return ['zz', '', '0x' + v.slice(2), v.toUpperCase() === v ? 'zzzzzzzz' : v.toUpperCase()];
    if (/^cap(Inh|Prm|Eff|Bnd|Amb)$/.test(key)) return ['zz', '-1', '', '0x' + v.slice(2), '1' + v];
    if (key === 'affinity') return ['zz', '0x', '-0x1', '', '0x0'];
    if (/^0x[0-9a-f]+$/.test(v)) {
      const out = [...BAD_HEX];
      if (f === 'memory.areas[].start' || f === 'memory.areas[].end') out.push(hexOf(BigInt(v) + 1n), '0x1001', '0x800000000000');
      if (f === 'memory.areas[].offset') out.push(hexOf(BigInt(v) + 1n));
      return out;
    }
    if (key === 'rlimits') return [...BAD_DEC];
    if (key === 'itimers') return [...BAD_DEC, 'unlimited', ...(last === 1 || last === 3 ? ['1000000'] : [])];
    if (key === 'pos') return [...BAD_DEC, 'unlimited'];
    if (key === 'xstate') return [...BAD_B64, b64Len(v, 512), b64Len(v, 65537)];
    if (key === 'auxv') return [...BAD_B64, b64Len(v, Buffer.from(v, 'base64').length - 8)];
    if (key === 'pending' || key === 'pendingShared') return [...BAD_B64, b64Len(v, 127), b64Len(v, 129)];
    if (key === 'prot') return ['rwz', '', 'rwxp', 'r-', 'xwr'];
    if (key === 'kind') return inFiles ? ['bogus', '', v.toUpperCase(), 'pipe', 'socket'] : ['bogus', '', v.toUpperCase()];
    if (key === 'type' && inFiles) return ['sock', 'blk', 'lnk', '', v.toUpperCase()];
    if (key === 'exe' || key === 'cwd' || key === 'path') return ['', 'relative/path', `${v}\u0000x`];
    if (key === 'root' && !inManifest) return ['', 'relative', '/\u0000x'];
    if (key === 'name' && f === 'memory.areas[].name') {
      const area = getAt(root, p.slice(0, -1));
      return area.kind === 'file' ? ['', 'relative/path', `${v}\u0000x`] : ['[bogus]', 'relative/path'];
    }
    if (key === 'pagesFile') return ['', `../${v}`, '/etc/passwd', 'pages-0.img', 'manifest.json'];
    return [];
  }
  if (Array.isArray(v)) {
    const fixed: Record<string, number> = { rlimits: 16, 'rlimits[]': 2, itimers: 3, 'itimers[]': 4, 'creds.uid': 4, 'creds.gid': 4, 'memory.areas[].runs[]': 2 };
    if (fixed[f] !== undefined) return [v.slice(0, -1), [...v, v[v.length - 1]]];
    if (['threads', 'memory.areas', 'processes', 'files.process-N.json.crc32c', 'files.pages-N.img.crc32c'].includes(f)) return [[]];
    if (inFiles && f === 'files') return [[]]; // every fd then names an open file that is not there
    return [];
  }
  return [];
}

function namesFor(file: string, p: P): string[] {
  return file === 'manifest.json' && p[0] === 'files' && typeof p[1] === 'string' ? ['manifest.json', p[1]] : [file];
}

function pickJsonFile(rng: Rng, base: Base): string {
  const r = rng();
  return r < 0.3 ? 'manifest.json' : r < 0.42 ? FILES : pick(rng, Object.keys(base.docs));
}

/** Choose a field uniformly among the generalized paths that have candidates, then one instance. */
function pickNode(rng: Rng, nodes: Array<{ p: P; v: J }>): { p: P; v: J } | null {
  const byField = new Map<string, Array<{ p: P; v: J }>>();
  for (const n of nodes) {
    const f = fieldOf(n.p);
    if (!byField.has(f)) byField.set(f, []);
    byField.get(f)!.push(n);
  }
  const fields = [...byField.keys()].sort();
  return fields.length ? pick(rng, byField.get(pick(rng, fields))!) : null;
}

function jsonMutation(rng: Rng, base: Base, kind: 'type' | 'missing' | 'range'): Mutation | null {
  const file = pickJsonFile(rng, base);
  const e = new Edit(base);
  const root = e.doc(file);
  const required = file === 'manifest.json' ? REQUIRED_MANIFEST : file === FILES ? REQUIRED_FILES : REQUIRED_DOC;
  const same = (a: J, b: J) => JSON.stringify(a) === JSON.stringify(b);
  const alternatives = (n: { p: P; v: J }): J[] => {
    const f = fieldOf(n.p);
    if (kind === 'missing') return typeof n.p[n.p.length - 1] === 'string' && required.has(f) ? [undefined] : [];
    const vals = kind === 'type' ? wrongTypes(n.v).filter((x) => !(x === null && NULLABLE.has(f))) : rangeValues(file, root, n.p, n.v);
    return vals.filter((x) => !same(x, n.v));
  };
  const n = pickNode(rng, nodesOf(root).filter((x) => alternatives(x).length > 0));
  if (!n) return null;
  const value = pick(rng, alternatives(n));
  if (value === undefined) deleteAt(root, n.p); else setAt(root, n.p, value);
  return {
    kind, file, field: fieldOf(n.p), where: showPath(n.p), old: n.v, value, what: kind === 'missing' ? 'key removed' : kind === 'type' ? 'wrong type' : 'out of range',
    names: namesFor(file, n.p), writes: e.writes(),
  };
}

// Consistency mutations: each value may be fine alone, the image as a whole is not.
interface Incons { field: string; where: string; old?: unknown; value?: unknown; what: string; names: string[]; dupIds?: boolean }
type InconsGen = { name: string; applies: (b: Base) => boolean; apply: (rng: Rng, b: Base, e: Edit) => Incons | null };

const docsWith = (b: Base, pred: (d: J) => boolean) => Object.keys(b.docs).filter((f) => pred(b.docs[f]));
const fileIds = (b: Base): number[] => b.filesDoc.files.map((f: J) => f.id as number);
/** Indices of the elements that pass. */
const where = (xs: J[], pred: (x: J) => boolean): number[] => xs.flatMap((x, i) => (pred(x) ? [i] : []));
const areaPages = (a: J) => Number((BigInt(a.end) - BigInt(a.start)) / 4096n);

const INCONSISTENT: InconsGen[] = [
  {
    name: 'areas out of order', applies: (b) => docsWith(b, (d) => d.memory.areas.length >= 2).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.memory.areas.length >= 2));
      const areas = e.doc(f).memory.areas;
      const i = int(rng, areas.length - 1);
      [areas[i], areas[i + 1]] = [areas[i + 1], areas[i]];
      return { field: 'memory.areas', where: `memory.areas[${i}] <-> [${i + 1}]`, what: 'two areas swapped (not in address order)', names: [f] };
    },
  },
  {
    name: 'area ends before it starts', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const areas = e.doc(f).memory.areas;
      const i = int(rng, areas.length);
      const a = areas[i];
      [a.start, a.end] = [a.end, a.start];
      return { field: 'memory.areas[].end', where: `memory.areas[${i}]`, old: a.end, value: a.start, what: 'start and end swapped (end < start)', names: [f] };
    },
  },
  {
    name: 'empty area', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const areas = e.doc(f).memory.areas;
      const i = int(rng, areas.length);
      const old = areas[i].end;
      areas[i].end = areas[i].start;
      return { field: 'memory.areas[].end', where: `memory.areas[${i}].end`, old, value: areas[i].end, what: 'end = start (empty area)', names: [f] };
    },
  },
  {
    name: 'areas overlap', applies: (b) => docsWith(b, (d) => d.memory.areas.length >= 2).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.memory.areas.length >= 2));
      const areas = e.doc(f).memory.areas;
      const i = int(rng, areas.length - 1);
      const old = areas[i].end;
      areas[i].end = hexOf(BigInt(areas[i + 1].start) + 4096n);
      return { field: 'memory.areas[].end', where: `memory.areas[${i}].end`, old, value: areas[i].end, what: 'area reaches into the next one (overlap)', names: [f] };
    },
  },
  {
    name: 'run outside its area', applies: (b) => docsWith(b, (d) => d.memory.areas.some((a: J) => a.runs.length)).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.memory.areas.some((a: J) => a.runs.length)));
      const areas = e.doc(f).memory.areas;
      const idx = where(areas, (a: J) => a.runs.length);
      const i = pick(rng, idx);
      const a = areas[i];
      const r = int(rng, a.runs.length);
      const old = a.runs[r];
      a.runs[r] = [areaPages(a), old[1]];
      return { field: 'memory.areas[].runs[]', where: `memory.areas[${i}].runs[${r}]`, old, value: a.runs[r], what: 'a run starts past the end of its area', names: [f] };
    },
  },
  {
    name: 'runs out of order', applies: (b) => docsWith(b, (d) => d.memory.areas.some((a: J) => a.runs.length >= 2)).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.memory.areas.some((a: J) => a.runs.length >= 2)));
      const areas = e.doc(f).memory.areas;
      const i = pick(rng, where(areas, (a: J) => a.runs.length >= 2));
      const old = areas[i].runs;
      areas[i].runs = [...old].reverse();
      return { field: 'memory.areas[].runs', where: `memory.areas[${i}].runs`, old, value: areas[i].runs, what: 'runs reversed (not in order)', names: [f] };
    },
  },
  {
    name: 'dataOffset not the sum before it', applies: (b) => docsWith(b, (d) => d.memory.areas.length >= 2).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.memory.areas.length >= 2));
      const areas = e.doc(f).memory.areas;
      const i = 1 + int(rng, areas.length - 1);
      const old = areas[i].dataOffset;
      areas[i].dataOffset = old >= 4096 && rng() < 0.5 ? old - 4096 : old + 4096;
      return { field: 'memory.areas[].dataOffset', where: `memory.areas[${i}].dataOffset`, old, value: areas[i].dataOffset, what: 'dataOffset moved by one page', names: [f] };
    },
  },
  {
    name: 'pageBytes differs from the page file', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const d = e.doc(f);
      const old = d.memory.pageBytes;
      d.memory.pageBytes = old + 4096;
      return { field: 'memory.pageBytes', where: 'memory.pageBytes', old, value: d.memory.pageBytes, what: 'pageBytes one page more than the page file', names: [f, d.memory.pagesFile] };
    },
  },
  {
    name: "another process's page file", applies: (b) => Object.keys(b.docs).length >= 2,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const other = pick(rng, Object.keys(b.docs).filter((x) => x !== f));
      const d = e.doc(f);
      const old = d.memory.pagesFile;
      d.memory.pagesFile = b.docs[other].memory.pagesFile;
      return { field: 'memory.pagesFile', where: 'memory.pagesFile', old, value: d.memory.pagesFile, what: 'pagesFile is not pages-PID.img', names: [f] };
    },
  },
  {
    name: 'duplicate tid', applies: (b) => docsWith(b, (d) => d.threads.length >= 2).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.threads.length >= 2));
      const th = e.doc(f).threads;
      const j = 1 + int(rng, th.length - 1);
      const old = th[j].tid;
      th[j].tid = th[int(rng, j)].tid;
      return { field: 'threads[].tid', where: `threads[${j}].tid`, old, value: th[j].tid, what: 'two threads with one TID', names: [f], dupIds: true };
    },
  },
  {
    name: 'no leader thread', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const th = e.doc(f).threads;
      const old = th[0].tid;
      th[0].tid = unusedPid(rng);
      return { field: 'threads[].tid', where: 'threads[0].tid', old, value: th[0].tid, what: 'no thread has tid = pid', names: [f] };
    },
  },
  {
    name: 'leader not first', applies: (b) => docsWith(b, (d) => d.threads.length >= 2).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.threads.length >= 2));
      const th = e.doc(f).threads;
      const j = 1 + int(rng, th.length - 1);
      [th[0], th[j]] = [th[j], th[0]];
      return { field: 'threads', where: `threads[0] <-> [${j}]`, what: 'the leader is not the first thread', names: [f] };
    },
  },
  {
    name: 'register missing or extra', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const th = e.doc(f).threads;
      const t = int(rng, th.length);
      const regs = th[t].regs;
      const names = Object.keys(regs);
      const how = int(rng, 3);
      if (how === 0) {
        const k = pick(rng, names);
        const old = regs[k];
        delete regs[k];
        return { field: 'threads[].regs', where: `threads[${t}].regs.${k}`, old, what: 'a register missing', names: [f] };
      }
      if (how === 1) {
        const k = pick(rng, ['r16', 'eip', 'xmm0', 'RAX', 'bogus']);
        regs[k] = '0x0';
        return { field: 'threads[].regs', where: `threads[${t}].regs.${k}`, value: '0x0', what: 'an extra register', names: [f] };
      }
      const k = pick(rng, names);
      const old = regs[k];
      delete regs[k];
      regs[k.toUpperCase()] = old;
      return { field: 'threads[].regs', where: `threads[${t}].regs.${k}`, value: k.toUpperCase(), what: 'a register renamed (upper case)', names: [f] };
    },
  },
  {
    name: 'xstate not cpu.xsaveSize bytes', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const th = e.doc(f).threads;
      const t = int(rng, th.length);
      const len = Buffer.from(th[t].xstate, 'base64').length + 64;
      th[t].xstate = b64Len(th[t].xstate, len);
      return { field: 'threads[].xstate', where: `threads[${t}].xstate`, value: `${len} bytes`, what: `XSAVE area of ${len} bytes, manifest says ${b.manifest.cpu.xsaveSize}`, names: [f, 'manifest.json'] };
    },
  },
  {
    name: 'siginfo with a bad signal', applies: (b) => docsWith(b, (d) => d.pendingShared.length || d.threads.some((t: J) => t.pending.length)).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.pendingShared.length || d.threads.some((t: J) => t.pending.length)));
      const d = e.doc(f);
      const lists: P[] = [];
      if (d.pendingShared.length) lists.push(['pendingShared']);
      d.threads.forEach((t: J, i: number) => { if (t.pending.length) lists.push(['threads', i, 'pending']); });
      const lp = pick(rng, lists);
      const list = getAt(d, lp);
      const k = int(rng, list.length);
      const info = Buffer.from(list[k], 'base64');
      const sig = pick(rng, [0, 65, -1]);
      info.writeInt32LE(sig, 0);
      list[k] = info.toString('base64');
      return { field: `${fieldOf(lp)}[]`, where: `${showPath([...lp, k])}`, value: `si_signo ${sig}`, what: `a pending siginfo for signal ${sig}`, names: [f] };
    },
  },
  {
    name: 'rlimit soft above hard', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const rl = e.doc(f).rlimits;
      const finite = where(rl, (x: J) => x[1] !== 'unlimited');
      if (!finite.length) return null;
      const r = pick(rng, finite);
      const old = rl[r][0];
      rl[r][0] = rng() < 0.5 ? 'unlimited' : String(BigInt(rl[r][1]) + 1n);
      return { field: 'rlimits[][]', where: `rlimits[${r}][0]`, old, value: rl[r][0], what: `soft limit above the hard limit ${rl[r][1]}`, names: [f] };
    },
  },
  {
    name: 'mm bounds reversed', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const mm = e.doc(f).mm;
      const [lo, hi] = pick(rng, [['startCode', 'endCode'], ['startData', 'endData'], ['argStart', 'argEnd'], ['envStart', 'envEnd'], ['startBrk', 'brk']] as const);
      if (mm[lo] === mm[hi]) return null;
      [mm[lo], mm[hi]] = [mm[hi], mm[lo]];
      return { field: `mm.${lo}`, where: `mm.${lo} <-> mm.${hi}`, what: `${lo} above ${hi}`, names: [f] };
    },
  },
  {
    name: 'fd listed twice', applies: (b) => docsWith(b, (d) => d.fds.length >= 2).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.fds.length >= 2));
      const fds = e.doc(f).fds;
      const j = 1 + int(rng, fds.length - 1);
      const old = fds[j].fd;
      fds[j].fd = fds[int(rng, j)].fd;
      return { field: 'fds[].fd', where: `fds[${j}].fd`, old, value: fds[j].fd, what: 'two entries for one fd', names: [f] };
    },
  },
  // The open-file table: fds name descriptions of files.json by id.
  {
    name: 'fd names an open file files.json lacks', applies: (b) => docsWith(b, (d) => d.fds.length > 0).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.fds.length > 0));
      const fds = e.doc(f).fds;
      const j = int(rng, fds.length);
      const old = fds[j].file;
      fds[j].file = Math.max(...fileIds(b)) + 1 + int(rng, 1000);
      return { field: 'fds[].file', where: `fds[${j}].file`, old, value: fds[j].file, what: 'an fd names an open file that files.json does not list', names: [f, FILES] };
    },
  },
  {
    name: 'open file removed from files.json', applies: () => true,
    apply: (rng, b, e) => {
      const files = e.doc(FILES).files;
      const k = int(rng, files.length);
      const [old] = files.splice(k, 1);
      const holders = docsWith(b, (d) => d.fds.some((x: J) => x.file === old.id));
      return { field: 'files', where: `files[${k}]`, old: old.id, what: `open file ${old.id}, which fds hold, removed`, names: [FILES, ...holders] };
    },
  },
  {
    name: 'open file listed twice', applies: () => true,
    apply: (rng, b, e) => {
      const files: J[] = e.doc(FILES).files;
      const k = int(rng, files.length);
      if (files.length >= 2 && rng() < 0.5) {
        const j = pick(rng, files.map((_, i) => i).filter((i) => i !== k));
        const old = files[j].id;
        files[j].id = files[k].id;
        return { field: 'files[].id', where: `files[${j}].id`, old, value: files[j].id, what: 'two descriptions with one id', names: [FILES] };
      }
      const twin = structuredClone(files[k]);
      files.splice(int(rng, files.length + 1), 0, twin);
      return { field: 'files', where: 'files', value: twin.id, what: `open file ${twin.id} listed twice`, names: [FILES] };
    },
  },
  {
    name: 'open file no fd holds', applies: () => true,
    apply: (rng, b, e) => {
      const files: J[] = e.doc(FILES).files;
      const extra = { ...structuredClone(pick(rng, files)), id: Math.max(...fileIds(b)) + 1 + int(rng, 1000) };
      files.splice(int(rng, files.length + 1), 0, extra);
      return { field: 'files', where: 'files', value: extra.id, what: `open file ${extra.id} that no fd holds`, names: [FILES] };
    },
  },
  {
    name: 'open file of an unknown kind', applies: () => true,
    apply: (rng, b, e) => {
      const files = e.doc(FILES).files;
      const k = int(rng, files.length);
      const old = files[k].kind;
      files[k].kind = pick(rng, ['pipe', 'socket', 'eventfd', 'memfd', 'Path', 'path ', 'tty0'].filter((x) => x !== old));
      return { field: 'files[].kind', where: `files[${k}].kind`, old, value: files[k].kind, what: 'a kind of open file this ckpt does not know', names: [FILES] };
    },
  },
  {
    name: 'path description with a bad field', applies: (b) => b.filesDoc.files.some((f: J) => f.kind === 'path'),
    apply: (rng, b, e) => {
      const files = e.doc(FILES).files;
      const k = pick(rng, where(files, (f: J) => f.kind === 'path'));
      const d = files[k];
      const key = pick(rng, ['type', 'path', 'flags', 'pos'] as const);
      const old = d[key];
      d[key] = key === 'type' ? pick(rng, ['sock', 'blk', 'lnk', 'file', '']) :
        key === 'path' ? pick(rng, ['', 'relative/path', old.slice(1), `${old}\u0000x`]) :
        key === 'flags' ? pick(rng, [-1, 2 ** 32, 1.5, String(old)]) : pick(rng, ['-1', '1.5', 'abc', '', '18446744073709551616', 0]);
      return { field: `files[].${key}`, where: `files[${k}].${key}`, old, value: d[key], what: `a path description's ${key} out of range or of the wrong form`, names: [FILES] };
    },
  },
  {
    name: "an fd's file not an integer id", applies: (b) => docsWith(b, (d) => d.fds.length > 0).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.fds.length > 0));
      const fds = e.doc(f).fds;
      const j = int(rng, fds.length);
      const old = fds[j].file;
      fds[j].file = pick(rng, [old + 0.5, String(old), null, true, [old], { id: old }, 0, -old, 2 ** 31]);
      return { field: 'fds[].file', where: `fds[${j}].file`, old, value: fds[j].file, what: 'an fd names its open file by something else than an id', names: [f] };
    },
  },
  {
    name: 'signal action listed twice', applies: (b) => docsWith(b, (d) => d.sigactions.length >= 1).length > 0,
    apply: (rng, b, e) => {
      const f = pick(rng, docsWith(b, (d) => d.sigactions.length >= 1));
      const sa = e.doc(f).sigactions;
      const k = int(rng, sa.length);
      sa.push(structuredClone(sa[k]));
      return { field: 'sigactions', where: `sigactions[${sa.length - 1}]`, value: sa[k].sig, what: `two actions for signal ${sa[k].sig}`, names: [f] };
    },
  },
  {
    name: 'its own parent', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const d = e.doc(f);
      const old = d.ppid;
      d.ppid = d.pid;
      const entry = e.m.processes.find((x: J) => x.pid === d.pid);
      if (entry) entry.ppid = d.pid;
      e.doc('manifest.json');
      return { field: 'ppid', where: `ppid (document and manifest) of ${d.pid}`, old, value: d.pid, what: 'a process is its own parent', names: [f, 'manifest.json'] };
    },
  },
  {
    name: 'ppid differs from the manifest', applies: (b) => b.pids.length >= 2,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const d = e.doc(f);
      const old = d.ppid;
      const others = b.pids.filter((x) => x !== d.pid && x !== d.ppid);
      d.ppid = others.length ? pick(rng, others) : unusedPid(rng);
      return { field: 'ppid', where: 'ppid', old, value: d.ppid, what: 'the document says another parent than the manifest', names: [f, 'manifest.json'] };
    },
  },
  {
    name: 'document pid not its file name', applies: () => true,
    apply: (rng, b, e) => {
      const f = pick(rng, Object.keys(b.docs));
      const d = e.doc(f);
      const old = d.pid;
      const others = b.pids.filter((x) => x !== d.pid);
      const dup = others.length > 0 && rng() < 0.5;
      d.pid = dup ? pick(rng, others) : unusedPid(rng);
      return { field: 'pid', where: 'pid', old, value: d.pid, what: `${f} says pid ${d.pid}`, names: [f], dupIds: dup };
    },
  },
  // The manifest.
  {
    name: 'duplicate pid in the manifest', applies: () => true,
    apply: (rng, b, e) => {
      const ps = e.doc('manifest.json').processes;
      if (ps.length >= 2 && rng() < 0.5) {
        const j = 1 + int(rng, ps.length - 1);
        const old = ps[j].pid;
        ps[j].pid = ps[int(rng, j)].pid;
        return { field: 'processes[].pid', where: `processes[${j}].pid`, old, value: ps[j].pid, what: 'two entries with one PID', names: ['manifest.json'], dupIds: true };
      }
      const k = int(rng, ps.length);
      ps.push(structuredClone(ps[k]));
      return { field: 'processes', where: `processes[${ps.length - 1}]`, value: ps[k].pid, what: `process ${ps[k].pid} listed twice`, names: ['manifest.json'], dupIds: true };
    },
  },
  {
    name: 'parent not in the tree', applies: (b) => b.pids.length >= 2,
    apply: (rng, b, e) => {
      const ps = e.doc('manifest.json').processes;
      const j = 1 + int(rng, ps.length - 1);
      const old = ps[j].ppid;
      const np = rng() < 0.5 ? ps[0].ppid : unusedPid(rng);
      ps[j].ppid = np;
      const f = `process-${ps[j].pid}.json`;
      if (b.docs[f]) e.doc(f).ppid = np; // the document agrees: only the tree check can tell
      return { field: 'processes[].ppid', where: `processes[${j}].ppid`, old, value: np, what: `process ${ps[j].pid}'s parent ${np} is not in the image`, names: ['manifest.json', ...(b.docs[f] ? [f] : [])] };
    },
  },
  {
    name: 'parent cycle', applies: (b) => b.pids.length >= 2,
    apply: (rng, b, e) => {
      const ps = e.doc('manifest.json').processes;
      const j = 1 + int(rng, ps.length - 1);
      const old = ps[0].ppid;
      ps[0].ppid = ps[j].pid;
      e.doc(`process-${ps[0].pid}.json`).ppid = ps[j].pid;
      return { field: 'processes[].ppid', where: 'processes[0].ppid', old, value: ps[j].pid, what: `the root's parent is its descendant ${ps[j].pid}`, names: ['manifest.json', `process-${ps[0].pid}.json`] };
    },
  },
  {
    name: 'root not in the process list', applies: () => true,
    apply: (rng, b, e) => {
      const m = e.doc('manifest.json');
      const old = m.root;
      m.root = rng() < 0.5 ? m.processes[0].ppid : unusedPid(rng);
      return { field: 'root', where: 'root', old, value: m.root, what: 'root is not a process of the image', names: ['manifest.json'] };
    },
  },
  {
    name: 'child before its parent', applies: (b) => b.pids.length >= 2,
    apply: (rng, b, e) => {
      const ps = e.doc('manifest.json').processes;
      const j = 1 + int(rng, ps.length - 1);
      const parent = ps.findIndex((x: J) => x.pid === ps[j].ppid);
      const [child] = ps.splice(j, 1);
      ps.splice(parent, 0, child);
      return { field: 'processes', where: `processes[${j}] moved to [${parent}]`, value: child.pid, what: `process ${child.pid} listed before its parent`, names: ['manifest.json'] };
    },
  },
  {
    name: 'thread count differs from the document', applies: () => true,
    apply: (rng, b, e) => {
      const ps = e.doc('manifest.json').processes;
      const idx = where(ps, (x: J) => !x.zombie);
      const j = pick(rng, idx);
      const old = ps[j].threads;
      ps[j].threads = old + 1 + int(rng, 3);
      return { field: 'processes[].threads', where: `processes[${j}].threads`, old, value: ps[j].threads, what: 'thread count differs from the document', names: ['manifest.json', `process-${ps[j].pid}.json`] };
    },
  },
  {
    name: 'root is a zombie', applies: () => true,
    apply: (rng, b, e) => {
      const ps = e.doc('manifest.json').processes;
      ps[0].zombie = { status: 0, pgid: ps[0].pid, sid: ps[0].pid, exitSignal: 17 };
      return { field: 'processes[].zombie', where: 'processes[0].zombie', value: ps[0].zombie, what: 'the root is a zombie', names: ['manifest.json'] };
    },
  },
  {
    name: 'zombie with threads', applies: (b) => b.manifest.processes.some((x: J) => x.zombie),
    apply: (rng, b, e) => {
      const ps = e.doc('manifest.json').processes;
      const j = pick(rng, where(ps, (x: J) => x.zombie));
      const old = ps[j].threads;
      ps[j].threads = 1;
      return { field: 'processes[].threads', where: `processes[${j}].threads`, old, value: 1, what: 'a zombie with a thread', names: ['manifest.json'] };
    },
  },
  {
    name: 'wrong number of checksums', applies: () => true,
    apply: (rng, b, e) => {
      const files = e.doc('manifest.json').files;
      const f = pick(rng, Object.keys(files));
      const old = files[f].crc32c;
      files[f].crc32c = rng() < 0.5 ? [...old, old[0]] : [];
      return { field: 'files.*.crc32c', where: `files.${f}.crc32c`, old, value: files[f].crc32c, what: `${files[f].crc32c.length} checksums for ${old.length} chunks`, names: ['manifest.json', f] };
    },
  },
  {
    name: 'file entry removed', applies: () => true,
    apply: (rng, b, e) => {
      const files = e.doc('manifest.json').files;
      const f = pick(rng, Object.keys(files));
      const old = files[f];
      delete files[f];
      return { field: 'files.*', where: `files.${f}`, old, what: `${f} not listed in the manifest`, names: ['manifest.json', f] };
    },
  },
  {
    name: 'file entry outside the image directory', applies: () => true,
    apply: (rng, b, e) => {
      const files = e.doc('manifest.json').files;
      const name = pick(rng, ['../outside.bin', '/etc/hostname', 'sub/dir.bin']);
      const data = Buffer.from('outside the image\n');
      if (name.startsWith('../')) e.extra.set(name, data);
      files[name] = fileEntry(name === '/etc/hostname' ? readHost('/etc/hostname') : data);
      return { field: 'files.*', where: `files[${JSON.stringify(name)}]`, value: files[name], what: 'a listed file that is not a plain name in the image directory', names: ['manifest.json', name] };
    },
  },
];

function readHost(p: string): Buffer { try { return fs.readFileSync(p); } catch { return Buffer.alloc(0); } }

function inconsistency(rng: Rng, base: Base): Mutation | null {
  const gens = INCONSISTENT.filter((g) => g.applies(base));
  const g = pick(rng, gens);
  const e = new Edit(base);
  const r = g.apply(rng, base, e);
  if (!r) return null;
  const changed = e.writes();
  const file = r.names[0];
  return { kind: 'consistency', file, ...r, field: `${r.field} (${g.name})`, writes: changed };
}

function damage(rng: Rng, base: Base, kind: 'flip' | 'truncate' | 'remove' | 'empty'): Mutation | null {
  const file = pick(rng, base.files);
  const b = base.bytes[file];
  const writes = new Map<string, Buffer | null>();
  const mk = (where: string, what: string): Mutation => ({ kind, file, field: kind, where, what, names: [file], writes });
  if (kind === 'remove') { writes.set(file, null); return mk('', 'file removed'); }
  if (b.length === 0) return null;
  if (kind === 'empty') { writes.set(file, Buffer.alloc(0)); return mk('', `emptied (was ${b.length} bytes)`); }
  if (kind === 'truncate') {
    // The manifest without its final newline is still the same JSON: cut before that.
    const n = int(rng, file === 'manifest.json' ? b.length - 1 : b.length);
    writes.set(file, b.subarray(0, n));
    return mk(`${n} of ${b.length} bytes`, `truncated to ${n} bytes`);
  }
  // flip: 1-3 bytes. The manifest has no checksum: keep only flips that leave it invalid JSON.
  for (let attempt = 0; attempt < 200; attempt++) {
    const c = Buffer.from(b);
    const at: number[] = [];
    for (let k = 1 + int(rng, 3); k > 0; k--) {
      const off = int(rng, c.length);
      c[off] ^= 1 + int(rng, 255);
      at.push(off);
    }
    if (c.equals(b)) continue;
    if (file === 'manifest.json') {
      try { JSON.parse(c.toString('utf8')); continue; } catch { /* not JSON: good */ }
    }
    writes.set(file, c);
    return mk(`bytes ${at.join(', ')}`, `${at.length} byte(s) changed`);
  }
  return null;
}

function generate(rng: Rng, base: Base): Mutation {
  for (;;) {
    const kind = weighted<Kind>(rng, [[9, 'flip'], [7, 'truncate'], [5, 'remove'], [5, 'empty'], [20, 'type'], [8, 'missing'], [30, 'range'], [16, 'consistency']]);
    let m: Mutation | null;
    if (kind === 'flip' || kind === 'truncate' || kind === 'remove' || kind === 'empty') m = damage(rng, base, kind);
    else if (kind === 'consistency') m = inconsistency(rng, base);
    else m = jsonMutation(rng, base, kind);
    if (m) return m;
  }
}

// ---------------------------------------------------------------- processes

const pause = new Int32Array(new SharedArrayBuffer(4));
const sleepSync = (ms: number) => { Atomics.wait(pause, 0, 0, ms); };

interface ProcInfo { pid: number; ppid: number; state: string; dying: boolean; comm: string; cmdline: string; exe: string }
function procInfo(pid: number): ProcInfo | null {
  const st = readText(`/proc/${pid}/status`);
  if (!st) return null;
  let exe = '';
  try { exe = fs.readlinkSync(`/proc/${pid}/exe`); } catch { /* zombie or gone */ }
  return {
    pid,
    ppid: Number(/^PPid:\s+(\d+)/m.exec(st)?.[1] ?? 0),
    state: /^State:\s+(\S)/m.exec(st)?.[1] ?? '?',
    // SIGKILL pending: ckpt killed it and it is on its way out.
    dying: ['SigPnd', 'ShdPnd'].some((k) => (BigInt('0x' + (new RegExp(`^${k}:\\s+([0-9a-f]+)`, 'm').exec(st)?.[1] ?? '0')) & 0x100n) !== 0n),
    comm: /^Name:\s+(.*)$/m.exec(st)?.[1] ?? '',
    cmdline: readText(`/proc/${pid}/cmdline`).split('\0').join(' ').trim(),
    exe,
  };
}
const describeProc = (i: ProcInfo) => `pid ${i.pid} (${i.comm}, state ${i.state}${i.cmdline ? `, ${i.cmdline.slice(0, 60)}` : ''})`;

/** ckpt processes running now: their descendants belong to a case still in progress. */
const active = new Set<number>();
/** The case each worker is at, by base set. */
const running = new Map<number, Result>();

function ourChildren(): number[] {
  const out: number[] = [];
  for (const t of fs.readdirSync('/proc/self/task')) {
    for (const c of readText(`/proc/self/task/${t}/children`).trim().split(/\s+/).filter(Boolean)) out.push(Number(c));
  }
  return out;
}

/**
 * Is pid a process left behind by a finished case: a descendant of this test
 * process (a subreaper, which restored processes and husks fall to) that is
 * not under a ckpt still running? Processes of other users of the machine are
 * never counted, nor touched.
 */
function leftBehind(pid: number): boolean {
  let p = pid;
  for (let steps = 0; steps < 64 && p > 1; steps++) {
    if (active.has(p)) return false;
    const info = procInfo(p);
    if (!info) return false;
    if (info.ppid === process.pid) return !active.has(p);
    p = info.ppid;
  }
  return false;
}

/** Kill and reap every child of ours that is not a running ckpt (with what falls to us when they die). */
function sweep(): ProcInfo[] {
  const found = new Map<number, ProcInfo>();
  for (let round = 0; round < 200; round++) {
    const kids = ourChildren().filter((p) => !active.has(p));
    if (!kids.length) break;
    for (const pid of kids) {
      const info = procInfo(pid);
      if (info && !found.has(pid)) found.set(pid, info);
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    sleepSync(round < 10 ? 2 : 10);
    for (const pid of kids) { try { waitNoHang(pid); } catch { /* not ours or reaped */ } }
  }
  return [...found.values()];
}

interface Run { status: number | null; signal: string | null; stderr: string; ms: number; timedOut: boolean }
function runRestore(img: string): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(CKPT, ['restore', '-D', img, '-d'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const pid = child.pid!;
    active.add(pid);
    let stderr = '';
    let timedOut = false;
    let done = false;
    child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 65536) stderr += d.toString('utf8'); });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, TIMEOUT_MS);
    const finish = (status: number | null, signal: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, signal, stderr, ms: performance.now() - t0, timedOut });
    };
    child.on('exit', (status, signal) => {
      active.delete(pid);
      // A process that inherited the pipe would keep it open: do not wait for it long.
      const grace = setTimeout(() => { child.stderr!.destroy(); finish(status, signal); }, 300);
      child.on('close', () => { clearTimeout(grace); finish(status, signal); });
    });
    child.on('error', (err) => { active.delete(pid); stderr += String(err); finish(null, null); });
  });
}

// ---------------------------------------------------------------- checks

const JS_ERROR = /TypeError|RangeError|SyntaxError|ReferenceError|Cannot read prop|is not a function|undefined|BigInt|\bat \/|\bat node:|internal error|\[object Object\]|\bNaN\b/;
const ANY_FILE = /image file \S+|manifest\.json|\.json|\.img/;
const IN_USE = /(\d+)(?: \([^)]*\))? is (?:already )?in use/;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const names = (stderr: string, name: string) => new RegExp(`(?<![\\w-])${escapeRe(name)}(?![\\w])`).test(stderr);

interface Problem { category: string; detail: string }
interface Result {
  i: number; base: Base; mut: Mutation; run: Run; problems: Problem[]; inconclusive?: string; attempts: number; dir: string;
  foundByOther: ProcInfo[];  // its processes, found by the other worker's check
  reaped: number;            // dead processes it left to the reaper
}

/** The PID the conflict message says is in use, if another process (not one of this test) has it now. */
function hostCollision(run: Run): number | null {
  if (run.status !== 5) return null;
  const m = IN_USE.exec(run.stderr);
  if (!m) return null;
  const pid = Number(m[1]);
  return procInfo(pid) && !leftBehind(pid) ? pid : null;
}

function checkRun(r: Result, listed: string[]): void {
  const { run, mut, base, problems } = r;
  const add = (category: string, detail = '') => problems.push({ category, detail });
  if (run.timedOut) add('timeout', `no answer within ${TIMEOUT_MS / 1000} s`);
  else if (run.status === 0) add('restored (exit 0)', 'the image was not refused');
  else if (run.status === null) add(`killed by ${run.signal}`);
  else if (run.status === 5) {
    if (mut.dupIds && IN_USE.test(run.stderr)) add('duplicate id seen as a host conflict (exit 5)', 'two processes or threads with one number were not refused as a bad image');
  } else if (run.status !== 4) add(`exit ${run.status}`);
  const js = JS_ERROR.exec(run.stderr);
  if (js) add(`JavaScript text in the message (${js[0]})`);
  if (run.status === 4) {
    if (!ANY_FILE.test(run.stderr)) add('message names no image file');
    else if (!mut.names.some((n) => names(run.stderr, n))) add('message names another file', `expected ${mut.names.join(' or ')}`);
  }
  // Nothing left behind. A process of the other worker's image found here
  // (its ckpt ended a moment ago) is that case's to judge. A process that is
  // dead already (a zombie, or killed and on its way out) was left to whoever
  // reaps orphans (init, or this test as subreaper): counted, not a failure.
  // After a timeout (ckpt killed here) or a restore that went through (its
  // processes run, of course) only those problems count.
  const other = [...running.values()].find((x) => x !== r);
  const judge = (p: ProcInfo, what: string) => {
    if (run.timedOut || run.status === 0) return;
    if (p.state === 'Z' || p.state === 'X' || p.dying) { r.reaped++; return; }
    add(p.cmdline.startsWith('ckpt-husk') ? 'left a husk' : what, describeProc(p) + (other && !base.ids.includes(p.pid) ? ` (or of case ${other.i}, run at the same time)` : ''));
  };
  for (const p of [...r.foundByOther.splice(0), ...sweep()]) {
    if (other && other.base.ids.includes(p.pid) && !base.ids.includes(p.pid)) other.foundByOther.push(p); // its ckpt has just ended
    else judge(p, 'left a process');
  }
  for (const id of base.ids) {
    const info = procInfo(id);
    if (info && leftBehind(id)) {
      judge(info, 'left a process of the image');
      try { process.kill(id, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  sweep();
  const now = fs.readdirSync(path.join(r.dir, 'img')).sort();
  const added = now.filter((f) => !listed.includes(f));
  if (added.length) add('new file in the image directory', added.join(', '));
}

async function runCase(i: number, set: Base[], work: string): Promise<Result> {
  const rng = caseRng(i);
  const base = weighted(rng, SUBJECT_KINDS.map((k) => [k.weight, set.find((b) => b.kind === k.kind)!] as const));
  const mut = generate(rng, base);
  const dir = path.join(work, `case-${i}`);
  const img = path.join(dir, 'img');
  const r: Result = { i, base, mut, run: { status: null, signal: null, stderr: '', ms: 0, timedOut: false }, problems: [], attempts: 0, dir, foundByOther: [], reaped: 0 };
  running.set(base.set, r);
  let listed: string[] = [];
  for (;;) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir);
    fs.cpSync(base.dir, img, { recursive: true });
    for (const [name, data] of mut.writes) {
      const p = path.join(img, name);
      if (data === null) fs.rmSync(p, { force: true }); else fs.writeFileSync(p, data);
    }
    listed = fs.readdirSync(img).sort();
    r.attempts++;
    r.run = await runRestore(img);
    // A PID of the image taken meanwhile by some other process of the host
    // (PIDs wrap around quickly here): try again once it is free.
    const taken = hostCollision(r.run);
    if (taken === null) break;
    if (r.attempts >= 3) {
      const holder = procInfo(taken);
      r.inconclusive = `PID ${taken} stayed in use${holder ? ` by ${describeProc(holder)}` : ''}`;
      break;
    }
    sweep();
    for (let k = 0; k < 40 && procInfo(taken); k++) await new Promise((res) => setTimeout(res, 50));
  }
  if (!r.inconclusive) checkRun(r, listed);
  else sweep();
  running.delete(base.set);
  if (!(KEEP && r.problems.length)) fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

// ---------------------------------------------------------------- report

function describeCase(r: Result): string {
  const m = r.mut;
  const lines = [
    `case ${r.i} (seed ${SEED}, base ${r.base.kind}, ${m.kind}): ${m.file}${m.where ? ` ${m.where}` : ''}: ${m.what}` +
      (m.old !== undefined || m.value !== undefined ? `: ${show(m.old)} -> ${show(m.value)}` : ''),
    `  replay: CKPT_FUZZ_SEED=${SEED} CKPT_FUZZ_ONLY=${r.i}${KEEP ? ` (kept in ${r.dir})` : ''}`,
    `  exit ${r.run.status ?? r.run.signal}${r.run.timedOut ? ' (timed out)' : ''} in ${r.run.ms.toFixed(0)} ms; problems: ${r.problems.map((p) => p.category + (p.detail ? ` [${p.detail}]` : '')).join('; ')}`,
    `  stderr: ${visible(r.run.stderr.trim().slice(0, 800)).replace(/\n/g, '\n          ') || '(empty)'}`,
  ];
  return lines.join('\n');
}

function summarize(results: Result[], ms: number): { text: string; failed: Result[] } {
  const failed = results.filter((r) => r.problems.length);
  const out: string[] = [];
  out.push(`fuzz: ${results.length} cases in ${(ms / 1000).toFixed(1)} s (seed ${SEED}, ${WORKERS} at a time), ${failed.length} failed, ` +
    `${results.filter((r) => r.inconclusive).length} inconclusive (a PID of the image in use on the host), ` +
    `${results.reduce((n, r) => n + r.attempts - 1, 0)} retried; ckpt restore took ${(results.reduce((t, r) => t + r.run.ms, 0) / Math.max(1, results.length)).toFixed(0)} ms on average, ` +
    `${Math.max(0, ...results.map((r) => r.run.ms)).toFixed(0)} ms at most; ` +
    `${results.reduce((n, r) => n + r.reaped, 0)} dead processes left to the reaper after ${results.filter((r) => r.reaped).length} failed restores (not counted)`);
  const kinds = new Map<string, { n: number; failed: number; exit5: number }>();
  for (const r of results) {
    const k = kinds.get(r.mut.kind) ?? { n: 0, failed: 0, exit5: 0 };
    k.n++;
    if (r.problems.length) k.failed++;
    if (!r.problems.length && r.run.status === 5) k.exit5++;
    kinds.set(r.mut.kind, k);
  }
  out.push('cases by mutation kind:');
  for (const [k, v] of [...kinds].sort()) out.push(`  ${k.padEnd(12)} ${String(v.n).padStart(4)} cases, ${String(v.failed).padStart(4)} failed, ${v.exit5} passed as host conflicts (exit 5)`);
  // Failures grouped by field and kind: what the schema or the checks must catch.
  const groups = new Map<string, { n: number; cats: Map<string, number>; values: Set<string>; cases: number[] }>();
  for (const r of failed) {
    const key = `${r.mut.kind.padEnd(11)} ${fileClass(r.mut.file)} ${r.mut.field}`;
    const g = groups.get(key) ?? { n: 0, cats: new Map(), values: new Set<string>(), cases: [] as number[] };
    g.n++;
    if (g.cases.length < 5) g.cases.push(r.i);
    for (const c of new Set(r.problems.map((p) => p.category))) g.cats.set(c, (g.cats.get(c) ?? 0) + 1);
    if (g.values.size < 4 && (r.mut.value !== undefined || r.mut.old !== undefined)) g.values.add(show(r.mut.value));
    groups.set(key, g);
  }
  if (groups.size) {
    out.push('failures by field:');
    for (const [key, g] of [...groups].sort((a, b) => b[1].n - a[1].n || a[0].localeCompare(b[0]))) {
      out.push(`  ${String(g.n).padStart(3)}x ${key}${g.values.size ? ` (${[...g.values].join(', ')})` : ''}: ${[...g.cats].map(([c, n]) => `${c} x${n}`).join(', ')} [cases ${g.cases.join(',')}${g.n > g.cases.length ? ',...' : ''}]`);
    }
  }
  // Refusals as host conflicts pass, but some may deserve to be bad images: listed.
  const exit5 = results.filter((r) => !r.problems.length && r.run.status === 5);
  if (exit5.length) {
    out.push('passed as host conflicts (exit 5):');
    for (const r of exit5) out.push(`  case ${r.i}: ${r.mut.kind} ${r.mut.file} ${r.mut.where}: ${show(r.mut.value)}: ${visible(r.run.stderr.trim().split('\n').pop()!.slice(0, 160))}`);
  }
  if (failed.length) {
    out.push(`first ${Math.min(SHOWN, failed.length)} of ${failed.length} failures:`);
    for (const r of failed.slice(0, SHOWN)) out.push(describeCase(r));
  }
  return { text: out.join('\n'), failed };
}

// ---------------------------------------------------------------- the test

let work = '';
after(async () => {
  sweep();
  await cleanupAll();
  if (work && !process.env.CKPT_KEEP_TEST_DIRS && !KEEP) fs.rmSync(work, { recursive: true, force: true });
});

async function dumpBases(): Promise<Base[][]> {
  const sets: Base[][] = [];
  for (let set = 0; set < WORKERS; set++) {
    const subjects = SUBJECT_KINDS.map((k) => ({ k, s: Subject.start(k.name, k.args) }));
    const bases: Base[] = [];
    for (const { k, s } of subjects) {
      await s.ready();
      const img = path.join(work, `base-${set}-${k.kind}`);
      ckptOk('dump', '-t', String(s.pid), '-D', img);
      await s.gone();
      await treeGone(img);
      bases.push(loadBase(set, k.kind, img));
    }
    sets.push(bases);
  }
  return sets;
}

/** Each base image as it is must restore: else every case would be refused for the wrong reason. */
function controlRestores(sets: Base[][]): void {
  for (const b of sets.flat()) {
    const dir = path.join(work, `control-${b.set}-${b.kind}`);
    fs.cpSync(b.dir, dir, { recursive: true });
    const r = ckpt('restore', '-D', dir, '-d');
    sweep();
    for (const id of b.ids) if (procInfo(id) && leftBehind(id)) { try { process.kill(id, 'SIGKILL'); } catch { /* gone */ } }
    sweep();
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(r.status, 0, `the unchanged ${b.kind} image restores; stderr: ${r.stderr}`);
  }
}

test(`fuzz: ${ONLY.length ? `cases ${ONLY.join(', ')}` : `${CASES} mutated images`} are refused cleanly (seed ${SEED})`, { timeout: 30 * 60 * 1000 }, async () => {
  const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  work = fs.mkdtempSync(path.join(shm, 'ckpt-fuzz-'));
  const t0 = performance.now();
  const sets = await dumpBases();
  const cases = ONLY.length ? ONLY : Array.from({ length: CASES }, (_, i) => i);
  if (DRY) {
    for (const i of cases) {
      const rng = caseRng(i);
      const base = weighted(rng, SUBJECT_KINDS.map((k) => [k.weight, sets[i % WORKERS].find((b) => b.kind === k.kind)!] as const));
      const m = generate(rng, base);
      console.log(`${i} ${base.kind} ${m.kind} ${m.file} ${m.field} | ${m.where}: ${m.what}: ${show(m.old)} -> ${show(m.value)} | names ${m.names.join(',')} | writes ${[...m.writes.keys()].join(',')}`);
    }
    return;
  }
  controlRestores(sets);
  const setupMs = performance.now() - t0;

  const results: Result[] = [];
  const t1 = performance.now();
  await Promise.all(Array.from({ length: WORKERS }, async (_, w) => {
    for (const i of cases.filter((c) => c % WORKERS === w)) results.push(await runCase(i, sets[w], work));
  }));
  const ms = performance.now() - t1;
  results.sort((a, b) => a.i - b.i);
  if (LOG) {
    fs.writeFileSync(LOG, results.map((r) => `${r.i} ${r.problems.length ? 'FAIL' : 'ok'} ${r.base.kind} ${r.mut.kind} ${r.mut.file} ${r.mut.where}: ` +
      `${show(r.mut.old)} -> ${show(r.mut.value)} | exit ${r.run.status ?? r.run.signal} in ${r.run.ms.toFixed(0)} ms | ${visible(r.run.stderr.trim().split('\n').pop() ?? '')}\n`).join(''));
  }
  const { text, failed } = summarize(results, ms);
  console.log(`fuzz: setup (dumps and control restores) ${(setupMs / 1000).toFixed(1)} s`);
  console.log(text);
  assert.equal(failed.length, 0, `${failed.length} of ${results.length} mutated images were not refused cleanly (seed ${SEED}):\n${text}`);
});

// Test harness: runs subjects and real programs, drives bin/ckpt, and cleans up.
// The test process is a child subreaper, so restored processes (whose parent,
// ckpt restore -d, exits) become its children and are reaped here: their PIDs
// are free again as soon as the test is over.

import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sys } from '../src/kernel/ffi.js';
import { NR, PR } from '../src/kernel/consts.js';
import { waitNoHang } from '../src/kernel/ptrace.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CKPT = path.join(ROOT, 'bin/ckpt');
export const SUBJECTS = path.join(ROOT, 'test/subjects/bin');

sys('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);
// Subjects (and ckpt) start with only fds 0-2 open, however the suite was
// started: every other fd this process inherited becomes close-on-exec.
sys('close_range(3, ~0, CLOSE_RANGE_CLOEXEC)', NR.close_range, 3, 0xffffffff, 4 /* CLOSE_RANGE_CLOEXEC */);

const dirs: string[] = [];
export function tmpDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `ckpt-${tag}-`));
  dirs.push(d);
  return d;
}

export function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

export async function waitUntil(what: string, fn: () => boolean, timeoutMs = 15000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export function readText(p: string): string {
  try { return fs.readFileSync(p, 'utf8'); } catch { return ''; }
}

export interface CkptRun { status: number; stdout: string; stderr: string }
export function ckpt(...args: string[]): CkptRun {
  const r = spawnSync(CKPT, args, { encoding: 'utf8', timeout: 120000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
export function ckptOk(...args: string[]): CkptRun {
  const r = ckpt(...args);
  if (r.status !== 0) throw new Error(`ckpt ${args.join(' ')} exited ${r.status}\n${r.stderr}${r.stdout}`);
  return r;
}

const live = new Set<number>();

export class Subject {
  readonly out: string;
  readonly dir: string;
  proc: ChildProcess | null;
  readonly pid: number;
  private exited = false;

  constructor(cmd: string, args: string[], opts: { dir?: string; env?: NodeJS.ProcessEnv; outArg?: boolean } = {}) {
    this.dir = opts.dir ?? tmpDir('subj');
    this.out = path.join(this.dir, 'verdict.txt');
    const argv = opts.outArg === false ? args : [this.out, ...args];
    this.proc = spawn(cmd, argv, { cwd: this.dir, detached: true, stdio: 'ignore', env: opts.env ?? process.env });
    this.pid = this.proc.pid!;
    live.add(this.pid);
    this.proc.on('exit', () => { this.exited = true; });
    this.proc.unref();
  }

  static start(name: string, args: string[] = [], opts: { dir?: string } = {}): Subject {
    return new Subject(path.join(SUBJECTS, name), args, opts);
  }

  lines(): string[] { return readText(this.out).split('\n').filter(Boolean); }
  async ready(): Promise<void> { await waitUntil(`READY from ${this.pid}`, () => this.lines().includes('READY')); }

  /** After a dump that killed it: wait until the original process is gone and reaped. */
  async gone(): Promise<void> {
    // The first incarnation is Node's child (reaped by Node); a restored one
    // is ours as subreaper and is reaped here.
    await waitUntil(`pid ${this.pid} to be free`, () => {
      if (this.exited) { try { waitNoHang(this.pid); } catch { /* not ours */ } }
      return !fs.existsSync(`/proc/${this.pid}`);
    });
  }

  /** Ask for the verdict (SIGTERM) and return it: PASS or FAIL <reason>. */
  async verdict(): Promise<string> {
    const before = this.lines().length;
    process.kill(this.pid, 'SIGTERM');
    await waitUntil(`verdict from ${this.pid}`, () => this.lines().slice(before).some((l) => l.startsWith('PASS') || l.startsWith('FAIL')));
    const v = this.lines().slice(before).find((l) => l.startsWith('PASS') || l.startsWith('FAIL'))!;
    await this.reap();
    return v;
  }

  /** Wait for the process to end and reap it if it is ours as subreaper. */
  async reap(timeoutMs = 10000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (fs.existsSync(`/proc/${this.pid}`)) {
      // Until the first incarnation has exited, the PID is Node's child: leave it to Node.
      if (this.exited) { try { waitNoHang(this.pid); } catch { /* not ours */ } }
      if (Date.now() > end) { this.kill(); break; }
      await sleep(10);
    }
    live.delete(this.pid);
  }

  kill(): void {
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
    if (this.exited) { try { waitNoHang(this.pid); } catch { /* not ours */ } }
  }
}

/** A process and all its descendants. */
function descendants(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tids: string[] = [];
    try { tids = fs.readdirSync(`/proc/${out[i]}/task`); } catch { continue; }
    for (const t of tids) {
      for (const c of readText(`/proc/${out[i]}/task/${t}/children`).trim().split(/\s+/).filter(Boolean)) out.push(Number(c));
    }
  }
  return out;
}

/** Kill every subject still alive, with its descendants, and reap what is ours (for after-hooks). */
export async function cleanupAll(): Promise<void> {
  // Subjects still known, and whatever fell to this process as subreaper
  // (children of a subject that ended, restored trees), with their descendants.
  const all = [...new Set([...live, ...descendants(process.pid).slice(1)].flatMap(descendants))];
  for (const pid of all) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await sleep(50);
  for (const pid of all) { try { waitNoHang(pid); } catch { /* not ours */ } }
  live.clear();
  // Images can be big: remove the test directories (kept with CKPT_KEEP_TEST_DIRS=1).
  if (!process.env.CKPT_KEEP_TEST_DIRS) for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** PIDs of every process in an image. */
export function imagePids(img: string): number[] {
  const m = JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8')) as { processes: Array<{ pid: number }> };
  return m.processes.map((p) => p.pid);
}

/**
 * After a dump that killed a tree: wait until all its PIDs are free. The
 * descendants were reparented to this process (subreaper) and are reaped here.
 */
export async function treeGone(img: string): Promise<void> {
  for (const pid of imagePids(img)) {
    await waitUntil(`pid ${pid} to be free`, () => {
      try { waitNoHang(pid); } catch { /* not ours */ }
      return !fs.existsSync(`/proc/${pid}`);
    });
  }
}

/** Dump (killing), restore detached, then ask for the verdict. */
export async function roundTrip(s: Subject, extra: { dump?: string[]; restore?: string[] } = {}): Promise<string> {
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, ...(extra.dump ?? []));
  await s.gone();
  await treeGone(img);
  ckptOk('restore', '-D', img, '-d', ...(extra.restore ?? []));
  return s.verdict();
}

/** Dump with --leave-running, then ask the still-running original for its verdict. */
export async function leaveRunning(s: Subject, dumpArgs: string[] = []): Promise<string> {
  await s.ready();
  ckptOk('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img-lr'), '--leave-running', ...dumpArgs);
  return s.verdict();
}

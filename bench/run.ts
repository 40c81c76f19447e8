// npm run bench: dump and restore wall time (Node start included), image size
// and ckpt's peak memory, for a trivial process, 1, 256 and 1024 MiB of
// touched anonymous memory, a tree, many threads, 1,000 fds of mixed kinds
// (with the remote calls per fd at restore) and a 512 MiB deleted file; image
// on /dev/shm and on disk. Prints a table and writes JSON to bench/results/.
// `--only=NAME` runs one case.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sys } from '../src/kernel/ffi.js';
import { NR, PR } from '../src/kernel/consts.js';
import { waitNoHang } from '../src/kernel/ptrace.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CKPT = path.join(ROOT, 'bin/ckpt');
const SUBJECT = path.join(ROOT, 'test/subjects/bin/bench_mem');
sys('prctl', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, fn: () => boolean, ms = 60000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) { if (Date.now() > end) throw new Error(`timed out: ${what}`); await sleep(2); }
}
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

interface Run { dumpMs: number; restoreMs: number; imageBytes: number; dumpRssKiB: number; restoreRssKiB: number; filesCalls: number; fds: number }

function timed(args: string[]): { ms: number; json: { peakRssKiB: number; counts?: { remoteCallsFiles: number; fds: number } } } {
  const t0 = performance.now();
  const r = spawnSync(CKPT, ['--json', ...args], { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`ckpt ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return { ms, json: JSON.parse(r.stdout) };
}

async function once(mib: number, base: string, subject?: string[]): Promise<Run> {
  const dir = fs.mkdtempSync(path.join(base, 'ckpt-bench-'));
  const out = path.join(dir, 'out');
  const img = path.join(dir, 'img');
  const bin = subject ? path.join(ROOT, 'test/subjects/bin', subject[0]) : SUBJECT;
  const child = spawn(bin, subject ? [out, ...subject.slice(1)] : [out, String(mib)], { detached: true, stdio: 'ignore', cwd: dir });
  const pid = child.pid!;
  let exited = false;
  child.on('exit', () => { exited = true; });
  try {
    await until('READY', () => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('READY'));
    const d = timed(['dump', '-t', String(pid), '-D', img]);
    await until('the dumped process to go', () => exited && !fs.existsSync(`/proc/${pid}`));
    // Descendants of a dumped tree were reparented to us (subreaper): reap them.
    const pids = (JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8')) as { processes: Array<{ pid: number }> }).processes.map((p) => p.pid);
    for (const p of pids) await until(`pid ${p} to go`, () => { try { waitNoHang(p); } catch { /* */ } return !fs.existsSync(`/proc/${p}`); });
    const imageBytes = fs.readdirSync(img).reduce((s, f) => s + fs.statSync(path.join(img, f)).size, 0);
    const r = timed(['restore', '-D', img, '-d']);
    process.kill(pid, 'SIGTERM');
    await until('verdict', () => /PASS|FAIL/.test(fs.readFileSync(out, 'utf8')));
    const v = fs.readFileSync(out, 'utf8');
    if (!v.includes('PASS')) throw new Error(`restored subject failed its check: ${v}`);
    await until('reap', () => { try { waitNoHang(pid); } catch { /* */ } return !fs.existsSync(`/proc/${pid}`); });
    return { dumpMs: d.ms, restoreMs: r.ms, imageBytes, dumpRssKiB: d.json.peakRssKiB, restoreRssKiB: r.json.peakRssKiB, filesCalls: r.json.counts?.remoteCallsFiles ?? 0, fds: r.json.counts?.fds ?? 0 };
  } finally {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    // After a failure, the rest of a tree too.
    try {
      const m = JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8')) as { processes: Array<{ pid: number }> };
      for (const p of m.processes) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
    } catch { /* no image */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CASES: Array<{ name: string; mib: number; runs: number; target?: { dump: number; restore: number }; subject?: string[] }> = [
  { name: 'trivial', mib: 0, runs: 11, target: { dump: 80, restore: 80 } },
  { name: '1 MiB', mib: 1, runs: 7 },
  { name: '256 MiB', mib: 256, runs: 5 },
  { name: '1 GiB', mib: 1024, runs: 7, target: { dump: 500, restore: 350 } },
  { name: 'tree 21', mib: 0, runs: 7, subject: ['tree', '4'] },
  { name: '64 thr', mib: 0, runs: 7, subject: ['threads', '64'] },
  // 1,000 fds of eight kinds; the restore must cost at most one remote call per fd for them.
  { name: 'fds 1000', mib: 0, runs: 5, subject: ['bench_fds', '1000', 'file,null,dir,pipe,eventfd,socket,timerfd,epoll'] },
  { name: 'deleted 512 MiB', mib: 0, runs: 3, subject: ['bench_ghost', '512'] },
];

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  // What starting Node alone costs here, measured the same way, for scale.
  const bare: number[] = [];
  for (let i = 0; i < 11; i++) { const t0 = performance.now(); spawnSync(process.execPath, ['-e', '0']); bare.push(performance.now() - t0); }
  const nodeStartMs = median(bare);
  process.stdout.write(`node -e 0 takes ${nodeStartMs.toFixed(1)} ms here (median); figures below are medians (min-max)\n`);
  const disk = path.join(os.tmpdir());
  const media: Array<[string, string]> = [['/dev/shm', '/dev/shm'], [`disk (${disk})`, disk]];
  const rows: Array<Record<string, unknown>> = [];
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
  for (const c of CASES.filter((x) => !only || x.name === only)) {
    for (const [medium, base] of media) {
      const runs: Run[] = [];
      for (let i = 0; i < (quick ? 2 : c.runs); i++) runs.push(await once(c.mib, base, c.subject));
      const row = {
        case: c.name, medium, runs: runs.length,
        dumpMs: median(runs.map((r) => r.dumpMs)), restoreMs: median(runs.map((r) => r.restoreMs)),
        dumpMinMaxMs: [Math.min(...runs.map((r) => r.dumpMs)), Math.max(...runs.map((r) => r.dumpMs))],
        restoreMinMaxMs: [Math.min(...runs.map((r) => r.restoreMs)), Math.max(...runs.map((r) => r.restoreMs))],
        imageMiB: median(runs.map((r) => r.imageBytes)) / 1048576,
        dumpPeakRssMiB: Math.max(...runs.map((r) => r.dumpRssKiB)) / 1024,
        restorePeakRssMiB: Math.max(...runs.map((r) => r.restoreRssKiB)) / 1024,
        target: medium === '/dev/shm' ? c.target ?? null : null,
        fds: runs[0].fds,
        /** Remote calls the restore made for open files (create and install), per fd. */
        filesCallsPerFd: runs[0].fds ? median(runs.map((r) => r.filesCalls)) / runs[0].fds : null,
      };
      rows.push(row);
      const t = row.target;
      const verdict = t ? (row.dumpMs <= t.dump && row.restoreMs <= t.restore ? 'meets target' : `target ${t.dump}/${t.restore} ms: MISSED`) : '';
      const mm = (x: number[]) => `(${x[0].toFixed(0)}-${x[1].toFixed(0)})`;
      process.stdout.write(`${c.name.padEnd(15)} ${medium.padEnd(16)} dump ${row.dumpMs.toFixed(1).padStart(7)} ms ${mm(row.dumpMinMaxMs).padEnd(11)} restore ${row.restoreMs.toFixed(1).padStart(7)} ms ${mm(row.restoreMinMaxMs).padEnd(11)} image ${row.imageMiB.toFixed(1).padStart(7)} MiB  ckpt RSS ${row.dumpPeakRssMiB.toFixed(0)}/${row.restorePeakRssMiB.toFixed(0)} MiB  ${row.fds >= 100 ? `${row.filesCallsPerFd!.toFixed(2)} remote calls/fd  ` : ''}${verdict}\n`);
    }
  }
  if (!only || only === 'redis') {
    const rb = await redisBench(quick ? 1 : 3);
    rows.push({ case: 'redis 100 MiB, 100 connections', ...rb });
  }
  const footprint = only ? null : await cowFootprint();
  if (footprint) process.stdout.write(`memory of a parent and 8 children sharing 256 MiB copy-on-write: PSS ${footprint.beforeKiB} KiB before, ${footprint.afterKiB} KiB after restore (${((footprint.afterKiB / footprint.beforeKiB - 1) * 100).toFixed(2)}%)\n`);
  const res = { nodeStartMs, cowFootprint: footprint, date: new Date().toISOString(), host: os.hostname(), kernel: os.release(), cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, rows };
  fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  const file = path.join(ROOT, 'bench/results', `bench-${res.date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify(res, null, 2) + '\n');
  process.stdout.write(`\nWall time of the whole ckpt command, Node start included, as spawned from Node. This VM hands freed\nmemory back to its host (free page reporting), so touching memory that was freed a moment ago is\nsometimes much slower: the spread of the big cases comes from that. JSON: ${path.relative(ROOT, file)}\n`);
}

// ---------------------------------------------------------------- redis

/** A RESP client on one connection: commands out, replies counted (each reply is one line, or a bulk string, here). */
class RespConn {
  readonly s: net.Socket;
  private buf = '';
  private waiting: Array<(r: string) => void> = [];
  error = '';
  constructor(port: number) {
    this.s = net.connect({ host: '127.0.0.1', port });
    this.s.setNoDelay(true);
    this.s.on('data', (d) => {
      this.buf += d.toString('latin1');
      for (;;) {
        const i = this.buf.indexOf('\r\n');
        if (i < 0) break;
        let end = i + 2;
        if (this.buf[0] === '$' && Number(this.buf.slice(1, i)) >= 0) {
          end = i + 2 + Number(this.buf.slice(1, i)) + 2;
          if (this.buf.length < end) break;
        }
        const line = this.buf.slice(0, end);
        this.buf = this.buf.slice(end);
        this.waiting.shift()?.(line);
      }
    });
    this.s.on('error', (e) => { this.error = e.message; });
  }
  ready(): Promise<void> { return new Promise((r, j) => { this.s.once('connect', () => r()); this.s.once('error', j); }); }
  send(...cmds: string[][]): Promise<string[]> {
    const out = cmds.map((c) => `*${c.length}\r\n` + c.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')).join('');
    const ps = cmds.map(() => new Promise<string>((r) => this.waiting.push(r)));
    this.s.write(out);
    return Promise.all(ps);
  }
}

/**
 * redis-server with 100 MiB of data and 100 open client connections, dumped
 * (--tcp-established) and restored; meanwhile a client outside sends PING
 * after PING on its own connection: the longest wait for an answer is the
 * window in which requests go unanswered, as a client sees it. Baseline: the
 * longest wait over the same time with no checkpoint.
 */
async function redisBench(runs: number): Promise<Record<string, unknown>> {
  const bin = '/usr/bin/redis-server';
  if (!fs.existsSync(bin)) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const dumps: number[] = [], restores: number[] = [], windows: number[] = [], baselines: number[] = [], images: number[] = [];
  for (let run = 0; run < runs; run++) {
    const dir = fs.mkdtempSync(path.join('/dev/shm', 'ckpt-bench-redis-'));
    const port = await new Promise<number>((r) => { const x = net.createServer().listen(0, '127.0.0.1', () => { const p = (x.address() as net.AddressInfo).port; x.close(() => r(p)); }); });
    const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, '--logfile', path.join(dir, 'log')],
      { detached: true, stdio: 'ignore', cwd: dir, env: { ...process.env } });
    const pid = child.pid!;
    const img = path.join(dir, 'img');
    const conns: RespConn[] = [];
    try {
      await until('redis to listen', () => { try { return fs.readFileSync('/proc/net/tcp', 'utf8').includes(`:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A`); } catch { return false; } });
      const filler = new RespConn(port);
      await filler.ready();
      const value = 'x'.repeat(1024);
      const keys = 100 * 1024;
      for (let i = 0; i < keys; i += 1024) await filler.send(...Array.from({ length: 1024 }, (_, j) => ['SET', `key:${i + j}`, value]));
      for (let i = 0; i < 100; i++) { const c = new RespConn(port); await c.ready(); await c.send(['PING']); conns.push(c); }
      conns.push(filler);
      // The prober: PING after PING; the longest wait for a PONG.
      const prober = new RespConn(port);
      await prober.ready();
      let longest = 0, answered = 0, stop = false;
      const loop = (async () => {
        while (!stop) {
          const t0 = performance.now();
          await prober.send(['PING']);
          longest = Math.max(longest, performance.now() - t0);
          answered++;
        }
      })();
      await sleep(1000);
      baselines.push(longest);
      longest = 0;
      const d = timed(['dump', '-t', String(pid), '-D', img, '--tcp-established']);
      await until('redis to go', () => { try { waitNoHang(pid); } catch { /* */ } return !fs.existsSync(`/proc/${pid}`); });
      const r = timed(['restore', '-D', img, '-d']);
      const before = answered;
      await until('answers after restore', () => answered > before + 100, 30000);
      stop = true;
      await loop;
      windows.push(longest);
      dumps.push(d.ms);
      restores.push(r.ms);
      images.push(fs.readdirSync(img).reduce((n, f) => n + fs.statSync(path.join(img, f)).size, 0));
      // Every connection answers, every key is there.
      const sizes = await Promise.all(conns.map((c) => c.send(['DBSIZE'])));
      if (sizes.some((x) => x[0] !== `:${keys}\r\n`)) throw new Error(`after restore: DBSIZE ${sizes.map((x) => x[0].trim()).join(',')}`);
      if ([...conns, prober].some((c) => c.error)) throw new Error('a client connection failed after restore');
      for (const c of [...conns, prober]) c.s.destroy();
    } finally {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await until('redis to end', () => { try { waitNoHang(pid); } catch { /* */ } return !fs.existsSync(`/proc/${pid}`); }).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const row = {
    runs, dumpMs: median(dumps), restoreMs: median(restores), dumpMinMaxMs: [Math.min(...dumps), Math.max(...dumps)], restoreMinMaxMs: [Math.min(...restores), Math.max(...restores)],
    imageMiB: median(images) / 1048576, unansweredMs: median(windows), unansweredMinMaxMs: [Math.min(...windows), Math.max(...windows)], baselineLongestWaitMs: median(baselines),
  };
  process.stdout.write(`redis 100 MiB, 100 conns  dump ${row.dumpMs.toFixed(0)} ms (${row.dumpMinMaxMs.map((x) => x.toFixed(0)).join('-')})  restore ${row.restoreMs.toFixed(0)} ms (${row.restoreMinMaxMs.map((x) => x.toFixed(0)).join('-')})  image ${row.imageMiB.toFixed(0)} MiB  a client's request unanswered for ${row.unansweredMs.toFixed(0)} ms (${row.unansweredMinMaxMs.map((x) => x.toFixed(0)).join('-')}; longest wait without a checkpoint ${row.baselineLongestWaitMs.toFixed(1)} ms)\n`);
  return row;
}

function pssOf(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0), 0);
}

/** The figure issue 3 asks for: PSS of a tree sharing memory across fork, before dump and after restore. */
async function cowFootprint(): Promise<{ beforeKiB: number; afterKiB: number }> {
  const dir = fs.mkdtempSync(path.join('/dev/shm', 'ckpt-bench-'));
  const out = path.join(dir, 'out');
  const img = path.join(dir, 'img');
  const child = spawn(path.join(ROOT, 'test/subjects/bin/cowshare'), [out, '256'], { detached: true, stdio: 'ignore', cwd: dir });
  const pid = child.pid!;
  let exited = false;
  child.on('exit', () => { exited = true; });
  try {
    await until('READY', () => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('READY'));
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    const all = [pid, ...kids];
    const beforeKiB = pssOf(all);
    timed(['dump', '-t', String(pid), '-D', img]);
    await until('the dumped tree to go', () => exited && all.every((p) => { try { waitNoHang(p); } catch { /* */ } return !fs.existsSync(`/proc/${p}`); }));
    timed(['restore', '-D', img, '-d']);
    const afterKiB = pssOf(all);
    process.kill(pid, 'SIGTERM');
    await until('verdict', () => /PASS|FAIL/.test(fs.readFileSync(out, 'utf8')));
    await until('reap', () => { try { waitNoHang(pid); } catch { /* */ } return !fs.existsSync(`/proc/${pid}`); });
    return { beforeKiB, afterKiB };
  } finally {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { process.stderr.write(`bench: ${(e as Error).stack}\n`); process.exitCode = 1; });

// npm run demo: a counting program is checkpointed, killed, restored, and goes on.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CKPT = path.join(ROOT, 'bin/ckpt');
const COUNTER = path.join(ROOT, 'test/subjects/bin/counter');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (s: string) => process.stdout.write(`\x1b[1m== ${s}\x1b[0m\n`);

function ckpt(...args: string[]): void {
  process.stdout.write(`$ ckpt ${args.join(' ')}\n`);
  const r = spawnSync(CKPT, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`ckpt ${args[0]} failed (exit ${r.status})`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('ckpt needs root (ptrace, clone3 with set_tid)');
  const make = spawnSync('make', ['-s', '-C', path.join(ROOT, 'test/subjects')], { stdio: 'inherit' });
  if (make.status !== 0) throw new Error('building the demo program failed (is gcc installed?)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-demo-'));
  const out = path.join(dir, 'counter.out');
  const img = path.join(dir, 'image');
  let shown = 0;
  const show = () => {
    const lines = (fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '').split('\n').filter((l) => l.startsWith('count'));
    for (const l of lines.slice(shown)) process.stdout.write(`   counter: ${l}\n`);
    shown = lines.length;
  };

  say('starting a counting program (it prints a new number every 200 ms)');
  const child = spawn(COUNTER, [out], { cwd: dir, detached: true, stdio: 'ignore' });
  const pid = child.pid!;
  const exited = new Promise((r) => child.on('exit', r));
  for (let i = 0; i < 10; i++) { await sleep(200); show(); }

  say(`checkpointing pid ${pid} (this ends the process)`);
  ckpt('-v3', 'dump', '-t', String(pid), '-D', img);
  await exited;
  say('the process is gone; nothing counts for two seconds');
  for (let i = 0; i < 10; i++) { await sleep(200); show(); }
  process.stdout.write(`   (ps shows pid ${pid}: ${fs.existsSync(`/proc/${pid}`) ? 'yes' : 'no'})\n`);

  say('what the image holds');
  ckpt('info', '-D', img);

  say('restoring it: same PID, same memory, and it goes on counting from where it was');
  ckpt('-v3', 'restore', '-D', img, '-d');
  for (let i = 0; i < 10; i++) { await sleep(200); show(); }

  say('asking the program to check itself and stop');
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && !/PASS|FAIL/.test(fs.readFileSync(out, 'utf8')); i++) await sleep(100);
  const verdict = fs.readFileSync(out, 'utf8').split('\n').find((l) => /^(PASS|FAIL)/.test(l)) ?? '(no verdict)';
  process.stdout.write(`   counter says: ${verdict}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  if (!verdict.startsWith('PASS')) process.exitCode = 1;
}

main().catch((e) => { process.stderr.write(`demo: ${(e as Error).message}\n`); process.exitCode = 1; });

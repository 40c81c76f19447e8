// Real programs as they are, not written for ckpt: node (timers, a worker
// thread, a child process over pipes), python3 (a file read part-way, a
// pipe to a child), tail -f on a growing file, a shell pipeline with data in
// flight, and a program in a pty made by script. Each is run once without a
// checkpoint for the reference output, then checkpointed half-way (the dump
// ends it), restored and let finish; and once dumped with --leave-running.
// Each time its output must be exactly the reference.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { Subject, ckpt, ckptOk, cleanupAll, tmpDir, waitUntil, readText, treeGone } from './harness.js';

after(cleanupAll);

type Mode = 'reference' | 'roundtrip' | 'leave-running';

interface App {
  /** The command, run in `dir` with stdin and stderr on /dev/null. */
  cmd(dir: string): { bin: string; args: string[] };
  /** Files the program needs, written before it starts. */
  setup?(dir: string): void;
  /** The file the program's output ends in. */
  output: string;
  /** When to checkpoint: enough output so far. */
  midway(out: string): boolean;
  /** A program that runs until stopped (tail -f): when its output is complete. Others end by themselves. */
  complete?(out: string, dir: string): boolean;
  /** Something outside the tree that feeds the program (tail's writer): started with the program, paused around the checkpoint. */
  feeder?(dir: string): ChildProcess;
}

async function run(app: App, mode: Mode): Promise<string> {
  const dir = tmpDir(`app-${mode}`);
  app.setup?.(dir);
  const { bin, args } = app.cmd(dir);
  const s = new Subject(bin, args, { dir, outArg: false });
  const out = path.join(dir, app.output);
  const feeder = app.feeder?.(dir);
  try {
    const text = () => (fs.existsSync(out) ? readText(out) : '');
    if (mode !== 'reference') {
      await waitUntil('output half-way', () => app.midway(text()), 30000);
      // The feeder waits while the program is checkpointed (a file it reads must not change in between).
      if (feeder) { feeder.kill('SIGSTOP'); await new Promise((r) => setTimeout(r, 100)); }
      const img = path.join(dir, 'img');
      if (mode === 'roundtrip') {
        ckptOk('dump', '-t', String(s.pid), '-D', img);
        await s.gone();
        await treeGone(img);
        ckptOk('restore', '-D', img, '-d');
      } else {
        ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
      }
      feeder?.kill('SIGCONT');
    }
    if (app.complete) {
      await waitUntil('complete output', () => app.complete!(text(), dir), 30000);
      await new Promise((r) => setTimeout(r, 200)); // (nothing more may come)
      s.kill();
    }
    await s.reap(30000);
    return text();
  } finally {
    s.kill();
    feeder?.kill('SIGKILL');
  }
}

async function check(app: App): Promise<void> {
  const ref = await run(app, 'reference');
  assert.ok(ref.length > 0, 'the reference run produced output');
  const rt = await run(app, 'roundtrip');
  assert.equal(rt, ref, 'after checkpoint and restore, the output is the reference');
  const lr = await run(app, 'leave-running');
  assert.equal(lr, ref, 'after a dump with --leave-running, the output is the reference');
}

const lineCount = (s: string) => s.split('\n').length - 1;

// ---- node ----

const NODE_PROG = `
const { Worker } = require('worker_threads');
const cp = require('child_process');
const fs = require('fs');
const out = process.argv[2], N = 150;
const w = new Worker(\`const { parentPort } = require('worker_threads'); const c = require('crypto');
  parentPort.on('message', (k) => parentPort.postMessage([k, c.createHash('sha256').update(String(k)).digest('hex')]));\`, { eval: true });
const child = cp.spawn(process.execPath, ['-e', \`process.stdin.setEncoding('utf8'); let b = '';
  process.stdin.on('data', (d) => { b += d; let i; while ((i = b.indexOf('\\\\n')) >= 0) { process.stdout.write(b.slice(0, i).toUpperCase() + '\\\\n'); b = b.slice(i + 1); } });\`],
  { stdio: ['pipe', 'pipe', 'inherit'] });
let buf = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const l = buf.slice(0, i); buf = buf.slice(i + 1);
    fs.appendFileSync(out, l + '\\n');
    if (l.startsWith('ITEM ' + (N - 1) + ' ')) { fs.appendFileSync(out, 'DONE\\n'); child.stdin.end(); w.terminate(); }
  }
});
w.on('message', ([k, h]) => child.stdin.write('item ' + k + ' ' + h + '\\n'));
let k = 0;
const t = setInterval(() => { if (k >= N) clearInterval(t); else w.postMessage(k++); }, 15);
`;

test('node: timers, a worker thread and a child process over pipes', async () => {
  await check({
    setup: (dir) => fs.writeFileSync(path.join(dir, 'prog.js'), NODE_PROG),
    cmd: (dir) => ({ bin: process.execPath, args: [path.join(dir, 'prog.js'), path.join(dir, 'out.txt')] }),
    output: 'out.txt',
    midway: (o) => lineCount(o) >= 40,
  });
});

// ---- python3 ----

const PY_PROG = `
import sys, subprocess, time
src, out = sys.argv[1], sys.argv[2]
f = open(src)
with open(out, 'w') as o:
    p = subprocess.Popen(['cat'], stdin=subprocess.PIPE, stdout=o)
for i, line in enumerate(f):
    p.stdin.write(('%d:%s' % (i, line.upper())).encode())
    p.stdin.flush()
    time.sleep(0.004)
p.stdin.close()
p.wait()
`;

function python(): string {
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (fs.existsSync(p)) return p;
  const r = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'python3')).find((p) => fs.existsSync(p));
  if (!r) throw new Error('python3 not found');
  return r;
}

test('python3: a file read part-way through, then written on to a pipe to a child', async () => {
  await check({
    setup: (dir) => {
      fs.writeFileSync(path.join(dir, 'prog.py'), PY_PROG);
      fs.writeFileSync(path.join(dir, 'in.txt'), Array.from({ length: 600 }, (_, i) => `line ${i} ${'abc'.repeat(i % 17)}\n`).join(''));
    },
    cmd: (dir) => ({ bin: python(), args: [path.join(dir, 'prog.py'), path.join(dir, 'in.txt'), path.join(dir, 'out.txt')] }),
    output: 'out.txt',
    midway: (o) => lineCount(o) >= 150,
  });
});

// ---- tail -f ----

const LOG_LINES = 300;

test('tail -f on a file that keeps growing', async () => {
  await check({
    setup: (dir) => fs.writeFileSync(path.join(dir, 'log'), ''),
    cmd: (dir) => ({ bin: '/bin/sh', args: ['-c', `exec tail -f -n +1 ${path.join(dir, 'log')} > ${path.join(dir, 'out.txt')}`] }),
    output: 'out.txt',
    feeder: (dir) => spawn('/bin/bash', ['-c', `for ((i = 0; i < ${LOG_LINES}; i++)); do echo "entry $i" >> log; sleep 0.01; done`], { cwd: dir, stdio: 'ignore' }),
    midway: (o) => lineCount(o) >= 60,
    complete: (o) => lineCount(o) >= LOG_LINES,
  });
});

// ---- a shell pipeline ----

test('a shell pipeline producer | filter | consumer with data in flight', async () => {
  await check({
    cmd: (dir) => ({
      bin: '/bin/bash',
      args: ['-c', `seq 1 300000 | while read -r l; do echo "x$l"; done | cat > ${path.join(dir, 'out.txt')}`],
    }),
    output: 'out.txt',
    midway: (o) => o.length >= 200000,
  });
});

// ---- a pty made by script ----

test('a program in a pty made by script', async () => {
  await check({
    cmd: (dir) => ({
      bin: '/bin/sh',
      args: ['-c', `exec script -q -c 'for i in $(seq 1 200); do echo "line $i"; sleep 0.01; done; stty -a | head -1' /dev/null > ${path.join(dir, 'out.txt')}`],
    }),
    output: 'out.txt',
    midway: (o) => lineCount(o) >= 50,
  });
});

// ---- node with io_uring ----

test('node with io_uring on (UV_USE_IO_URING=1) is refused, naming its io_uring fd, and runs on', async () => {
  const dir = tmpDir('node-uring');
  const out = path.join(dir, 'verdict.txt');
  fs.writeFileSync(path.join(dir, 'prog.js'), `
    const fs = require('fs'); let n = 0;
    setInterval(() => fs.readFile('/etc/hostname', () => { n++; }), 20);
    process.on('SIGTERM', () => { fs.appendFileSync(process.argv[2], n > 0 ? 'PASS\\n' : 'FAIL\\n'); process.exit(0); });
    setTimeout(() => fs.appendFileSync(process.argv[2], 'READY\\n'), 200);`);
  const s = new Subject(process.execPath, [path.join(dir, 'prog.js'), out], { dir, outArg: false, env: { ...process.env, UV_USE_IO_URING: '1' } });
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}: fd \\d+ is an io_uring instance`));
  assert.equal(await s.verdict(), 'PASS');
});

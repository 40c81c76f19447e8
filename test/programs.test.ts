// Real programs, not written for ckpt: python3 (also with threads) and bash
// loops holding state, and node (its event loop holds an epoll instance and
// an eventfd).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, roundTrip, leaveRunning, ckptOk, cleanupAll, tmpDir, waitUntil, readText, treeGone } from './harness.js';
import { waitNoHang } from '../src/kernel/ptrace.js';

after(cleanupAll);

const PY = `
import signal, sys, time, hashlib
out = sys.argv[1]
def say(s):
    with open(out, 'a') as f: f.write(s + '\\n')
data = {i: hashlib.sha256(str(i).encode()).hexdigest() for i in range(20000)}
big = bytearray(range(256)) * 40000
count = 0
def on_term(sig, frame):
    ok = all(data[i] == hashlib.sha256(str(i).encode()).hexdigest() for i in range(20000))
    ok = ok and big == bytearray(range(256)) * 40000 and count > start
    say('PASS' if ok else 'FAIL python state changed (count %d start %d)' % (count, start))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
start = 0
say('READY')
while True:
    count += 1
    if count == 1: start = 1
    time.sleep(0.05)
`;

function python(): string {
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (fs.existsSync(p)) return p;
  // pyenv shims are scripts that exec the real interpreter; find it.
  const r = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'python3')).find((p) => fs.existsSync(p));
  if (!r) throw new Error('python3 not found');
  return r;
}

test('python3 loop with state in variables', async () => {
  const dir = tmpDir('py');
  fs.writeFileSync(path.join(dir, 'prog.py'), PY);
  const s = new Subject(python(), [path.join(dir, 'prog.py'), path.join(dir, 'verdict.txt')], { dir, outArg: false });
  assert.equal(await roundTrip(s), 'PASS');
});

const PY_THREADS = `
import signal, sys, threading, time
out = sys.argv[1]
def say(s):
    with open(out, 'a') as f: f.write(s + '\\n')
N = 6
counts = [0] * N
stop = threading.Event()
lock = threading.Lock()
cond = threading.Condition(lock)
def worker(i):
    local = [i * 1000 + k for k in range(1000)]
    while not stop.is_set():
        if i % 2:
            with cond:
                cond.wait(0.05)
        else:
            time.sleep(0.03)
        counts[i] += 1
        if local != [i * 1000 + k for k in range(1000)]:
            counts[i] = -10**9
threads = [threading.Thread(target=worker, args=(i,), name='py-%d' % i) for i in range(N)]
for t in threads: t.start()
before = None
def on_term(sig, frame):
    time.sleep(0.2)  # let every thread go round at least once after restore
    after = list(counts)
    stop.set()
    for t in threads: t.join()
    ok = all(a > b for a, b in zip(after, before)) and all(t.name == 'py-%d' % i for i, t in enumerate(threads))
    say('PASS' if ok else 'FAIL thread counters %r -> %r' % (before, after))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
time.sleep(0.3)
before = list(counts)
say('READY')
while True:
    time.sleep(0.1)
`;

test('python3 with threads (condition waits and sleeps) goes on in every thread', async () => {
  const dir = tmpDir('pythreads');
  fs.writeFileSync(path.join(dir, 'prog.py'), PY_THREADS);
  const s = new Subject(python(), [path.join(dir, 'prog.py'), path.join(dir, 'verdict.txt')], { dir, outArg: false });
  assert.equal(await roundTrip(s), 'PASS');
});

const BASH = `
out=$1
declare -a arr
for ((k = 0; k < 2000; k++)); do arr[k]=$((k * 7)); done
n=0
fifo=$PWD/tick.fifo; mkfifo "$fifo"; exec 3<>"$fifo"
on_term() {
  for ((k = 0; k < 2000; k++)); do
    if [[ \${arr[k]} != $((k * 7)) ]]; then echo "FAIL arr[$k]=\${arr[k]}" >> "$out"; exit 1; fi
  done
  if ((n > start)); then echo PASS >> "$out"; else echo "FAIL counter did not go on ($n <= $start)" >> "$out"; fi
  exit 0
}
trap on_term TERM
start=0
echo READY >> "$out"
while :; do n=$((n + 1)); read -t 0.05 -u 3 _; done
`;

test('bash loop with variables and an array (builtins only)', async () => {
  const dir = tmpDir('bash');
  fs.writeFileSync(path.join(dir, 'prog.sh'), BASH);
  const s = new Subject('/bin/bash', [path.join(dir, 'prog.sh'), path.join(dir, 'verdict.txt')], { dir, outArg: false });
  assert.equal(await roundTrip(s), 'PASS');
});

test('bash loop, dumped with --leave-running', async () => {
  const dir = tmpDir('bash');
  fs.writeFileSync(path.join(dir, 'prog.sh'), BASH);
  const s = new Subject('/bin/bash', [path.join(dir, 'prog.sh'), path.join(dir, 'verdict.txt')], { dir, outArg: false });
  assert.equal(await leaveRunning(s), 'PASS');
});

const BASH_JOBS = `
out=$1
rounds=0
on_term() {
  wait # finish the round under way
  rounds=$((rounds + 1))
  if ((rounds > start)); then echo "PASS" >> "$out"; else echo "FAIL no round finished after restore ($rounds)" >> "$out"; fi
  exit 0
}
trap on_term TERM
sleep 0.3 & sleep 0.5 & wait
rounds=1
start=$rounds
echo READY >> "$out"
while :; do sleep 0.4 & sleep 0.6 & wait; rounds=$((rounds + 1)); done
`;

test('bash running sleep children in the background and waiting for them (a process tree)', async () => {
  const dir = tmpDir('bashjobs');
  fs.writeFileSync(path.join(dir, 'prog.sh'), BASH_JOBS);
  const s = new Subject('/bin/bash', [path.join(dir, 'prog.sh'), path.join(dir, 'verdict.txt')], { dir, outArg: false });
  await s.ready();
  await waitUntil('bash to have its sleep children', () => readText(`/proc/${s.pid}/task/${s.pid}/children`).trim().split(/\s+/).filter(Boolean).length === 2);
  assert.equal(await roundTrip(s), 'PASS');
});

test('a job of a shell that still runs: bash (not a session leader) with its sleep children', async () => {
  const dir = tmpDir('bashjob2');
  fs.writeFileSync(path.join(dir, 'prog.sh'), BASH_JOBS);
  const out = path.join(dir, 'verdict.txt');
  // sh leads the session and stays; bash, its child, is the tree to dump.
  const sh = new Subject('/bin/sh', ['-c', `/bin/bash ${path.join(dir, 'prog.sh')} ${out}; sleep 30`], { dir, outArg: false });
  await sh.ready();
  let bash = 0;
  await waitUntil('bash under sh', () => {
    bash = Number(readText(`/proc/${sh.pid}/task/${sh.pid}/children`).trim().split(/\s+/)[0] || 0);
    return bash > 0 && readText(`/proc/${bash}/task/${bash}/children`).trim().split(/\s+/).filter(Boolean).length === 2;
  });
  const img = path.join(dir, 'img');
  ckptOk('dump', '-t', String(bash), '-D', img);
  await treeGone(img);
  ckptOk('restore', '-D', img, '-d');
  const lines = () => readText(out).split('\n').filter(Boolean);
  const before = lines().length;
  process.kill(bash, 'SIGTERM');
  await waitUntil('the verdict', () => lines().slice(before).some((l) => /^(PASS|FAIL)/.test(l)));
  assert.equal(lines().slice(before).find((l) => /^(PASS|FAIL)/.test(l)), 'PASS');
  await waitUntil('bash to end', () => { try { waitNoHang(bash); } catch { /* not ours */ } return !fs.existsSync(`/proc/${bash}`); });
  sh.kill();
});

test('node (its event loop: epoll, eventfd, timers) comes back and its timers run on', async () => {
  const dir = tmpDir('node');
  const out = path.join(dir, 'verdict.txt');
  fs.writeFileSync(path.join(dir, 'prog.js'), `
    const fs = require('fs'); let n = 0;
    process.on('SIGTERM', () => { const at = n; setTimeout(() => { fs.appendFileSync(process.argv[2], n > at ? 'PASS\\n' : 'FAIL the timers stopped\\n'); process.exit(0); }, 300); });
    fs.appendFileSync(process.argv[2], 'READY\\n'); setInterval(() => n++, 20);`);
  const s = new Subject(process.execPath, [path.join(dir, 'prog.js'), out], { dir, outArg: false });
  assert.equal(await roundTrip(s), 'PASS');
});

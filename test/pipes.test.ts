// Pipes (src/objects/pipe.ts) and FIFOs (src/objects/regfile.ts): data buffered in them, capacity, flags, ends
// shared between processes, half-closed pipes; a dump with --leave-running
// does not consume the data; a pipe whose other end is outside the tree is
// refused.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Subject, SUBJECTS, roundTrip, leaveRunning, cleanupAll, ckpt, readText, waitUntil } from './harness.js';

after(cleanupAll);

for (const mode of ['data', 'full', 'shared', 'halfclosed', 'noreader', 'nonblock']) {
  test(`pipes: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('pipes', [mode])), 'PASS');
  });
}

for (const mode of ['leaverun', 'shared', 'full']) {
  test(`pipes: leave running: ${mode} (the data is not consumed)`, async () => {
    assert.equal(await leaveRunning(Subject.start('pipes', [mode])), 'PASS');
  });
}

for (const mode of ['rw', 'rdwr', 'shared', 'size']) {
  test(`fifos: round trip with data: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('fifo_data', [mode])), 'PASS');
  });
}

test('fifos: leave running: the data is not consumed', async () => {
  assert.equal(await leaveRunning(Subject.start('fifo_data', ['shared'])), 'PASS');
});

test('pipes: the data of a pipe is in the image once, and info names the pipe', async () => {
  const s = Subject.start('pipes', ['shared']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  const r = ckpt('--json', 'dump', '-t', String(s.pid), '-D', img, '--leave-running');
  assert.equal(r.status, 0, r.stderr);
  const data = fs.readdirSync(img).filter((f) => /^file-pipe-\d+\.img$/.test(f));
  assert.equal(data.length, 1, `one data file: ${data}`);
  assert.equal(fs.statSync(path.join(img, data[0])).size, 500);
  const files = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8')).files.filter((f: { kind: string }) => f.kind === 'pipe');
  assert.deepEqual(files.map((f: { end: string; ends: string[] }) => [f.end, f.ends.join()]).sort(), [['read', 'read,write'], ['write', 'read,write']]);
  const info = ckpt('info', '-D', img);
  assert.match(info.stdout, /pipe \d+ write end, with data, capacity 65536/);
  assert.equal(await s.verdict(), 'PASS');
});

test('pipes: a pipe to a process outside the tree is refused, naming the holder, and the process runs on', async () => {
  // The subject's stdout is a pipe to `cat`, which is not in the dumped tree.
  const dir = fs.mkdtempSync('/tmp/ckpt-pipe-out-');
  const out = path.join(dir, 'verdict.txt');
  const sh = spawn('/bin/bash', ['-c', `"$0" "$1" nonblock | cat >/dev/null`, path.join(SUBJECTS, 'pipes'), out], { cwd: dir, detached: true, stdio: 'ignore' });
  try {
    await waitUntil('READY', () => fs.existsSync(out) && readText(out).includes('READY'));
    const pid = Number(fs.readdirSync('/proc').find((p) => /^\d+$/.test(p) && (() => { try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith(path.join(SUBJECTS, 'pipes') + '\0' + out); } catch { return false; } })()));
    const r = ckpt('dump', '-t', String(pid), '-D', path.join(dir, 'img'));
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`pid ${pid}: fd 1 \\(pipe:\\[\\d+\\]\\): the pipe is also held by pid \\d+, outside the tree`));
    process.kill(pid, 'SIGTERM');
    await waitUntil('verdict', () => /PASS|FAIL/.test(readText(out)));
    assert.match(readText(out), /PASS/);
  } finally {
    try { process.kill(-sh.pid!, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

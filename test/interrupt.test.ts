// SIGTERM or SIGINT sent to ckpt in the middle of its work: a dump leaves the
// target exactly as it was; a restore leaves no process behind.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, CKPT, ckptOk, cleanupAll, readText, waitUntil } from './harness.js';

after(cleanupAll);

async function runPaused(args: string[], point: string, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  const p = spawn(CKPT, args, { env: { ...process.env, CKPT_DEBUG_PAUSE: point }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr!.on('data', (d) => { stderr += d; });
  const done = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  await waitUntil(`ckpt to pause at ${point}`, () => stderr.includes(`debug pause at ${point}`));
  p.kill(signal);
  return { code: await done, stderr };
}

for (const [point, signal] of [['dump:state', 'SIGTERM'], ['dump:pages', 'SIGINT']] as const) {
  test(`${signal} to ckpt at ${point}: the target runs on as it was`, async () => {
    const s = Subject.start('regs');
    await s.ready();
    const maps = readText(`/proc/${s.pid}/maps`);
    const r = await runPaused(['dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img')], point, signal);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, new RegExp(`interrupted by ${signal}`));
    assert.equal(readText(`/proc/${s.pid}/maps`), maps, 'no scratch mapping left');
    assert.match(readText(`/proc/${s.pid}/status`), /TracerPid:\s+0/);
    assert.ok(!fs.existsSync(path.join(s.dir, 'img', 'manifest.json')));
    assert.equal(await s.verdict(), 'PASS');
  });
}

test('SIGTERM to ckpt during restore: nothing is left behind', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  const r = await runPaused(['restore', '-D', img, '-d'], 'restore:memory', 'SIGTERM');
  assert.equal(r.code, 130, r.stderr);
  await waitUntil('the half-restored process to be gone', () => !fs.existsSync(`/proc/${s.pid}`), 5000);
  // The image is still good: a second restore works.
  ckptOk('restore', '-D', img, '-d');
  assert.equal(await s.verdict(), 'PASS');
});

// Process trees: memory shared across fork stays shared after restore.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, ckptOk, cleanupAll, readText, treeGone, imagePids } from './harness.js';

after(cleanupAll);

/** Sum of the proportional set size (kB) of the given processes. */
function pss(pids: number[]): number {
  return pids.reduce((sum, pid) => {
    const m = /^Pss:\s+(\d+) kB/m.exec(readText(`/proc/${pid}/smaps_rollup`));
    assert.ok(m, `no Pss for pid ${pid}`);
    return sum + Number(m[1]);
  }, 0);
}

test('a parent and 8 children sharing 256 MiB copy-on-write take no more memory after restore; shared memory stays shared', async () => {
  const s = Subject.start('cowshare', ['256']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  const kids = readText(`/proc/${s.pid}/task/${s.pid}/children`).trim().split(/\s+/).map(Number);
  assert.equal(kids.length, 8);
  const before = pss([s.pid, ...kids]);
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  assert.deepEqual(imagePids(img).sort(), [s.pid, ...kids].sort());
  const stored = fs.readdirSync(img).filter((f) => f.startsWith('pages-')).reduce((sum, f) => sum + fs.statSync(path.join(img, f)).size, 0);
  assert.ok(stored < 300 << 20, `the 256 MiB the children share with their parent are stored once (${stored} bytes of pages)`);
  await s.gone();
  await treeGone(img);
  ckptOk('restore', '-D', img, '-d');
  const afterKb = pss([s.pid, ...kids]);
  assert.ok(afterKb <= before * 1.05, `PSS of the tree: ${before} kB before, ${afterKb} kB after restore (at most 5% more allowed)`);
  assert.equal(await s.verdict(), 'PASS');
});

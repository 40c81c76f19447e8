// Correctness of less common process state: each C subject goes through dump
// (killing it) and restore, then checks itself. Some also go through dump
// --leave-running and check themselves while still running.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, roundTrip, leaveRunning, cleanupAll, CKPT, readText, sleep } from './harness.js';

after(cleanupAll);

const ROUND_TRIP: Array<[string, string, string[]]> = [
  ['memory', 'shmem_child', []],         // a shared anonymous area with pages only the child touched
  ['memory', 'shmem_child', ['remap']],  // ... and the child maps part of it again at an offset (mremap)
  ['memory', 'bigreserve', ['1t']],      // 1 TiB PROT_NONE reservation with 2 MiB read-write inside
  ['memory', 'bigreserve', ['256g']],
  ['memory', 'madvise', []],             // MADV_SEQUENTIAL, MADV_RANDOM, MAP_LOCKED, MLOCK_ONFAULT
  ['memory', 'wipeonfork', ['wipe']],    // MADV_WIPEONFORK: the child sees zeroes, the parent its data
  ['memory', 'wipeonfork', ['droppable']], // MAP_DROPPABLE
  ['memory', 'mapro', []],               // read-only shared file mapping of an O_RDWR fd, closed: mprotect to write
  ['memory', 'mapro', ['private']],      // read-only private mapping of an O_RDONLY fd: mprotect to write
  ['memory', 'thp', []],                 // PR_SET_THP_DISABLE
  ['memory', 'thp', ['advised']],        // PR_SET_THP_DISABLE with PR_THP_DISABLE_EXCEPT_ADVISED
  ['memory', 'membarrier', []],          // membarrier PRIVATE_EXPEDITED registration
  ['memory', 'membarrier', ['all']],     // ... and SYNC_CORE, RSEQ
  ['files', 'chroot', []],               // parent and child in a chroot, cwd and fds inside it
  ['files', 'chroot', ['cwdout']],       // chroot with the cwd left outside the root
  ['files', 'procfd', []],               // open /proc/CHILD/stat, /proc/CHILD/status, /proc/self/status
  ['process', 'zombie_sig', []],         // zombies killed by SIGKILL, SIGTERM, and one exited 7
  ['process', 'zombie_sig', ['core']],   // ... and one killed by SIGSEGV without a core dump
  ['process', 'zombie_pgrp', []],        // a zombie in a group whose leader has exited
  ['process', 'tstp', ['tstp']],         // a child stopped by SIGTSTP, stop already collected
  ['process', 'tstp', ['ttin']],
  ['process', 'tstp', ['ttou']],
  ['process', 'stopchain', []],          // a stopped child of a stopped child, both reports taken
  ['process', 'tstp', ['tstp', 'unreported']], // ... stop not collected yet
  ['process', 'tstp', ['ttin', 'unreported']],
  ['process', 'tstp', ['ttou', 'unreported']],
  ['signals', 'sigtrap', ['handler']],   // SIGTRAP handled: nothing pending, nothing delivered
  ['signals', 'sigtrap', ['ignore']],
  ['signals', 'sigtrap', ['blocked']],
  ['signals', 'sigtrap', ['pending']],   // a SIGTRAP pending (blocked) at dump stays pending
  ['limits', 'fsize', []],               // RLIMIT_FSIZE 64 KiB with 8 MiB of memory, SIGXFSZ handled
  ['limits', 'fsize', ['default']],      // ... SIGXFSZ with its default action (it would kill)
];

for (const [topic, name, args] of ROUND_TRIP) {
  test(`${topic}: round trip: ${name} ${args.join(' ')}`.trim(), async () => {
    const s = Subject.start(name, args);
    assert.equal(await roundTrip(s), 'PASS');
  });
}

test('process: round trip: loginuid (sessionid only noted)', async (t) => {
  const s = Subject.start('loginuid');
  assert.equal(await roundTrip(s), 'PASS');
  // The session id cannot be restored: the subject notes it, and that is no failure.
  const notes = s.lines().filter((l) => l.startsWith('NOTE'));
  for (const n of notes) {
    assert.match(n, /^NOTE sessionid \d+ -> \d+$/);
    t.diagnostic(n);
  }
});

const LEAVE_RUNNING: Array<[string, string, string[]]> = [
  ['limits', 'fsize', []],
  ['process', 'stopchain', []],
  ['limits', 'fsize', ['default']],
  ['signals', 'sigtrap', ['handler']],
  ['signals', 'sigtrap', ['ignore']],
  ['signals', 'sigtrap', ['blocked']],
  ['signals', 'sigtrap', ['pending']],
  ['memory', 'madvise', []],
  ['memory', 'thp', []],
];

for (const [topic, name, args] of LEAVE_RUNNING) {
  test(`${topic}: leave running: ${name} ${args.join(' ')}`.trim(), async () => {
    const s = Subject.start(name, args);
    assert.equal(await leaveRunning(s), 'PASS');
  });
}

test('failure: a dump whose cleanup fails (the scratch unmap) still gives every thread its registers and mask back', async () => {
  const s = Subject.start('threads', ['8']);
  await s.ready();
  const r = spawnSync(CKPT, ['dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '-R'], {
    encoding: 'utf8', env: { ...process.env, CKPT_DEBUG_FAIL: 'release:unmap' },
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}: could not unmap the scratch area: debug failure`));
  assert.ok(!fs.existsSync(path.join(s.dir, 'img', 'manifest.json')), 'no image is left behind');
  assert.equal(await s.verdict(), 'PASS');
});

test('failure: a write in the target that fails on RLIMIT_FSIZE leaves no SIGXFSZ behind', async () => {
  // Made to write its own pages past its 64 KiB limit (a debug switch), the
  // target gets EFBIG and SIGXFSZ; the dump fails, and the signal, which would
  // kill it (default action), is taken back.
  const s = Subject.start('fsize', ['default']);
  await s.ready();
  const r = spawnSync(CKPT, ['dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'), '-R'], {
    encoding: 'utf8', env: { ...process.env, CKPT_DEBUG_FAIL: 'ignore-fsize' },
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /pwritev\(pages\) in pid \d+ failed: EFBIG/);
  await sleep(100);
  assert.equal(readText(`/proc/${s.pid}/status`).match(/^SigPnd:\s*(\S+)/m)?.[1], '0000000000000000', 'no signal is pending for it');
  assert.equal(await s.verdict(), 'PASS');
});

test('memory: without PAGEMAP_SCAN (the page map read in bounded chunks, as on older kernels) memory and copy-on-write sharing come back the same', async () => {
  process.env.CKPT_DEBUG_FAIL = 'pagemap-scan';
  try {
    for (const [name, args] of [['mem', []], ['cowshare', ['32']], ['shmem_child', []]] as Array<[string, string[]]>) {
      const s = Subject.start(name, args);
      assert.equal(await roundTrip(s, { dump: ['-v3', '-o', 'dump.log'] }), 'PASS', name);
      assert.match(fs.readFileSync(path.join(s.dir, 'img', 'dump.log'), 'utf8'), /page maps were read without PAGEMAP_SCAN/, `${name}: the fallback was used`);
      if (name === 'cowshare') {
        // 32 MiB shared by the parent and 8 children is stored once (plus child 1's own 32 MiB), not once per child.
        const img = path.join(s.dir, 'img');
        const pages = fs.readdirSync(img).filter((f) => f.startsWith('pages-')).reduce((t, f) => t + fs.statSync(path.join(img, f)).size, 0);
        assert.ok(pages < 80 << 20, `the image stores ${pages >> 20} MiB of pages`);
      }
    }
  } finally {
    delete process.env.CKPT_DEBUG_FAIL;
  }
});

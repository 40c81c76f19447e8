// Correctness of less common process state: each C subject goes through dump
// (killing it) and restore, then checks itself. Some also go through dump
// --leave-running and check themselves while still running.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, roundTrip, leaveRunning, cleanupAll } from './harness.js';

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
  ['process', 'tstp', ['tstp', 'unreported']], // ... stop not collected yet
  ['process', 'tstp', ['ttin', 'unreported']],
  ['process', 'tstp', ['ttou', 'unreported']],
  ['signals', 'sigtrap', ['handler']],   // SIGTRAP handled: nothing pending, nothing delivered
  ['signals', 'sigtrap', ['ignore']],
  ['signals', 'sigtrap', ['blocked']],
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
  ['limits', 'fsize', ['default']],
  ['signals', 'sigtrap', ['handler']],
  ['signals', 'sigtrap', ['ignore']],
  ['signals', 'sigtrap', ['blocked']],
  ['memory', 'madvise', []],
  ['memory', 'thp', []],
];

for (const [topic, name, args] of LEAVE_RUNNING) {
  test(`${topic}: leave running: ${name} ${args.join(' ')}`.trim(), async () => {
    const s = Subject.start(name, args);
    assert.equal(await leaveRunning(s), 'PASS');
  });
}

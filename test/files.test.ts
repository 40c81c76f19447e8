// The open-file table (image format 2): every open file description of the
// tree is restored once and given to every process that held it, at the same
// fd numbers, with its flags, offset and close-on-exec per fd. Each fd_*
// subject (test/subjects/fdtree.h) compares the whole tree's fds after
// restore with what they were: the same fds, flags, offsets and files, and
// the same grouping into open file descriptions (kcmp, and by setting
// O_NONBLOCK and moving the offset through one fd and looking at the others),
// then checks what it is about by name.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, roundTrip, leaveRunning, cleanupAll } from './harness.js';

after(cleanupAll);

const ROUND_TRIP: Array<[string, string[], string]> = [
  ['fd_siblings', [], 'two children share a description their parent closed'],
  ['fd_grandchild', [], 'grandchildren share descriptions with the root that the process between them closed'],
  ['fd_twice', [], 'one file open as separate descriptions in the same state, and dups: none merged'],
  ['fd_cycles', [], 'fd numbers that make the moves cycles (2-cycles, a 3-cycle, longer ones), swaps across fork'],
  ['fd_high', [], 'fds at 1000 and at RLIMIT_NOFILE - 1, gaps, shared and moved in a child'],
  ['fd_high', ['cycle'], '... and a cycle of moves in a process with an fd at RLIMIT_NOFILE - 1'],
  ['fd_many', [], '400 descriptions, 800 fds: more than SCM_MAX_FD (253) passed to one process'],
  ['fd_flags', [], 'O_APPEND, O_NONBLOCK, O_NOATIME, O_SYNC, O_DSYNC, O_PATH, O_DIRECT, access modes; close-on-exec per fd'],
  ['fd_dir', [], 'a shared directory fd in the middle of its entries'],
  ['fd_dir', ['big'], '... of an indexed directory (hash positions on ext4)'],
  ['fd_fifo', [], 'empty FIFOs with their ends in different processes, one end shared'],
  ['fd_devnull', [], '/dev/null, /dev/zero, /dev/full, /dev/urandom opened separately in many processes'],
  ['fd_nofds', [], 'a process without any fd between processes that share fds'],
  ['fd_passed', [], 'descriptions passed over unix sockets: a child\'s file held by its parent, a sibling\'s by its sibling'],
  ['fd_threads', [], 'threads share one fd table, a child has its own'],
];

for (const [name, args, what] of ROUND_TRIP) {
  test(`files: round trip: ${[name, ...args].join(' ')}: ${what}`, async () => {
    const s = Subject.start(name, args);
    assert.equal(await roundTrip(s), 'PASS');
  });
}

const LEAVE_RUNNING: Array<[string, string[]]> = [
  ['fd_siblings', []],
  ['fd_cycles', []],
  ['fd_many', []],
  ['fd_flags', []],
  ['fd_fifo', []],
  ['fd_passed', []],
  ['fd_threads', []],
];

for (const [name, args] of LEAVE_RUNNING) {
  test(`files: leave running: ${[name, ...args].join(' ')}`, async () => {
    const s = Subject.start(name, args);
    assert.equal(await leaveRunning(s), 'PASS');
  });
}

// A thread with a table of its own comes back with its own (see also share.test.ts).
test('files: a thread with an fd table of its own (unshare(CLONE_FILES)) keeps it', async () => {
  assert.equal(await roundTrip(Subject.start('fd_threads', ['unshared'])), 'PASS');
});

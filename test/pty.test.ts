// Pseudo-terminal pairs inside the tree (src/objects/pty.ts): the pty_pair
// subject in each mode, round trip and --leave-running; an end held outside
// the tree is refused and the program runs on; a slave never opened is
// refused; a taken index is refused on restore, before any process exists;
// `script` (util-linux), if installed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { Subject, CKPT, SUBJECTS, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, readText, waitUntil, treeGone, imagePids, tmpDir } from './harness.js';

after(cleanupAll);

for (const mode of ['canon', 'raw', 'pkt', 'locked', 'peer', 'single', 'extproc', 'closed', 'two', 'big', 'hungup']) {
  test(`pty: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('pty_pair', [mode])), 'PASS');
  });
}

for (const mode of ['canon', 'raw', 'pkt', 'locked', 'peer', 'single', 'closed', 'two', 'big', 'hungup']) {
  test(`pty: leave running: ${mode} (the queues are put back)`, async () => {
    assert.equal(await leaveRunning(Subject.start('pty_pair', [mode])), 'PASS');
  });
}

test('pty: dumped twice with --leave-running, then round trip: the queues are still exact', async () => {
  const s = Subject.start('pty_pair', ['canon']);
  await s.ready();
  ckptOk('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'lr1'), '--leave-running');
  ckptOk('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'lr2'), '--leave-running');
  const a = fs.readFileSync(path.join(s.dir, 'lr1', 'files.json'), 'utf8');
  const b = fs.readFileSync(path.join(s.dir, 'lr2', 'files.json'), 'utf8');
  assert.equal(a, b, 'the second dump found what the first did');
  assert.equal(await roundTrip(s), 'PASS');
});

/** The subject's children (C, the session leader on the slave). */
function children(pid: number): number[] {
  return readText(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/).filter(Boolean).map(Number);
}
function ptyName(pid: number): string {
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    if (l === '/dev/ptmx' || l === '/dev/pts/ptmx') {
      const n = /tty-index:\s*(\d+)/.exec(readText(`/proc/${pid}/fdinfo/${fd}`))![1];
      return `/dev/pts/${n}`;
    }
  }
  throw new Error(`pid ${pid} holds no pty master`);
}

test('pty: a slave whose master is outside the tree is refused (without --shell-job), and the program runs on', async () => {
  const s = Subject.start('pty_pair', ['canon']);
  await s.ready();
  const c = children(s.pid)[0];
  const r = ckpt('dump', '-t', String(c), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${c}: fd 0 is the terminal ${ptyName(s.pid)}, whose master pid ${s.pid} holds outside the tree; dump with --shell-job`));
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: a slave held outside the tree is refused, naming the holder, and the program runs on', async () => {
  const s = Subject.start('pty_pair', ['raw']);
  await s.ready();
  const name = ptyName(s.pid);
  const fd = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  try {
    const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`the pty ${name}\\): its slave is also held by pid ${process.pid}, outside the tree`));
  } finally { fs.closeSync(fd); }
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: a slave never opened is refused, and the program runs on', async () => {
  const s = Subject.start('pty_pair', ['unopened']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /its slave has never been opened/);
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: more input than the line discipline holds, in a mode that processes input, is refused, and the program runs on', async () => {
  const s = Subject.start('pty_pair', ['bigcbreak']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /12000 bytes queued for the slave, more than the line discipline holds \(4095\), in a mode that processes input/);
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: packet mode with a status byte not yet read is refused, and the byte is still there', async () => {
  const s = Subject.start('pty_pair', ['pktstatus']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /the master is in packet mode with a control status byte not yet read/);
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: a slave whose output is stopped (^S) is refused, and stays stopped', async () => {
  const s = Subject.start('pty_pair', ['stopped']);
  await s.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /its output is stopped \(\^S with IXON, or tcflow TCOOFF\); not supported/);
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: restore refuses a pty index taken on this host, before any process exists; restores once it is free', async () => {
  const s = Subject.start('pty_pair', ['peer']);
  await s.ready();
  const name = ptyName(s.pid);
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  // Take that index: open /dev/ptmx until it is ours.
  const held: number[] = [];
  try {
    for (let i = 0; i < 4096 && !fs.existsSync(name); i++) held.push(fs.openSync('/dev/ptmx', fs.constants.O_RDWR | fs.constants.O_NOCTTY));
    assert.ok(fs.existsSync(name), `${name} taken by the test`);
    const r = ckpt('restore', '-D', img, '-d');
    assert.equal(r.status, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`the pty ${name} is in use on this host`));
    assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'no process was created');
  } finally { for (const fd of held) fs.closeSync(fd); }
  await waitUntil(`${name} to be free`, () => !fs.existsSync(name));
  ckptOk('restore', '-D', img, '-d');
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: info names the pair', async () => {
  const s = Subject.start('pty_pair', ['locked']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const info = ckpt('info', '-D', img).stdout;
  assert.match(info, /pty master of \/dev\/pts\/\d+ \(locked, controlling terminal of session \d+, input queued, output queued\)/);
  assert.match(info, /pty slave \/dev\/pts\/\d+/);
  assert.equal(await s.verdict(), 'PASS');
});

function runFailAt(args: string[], failAt: number | 'count') {
  const r = spawnSync(CKPT, args, { encoding: 'utf8', timeout: 60000, env: { ...process.env, CKPT_DEBUG_FAIL_AT: String(failAt) } });
  return { status: r.status ?? -1, stderr: r.stderr };
}
function faultPoints(args: string[]): number {
  const r = runFailAt(args, 'count');
  assert.equal(r.status, 0, r.stderr);
  return Number(/ckpt: (\d+) fault points/.exec(r.stderr)![1]);
}

test('pty: dumps (--leave-running) failing at every step leave the queues and the pair as they were', async () => {
  const s = Subject.start('pty_pair', ['canon']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  const args = ['dump', '-t', String(s.pid), '-D', img, '--leave-running'];
  const total = faultPoints(args);
  let failed = 0;
  for (let n = 0; n < total; n++) {
    const r = runFailAt(args, n);
    fs.rmSync(img, { recursive: true, force: true });
    if (r.status !== 0) failed++;
  }
  // (a cleanup call that fails is tried again, once per process: those points end in success)
  assert.ok(failed >= total - 8, `the dump failed at ${failed} of ${total} fault points`);
  assert.equal(await s.verdict(), 'PASS');
});

test('pty: restores failing at every step leave no process and no pty behind', async () => {
  const s = Subject.start('pty_pair', ['peer']);
  await s.ready();
  const name = ptyName(s.pid);
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  await treeGone(img);
  const pids = imagePids(img);
  const args = ['restore', '-D', img, '-d'];
  const total = faultPoints(args);
  const endRestored = async () => {
    for (const pid of [...pids].reverse()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await treeGone(img);
    await waitUntil(`${name} to be free`, () => !fs.existsSync(name));
  };
  await endRestored();
  let failed = 0;
  for (let n = 0; n < total; n++) {
    const r = runFailAt(args, n);
    if (r.status === 0) { await endRestored(); continue; }
    failed++;
    await treeGone(img);
    await waitUntil(`${name} to be gone after a restore failing at fault point ${n}`, () => !fs.existsSync(name), 5000);
  }
  assert.ok(failed >= total - 3, `the restore failed at ${failed} of ${total} fault points`);
  ckptOk(...args);
  assert.equal(await s.verdict(), 'PASS');
});

// A command run as session leader on a fresh pty whose master a python helper
// holds (outside the tree): the helper copies the command's output to a log
// reaps it, and holds the master until it is killed.
const ON_PTY = `
import os, pty, select, sys
logfile, cmd = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.closerange(3, 65536)
    os.execv(cmd[0], cmd)
log = open(logfile, 'ab', buffering=0)
while True:
    try: os.waitpid(-1, os.WNOHANG)
    except ChildProcessError: pass
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            data = os.read(fd, 65536)
            if data: log.write(data)
        except OSError:
            pass
`;

/** The python interpreter itself (not a pyenv shim, which would run it as its child). */
function python(): string | null {
  try { return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim() || null; } catch { return null; }
}

test('pty: with --shell-job, the shell\'s terminal is handed over and the pty inside the tree comes back as a pair', { skip: python() ? false : 'python3 is not installed' }, async () => {
  const dir = tmpDir('pty-shelljob');
  fs.writeFileSync(path.join(dir, 'on_pty.py'), ON_PTY);
  const out = path.join(dir, 'verdict.txt');
  const helpers = [spawn(python()!, [path.join(dir, 'on_pty.py'), path.join(dir, 'a.log'), path.join(SUBJECTS, 'pty_pair'), out, 'canon'], { cwd: dir, stdio: 'ignore' })];
  try {
    await waitUntil('READY', () => fs.existsSync(out) && readText(out).includes('READY'));
    const pid = children(helpers[0].pid!)[0];
    const img = path.join(dir, 'img');
    const no = ckpt('dump', '-t', String(pid), '-D', img);
    assert.equal(no.status, 3, no.stderr);
    assert.match(no.stderr, new RegExp(`pid ${pid}: fd 0 is the terminal /dev/pts/\\d+, whose master pid ${helpers[0].pid} holds outside the tree; dump with --shell-job`));
    // The shell that will restore it runs on another pty from now on: made after the dump, it could take the freed index.
    const st = path.join(dir, 'restore.status');
    const go = path.join(dir, 'go');
    helpers.push(spawn(python()!, [path.join(dir, 'on_pty.py'), path.join(dir, 'b.log'), '/bin/sh', '-c',
      `while [ ! -e ${go} ]; do sleep 0.05; done; "$0" "$@"; echo $? > ${st}; exec sleep 600`, CKPT, 'restore', '-D', img, '-d', '--shell-job'], { cwd: dir, stdio: 'ignore' }));
    await waitUntil('the shell on pty B', () => { try { return ptyName(helpers[1].pid!) !== ptyName(pid); } catch { return false; } });
    ckptOk('dump', '-t', String(pid), '-D', img, '--shell-job');
    await treeGone(img);
    const kinds = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8')).files.map((f: { kind: string; end?: string }) => f.kind + (f.end ? `:${f.end}` : ''));
    assert.ok(kinds.includes('tty') && kinds.includes('pty:master') && kinds.includes('pty:slave'), kinds.join());
    fs.writeFileSync(go, '');
    await waitUntil('ckpt restore on pty B', () => fs.existsSync(st) && readText(st).endsWith('\n'));
    assert.equal(readText(st).trim(), '0', readText(path.join(dir, 'b.log')));
    const before = readText(out).split('\n').filter(Boolean).length;
    process.kill(pid, 'SIGTERM');
    await waitUntil('verdict', () => readText(out).split('\n').filter(Boolean).slice(before).some((l) => /^(PASS|FAIL)/.test(l)));
    assert.equal(readText(out).split('\n').filter(Boolean).slice(before).find((l) => /^(PASS|FAIL)/.test(l)), 'PASS');
  } finally {
    for (const h of helpers) h.kill('SIGKILL');
  }
});

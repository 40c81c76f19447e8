// --shell-job: a process whose fds 0-2 are a terminal is refused without it;
// dumped with it, restore needs it too, and then hands the process the
// terminal ckpt restore runs on. Terminals come from python3's pty module: a
// small helper runs a command on a fresh pseudo-terminal and keeps the master
// open (draining it into a log) until it is killed, so the terminal never
// hangs up under the process that uses it.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CKPT, SUBJECTS, ckpt, ckptOk, tmpDir, readText, waitUntil, sleep, cleanupAll } from './harness.js';
import { waitNoHang } from '../src/kernel/ptrace.js';

// pty_run.py STATUS TTYFILE LOG CMD [ARGS...]: run CMD as a session leader on
// a new pty (pty.fork makes the slave its controlling terminal and fds 0-2).
// The child writes the slave's name to TTYFILE and closes every fd above 2
// (so nothing leaked to us reaches CMD). The parent copies what CMD writes to
// LOG, writes CMD's exit status to STATUS when it ends (as
// os.waitstatus_to_exitcode: negative for a signal), and goes on holding the
// master until it is killed.
const PTY_RUN = `
import os, pty, select, sys, time
status, ttyfile, logfile, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    try:
        with open(ttyfile + '.tmp', 'w') as f: f.write(os.ttyname(0))
        os.rename(ttyfile + '.tmp', ttyfile)
        os.closerange(3, 65536)
        os.execv(cmd[0], cmd)
    finally:
        os._exit(127)
log = open(logfile, 'ab', buffering=0)
done = False
while True:
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            data = os.read(fd, 65536)
            if data: log.write(data)
        except OSError:
            time.sleep(0.05)   # EIO: no slave open right now
    if not done:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            done = True
            with open(status + '.tmp', 'w') as f: f.write(str(os.waitstatus_to_exitcode(st)))
            os.rename(status + '.tmp', status)
`;

function python(): string {
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (fs.existsSync(p)) return p;
  // pyenv shims are scripts that exec the real interpreter; find it.
  const r = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'python3')).find((p) => fs.existsSync(p));
  if (!r) throw new Error('python3 not found');
  return r;
}

interface PtyRun { proc: ChildProcess; status: string; tty: string; log: string }

const helpers: PtyRun[] = [];
const restored = new Set<number>();

/** Start cmd on a fresh pty through the python helper (tag names its files in dir). */
function onPty(dir: string, tag: string, cmd: string[]): PtyRun {
  const script = path.join(dir, 'pty_run.py');
  if (!fs.existsSync(script)) fs.writeFileSync(script, PTY_RUN);
  const files = { status: path.join(dir, `${tag}.status`), tty: path.join(dir, `${tag}.tty`), log: path.join(dir, `${tag}.log`) };
  const proc = spawn(python(), [script, files.status, files.tty, files.log, ...cmd], { cwd: dir, stdio: 'ignore' });
  const h = { proc, ...files };
  helpers.push(h);
  return h;
}

/** The helper's exit-status file, once its command ended. */
async function ptyStatus(h: PtyRun, timeoutMs = 120000): Promise<number> {
  await waitUntil(`the command on ${h.log} to end`, () => fs.existsSync(h.status), timeoutMs);
  return Number(readText(h.status));
}

function fdLink(pid: number, fd: number): string {
  try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return '?'; }
}

/** pid, comm, state, ppid, pgrp, session, tty_nr from /proc/PID/stat. */
function stat(pid: number): { state: string; ppid: number; pgrp: number; sid: number; ttyNr: number } {
  const s = readText(`/proc/${pid}/stat`);
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0], ppid: Number(f[1]), pgrp: Number(f[2]), sid: Number(f[3]), ttyNr: Number(f[4]) };
}

function comm(pid: number): string { return readText(`/proc/${pid}/comm`).trim(); }

after(async () => {
  // A restored subject is our child (we are a subreaper): kill and reap it.
  for (const pid of restored) {
    if (comm(pid) === 'tty_job') { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  // Killing a helper closes its pty master; its command (if still there) gets SIGHUP.
  for (const h of helpers) if (h.proc.exitCode === null && h.proc.signalCode === null) h.proc.kill('SIGKILL');
  await sleep(50);
  for (const pid of restored) {
    const end = Date.now() + 5000;
    while (fs.existsSync(`/proc/${pid}`) && Date.now() < end) {
      try { waitNoHang(pid); } catch { /* not ours (yet): its parent, a helper, is dying */ }
      await sleep(10);
    }
  }
  await cleanupAll(); // and the test directory
});

test('a terminal job: refused without --shell-job, restored with it onto the terminal ckpt runs on', async () => {
  const dir = tmpDir('shelljob');
  const out = path.join(dir, 'verdict.txt');
  const lines = () => readText(out).split('\n').filter(Boolean);
  const img = path.join(dir, 'img');

  // The subject runs as session leader on pty A.
  const a = onPty(dir, 'ptyA', [path.join(SUBJECTS, 'tty_job'), out]);
  let pid = 0;
  await waitUntil('the subject to start under the pty helper', () => {
    const kids = readText(`/proc/${a.proc.pid}/task/${a.proc.pid}/children`).trim().split(/\s+/).filter(Boolean);
    if (kids.length === 1) pid = Number(kids[0]);
    return pid > 0 && lines().includes('READY');
  });
  assert.equal(comm(pid), 'tty_job');
  restored.add(pid); // from the restore on, it will be ours to reap
  const ttyA = readText(a.tty);
  assert.match(ttyA, /^\/dev\/pts\/\d+$/);
  for (const fd of [0, 1, 2]) assert.equal(fdLink(pid, fd), ttyA, `fd ${fd} of the subject is its pty`);
  assert.equal(stat(pid).sid, pid, 'the subject is a session leader');
  await waitUntil('the hello line on pty A', () => readText(a.log).includes('tty_job says hello'));

  // Without --shell-job: refused, and the subject runs on.
  const refused = ckpt('dump', '-t', String(pid), '-D', img);
  assert.equal(refused.status, 3, `exit status 3 (refused); stderr: ${refused.stderr}`);
  assert.match(refused.stderr, /--shell-job/);
  assert.match(refused.stderr, new RegExp(`pid ${pid}`));
  assert.ok(!fs.existsSync(path.join(img, 'manifest.json')), 'no image is left behind');
  assert.ok(fs.existsSync(`/proc/${pid}`), 'the subject is still there');
  assert.match(stat(pid).state, /^[SR]$/, 'the subject is not left stopped or traced');
  assert.ok(!fs.existsSync(a.status), 'the subject did not end');

  // With --shell-job: dumped (and killed; pty helper A reaps it).
  ckptOk('dump', '-t', String(pid), '-D', img, '--shell-job');
  assert.equal(await ptyStatus(a, 15000), -9, 'the dumped subject was killed by SIGKILL');
  await waitUntil(`pid ${pid} to be free`, () => !fs.existsSync(`/proc/${pid}`));

  // Restore without --shell-job: a usage error, before any process is created.
  const noShell = ckpt('restore', '-D', img, '-d');
  assert.equal(noShell.status, 2, `exit status 2 (usage); stderr: ${noShell.stderr}`);
  assert.match(noShell.stderr, /--shell-job/);
  assert.ok(!fs.existsSync(`/proc/${pid}`), 'no process was created');

  // Restore with --shell-job from a shell on pty B (the shell, session
  // leader there, stays: when a session leader ends, its session loses the terminal).
  const restoreStatus = path.join(dir, 'restore.status');
  const b = onPty(dir, 'ptyB', ['/bin/sh', '-c', `"$0" "$@"; echo $? > ${restoreStatus}; exec sleep 600`, CKPT, 'restore', '-D', img, '-d', '--shell-job']);
  await waitUntil('ckpt restore on pty B to end', () => fs.existsSync(restoreStatus) && readText(restoreStatus).endsWith('\n'));
  const st = Number(readText(restoreStatus));
  assert.equal(st, 0, `ckpt restore on pty B exited ${st}; its output:\n${readText(b.log)}`);
  assert.ok(fs.existsSync(`/proc/${pid}`), `pid ${pid} was restored`);
  assert.equal(comm(pid), 'tty_job');
  const ttyB = readText(b.tty);
  assert.match(ttyB, /^\/dev\/pts\/\d+$/);
  assert.notEqual(ttyB, ttyA);
  for (const fd of [0, 1, 2]) assert.equal(fdLink(pid, fd), ttyB, `fd ${fd} of the restored subject is ckpt's terminal`);
  const s = stat(pid);
  assert.equal(s.ppid, process.pid, 'the restored subject is reparented to the test process (subreaper)');
  // A shell job joins the session of the shell that restores it, with that
  // terminal as its controlling terminal, in a process group of its own.
  assert.notEqual(s.sid, pid, 'the restored subject joined the session of ckpt restore');
  assert.equal(s.ttyNr, fs.statSync(ttyB).rdev, 'its controlling terminal is pty B');
  assert.equal(s.pgrp, pid);
  const tpgid = Number(readText(`/proc/${pid}/stat`).slice(readText(`/proc/${pid}/stat`).lastIndexOf(')') + 2).split(' ')[5]);
  assert.equal(tpgid, pid, 'it was in the foreground of pty A, so its group is the foreground of pty B');

  // The verdict: still terminals, and writing to fd 1 works (on pty B).
  const before = lines().length;
  process.kill(pid, 'SIGTERM');
  const verdict = () => lines().slice(before).find((l) => l.startsWith('PASS') || l.startsWith('FAIL'));
  await waitUntil(`verdict from ${pid}`, () => verdict() !== undefined);
  await waitUntil(`pid ${pid} to end and be reaped`, () => {
    try { waitNoHang(pid); } catch { /* not ours */ }
    return !fs.existsSync(`/proc/${pid}`);
  });
  restored.delete(pid);
  assert.equal(verdict(), 'PASS');
  await waitUntil('the goodbye line on pty B', () => readText(b.log).includes('tty_job says goodbye'));
});

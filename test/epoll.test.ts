// epoll instances (src/objects/epoll.ts): the interest list (events, modes,
// data, fd numbers), what epoll_wait reports after restore (level- and
// edge-triggered, one-shot fired or armed), nested instances, registrations
// whose fd was closed, instances shared between processes; what cannot be
// recreated is refused. And the fds ckpt does not support (io_uring,
// userfaultfd, perf events, BPF objects, namespace files, other anonymous
// inodes) are refused by name.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Subject, roundTrip, leaveRunning, cleanupAll, ckpt, ckptOk, readText, CKPT, imagePids, treeGone } from './harness.js';
import { parseEpollFdinfo } from '../src/kernel/proc.js';
import { devFromKernel, fdObject } from '../src/kernel/fdtype.js';

after(cleanupAll);

test('epoll fdinfo lines are read with their 32-bit events, 64-bit data and the target\'s inode and device', () => {
  const text = 'pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n'
    + 'tfd:        3 events: c0000000 data: 1122334455667788  pos:0 ino:37446c sdev:f\n'
    + 'tfd:       12 events:       1c data:                5  pos:-1 ino:40e sdev:800003\n';
  assert.deepEqual(parseEpollFdinfo(text), [
    { tfd: 3, events: 0xc0000000, data: 0x1122334455667788n, ino: 0x37446c, sdev: 0xf },
    { tfd: 12, events: 0x1c, data: 5n, ino: 0x40e, sdev: 0x800003 },
  ]);
  assert.throws(() => parseEpollFdinfo('tfd: 3 events: zz\n'), /unexpected epoll fdinfo line/);
  // The kernel's MAJOR << 20 | MINOR to stat's encoding.
  assert.equal(devFromKernel(0xf), 0xf);
  assert.equal(devFromKernel((8 << 20) | 3), 0x803);
  assert.equal(devFromKernel((259 << 20) | 0x12345), 0x12300000 + (259 << 8) + 0x45);
});

test('fd objects are named by the kernel\'s names for them', () => {
  assert.equal(fdObject('anon_inode:[eventpoll]', null).type, 'epoll');
  assert.equal(fdObject('anon_inode:[io_uring]', null).noun, 'an io_uring instance');
  assert.equal(fdObject('anon_inode:bpf-prog', null).noun, 'a BPF program');
  assert.equal(fdObject('anon_inode:bpf_link', null).noun, 'a BPF link');
  assert.equal(fdObject('mnt:[4026531841]', null).type, 'nsfs');
  assert.equal(fdObject('anon_inode:[somethingnew]', null).noun, 'an anonymous-inode object named [somethingnew]');
});

const MODES = ['empty', 'lt', 'et', 'etpending', 'oneshot', 'rearmed', 'many', 'nested', 'closed', 'twofd', 'shared', 'child', 'events'];

for (const mode of MODES) {
  test(`epoll: round trip: ${mode}`, async () => {
    assert.equal(await roundTrip(Subject.start('epoll', [mode])), 'PASS');
  });
}

for (const mode of ['lt', 'et', 'etpending', 'oneshot', 'nested', 'child']) {
  test(`epoll: leave running: ${mode} (no event is consumed)`, async () => {
    assert.equal(await leaveRunning(Subject.start('epoll', [mode])), 'PASS');
  });
}

// The kernel ends epoll_wait with EINTR when its thread is stopped (signal(7):
// also by ckpt's PTRACE_INTERRUPT) and does not restart it; ckpt turns that
// EINTR into a restart (kernel/remote.ts), and SIGTERM, which has a handler,
// still ends the call with EINTR.
for (const [name, run] of [['round trip', roundTrip], ['leave running', leaveRunning]] as const) {
  test(`epoll: ${name}: blocked in epoll_wait, it sees no EINTR`, async () => {
    assert.equal(await run(Subject.start('epoll', ['blocked'])), 'PASS');
  });
}

test('epoll: the image names each registration\'s file and fd number, and info shows them', async () => {
  const s = Subject.start('epoll', ['closed']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const files = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8')).files as Array<{ id: number; kind: string; end?: string; targets?: Array<{ tfd: number; file: number; data: string }> }>;
  const ep = files.find((f) => f.kind === 'epoll')!;
  assert.equal(ep.targets!.length, 1);
  const t = ep.targets![0];
  // The registration is under the fd number the pipe had (3 or so), which now holds another file.
  const target = files.find((f) => f.id === t.file)!;
  assert.equal(target.kind, 'pipe');
  assert.equal(target.end, 'read');
  const procDoc = JSON.parse(fs.readFileSync(path.join(img, `process-${s.pid}.json`), 'utf8'));
  const atTfd = procDoc.fds.find((x: { fd: number }) => x.fd === t.tfd);
  assert.ok(atTfd && atTfd.file !== t.file, `fd ${t.tfd} holds another file now`);
  assert.ok(procDoc.fds.some((x: { fd: number; file: number }) => x.fd >= 40 && x.file === t.file), 'the pipe lives on at its dup');
  assert.equal(t.data, '0x1122334455660031');
  const info = ckpt('info', '-D', img);
  assert.match(info.stdout, new RegExp(`epoll instance, 1 registration: fd ${t.tfd} \\(file ${t.file}\\) IN\\|ERR\\|HUP data 0x1122334455660031`));
  assert.equal(await s.verdict(), 'PASS');
});

test('epoll: a fired one-shot registration is kept disabled (info says so)', async () => {
  const s = Subject.start('epoll', ['oneshot']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  assert.match(ckpt('info', '-D', img).stdout, /fd \d+ \(file \d+\) ONESHOT \(fired, disabled\) data 0x1122334455660004/);
  assert.equal(await s.verdict(), 'PASS');
});

test('epoll: an edge-triggered event collected before the dump is marked collected; a pending one is not', async () => {
  for (const [mode, collected] of [['et', true], ['etpending', false]] as const) {
    const s = Subject.start('epoll', [mode]);
    await s.ready();
    const img = path.join(s.dir, 'img');
    ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
    const ep = JSON.parse(fs.readFileSync(path.join(img, 'files.json'), 'utf8')).files.find((f: { kind: string }) => f.kind === 'epoll');
    assert.equal(ep.targets[0].collected === true, collected, mode);
    assert.equal(await s.verdict(), 'PASS');
  }
});

/** Dump must fail with status 3, naming the pid and matching `message`; the process runs on and passes. */
async function expectRefused(s: Subject, message: RegExp): Promise<void> {
  await s.ready();
  const maps = readText(`/proc/${s.pid}/maps`);
  const img = path.join(s.dir, 'img');
  const r = ckpt('dump', '-t', String(s.pid), '-D', img);
  assert.equal(r.status, 3, `exit status 3 (refused); stderr: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`pid ${s.pid}`));
  assert.match(r.stderr, message);
  assert.equal(readText(`/proc/${s.pid}/maps`), maps, 'no scratch mapping is left behind');
  assert.ok(!fs.existsSync(path.join(img, 'manifest.json')), 'no image is left behind');
  assert.equal(await s.verdict(), 'PASS');
}

test('epoll: a fired one-shot registration whose file is ready for nothing is refused, and the process runs on', async () => {
  await expectRefused(Subject.start('epoll', ['oneshotempty']), /fd \d+ \(an epoll instance\): its one-shot registration of fd \d+ has fired and is disabled, and its file is ready for no event now/);
});

test('epoll: a registered file that no process of the tree holds is refused, naming the epoll fd and the target fd', async () => {
  await expectRefused(Subject.start('fd_refused', ['epoll_outside']), /fd 3 \(an epoll instance\): its registration of fd 4 \(events IN\|ERR\|HUP\) is of a file that no process of the tree holds open/);
});

const REFUSED: Array<[string, RegExp]> = [
  ['io_uring', /fd 3 is an io_uring instance \(io_uring instances are not supported yet\): anon_inode:\[io_uring\]/],
  ['userfaultfd', /fd 3 is a userfaultfd \(userfaultfds are not supported yet\): anon_inode:\[userfaultfd\]/],
  ['perf', /fd 3 is a perf event \(perf events are not supported yet\): anon_inode:\[perf_event\]/],
  ['bpf', /fd 3 is a BPF map \(BPF objects are not supported yet\): anon_inode:bpf-map/],
  ['netns', /fd 3 is a namespace file \(from \/proc\/PID\/ns\) \(namespace files are not supported yet\): net:\[\d+\]/],
  ['fscontext', /fd 3 is a filesystem context \(fsopen\) \(filesystem contexts are not supported yet\): anon_inode:\[fscontext\]/],
];

for (const [mode, message] of REFUSED) {
  test(`refused: ${mode}, named with its fd, and the process runs on unchanged`, async () => {
    await expectRefused(Subject.start('fd_refused', [mode]), message);
  });
}

/** Rewrite files.json of an image (keeping the manifest's checksum right, so that the check of what it says is what catches it). */
async function editFiles(img: string, edit: (files: Array<Record<string, unknown>>) => void): Promise<void> {
  const doc = path.join(img, 'files.json');
  const j = JSON.parse(fs.readFileSync(doc, 'utf8'));
  edit(j.files);
  const text = JSON.stringify(j);
  fs.writeFileSync(doc, text);
  const m = JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8'));
  const { crc32c } = await import('@node-rs/crc32');
  m.files['files.json'] = { size: Buffer.byteLength(text), crc32c: [crc32c(Buffer.from(text)).toString(16).padStart(8, '0')] };
  fs.writeFileSync(path.join(img, 'manifest.json'), JSON.stringify(m));
}

type EpollDesc = { id: number; kind: string; targets: Array<{ file: number }> };

for (const [what, edit, message] of [
  ['a registration of a file that is not in files.json', (files: EpollDesc[]) => { files.find((f) => f.kind === 'epoll')!.targets[0].file = 9999; }, /open file \d+ refers to open file 9999, which is not in files.json/],
  ['epoll instances that contain each other', (files: EpollDesc[]) => {
    // nested: the outer one (met first) holds the middle one, which holds the inner one; make the inner one hold the outer one.
    const eps = files.filter((f) => f.kind === 'epoll');
    const outer = eps[0];
    const inner = eps.find((e) => !e.targets.some((t) => eps.some((x) => x.id === t.file)))!;
    inner.targets[0].file = outer.id;
  }, /open file \d+ refers to itself through other open files/],
] as const) {
  test(`epoll: an image with ${what} is a bad image, refused before any process is made`, async () => {
    const s = Subject.start('epoll', ['nested']);
    await s.ready();
    const img = path.join(s.dir, 'img');
    ckptOk('dump', '-t', String(s.pid), '-D', img);
    await s.gone();
    await editFiles(img, edit as (f: Array<Record<string, unknown>>) => void);
    const r = ckpt('restore', '-D', img, '-d');
    assert.equal(r.status, 4, `exit status 4 (bad image); stderr: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'no process was created');
  });
}

const PY_EPOLL = `
import os, select, signal, sys
out = sys.argv[1]
def say(s):
    with open(out, 'a') as f: f.write(s + '\\n')
r, w = os.pipe()
r2, w2 = os.pipe()
r3, w3 = os.pipe()
lt = select.epoll()
lt.register(r, select.EPOLLIN)
os.write(w, b'x')
et = select.epoll()
et.register(r2, select.EPOLLIN | select.EPOLLET)
os.write(w2, b'y')
assert et.poll(0) == [(r2, select.EPOLLIN)]
idle = select.epoll()
idle.register(r3, select.EPOLLIN)
def on_term(sig, frame):
    got = [lt.poll(0), et.poll(0)]
    os.write(w2, b'z')
    got.append(et.poll(0))
    ok = got == [[(r, select.EPOLLIN)], [], [(r2, select.EPOLLIN)]]
    say('PASS' if ok else 'FAIL python epoll: %r' % (got,))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
say('READY')
while True:
    idle.poll()
`;

test('python3 with epoll objects (select.epoll), blocked in one', async () => {
  const dir = fs.mkdtempSync('/tmp/ckpt-pyepoll-');
  fs.writeFileSync(path.join(dir, 'prog.py'), PY_EPOLL);
  const py = ['/usr/bin/python3', '/usr/local/bin/python3', ...(process.env.PATH ?? '').split(':').map((d) => path.join(d, 'python3'))].find((p) => fs.existsSync(p))!;
  const s = new Subject(py, [path.join(dir, 'prog.py'), path.join(dir, 'verdict.txt')], { dir, outArg: false });
  assert.equal(await roundTrip(s), 'PASS');
});

// A restore failing at any fault point (CKPT_DEBUG_FAIL_AT=N: every remote
// call, among them those that make the epoll instance and its registrations,
// and the start of every step) leaves no process behind and names the step.
for (const mode of ['oneshot', 'closed']) {
  test(`epoll: a restore failing at any step leaves no process behind (${mode})`, async () => {
    const s = Subject.start('epoll', [mode]);
    await s.ready();
    const img = path.join(s.dir, 'img');
    ckptOk('dump', '-t', String(s.pid), '-D', img);
    await s.gone();
    await treeGone(img);
    const pids = imagePids(img);
    const run = (failAt: number | 'count') => {
      const r = spawnSync(CKPT, ['restore', '-D', img, '-d'], { encoding: 'utf8', timeout: 60000, env: { ...process.env, CKPT_DEBUG_FAIL_AT: String(failAt) } });
      return { status: r.status ?? -1, stderr: r.stderr };
    };
    const end = async () => { for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } } await treeGone(img); };
    const c = run('count');
    assert.equal(c.status, 0, c.stderr);
    const total = Number(/ckpt: (\d+) fault points/.exec(c.stderr)![1]);
    await end();
    let inRefs = 0;
    for (let n = 0; n < total; n++) {
      const r = run(n);
      if (r.status === 0) { await end(); continue; }
      assert.match(r.stderr, new RegExp(`debug failure at fault point ${n} `), `fault point ${n}`);
      if (/open files that refer to others/.test(r.stderr)) inRefs++;
      await treeGone(img);
      for (const pid of pids) assert.ok(!fs.existsSync(`/proc/${pid}`) || /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')), `fault point ${n}: pid ${pid} is left alive; ckpt said: ${r.stderr}`);
    }
    assert.ok(inRefs >= 3, `the epoll's own step failed at ${inRefs} fault points`);
    // And once it succeeds, the subject finds its epoll as it was.
    ckptOk('restore', '-D', img, '-d');
    assert.equal(await s.verdict(), 'PASS');
  });
}

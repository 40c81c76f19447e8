// What ckpt cannot capture is refused with a message naming the PID and the
// resource, and the process runs on unchanged. Bad images and taken PIDs are
// reported before any process is created.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Subject, ckpt, ckptOk, cleanupAll, readText } from './harness.js';

after(cleanupAll);

const REFUSED: Array<[string, RegExp]> = [
  ['socket', /fd 3 is an AF_VSOCK socket of type SOCK_STREAM, protocol 0, which is not supported: socket:\[\d+\]/],
  ['lock', /fd 3 .* holds a file lock \(FLOCK ADVISORY\)/],
  ['netns', /another net namespace than ckpt/],
];

for (const [kind, message] of REFUSED) {
  test(`refused: ${kind}, and the process runs on unchanged`, async () => {
    const s = Subject.start('unsupported', [kind]);
    await s.ready();
    const maps = readText(`/proc/${s.pid}/maps`);
    const img = path.join(s.dir, 'img');
    const r = ckpt('dump', '-t', String(s.pid), '-D', img);
    assert.equal(r.status, 3, `exit status 3 (refused); stderr: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, new RegExp(`pid ${s.pid}`));
    assert.equal(readText(`/proc/${s.pid}/maps`), maps, 'no scratch mapping is left behind');
    assert.ok(!fs.existsSync(path.join(img, 'manifest.json')), 'no image is left behind');
    assert.equal(await s.verdict(), 'PASS');
  });
}

async function dumped(): Promise<{ s: Subject; img: string }> {
  const s = Subject.start('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  return { s, img };
}

function expectBadImage(img: string, message: RegExp, pid: number): void {
  const r = ckpt('restore', '-D', img, '-d');
  assert.equal(r.status, 4, `exit status 4 (bad image); stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.ok(!fs.existsSync(`/proc/${pid}`), 'no process was created');
}

test('a corrupted page file is refused before any process is created', async () => {
  const { s, img } = await dumped();
  const pages = fs.readdirSync(img).find((f) => f.startsWith('pages-'))!;
  const fd = fs.openSync(path.join(img, pages), 'r+');
  fs.writeSync(fd, Buffer.from('garbage'), 0, 7, 4096);
  fs.closeSync(fd);
  expectBadImage(img, new RegExp(`${pages} is corrupted`), s.pid);
});

test('a truncated page file is refused', async () => {
  const { s, img } = await dumped();
  const pages = fs.readdirSync(img).find((f) => f.startsWith('pages-'))!;
  fs.truncateSync(path.join(img, pages), 8192);
  expectBadImage(img, new RegExp(`${pages} is truncated`), s.pid);
});

test('a process document with a wrong field is refused, naming file and field', async () => {
  const { s, img } = await dumped();
  const doc = path.join(img, `process-${s.pid}.json`);
  const j = JSON.parse(fs.readFileSync(doc, 'utf8'));
  j.memory.areas[0].start = 12345;
  const text = JSON.stringify(j);
  fs.writeFileSync(doc, text);
  // Keep the checksum right so that the schema check is what catches it.
  const m = JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8'));
  const { crc32c } = await import('@node-rs/crc32');
  m.files[`process-${s.pid}.json`] = { size: Buffer.byteLength(text), crc32c: [crc32c(Buffer.from(text)).toString(16).padStart(8, '0')] };
  fs.writeFileSync(path.join(img, 'manifest.json'), JSON.stringify(m));
  expectBadImage(img, new RegExp(`process-${s.pid}\\.json: field memory\\.areas\\[0\\]\\.start`), s.pid);
});

test('a foreign directory and a truncated manifest are refused', async () => {
  const { s, img } = await dumped();
  const other = path.join(s.dir, 'other');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, 'manifest.json'), JSON.stringify({ format: 'criu', version: 1 }));
  expectBadImage(other, /not a ckpt image/, s.pid);
  const mp = path.join(img, 'manifest.json');
  fs.writeFileSync(mp, fs.readFileSync(mp, 'utf8').slice(0, 100));
  expectBadImage(img, /manifest\.json is not valid JSON/, s.pid);
  expectBadImage(path.join(s.dir, 'nothing-here'), /does not exist/, s.pid);
});

test('an image from a newer format version is refused', async () => {
  const { s, img } = await dumped();
  const mp = path.join(img, 'manifest.json');
  const m = JSON.parse(fs.readFileSync(mp, 'utf8'));
  m.version = 99;
  fs.writeFileSync(mp, JSON.stringify(m));
  expectBadImage(img, /format version 99 is not supported/, s.pid);
});

test('a taken PID is reported as such', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running');
  const r = ckpt('restore', '-D', img, '-d');
  assert.equal(r.status, 5, `exit status 5 (conflict); stderr: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`PID ${s.pid} is already in use`));
  assert.equal(await s.verdict(), 'PASS', 'the running process was not disturbed');
});

test('a file that changed since the dump is reported before any process is created', async () => {
  const s = Subject.start('files');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  fs.appendFileSync(path.join(s.dir, 'a.txt'), 'more');
  const r = ckpt('restore', '-D', img, '-d');
  assert.equal(r.status, 5, r.stderr);
  assert.match(r.stderr, /a\.txt changed size/);
  assert.ok(!fs.existsSync(`/proc/${s.pid}`));
});

test('dumping a PID that does not exist fails clearly', () => {
  const r = ckpt('dump', '-t', '4000000', '-D', '/tmp/ckpt-none');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /pid 4000000 does not exist/);
});

test('an image that uses CPU state this host lacks is refused before any process is created', async () => {
  const { s, img } = await dumped();
  const mp = path.join(img, 'manifest.json');
  const m = JSON.parse(fs.readFileSync(mp, 'utf8'));
  m.cpu.used = '0x' + (BigInt(m.cpu.used) | (1n << 62n)).toString(16); // a feature no CPU has
  fs.writeFileSync(mp, JSON.stringify(m));
  const r = ckpt('restore', '-D', img, '-d');
  assert.equal(r.status, 5, r.stderr);
  assert.match(r.stderr, /uses CPU state this host lacks: feature 62/);
  assert.ok(!fs.existsSync(`/proc/${s.pid}`));
});

test('a big image with a corrupted page is refused before the program is created (pages checked while loading)', async () => {
  const s = Subject.start('bench_mem', ['160']);
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  const pages = fs.readdirSync(img).find((f) => f.startsWith('pages-'))!;
  const fd = fs.openSync(path.join(img, pages), 'r+');
  fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, 100 << 20); // inside the second 64 MiB chunk
  fs.closeSync(fd);
  const r = ckpt('restore', '-D', img, '-d');
  assert.equal(r.status, 4, r.stderr);
  assert.match(r.stderr, new RegExp(`${pages} is corrupted: the checksum of bytes 67108864-134217728`));
  assert.ok(!fs.existsSync(`/proc/${s.pid}`), 'the program was not created');
  const husks = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => readText(`/proc/${d}/cmdline`).startsWith('ckpt-husk'));
  assert.deepEqual(husks, [], 'no husk is left behind');
});

test('a process traced by someone else (a debugger) is refused, and runs on', async () => {
  const s = Subject.start('counter');
  await s.ready();
  const tr = Subject.start('tracer', [String(s.pid)]);
  await tr.ready();
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${s.pid} is being traced by pid ${tr.pid}`));
  assert.equal(await tr.verdict(), 'PASS', 'the other tracer still had it');
  assert.equal(await s.verdict(), 'PASS');
});

test('a parent in vfork (its child runs in its memory) is refused, and both run on', async () => {
  const s = Subject.start('vforker');
  await s.ready();
  let child = 0;
  const { waitUntil } = await import('./harness.js');
  await waitUntil('the vfork child', () => {
    child = Number(readText(`/proc/${s.pid}/task/${s.pid}/children`).trim().split(/\s+/)[0] || 0);
    return child > 0;
  });
  const r = ckpt('dump', '-t', String(s.pid), '-D', path.join(s.dir, 'img'));
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${child} shares its memory with its parent ${s.pid} \\(vfork`));
  // The vfork child ends on SIGTERM (its handler sets the flag in the memory
  // it shares with its parent); the parent then goes on and reports.
  process.kill(child, 'SIGTERM');
  await waitUntil('the verdict', () => s.lines().some((l) => l.startsWith('PASS') || l.startsWith('FAIL')));
  assert.equal(s.lines().find((l) => l.startsWith('PASS') || l.startsWith('FAIL')), 'PASS');
  await s.reap();
});

test('a program whose mapped file changed since the dump is refused before any process is created', async () => {
  const s = Subject.start('mem');
  await s.ready();
  const img = path.join(s.dir, 'img');
  ckptOk('dump', '-t', String(s.pid), '-D', img);
  await s.gone();
  // mem maps mem.data privately; touch it so it looks replaced.
  const data = path.join(s.dir, 'mem.data');
  const later = new Date(Date.now() + 3600 * 1000);
  fs.utimesSync(data, later, later);
  const r = ckpt('restore', '-D', img, '-d');
  assert.equal(r.status, 5, r.stderr);
  assert.match(r.stderr, /mem\.data, changed since the dump/);
  assert.ok(!fs.existsSync(`/proc/${s.pid}`));
});

test('children made while their parent is being frozen are checked like every other (CLONE_FILES race)', async () => {
  // Every live child in an image must be recorded as sharing the parent's fd table (it was made with CLONE_FILES).
  const s = Subject.start('clonerace');
  await s.ready();
  let withKid = 0;
  for (let i = 0; i < 15; i++) {
    const img = path.join(s.dir, `img${i}`);
    const r = ckpt('dump', '-t', String(s.pid), '-D', img, '--leave-running');
    assert.equal(r.status, 0, r.stderr);
    const m = JSON.parse(fs.readFileSync(path.join(img, 'manifest.json'), 'utf8')) as { processes: Array<{ pid: number; zombie?: unknown }> };
    const liveKids = m.processes.filter((p) => p.pid !== s.pid && !p.zombie);
    for (const k of liveKids) {
      const doc = JSON.parse(fs.readFileSync(path.join(img, `process-${k.pid}.json`), 'utf8')) as { filesOf?: number; fds: unknown[] };
      assert.equal(doc.filesOf, s.pid, `child ${k.pid} got into the image without its parent's fd table`);
      assert.deepEqual(doc.fds, []);
    }
    if (liveKids.length) withKid++;
  }
  process.stdout.write(`# clonerace: ${withKid} of 15 images hold a live child sharing the fd table\n`);
  assert.equal(await s.verdict(), 'PASS');
});

// Warm the engine's code cache (dist/engine.cjs.cache) at build time: run
// `ckpt check`, and a dump and a restore of a throwaway `sleep`, so that
// the cache holds the code of each kind of operation (the first run of a
// kind adds its compiled code to the cache; see src/engine/host.ts) and no
// later command compiles it. Best effort: without the rights to trace (not
// root), the cache keeps only what loading compiles, and the first run of
// each kind adds the rest.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CKPT = path.resolve('bin/ckpt');
// The restored sleep falls to this process (a child subreaper), which reaps it:
// PID 1 here reaps orphans only lazily. (build/ is there: tsc ran first.)
const { sys } = await import('../build/src/kernel/ffi.js');
const { NR, PR } = await import('../build/src/kernel/consts.js');
const { waitNoHang } = await import('../build/src/kernel/ptrace.js');
try { sys('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1); } catch { /* then PID 1 reaps it */ }
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-warm-'));
const img = path.join(dir, 'img');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = (...args) => spawnSync(CKPT, args, { encoding: 'utf8', timeout: 30000 });
let pid = 0;
try {
  const c = run('check');
  if (c.status !== 0) throw new Error(`ckpt check: ${c.stderr || c.stdout}`);
  // A sleep with only fds 0-2 (whatever this build inherited), in a session of its own.
  const child = spawn('/bin/bash', ['-c', 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-"; done; exec -a ckpt-warm /usr/bin/sleep 1000'],
    { detached: true, stdio: 'ignore', cwd: dir });
  pid = child.pid;
  let exited = false;
  child.on('exit', () => { exited = true; });
  for (let i = 0; i < 500 && !fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('ckpt-warm'); i++) await sleep(2);
  const d = run('dump', '-t', String(pid), '-D', img);
  if (d.status !== 0) throw new Error(`ckpt dump: ${d.stderr}`);
  for (let i = 0; i < 1000 && !(exited && !fs.existsSync(`/proc/${pid}`)); i++) await sleep(2);
  const r = run('restore', '-D', img, '-d');
  if (r.status !== 0) throw new Error(`ckpt restore: ${r.stderr}`);
} catch (e) {
  process.stderr.write(`note: the engine's code cache was not warmed by a dump and restore (${String(e.message).trim()}); the first run of each will add to it\n`);
} finally {
  if (pid) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    for (let i = 0; i < 500 && fs.existsSync(`/proc/${pid}`); i++) { try { waitNoHang(pid); } catch { /* not ours */ } await sleep(2); }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

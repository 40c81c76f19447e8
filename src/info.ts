// `ckpt info`: what an image holds, for people and (with --json) for scripts.

import { ImageReader } from './image/store.js';
import { ProcessImage } from './objects/process.js';
import { describeAreas, ShmemImage, SysvShmImage } from './objects/memory/index.js';
import { describeFile, FilesImage } from './objects/files.js';
import { describeInode } from './objects/inodes.js';
import { LocksImage, describeLocks } from './objects/locks.js';
import { pendingSigno } from './objects/signals.js';
import { describeClock } from './objects/timers.js';
import { signalName, RLIMIT_NAMES } from './kernel/consts.js';
import { Regs } from './kernel/ptrace.js';

export function imageInfo(dir: string) {
  const img = new ImageReader(dir);
  const m = img.manifest;
  const zombies = m.processes.filter((pp) => pp.zombie).map((pp) => ({
    pid: pp.pid, ppid: pp.ppid, pgid: pp.zombie!.pgid, sid: pp.zombie!.sid,
    status: describeWaitStatus(pp.zombie!.status),
  }));
  const filesDoc = img.readJson('files.json', FilesImage);
  const openFiles = filesDoc.files;
  const storedFiles = (filesDoc.inodes ?? []).map((n) => ({ id: n.id, type: n.type, what: describeInode(n) }));
  const holders = new Map<number, number>();
  const processes = m.processes.filter((pp) => !pp.zombie).map((pp) => {
    const p = img.readJson(`process-${pp.pid}.json`, ProcessImage);
    const areas = describeAreas(p.memory);
    return {
      pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, stopped: !!p.stopped, comm: p.comm, exe: p.exe, cwd: p.cwd, cwdInode: p.cwdInode, root: p.root,
      umask: '0' + p.umask.toString(8), personality: '0x' + p.personality.toString(16),
      creds: { uid: p.creds.uid, gid: p.creds.gid, groups: p.creds.groups, capEff: p.creds.capEff },
      rlimits: Object.fromEntries(p.rlimits.map((l, i) => [RLIMIT_NAMES[i], l])),
      filesOf: p.filesOf ?? null, fsOf: p.fsOf ?? null,
      threadTables: p.threads.filter((t) => t.fds || t.filesOf || t.fs || t.fsOf).map((t) => ({ tid: t.tid, fds: t.fds?.length ?? null, filesOf: t.filesOf ?? null, fs: t.fs ?? null, fsOf: t.fsOf ?? null })),
      memory: { areas, mappedBytes: areas.reduce((s, a) => s + a.size, 0), storedBytes: p.memory.pageBytes },
      fds: p.fds.map((f) => {
        const d = openFiles.find((x) => x.id === f.file);
        const seen = holders.get(f.file);
        if (seen === undefined) holders.set(f.file, p.pid);
        const shared = seen === undefined ? '' : seen === p.pid ? ', also at a lower fd' : `, shared with pid ${seen}`;
        return { fd: f.fd, file: f.file, cloexec: f.cloexec, kind: d?.kind ?? 'unknown', what: `${d ? describeFile(d) : `open file ${f.file}, not in files.json`} (open file ${f.file}${f.cloexec ? ', close-on-exec' : ''}${shared})` };
      }),
      signals: {
        handlers: p.sigactions.map((a) => ({ signal: signalName(a.sig), handler: a.handler === '0x1' ? 'SIG_IGN' : a.handler === '0x0' ? 'SIG_DFL' : a.handler, flags: a.flags, mask: a.mask })),
        pendingShared: p.pendingShared.map((s) => signalName(pendingSigno(s))),
      },
      timers: (p.timers ?? []).map((t) => ({
        id: t.id, clock: describeClock(t.clock),
        notify: t.notify === 'none' ? 'none' : `${signalName(t.signo)} value ${t.value}${t.tid !== undefined ? ` to thread ${t.tid}` : ''}`,
        interval: `${t.setting[0]}.${t.setting[1].padStart(9, '0')}`, left: `${t.setting[2]}.${t.setting[3].padStart(9, '0')}`,
        overrun: t.overrun ?? 0, pending: !!t.pending,
      })),
      seccomp: (p.seccomp?.threads ?? []).map((t) => {
        let n = 0;
        for (let f = t.filter; f !== undefined; f = p.seccomp!.filters[f].parent) n++;
        return { tid: t.tid, mode: t.mode, filters: n };
      }),
      threads: p.threads.map((t) => {
        const r = Regs.fromJSON(t.regs);
        return {
          tid: t.tid, rip: t.regs.rip, rsp: t.regs.rsp, fsBase: t.regs.fs_base,
          inSyscall: r.sget('orig_rax') >= 0n ? Number(r.sget('orig_rax')) : null,
          sigmask: t.sigmask, pending: t.pending.map((s) => signalName(pendingSigno(s))),
          xsaveBytes: Buffer.from(t.xstate, 'base64').length, rseq: t.rseq ? t.rseq.address : null,
        };
      }),
    };
  });
  const shmem = m.files['shmem.json'] ? img.readJson('shmem.json', ShmemImage).objects.map((o) => ({
    id: o.id, size: o.size, storedBytes: o.runs.reduce((s, r) => s + r[1], 0) * 4096, pagesFile: o.pagesFile,
  })) : [];
  const sysvShm = m.files['sysvshm.json'] ? img.readJson('sysvshm.json', SysvShmImage).segments.map((s) => ({
    id: s.id, key: '0x' + (s.key >>> 0).toString(16).padStart(8, '0'), size: s.size, mode: '0' + s.mode.toString(8), uid: s.uid, gid: s.gid,
    deleted: !!s.deleted, locked: !!s.locked, storedBytes: s.runs.reduce((n, r) => n + r[1], 0) * 4096,
  })) : [];
  const fileLocks = m.files['locks.json'] ? describeLocks(img.readJson('locks.json', LocksImage)) : [];
  return { image: img.dir, format: m.version, ckptVersion: m.ckptVersion, created: m.created, kernel: m.kernel, arch: m.arch, cpu: m.cpu, options: m.options, files: m.files, root: m.root, processes, zombies, sharedMemory: shmem, ...(sysvShm.length ? { sysvSharedMemory: sysvShm } : {}), openFiles, storedFiles, fileLocks };
}

function describeWaitStatus(st: number): string {
  const sig = st & 0x7f;
  return sig ? `killed by ${signalName(sig)}` : `exited with ${(st >> 8) & 0xff}`;
}

function size(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)}G`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)}M`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)}K`;
  return `${n}`;
}

export function renderInfo(info: ReturnType<typeof imageInfo>): string {
  const L: string[] = [];
  L.push(`image ${info.image}: format ${info.format}, made by ckpt ${info.ckptVersion} on ${info.created}`);
  L.push(`  kernel ${info.kernel} ${info.arch}; XSAVE features in use ${info.cpu.used} (XCR0 ${info.cpu.xcr0}, ${info.cpu.xsaveSize} bytes)`);
  L.push(`  ${info.processes.length} process${info.processes.length === 1 ? '' : 'es'} (root ${info.root})${info.zombies.length ? `, ${info.zombies.length} zombie${info.zombies.length === 1 ? '' : 's'}` : ''}`);
  for (const z of info.zombies) L.push(`  zombie ${z.pid}  ppid ${z.ppid} pgid ${z.pgid} sid ${z.sid}: ${z.status}`);
  for (const l of info.fileLocks) L.push(`  file lock: ${l}`);
  for (const o of info.sharedMemory) L.push(`  shared memory ${o.id}: ${size(o.size)}, ${size(o.storedBytes)} stored in ${o.pagesFile}`);
  for (const o of info.sysvSharedMemory ?? []) {
    L.push(`  System V segment ${o.id} (key ${o.key}): ${o.size} bytes, mode ${o.mode}, owner ${o.uid}:${o.gid}${o.deleted ? ', removed' : ''}${o.locked ? ', locked' : ''}, ${size(o.storedBytes)} stored`);
  }
  for (const n of info.storedFiles) L.push(`  stored ${n.what}`);
  for (const p of info.processes) {
    L.push('', `process ${p.pid} (${p.comm})  ppid ${p.ppid} pgid ${p.pgid} sid ${p.sid}${p.stopped ? '  [stopped]' : ''}${p.threads.length > 1 ? `  ${p.threads.length} threads` : ''}`);
    L.push(`  exe ${p.exe}`, `  cwd ${p.cwd}${p.cwdInode !== undefined ? ` (inode ${p.cwdInode})` : ''}  root ${p.root}  umask ${p.umask}  personality ${p.personality}`);
    L.push(`  uid ${p.creds.uid.join('/')} gid ${p.creds.gid.join('/')} groups [${p.creds.groups.join(',')}] capEff ${p.creds.capEff}`);
    L.push(`  memory: ${p.memory.areas.length} areas, ${size(p.memory.mappedBytes)} mapped, ${size(p.memory.storedBytes)} stored`);
    for (const a of p.memory.areas) {
      L.push(`    ${a.range.padEnd(31)} ${a.prot} ${size(a.size).padStart(7)} ${a.kind.padEnd(11)} stored ${size(a.stored).padStart(6)}  ${a.name}`);
    }
    if (p.filesOf !== null) L.push(`  fd table shared with pid ${p.filesOf} (CLONE_FILES)`);
    if (p.fsOf !== null) L.push(`  cwd, root and umask shared with pid ${p.fsOf} (CLONE_FS)`);
    for (const t of p.threadTables) {
      L.push(`  thread ${t.tid}: ${t.fds !== null ? `an fd table of its own (${t.fds} fds)` : t.filesOf !== null ? `the fd table of thread ${t.filesOf}` : 'the process\'s fd table'}; ${t.fs ? `cwd ${t.fs.cwd} root ${t.fs.root} umask 0${t.fs.umask.toString(8)} of its own` : t.fsOf !== null ? `the cwd and root of thread ${t.fsOf}` : 'the process\'s cwd and root'}`);
    }
    L.push(`  files: ${p.fds.length}`);
    for (const f of p.fds) L.push(`    fd ${String(f.fd).padStart(3)}: ${f.what}`);
    L.push(`  signal handlers: ${p.signals.handlers.length}${p.signals.pendingShared.length ? `; pending (process): ${p.signals.pendingShared.join(' ')}` : ''}`);
    for (const h of p.signals.handlers) L.push(`    ${h.signal.padEnd(9)} ${h.handler} flags ${h.flags} mask ${h.mask}`);
    if (p.timers.length) L.push(`  POSIX timers: ${p.timers.length}`);
    for (const t of p.timers) {
      L.push(`    timer ${t.id}: ${t.clock}, ${t.notify}; interval ${t.interval} s, ${t.left} s left${t.overrun ? `, overrun ${t.overrun}` : ''}${t.pending ? ', its signal pending' : ''}`);
    }
    for (const t of p.seccomp) L.push(`  seccomp: thread ${t.tid} ${t.mode === 'strict' ? 'in strict mode' : `with ${t.filters} filter${t.filters === 1 ? '' : 's'}`}`);
    for (const t of p.threads) {
      L.push(`  thread ${t.tid}: rip ${t.rip} rsp ${t.rsp} fs_base ${t.fsBase}${t.inSyscall !== null ? ` in syscall ${t.inSyscall}` : ''}`);
      L.push(`    blocked ${t.sigmask}${t.pending.length ? ` pending ${t.pending.join(' ')}` : ''}; XSAVE ${t.xsaveBytes} bytes; rseq ${t.rseq ?? 'none'}`);
    }
  }
  return L.join('\n') + '\n';
}

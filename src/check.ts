// `ckpt check`: try, on a real throwaway process, every kernel interface ckpt
// relies on, and report each as present or missing.

import fs from 'node:fs';
import { posixSpawn, pidfdOpen, pidfdGetfd, userfaultfdErrno, kill, kcmpWorks, getRobustList } from './kernel/sys.js';
import { SIG, PTRACE_O } from './kernel/consts.js';
import { PRCTL_MM_MAP } from './kernel/structs.js';
import * as remote from './kernel/rsys.js';
import { getRegs, getXstate, getSigmask, peekSiginfo, getRseqConfig, xstateFeatures, detachQuiet, waitPid } from './kernel/ptrace.js';
import { RemoteTask, findSyscallGadget } from './kernel/remote.js';
import { readMaps, readStatus, kernelRelease } from './kernel/proc.js';
import { freezeTask } from './freeze.js';
import { hostXfeatures } from './cpu.js';
import { tcpRepairErrno } from './kernel/netcheck.js';
import { errnoName } from './kernel/consts.js';
import { detectBackend } from './net/lock.js';

export interface CheckItem { name: string; required: boolean; ok: boolean; detail: string }
export interface CheckReport { ok: boolean; kernel: string; items: CheckItem[] }

export function runChecks(): CheckReport {
  const items: CheckItem[] = [];
  const add = (name: string, required: boolean, fn: () => string) => {
    try { items.push({ name, required, ok: true, detail: fn() }); } catch (e) {
      items.push({ name, required, ok: false, detail: (e as Error).message });
    }
  };
  const caps = BigInt('0x' + (readStatus(process.pid).get('CapEff') ?? '0'));
  const has = (bit: number) => ((caps >> BigInt(bit)) & 1n) === 1n;
  add('CAP_SYS_PTRACE', true, () => { if (!has(19)) throw new Error('missing: cannot trace other processes'); return 'present'; });
  add('CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN', true, () => { if (!has(40) && !has(21)) throw new Error('missing: clone3 set_tid and PR_SET_MM_MAP exe need it'); return has(40) ? 'CAP_CHECKPOINT_RESTORE' : 'CAP_SYS_ADMIN'; });
  add('CAP_SYS_RESOURCE', false, () => { if (!has(24)) throw new Error("missing: restore cannot raise a hard rlimit above the one ckpt runs with"); return 'present'; });
  add('/proc/PID/pagemap', true, () => { fs.closeSync(fs.openSync('/proc/self/pagemap', 'r')); return 'readable'; });
  add('/proc/PID/map_files', true, () => { fs.readdirSync('/proc/self/map_files'); return 'readable'; });
  add('pidfd_open', true, () => { fs.closeSync(pidfdOpen(process.pid)); return 'works'; });
  add('userfaultfd', true, () => { const e = userfaultfdErrno(); if (e) throw new Error(`unavailable (errno ${e}): restoring images with 128 MiB of pages or more needs it`); return 'works (restore of big images copies pages in with UFFDIO_COPY)'; });
  add('TCP_REPAIR', false, () => {
    const e = tcpRepairErrno();
    if (e) throw new Error(`setsockopt(TCP_REPAIR) fails (${errnoName(e)})${e === 1 ? ': it needs CAP_NET_ADMIN' : ''}: established TCP connections cannot be dumped`);
    return 'works (established TCP connections can be dumped)';
  });
  add('network lock', false, () => {
    const b = detectBackend();
    if (!b.backend) throw new Error(`${b.detail}; TCP and UDP sockets cannot be held still during dump and restore`);
    return `${b.backend} (${b.detail})`;
  });
  const host = hostXfeatures();
  add('XSAVE features', true, () => host.describe(host.mask));

  const huskPath = ['/usr/bin/sleep', '/bin/sleep'].find((p) => fs.existsSync(p));
  add('husk program', true, () => { if (!huskPath) throw new Error('no sleep binary found'); return huskPath; });
  if (huskPath) {
    let pid = -1;
    try {
      pid = posixSpawn(huskPath, ['ckpt-check', '1000'], { sigmask: 0xfffffffffffffeffn });
      const p = pid;
      add('PTRACE_SEIZE + PTRACE_INTERRUPT', true, () => { freezeTask(p, PTRACE_O.TRACEFORK | PTRACE_O.EXITKILL); return 'works'; });
      add('PTRACE_GETREGS', true, () => `rip 0x${getRegs(p).get('rip').toString(16)}`);
      add('PTRACE_GETREGSET NT_X86_XSTATE', true, () => { const x = getXstate(p); return `${x.length} bytes, XCR0 0x${xstateFeatures(x).xcr0.toString(16)}`; });
      add('PTRACE_GETSIGMASK', true, () => `0x${getSigmask(p).toString(16)}`);
      add('PTRACE_PEEKSIGINFO', true, () => `${peekSiginfo(p, true).length} pending`);
      add('PTRACE_GET_RSEQ_CONFIGURATION', true, () => { const r = getRseqConfig(p); return r.size ? `rseq at 0x${r.address.toString(16)}` : 'no rseq registered'; });
      const maps = readMaps(p);
      add('vDSO layout', true, () => {
        const sp = maps.filter((m) => /^\[(vdso|vvar|vvar_vclock)\]$/.test(m.path));
        if (!sp.some((m) => m.path === '[vdso]')) throw new Error('no [vdso] mapping');
        return sp.map((m) => `${m.path} ${Number(m.end - m.start) / 4096}p`).join(', ');
      });
      let rt: RemoteTask | null = null;
      add('remote syscalls (vDSO gadget + single-step)', true, () => {
        const v = maps.find((m) => m.path === '[vdso]')!;
        rt = new RemoteTask(p, findSyscallGadget(p, v.start, v.end));
        const got = remote.getpid(rt);
        if (got !== p) throw new Error(`getpid returned ${got}`);
        rt.mapScratch(8192);
        return 'works';
      });
      if (rt) {
        const r = rt as RemoteTask;
        add('PR_SET_MM_MAP', true, () => {
          const n = remote.prctlMmMapSize(r);
          if (n !== PRCTL_MM_MAP.size) throw new Error(`struct prctl_mm_map is ${n} bytes here, ckpt knows ${PRCTL_MM_MAP.size}`);
          return `struct size ${n}`;
        });
        add('clone3 with set_tid', true, () => {
          const want = freePid();
          const child = remote.clone3(r, { flags: 0, exitSignal: SIG.CHLD, setTid: [want] });
          kill(child, SIG.KILL);
          try { waitPid(child); } catch { /* reaped with the husk */ }
          if (child !== want) throw new Error(`asked for PID ${want}, got ${child}`);
          return `PID ${want} created on request`;
        });
        add('pidfd_getfd', true, () => {
          fs.closeSync(pidfdGetfd(p, 1));
          return 'works';
        });
        add('kcmp', true, () => { kcmpWorks(p); return 'works (finds dup\'ed and shared files, and vfork)'; });
        add('get_robust_list', true, () => { getRobustList(p); return 'works'; });
      }
    } finally {
      if (pid > 0) { kill(pid, SIG.KILL); detachQuiet(pid); try { while (waitPid(pid)?.stopped); } catch { /* reaped */ } }
    }
  }
  return { ok: items.every((i) => i.ok || !i.required), kernel: kernelRelease(), items };
}

function freePid(): number {
  const max = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  for (let i = 0; i < 1000; i++) {
    const cand = 300 + Math.floor(Math.random() * Math.min(max - 400, 4000000));
    if (!fs.existsSync(`/proc/${cand}`)) return cand;
  }
  throw new Error('no free PID found');
}

export function renderChecks(r: CheckReport): string {
  const L = [`kernel ${r.kernel}`];
  for (const i of r.items) {
    const mark = i.ok ? 'ok     ' : i.required ? 'MISSING' : 'absent ';
    L.push(`${mark} ${i.name}${i.required ? '' : ' (optional)'}: ${i.detail}`);
  }
  L.push(r.ok ? 'Looks good.' : 'Some required features are missing: ckpt will not work here.');
  return L.join('\n') + '\n';
}

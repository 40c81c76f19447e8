// The kernel layer's own facts and rules, without traced processes:
// - the struct layouts of src/kernel/structs.ts against this host's C
//   headers (a small C program, test/subjects/tools/layouts.c, prints sizes
//   and offsets), and their encoding;
// - the scratch allocator (src/kernel/scratch.ts): frames nest, give their
//   memory back, and a full area is an error;
// - the rule that syscalls stay in src/kernel: no module outside it names a
//   syscall number, an ioctl code, a prctl option or a struct offset, or makes
//   a remote call other than through the typed wrappers (src/kernel/rsys.ts).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as S from '../src/kernel/structs.js';
import { Layout } from '../src/kernel/structs.js';
import { UFFD, IOCTL, TERMIOS, VCC, NCCS, N_TTY, POLL, IPC, SHM } from '../src/kernel/consts.js';
import { ScratchArea, ScratchFullError, MemoryIO, SCRATCH_ALIGN } from '../src/kernel/scratch.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ---------------------------------------------------------------- layouts

interface CFacts { size: Map<string, number>; field: Map<string, { off: number; size: number }>; consts: Map<string, bigint> }

function cFacts(): CFacts | string {
  const src = path.join(ROOT, 'test/subjects/tools/layouts.c');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-layouts-'));
  const facts: CFacts = { size: new Map(), field: new Map(), consts: new Map() };
  try {
    for (const [name, flags] of [['user', []], ['kernel', ['-DKERNEL_SIDE']]] as const) {
      const bin = path.join(dir, name);
      const cc = spawnSync('gcc', ['-Wall', ...flags, '-o', bin, src], { encoding: 'utf8' });
      if (cc.error) return `no C compiler: ${cc.error.message}`;
      assert.equal(cc.status, 0, `gcc ${flags.join(' ')} layouts.c: ${cc.stderr}`);
      const out = spawnSync(bin, { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      for (const line of out.stdout.trim().split('\n')) {
        const w = line.split(' ');
        if (w[0] === 'S') facts.size.set(w[1], Number(w[2]));
        else if (w[0] === 'F') facts.field.set(`${w[1]}.${w[2]}`, { off: Number(w[3]), size: Number(w[4]) });
        else if (w[0] === 'C') facts.consts.set(w[1], BigInt(w[2]));
      }
    }
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  return facts;
}

/** Each layout, the C struct it stands for, and its fields by their C names. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const LAYOUTS: Array<[Layout<any>, string, Record<string, string>]> = [
  [S.CLONE_ARGS, 'clone_args', {
    flags: 'flags', pidfd: 'pidfd', childTid: 'child_tid', parentTid: 'parent_tid', exitSignal: 'exit_signal', stack: 'stack',
    stackSize: 'stack_size', tls: 'tls', setTid: 'set_tid', setTidSize: 'set_tid_size', cgroup: 'cgroup',
  }],
  [S.PRCTL_MM_MAP, 'prctl_mm_map', {
    startCode: 'start_code', endCode: 'end_code', startData: 'start_data', endData: 'end_data', startBrk: 'start_brk', brk: 'brk',
    startStack: 'start_stack', argStart: 'arg_start', argEnd: 'arg_end', envStart: 'env_start', envEnd: 'env_end', auxv: 'auxv',
    auxvSize: 'auxv_size', exeFd: 'exe_fd',
  }],
  [S.CAP_HEADER, 'cap_header', { version: 'version', pid: 'pid' }],
  [S.CAP_DATA, 'cap_data', { effective: 'effective', permitted: 'permitted', inheritable: 'inheritable' }],
  [S.FLOCK, 'flock', { type: 'l_type', whence: 'l_whence', start: 'l_start', len: 'l_len', pid: 'l_pid' }],
  [S.F_OWNER_EX, 'f_owner_ex', { type: 'type', pid: 'pid' }],
  [S.ITIMERVAL, 'itimerval', { intervalSec: 'it_interval.tv_sec', intervalUsec: 'it_interval.tv_usec', valueSec: 'it_value.tv_sec', valueUsec: 'it_value.tv_usec' }],
  [S.SIGINFO, 'siginfo', { signo: 'si_signo', errno: 'si_errno', code: 'si_code', pid: 'si_pid', uid: 'si_uid', status: 'si_status' }],
  [S.SIGINFO_TIMER, 'siginfo', { signo: 'si_signo', code: 'si_code', timerId: 'si_timerid', overrun: 'si_overrun', value: 'si_value' }],
  [S.SIGEVENT, 'sigevent', { value: 'sigev_value', signo: 'sigev_signo', notify: 'sigev_notify', tid: '_sigev_un._tid' }],
  [S.SOCK_FPROG, 'sock_fprog', { len: 'len', filter: 'filter' }],
  [S.SOCK_FILTER, 'sock_filter', { code: 'code', jt: 'jt', jf: 'jf', k: 'k' }],
  [S.SECCOMP_METADATA, 'seccomp_metadata', { filterOff: 'filter_off', flags: 'flags' }],
  [S.KSIGACTION, 'sigaction', { handler: 'sa_handler', flags: 'sa_flags', restorer: 'sa_restorer', mask: 'sa_mask' }],
  [S.STACK_T, 'stack_t', { sp: 'ss_sp', flags: 'ss_flags', size: 'ss_size' }],
  [S.TIMESPEC, 'timespec', { sec: 'tv_sec', nsec: 'tv_nsec' }],
  [S.FILE_HANDLE, 'file_handle', { bytes: 'handle_bytes', type: 'handle_type' }],
  [S.ITIMERSPEC, 'itimerspec', { intervalSec: 'it_interval.tv_sec', intervalNsec: 'it_interval.tv_nsec', valueSec: 'it_value.tv_sec', valueNsec: 'it_value.tv_nsec' }],
  [S.IOVEC, 'iovec', { base: 'iov_base', len: 'iov_len' }],
  [S.MSGHDR, 'msghdr', {
    name: 'msg_name', namelen: 'msg_namelen', iov: 'msg_iov', iovlen: 'msg_iovlen', control: 'msg_control', controllen: 'msg_controllen', flags: 'msg_flags',
  }],
  [S.CMSGHDR, 'cmsghdr', { len: 'cmsg_len', level: 'cmsg_level', type: 'cmsg_type' }],
  [S.RLIMIT64, 'rlimit64', { cur: 'rlim_cur', max: 'rlim_max' }],
  [S.SOCKADDR_UN, 'sockaddr_un', { family: 'sun_family' }],
  [S.UCRED, 'ucred', { pid: 'pid', uid: 'uid', gid: 'gid' }],
  [S.TIMEVAL, 'timeval', { sec: 'tv_sec', usec: 'tv_usec' }],
  [S.NLMSGHDR, 'nlmsghdr', { len: 'nlmsg_len', type: 'nlmsg_type', flags: 'nlmsg_flags', seq: 'nlmsg_seq', pid: 'nlmsg_pid' }],
  [S.UNIX_DIAG_REQ, 'unix_diag_req', {
    family: 'sdiag_family', protocol: 'sdiag_protocol', pad: 'pad', states: 'udiag_states', ino: 'udiag_ino', show: 'udiag_show',
    cookie0: 'udiag_cookie[0]', cookie1: 'udiag_cookie[1]',
  }],
  [S.UNIX_DIAG_MSG, 'unix_diag_msg', {
    family: 'udiag_family', type: 'udiag_type', state: 'udiag_state', pad: 'pad', ino: 'udiag_ino', cookie0: 'udiag_cookie[0]', cookie1: 'udiag_cookie[1]',
  }],
  [S.RTATTR, 'rtattr', { len: 'rta_len', type: 'rta_type' }],
  [S.UNIX_DIAG_VFS, 'unix_diag_vfs', { ino: 'udiag_vfs_ino', dev: 'udiag_vfs_dev' }],
  [S.UNIX_DIAG_RQLEN, 'unix_diag_rqlen', { rqueue: 'udiag_rqueue', wqueue: 'udiag_wqueue' }],
  [S.UFFDIO_API_STRUCT, 'uffdio_api', { api: 'api', features: 'features', ioctls: 'ioctls' }],
  [S.UFFDIO_RANGE, 'uffdio_range', { start: 'start', len: 'len' }],
  [S.UFFDIO_REGISTER_STRUCT, 'uffdio_register', { start: 'range.start', len: 'range.len', mode: 'mode', ioctls: 'ioctls' }],
  [S.TERMIOS2, 'termios2', {
    iflag: 'c_iflag', oflag: 'c_oflag', cflag: 'c_cflag', lflag: 'c_lflag', line: 'c_line', cc: 'c_cc[0]', ispeed: 'c_ispeed', ospeed: 'c_ospeed',
  }],
  [S.WINSIZE, 'winsize', { row: 'ws_row', col: 'ws_col', xpixel: 'ws_xpixel', ypixel: 'ws_ypixel' }],
  [S.POLLFD, 'pollfd', { fd: 'fd', events: 'events', revents: 'revents' }],
  [S.UFFDIO_COPY_STRUCT, 'uffdio_copy', { dst: 'dst', src: 'src', len: 'len', mode: 'mode', copy: 'copy' }],
  [S.EPOLL_EVENT, 'epoll_event', { events: 'events', data: 'data' }],
  [S.POLLFD, 'pollfd', { fd: 'fd', events: 'events', revents: 'revents' }],
  [S.KCMP_EPOLL_SLOT, 'kcmp_epoll_slot', { efd: 'efd', tfd: 'tfd', toff: 'toff' }],
  [S.SHMID_DS, 'shmid64_ds', {
    key: 'shm_perm.key', uid: 'shm_perm.uid', gid: 'shm_perm.gid', cuid: 'shm_perm.cuid', cgid: 'shm_perm.cgid', mode: 'shm_perm.mode', seq: 'shm_perm.seq',
    segsz: 'shm_segsz', atime: 'shm_atime', dtime: 'shm_dtime', ctime: 'shm_ctime', cpid: 'shm_cpid', lpid: 'shm_lpid', nattch: 'shm_nattch',
  }],
];

describe('struct layouts', () => {
  // (gcc is there wherever the suite runs: the subjects are built with it)
  const facts = cFacts();
  test('the C headers\' facts could be gathered', () => assert.equal(typeof facts, 'object', String(facts)));

  test('every layout has the size and field offsets of the C headers', () => {
    const f = facts as CFacts;
    for (const [l, cname, fields] of LAYOUTS) {
      assert.equal(l.size, f.size.get(cname), `sizeof(${cname})`);
      assert.deepEqual(Object.keys(fields).sort(), Object.keys(l.fields).sort(), `${l.name}: every field is compared`);
      for (const [js, c] of Object.entries(fields)) {
        const cf = f.field.get(`${cname}.${c}`);
        assert.ok(cf, `${cname}.${c} printed by layouts.c`);
        assert.equal(l.offsetOf(js), cf.off, `offsetof(${cname}, ${c})`);
        assert.equal(l.widthOf(js), cf.size, `sizeof(${cname}.${c})`);
      }
    }
  });

  test('the XSAVE area: MXCSR, XCR0 (ptrace), XSTATE_BV and XCOMP_BV where the headers have them', () => {
    const f = facts as CFacts;
    assert.equal(S.XSAVE.offsetOf('mxcsr'), f.field.get('fpstate.mxcsr')!.off);
    assert.equal(S.XSAVE.offsetOf('xcr0'), f.field.get('fpstate.sw_reserved')!.off, 'XCR0 is the first software-reserved word');
    assert.equal(S.XSAVE_HEADER_OFFSET, f.field.get('xstate.xstate_hdr')!.off);
    assert.equal(S.XSAVE_HEADER_OFFSET, f.size.get('fpstate'));
    assert.equal(S.XSAVE_HEADER_SIZE, f.size.get('xstate_header'));
    assert.equal(S.XSAVE.offsetOf('xstateBv'), f.field.get('xstate.xstate_hdr.xfeatures')!.off);
    assert.equal(S.XSAVE.offsetOf('xcompBv'), f.field.get('xstate.xstate_hdr.reserved1')!.off, 'XCOMP_BV is the word after XSTATE_BV');
    assert.equal(S.XSAVE.size, S.XSAVE_HEADER_OFFSET + S.XSAVE_HEADER_SIZE);
  });

  test('constants that go with the structs', () => {
    const f = facts as CFacts;
    assert.equal(BigInt(S.CLONE_ARGS.size), f.consts.get('CLONE_ARGS_SIZE_VER2'));
    assert.equal(BigInt(S.CAP_VERSION_3), f.consts.get('_LINUX_CAPABILITY_VERSION_3'));
    assert.equal(BigInt(S.CAP_U32S_3), f.consts.get('_LINUX_CAPABILITY_U32S_3'));
    assert.equal(BigInt(S.cmsgLen(1)), f.consts.get('CMSG_LEN_1'));
    assert.equal(BigInt(S.cmsgSpace(3)), f.consts.get('CMSG_SPACE_3'));
    assert.equal(BigInt(S.SUN_PATH_OFFSET), f.consts.get('SUN_PATH_OFFSET'));
    assert.equal(BigInt(S.SUN_PATH_MAX), f.consts.get('SUN_PATH_MAX'));
    assert.equal(BigInt(UFFD.API), f.consts.get('UFFD_API'));
    assert.equal(UFFD.IOC_API, f.consts.get('UFFDIO_API'));
    assert.equal(UFFD.IOC_REGISTER, f.consts.get('UFFDIO_REGISTER'));
    assert.equal(UFFD.IOC_UNREGISTER, f.consts.get('UFFDIO_UNREGISTER'));
    assert.equal(UFFD.IOC_COPY, f.consts.get('UFFDIO_COPY'));
    assert.equal(BigInt(UFFD.REGISTER_MODE_MISSING), f.consts.get('UFFDIO_REGISTER_MODE_MISSING'));
    // terminals
    assert.equal(BigInt(NCCS), f.consts.get('NCCS'));
    assert.equal(BigInt(N_TTY), f.consts.get('N_TTY'));
    assert.equal(S.TERMIOS2.offsetOf('ispeed') - S.TERMIOS2.offsetOf('cc'), NCCS, 'c_cc is NCCS bytes, up to c_ispeed');
    for (const [k, v] of [...Object.entries(IOCTL), ...Object.entries(TERMIOS), ...Object.entries(VCC)]) assert.equal(BigInt(v), f.consts.get(k), k);
    for (const [k, v] of Object.entries(POLL)) assert.equal(BigInt(v), f.consts.get(`POLL${k}`), `POLL${k}`);
    // System V shared memory
    for (const [k, v] of Object.entries(IPC)) assert.equal(BigInt(v), f.consts.get(`IPC_${k}`), `IPC_${k}`);
    for (const [k, v] of Object.entries(SHM)) assert.equal(BigInt(v), f.consts.get(`SHM_${k}`), `SHM_${k}`);
  });

  test('the sizes ckpt relies on, also without a compiler', () => {
    assert.equal(S.CLONE_ARGS.size, 88);
    assert.equal(S.PRCTL_MM_MAP.size, 104);
    assert.equal(S.SIGINFO.size, 128);
    assert.equal(S.SIGINFO.offsetOf('pid'), 16);
    assert.equal(S.KSIGACTION.size, 32);
    assert.equal(S.STACK_T.size, 24);
    assert.equal(S.ITIMERVAL.size, 32);
    assert.equal(S.XSAVE.offsetOf('xstateBv'), 512);
    assert.equal(S.XSAVE.offsetOf('xcompBv'), 520);
    assert.equal(S.TILECFG.size, 64);
  });

  test('a declaration that does not add up is refused when it is made', () => {
    assert.throws(() => new Layout('t', 16, { a: [0, 'u64'], b: [4, 'u32'] } as const, false), /overlaps/);
    assert.throws(() => new Layout('t', 16, { a: [0, 'u64'], b: [12, 'u64'] } as const, false), /past the struct|not aligned/);
    assert.throws(() => new Layout('t', 16, { a: [0, 'u32'], b: [8, 'u64'] } as const, true), /gap at 4/);
    assert.throws(() => new Layout('t', 24, { a: [0, 'u64'], b: [8, 'u64'] } as const, true), /fields end at 16/);
    assert.throws(() => new Layout('t', 16, { a: [2, 'u32'] } as const, false), /not aligned/);
  });

  test('encode and decode: little endian, each field at its offset, the rest zero', () => {
    const b = S.CLONE_ARGS.encode({ flags: 0x8100, exitSignal: 17, setTid: 0x7f0000001000n, setTidSize: 1 });
    assert.equal(b.length, 88);
    assert.equal(b.readBigUInt64LE(0), 0x8100n);
    assert.equal(b.readBigUInt64LE(32), 17n);
    assert.equal(b.readBigUInt64LE(64), 0x7f0000001000n);
    assert.equal(b.readBigUInt64LE(72), 1n);
    assert.deepEqual(S.CLONE_ARGS.decode(b), {
      flags: 0x8100n, pidfd: 0n, childTid: 0n, parentTid: 0n, exitSignal: 17n, stack: 0n, stackSize: 0n, tls: 0n,
      setTid: 0x7f0000001000n, setTidSize: 1n, cgroup: 0n,
    });
    const m = S.PRCTL_MM_MAP.encode({ auxvSize: 352, exeFd: -1 >>> 0 });
    assert.equal(m.readUInt32LE(96), 352);
    assert.equal(m.readUInt32LE(100), 0xffffffff);
    const ss = S.STACK_T.encode({ sp: 0x1000n, flags: 1 << 31, size: 8192n });
    assert.equal(S.STACK_T.decode(ss).flags, -(2 ** 31));
    assert.equal(S.STACK_T.decode(ss).flags >>> 0, 0x80000000);
    const info = Buffer.alloc(128);
    info.writeInt32LE(17, 0);
    info.writeInt32LE(4242, 16);
    assert.equal(S.siginfoSigno(info), 17);
    assert.equal(S.siginfoPid(info), 4242);
    assert.throws(() => S.SIGINFO.decode(Buffer.alloc(64)), /too few/);
  });

  test('iovecArray: address then length per vector', () => {
    const b = S.iovecArray([[0x1000n, 4096], [0x3000n, 8192]]);
    assert.equal(b.toString('hex'), '0010000000000000' + '0010000000000000' + '0030000000000000' + '0020000000000000');
  });

  test('XSAVE header: features, and what the kernel checks of it', () => {
    const xs = Buffer.alloc(576);
    S.XSAVE.encodeInto(xs, { xcr0: 0x602e7n, xstateBv: 0x3n, mxcsr: 0x1f80 });
    assert.equal(S.xsaveStateBv(xs), 3n);
    assert.equal(S.xsaveXcr0(xs), 0x602e7n);
    assert.ok(S.xsaveHeaderOk(xs));
    assert.equal(S.xsaveStateBv(xs.subarray(0, 519)), 0n, 'too short for a header');
    const bad = (f: (b: Buffer) => void) => { const b = Buffer.from(xs); f(b); return S.xsaveHeaderOk(b); };
    assert.ok(!bad((b) => S.XSAVE.set(b, 'xstateBv', 1n << 40n)), 'a feature outside XCR0');
    assert.ok(!bad((b) => S.XSAVE.set(b, 'xcompBv', 1n << 63n)), 'the compacted format');
    assert.ok(!bad((b) => b.writeBigUInt64LE(1n, 568)), 'a reserved header word');
    assert.ok(!bad((b) => S.XSAVE.set(b, 'mxcsr', 0x10000)), 'a reserved MXCSR bit');
  });
});

// ---------------------------------------------------------------- the scratch allocator

/** Memory of a fake task: a buffer at `base`. */
function fakeMemory(base: bigint, size: number): MemoryIO & { mem: Buffer } {
  const mem = Buffer.alloc(size);
  const at = (a: bigint, len: number) => {
    const o = Number(a - base);
    assert.ok(o >= 0 && o + len <= size, `access at 0x${a.toString(16)}+${len} inside the area`);
    return o;
  };
  return {
    mem,
    write(a, data) { data.copy(mem, at(a, data.length)); },
    read(a, len) { const o = at(a, len); return Buffer.from(mem.subarray(o, o + len)); },
  };
}

describe('scratch allocator', () => {
  const BASE = 0x7f0000000000n;

  test('blocks of a frame do not overlap, are aligned, and hold what was put', () => {
    const area = new ScratchArea(BASE, 4096);
    const io = fakeMemory(BASE, 4096);
    area.withFrame(io, (s) => {
      const a = s.putString('/etc/passwd');
      const b = s.put(Buffer.from([1, 2, 3]));
      const c = s.alloc(24);
      const d = s.zeroed(16);
      for (const x of [a, b, c, d]) assert.equal((x - BASE) % BigInt(SCRATCH_ALIGN), 0n);
      assert.ok(a < b && b < c && c < d);
      assert.ok(b - a >= 12n && c - b >= 3n && d - c >= 24n);
      assert.equal(s.read(a, 12).toString(), '/etc/passwd\0');
      assert.deepEqual([...s.read(b, 3)], [1, 2, 3]);
      assert.deepEqual([...s.read(d, 16)], new Array(16).fill(0));
    });
    assert.equal(area.used, 0);
  });

  test('frames nest, and each gives back what it took when it ends (also when it throws)', () => {
    const area = new ScratchArea(BASE, 4096);
    const io = fakeMemory(BASE, 4096);
    let inner1 = 0n;
    area.withFrame(io, (s) => {
      const outer = s.alloc(100);
      const usedOuter = area.used;
      inner1 = area.withFrame(io, (t) => t.alloc(50));
      assert.ok(inner1 > outer, 'an inner frame takes memory above the outer one');
      assert.equal(area.used, usedOuter, 'the inner frame gave its memory back');
      assert.equal(area.openFrames, 1);
      assert.throws(() => area.withFrame(io, (t) => { t.alloc(200); throw new Error('boom'); }), /boom/);
      assert.equal(area.used, usedOuter, 'a frame that threw gave its memory back');
      const again = area.withFrame(io, (t) => t.alloc(50));
      assert.equal(again, inner1, 'memory given back is handed out again');
      const after = s.alloc(8);
      assert.ok(after >= outer + 100n, 'the outer frame goes on above its own blocks');
    });
    assert.equal(area.used, 0);
    assert.equal(area.openFrames, 0);
  });

  test('a full area is an error that says so, and leaves the area usable', () => {
    const area = new ScratchArea(BASE, 256, ' of pid 42');
    const io = fakeMemory(BASE, 256);
    area.withFrame(io, (s) => {
      s.alloc(200);
      assert.throws(() => s.alloc(100), (e: Error) => e instanceof ScratchFullError && /scratch area of pid 42 is full: 100 more bytes wanted, 200 of 256 in use/.test(e.message));
      assert.throws(() => area.withFrame(io, (t) => t.put(Buffer.alloc(57))), ScratchFullError);
      s.alloc(56); // exactly what is left
    });
    assert.equal(area.withFrame(io, (s) => s.alloc(256)), BASE, 'all of it again once the frame ended');
  });

  test('frames are synchronous, a frame is not used after its end, and an unmapped area opens none', async () => {
    const area = new ScratchArea(BASE, 4096);
    const io = fakeMemory(BASE, 4096);
    assert.throws(() => area.withFrame(io, async () => 1), /must not span an await/);
    let kept: { alloc(n: number): bigint } | null = null;
    area.withFrame(io, (s) => { kept = s; });
    assert.throws(() => kept!.alloc(8), /used after it ended/);
    assert.equal(area.used, 0);
    area.retire();
    assert.throws(() => area.withFrame(io, () => 0), /not mapped/);
  });

  test('a copy (a forked child) is the same range with nothing in use, and its own', () => {
    const area = new ScratchArea(BASE, 4096);
    const io = fakeMemory(BASE, 4096);
    area.withFrame(io, (s) => {
      s.alloc(1000);
      const child = area.copy(' of pid 7');
      assert.equal(child.base, BASE);
      assert.equal(child.size, 4096);
      assert.equal(child.used, 0);
      assert.equal(child.withFrame(io, (t) => t.alloc(8)), BASE);
      assert.equal(area.used, 1000, "the child's frames do not touch the parent's");
    });
  });
});

// ---------------------------------------------------------------- the rule

/** Every .ts file under src/, outside src/kernel. */
function sourcesOutsideKernel(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { if (path.relative(ROOT, p) !== path.join('src', 'kernel')) walk(p); } else if (e.name.endsWith('.ts')) out.push(p);
    }
  };
  walk(path.join(ROOT, 'src'));
  return out;
}

/** The code of a file without its comments (strings stay: a call's arguments are code). */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bNR\.\w/, 'a syscall number (NR.x)'],
  [/\bIOCTL\.\w/, 'an ioctl code (IOCTL.x)'],
  [/\bUFFD\.\w/, 'a userfaultfd ioctl or value (UFFD.x)'],
  [/\bPR\.\w/, 'a prctl option (PR.x): use a named wrapper of kernel/rsys.ts'],
  [/\bARCH\.\w/, 'an arch_prctl code (ARCH.x)'],
  [/\bF\.(DUPFD|GETFD|SETFD|DUPFD_CLOEXEC)\b/, 'an fcntl command (F.x)'],
  [/\.(call|callRaw|callN|callQuietRaw|stepRaw)\s*\(\s*(['"`]|\d|NR\b)/, 'a remote call made directly (use kernel/rsys.ts)'],
  [/\.callRaw\s*\(/, 'a raw remote call (use kernel/rsys.ts)'],
  [/\bsyscallRaw\s*\(|\bsyscall\s*\(\s*\d/, 'a syscall made directly (use kernel/sys.ts)'],
  [/from\s+['"][./]*kernel\/ffi\.js['"]/, 'the FFI module (only src/kernel uses it)'],
  [/\b(read|write)(Big)?U?Int(8|16|32|64)?(LE|BE)\s*\(/, 'a struct field by offset (use the layouts of kernel/structs.ts)'],
  [/\.(put|putString|withScratch)\s*\(/, 'scratch memory handled outside the kernel layer'],
  [/\.scratch\s*[+-]/, 'an agreed offset in the scratch area'],
];

test('syscalls stay in src/kernel: no module outside it names a syscall, an ioctl or a struct offset', () => {
  const problems: string[] = [];
  for (const file of sourcesOutsideKernel()) {
    const lines = stripComments(fs.readFileSync(file, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      for (const [re, what] of FORBIDDEN) if (re.test(line)) problems.push(`${path.relative(ROOT, file)}:${i + 1}: ${what}: ${line.trim()}`);
    });
  }
  assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
});

test('the rule check finds what it is meant to find', () => {
  const hits = (code: string) => FORBIDDEN.filter(([re]) => re.test(stripComments(code))).map(([, w]) => w);
  assert.ok(hits("rt.call('close', NR.close, fd);").length >= 2);
  assert.ok(hits('parent.callRaw(NR.clone3, a, 88);').length >= 2);
  assert.ok(hits('const pid = info.readInt32LE(16);').length === 1);
  assert.ok(hits('args.writeBigUInt64LE(x, 64);').length === 1);
  assert.ok(hits('rt.put(buf, off + 256);').length === 1);
  assert.ok(hits('const a = rt.scratch + BigInt(off);').length === 1);
  assert.ok(hits("import { sys } from '../kernel/ffi.js';").length === 1);
  assert.deepEqual(hits('remote.close(rt, fd); // was rt.call(\'close\', NR.close, fd)'), []);
  assert.deepEqual(hits("remote.openat(rt, path, O.RDONLY | O.CLOEXEC, 0, 'page file');"), []);
});

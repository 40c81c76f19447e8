// The layouts of the kernel structs ckpt reads and writes (x86_64), in one
// place. Each is declared with its size and the offset and type of each
// field ckpt uses; the declaration is checked when this module loads
// (fields inside the struct, naturally aligned, not overlapping, and, for a
// struct declared whole, no gap and no field missing), and
// test/kernel.test.ts compares sizes and offsets with the C headers.
// Nothing outside src/kernel reads or writes a kernel struct by offset: it
// goes through these layouts (and the typed remote calls of rsys.ts).

type Ty = 'u8' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64';
const WIDTH: Record<Ty, number> = { u8: 1, u16: 2, i32: 4, u32: 4, i64: 8, u64: 8 };
type Val<T extends Ty> = T extends 'i64' | 'u64' ? bigint : number;
type Fields = Record<string, readonly [offset: number, type: Ty]>;
export type StructValues<F extends Fields> = { -readonly [K in keyof F]: Val<F[K][1]> };
/** Values to encode: 64-bit fields also take a number. */
export type StructInput<F extends Fields> = { [K in keyof F]?: F[K][1] extends 'i64' | 'u64' ? bigint | number : number };

export class Layout<F extends Fields> {
  /**
   * `whole`: every byte of the struct is one of `fields` (no padding, nothing
   * left out), which the check enforces; otherwise only the fields ckpt uses
   * are listed.
   */
  constructor(readonly name: string, readonly size: number, readonly fields: F, whole: boolean, packed = false) {
    const spans = Object.entries(fields).map(([k, [off, ty]]) => ({ k, off, end: off + WIDTH[ty], ty })).sort((a, b) => a.off - b.off);
    let at = 0;
    for (const s of spans) {
      if (!packed && s.off % WIDTH[s.ty] !== 0) throw new Error(`internal: ${name}.${s.k} at ${s.off} is not aligned`);
      if (s.off < at) throw new Error(`internal: ${name}.${s.k} at ${s.off} overlaps the field before`);
      if (s.end > size) throw new Error(`internal: ${name}.${s.k} ends at ${s.end}, past the struct's ${size} bytes`);
      if (whole && s.off !== at) throw new Error(`internal: ${name} has a gap at ${at}`);
      at = s.end;
    }
    if (whole && at !== size) throw new Error(`internal: ${name} is ${size} bytes but its fields end at ${at}`);
  }

  offsetOf(k: keyof F): number { return this.fields[k][0]; }
  widthOf(k: keyof F): number { return WIDTH[this.fields[k][1]]; }

  get<K extends keyof F>(b: Buffer, k: K, at = 0): Val<F[K][1]> {
    const [off, ty] = this.fields[k];
    const o = at + off;
    switch (ty) {
      case 'u8': return b.readUInt8(o) as Val<F[K][1]>;
      case 'u16': return b.readUInt16LE(o) as Val<F[K][1]>;
      case 'i32': return b.readInt32LE(o) as Val<F[K][1]>;
      case 'u32': return b.readUInt32LE(o) as Val<F[K][1]>;
      case 'i64': return b.readBigInt64LE(o) as Val<F[K][1]>;
      case 'u64': return b.readBigUInt64LE(o) as Val<F[K][1]>;
    }
  }

  set<K extends keyof F>(b: Buffer, k: K, v: bigint | number, at = 0): void {
    const [off, ty] = this.fields[k];
    const o = at + off;
    switch (ty) {
      case 'u8': b.writeUInt8(Number(v), o); break;
      case 'u16': b.writeUInt16LE(Number(v), o); break;
      case 'i32': b.writeInt32LE(Number(v), o); break;
      case 'u32': b.writeUInt32LE(Number(v) >>> 0, o); break;
      case 'i64': b.writeBigInt64LE(BigInt(v), o); break;
      case 'u64': b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), o); break;
    }
  }

  /** A new struct (zeroed) with these fields set. */
  encode(v: StructInput<F>): Buffer {
    const b = Buffer.alloc(this.size);
    this.encodeInto(b, v);
    return b;
  }
  encodeInto(b: Buffer, v: StructInput<F>, at = 0): void {
    for (const k of Object.keys(v) as Array<keyof F>) {
      const x = v[k];
      if (x !== undefined) this.set(b, k, x as bigint | number, at);
    }
  }

  decode(b: Buffer, at = 0): StructValues<F> {
    if (b.length < at + this.size) throw new Error(`internal: ${b.length - at} bytes are too few for a ${this.name} (${this.size})`);
    const out = {} as StructValues<F>;
    for (const k of Object.keys(this.fields) as Array<keyof F>) out[k] = this.get(b, k, at) as StructValues<F>[typeof k];
    return out;
  }
}

/** `packed`: the struct is declared packed in the uapi headers (its fields need not be aligned). */
function struct<F extends Fields>(name: string, size: number, fields: F, opts: { whole?: boolean; packed?: boolean } = {}): Layout<F> {
  return new Layout(name, size, fields, opts.whole ?? false, opts.packed ?? false);
}

// ---------------------------------------------------------------- processes

/** struct clone_args for clone3, version 2 (with set_tid and cgroup): CLONE_ARGS_SIZE_VER2. */
export const CLONE_ARGS = struct('clone_args', 88, {
  flags: [0, 'u64'], pidfd: [8, 'u64'], childTid: [16, 'u64'], parentTid: [24, 'u64'], exitSignal: [32, 'u64'],
  stack: [40, 'u64'], stackSize: [48, 'u64'], tls: [56, 'u64'], setTid: [64, 'u64'], setTidSize: [72, 'u64'], cgroup: [80, 'u64'],
} as const, { whole: true });

/** struct prctl_mm_map for PR_SET_MM_MAP (the size PR_SET_MM_MAP_SIZE reports). */
export const PRCTL_MM_MAP = struct('prctl_mm_map', 104, {
  startCode: [0, 'u64'], endCode: [8, 'u64'], startData: [16, 'u64'], endData: [24, 'u64'], startBrk: [32, 'u64'],
  brk: [40, 'u64'], startStack: [48, 'u64'], argStart: [56, 'u64'], argEnd: [64, 'u64'], envStart: [72, 'u64'],
  envEnd: [80, 'u64'], auxv: [88, 'u64'], auxvSize: [96, 'u32'], exeFd: [100, 'u32'],
} as const, { whole: true });

/** struct __user_cap_header_struct, and the version ckpt uses (_LINUX_CAPABILITY_VERSION_3, two data structs). */
export const CAP_HEADER = struct('__user_cap_header_struct', 8, { version: [0, 'u32'], pid: [4, 'i32'] } as const, { whole: true });
export const CAP_VERSION_3 = 0x20080522;
export const CAP_U32S_3 = 2;
/** struct __user_cap_data_struct. */
export const CAP_DATA = struct('__user_cap_data_struct', 12, { effective: [0, 'u32'], permitted: [4, 'u32'], inheritable: [8, 'u32'] } as const, { whole: true });

/** struct itimerval: two struct timeval (tv_sec, tv_usec, 64 bits each). */
export const ITIMERVAL = struct('itimerval', 32, {
  intervalSec: [0, 'i64'], intervalUsec: [8, 'i64'], valueSec: [16, 'i64'], valueUsec: [24, 'i64'],
} as const, { whole: true });

/**
 * struct shmid64_ds of x86_64 (shmctl IPC_STAT, IPC_SET): struct ipc64_perm
 * (key, uid, gid, cuid, cgid, mode, seq, then two unused longs), the size,
 * attach, detach and change times, the creator's and the last operator's
 * PID, the number of attaches.
 */
export const SHMID_DS = struct('shmid64_ds', 112, {
  key: [0, 'i32'], uid: [4, 'u32'], gid: [8, 'u32'], cuid: [12, 'u32'], cgid: [16, 'u32'], mode: [20, 'u32'], seq: [24, 'u16'],
  segsz: [48, 'u64'], atime: [56, 'i64'], dtime: [64, 'i64'], ctime: [72, 'i64'], cpid: [80, 'i32'], lpid: [84, 'i32'], nattch: [88, 'u64'],
} as const);

/** struct flock (fcntl F_SETLK, F_OFD_SETLK, F_GETLK...): l_type, l_whence, then l_start, l_len, l_pid (padding after l_whence and l_pid). */
export const FLOCK = struct('flock', 32, { type: [0, 'u16'], whence: [2, 'u16'], start: [8, 'i64'], len: [16, 'i64'], pid: [24, 'i32'] } as const);
/** struct f_owner_ex (F_GETOWN_EX, F_SETOWN_EX). */
export const F_OWNER_EX = struct('f_owner_ex', 8, { type: [0, 'i32'], pid: [4, 'i32'] } as const, { whole: true });

// ---------------------------------------------------------------- signals

/** siginfo_t: 128 bytes; the fields ckpt reads (the union starts at 16 on 64-bit: the SIGCHLD and kill members). */
export const SIGINFO = struct('siginfo_t', 128, {
  signo: [0, 'i32'], errno: [4, 'i32'], code: [8, 'i32'], pid: [16, 'i32'], uid: [20, 'u32'], status: [24, 'i32'],
} as const);
export const SIGINFO_SIZE = SIGINFO.size;
/** The signal number of a siginfo (for example one of the image's pending signals). */
export function siginfoSigno(info: Buffer): number { return SIGINFO.get(info, 'signo'); }
export function siginfoPid(info: Buffer): number { return SIGINFO.get(info, 'pid'); }

/** struct sigaction as rt_sigaction takes it on x86_64 (the kernel's: handler, flags, restorer, then the mask). */
export const KSIGACTION = struct('kernel sigaction', 32, {
  handler: [0, 'u64'], flags: [8, 'u64'], restorer: [16, 'u64'], mask: [24, 'u64'],
} as const, { whole: true });
/** The size of the kernel's sigset_t (rt_sigaction's and rt_sigtimedwait's sigsetsize). */
export const KSIGSET_SIZE = 8;

/** stack_t for sigaltstack (4 bytes of padding after ss_flags). */
export const STACK_T = struct('stack_t', 24, { sp: [0, 'u64'], flags: [8, 'i32'], size: [16, 'u64'] } as const);

/** struct timespec. */
export const TIMESPEC = struct('timespec', 16, { sec: [0, 'i64'], nsec: [8, 'i64'] } as const, { whole: true });
/** struct file_handle: its header (handle_bytes, handle_type); the handle's bytes follow. */
export const FILE_HANDLE = struct('file_handle', 8, { bytes: [0, 'u32'], type: [4, 'i32'] } as const);

// ---------------------------------------------------------------- POSIX timers

/** struct sigevent (64 bytes): the value, the signal, how it notifies, and the thread of SIGEV_THREAD_ID. */
export const SIGEVENT = struct('sigevent', 64, { value: [0, 'u64'], signo: [8, 'i32'], notify: [12, 'i32'], tid: [16, 'i32'] } as const);
/** struct itimerspec: two struct timespec (interval, then value). */
export const ITIMERSPEC = struct('itimerspec', 32, {
  intervalSec: [0, 'i64'], intervalNsec: [8, 'i64'], valueSec: [16, 'i64'], valueNsec: [24, 'i64'],
} as const, { whole: true });
/** siginfo_t as a POSIX timer fills it (si_code SI_TIMER): the timer's id, the overrun, the value. */
export const SIGINFO_TIMER = struct('siginfo_t (timer)', 128, {
  signo: [0, 'i32'], code: [8, 'i32'], timerId: [16, 'i32'], overrun: [20, 'i32'], value: [24, 'u64'],
} as const);
/** What a pending siginfo says of the timer that sent it, or null if no timer sent it (si_code is not SI_TIMER). */
export function siginfoTimer(info: Buffer, siTimer: number): { signo: number; timerId: number; overrun: number; value: bigint } | null {
  const v = SIGINFO_TIMER.decode(info);
  return v.code === siTimer ? { signo: v.signo, timerId: v.timerId, overrun: v.overrun, value: v.value } : null;
}

// ---------------------------------------------------------------- seccomp

/** struct seccomp_metadata (PTRACE_GET_SECCOMP_METADATA): which filter (in), its flags (out). */
export const SECCOMP_METADATA = struct('seccomp_metadata', 16, { filterOff: [0, 'u64'], flags: [8, 'u64'] } as const, { whole: true });
/** struct sock_fprog: the number of instructions and where they are. */
export const SOCK_FPROG = struct('sock_fprog', 16, { len: [0, 'u16'], filter: [8, 'u64'] } as const);
/** struct sock_filter: one classic BPF instruction (8 bytes). */
export const SOCK_FILTER = struct('sock_filter', 8, { code: [0, 'u16'], jt: [2, 'u8'], jf: [3, 'u8'], k: [4, 'u32'] } as const, { whole: true });

// ---------------------------------------------------------------- I/O

/** struct iovec. */
export const IOVEC = struct('iovec', 16, { base: [0, 'u64'], len: [8, 'u64'] } as const, { whole: true });
/** struct iovec[] for the kernel, from [address, length] pairs. */
export function iovecArray(iov: ReadonlyArray<readonly [bigint, number]>): Buffer {
  const b = Buffer.alloc(iov.length * IOVEC.size);
  const base = IOVEC.offsetOf('base'), len = IOVEC.offsetOf('len');
  for (let i = 0; i < iov.length; i++) {
    b.writeBigUInt64LE(iov[i][0], i * IOVEC.size + base);
    b.writeBigUInt64LE(BigInt(iov[i][1]), i * IOVEC.size + len);
  }
  return b;
}

/** struct msghdr. */
export const MSGHDR = struct('msghdr', 56, {
  name: [0, 'u64'], namelen: [8, 'u32'], iov: [16, 'u64'], iovlen: [24, 'u64'], control: [32, 'u64'], controllen: [40, 'u64'], flags: [48, 'i32'],
} as const);
/** struct cmsghdr (its data follows at 16). */
export const CMSGHDR = struct('cmsghdr', 16, { len: [0, 'u64'], level: [8, 'i32'], type: [12, 'i32'] } as const, { whole: true });
const align8 = (n: number) => (n + 7) & ~7;
/** CMSG_SPACE for `n` ints. */
export const cmsgSpace = (n: number) => CMSGHDR.size + align8(4 * n);
/** CMSG_LEN for `n` ints. */
export const cmsgLen = (n: number) => CMSGHDR.size + 4 * n;

/** struct rlimit (rlimit64 for prlimit64). */
export const RLIMIT64 = struct('rlimit64', 16, { cur: [0, 'u64'], max: [8, 'u64'] } as const, { whole: true });

// ---------------------------------------------------------------- userfaultfd

export const UFFDIO_API_STRUCT = struct('uffdio_api', 24, { api: [0, 'u64'], features: [8, 'u64'], ioctls: [16, 'u64'] } as const, { whole: true });
export const UFFDIO_RANGE = struct('uffdio_range', 16, { start: [0, 'u64'], len: [8, 'u64'] } as const, { whole: true });
export const UFFDIO_REGISTER_STRUCT = struct('uffdio_register', 32, { start: [0, 'u64'], len: [8, 'u64'], mode: [16, 'u64'], ioctls: [24, 'u64'] } as const, { whole: true });
export const UFFDIO_COPY_STRUCT = struct('uffdio_copy', 40, { dst: [0, 'u64'], src: [8, 'u64'], len: [16, 'u64'], mode: [24, 'u64'], copy: [32, 'i64'] } as const, { whole: true });

// ---------------------------------------------------------------- XSAVE

/**
 * The start of an XSAVE area in the standard format, as ptrace gives it
 * (NT_X86_XSTATE): the legacy FXSAVE region (512 bytes: MXCSR at 24, and
 * ptrace puts XCR0 in the first software-reserved word, at 464), then the
 * 64-byte XSAVE header (XSTATE_BV, XCOMP_BV, then reserved words that must be
 * zero). The extended state components follow.
 */
export const XSAVE = struct('xsave area (legacy region and header)', 576, {
  mxcsr: [24, 'u32'], xcr0: [464, 'u64'], xstateBv: [512, 'u64'], xcompBv: [520, 'u64'],
} as const);
export const XSAVE_HEADER_OFFSET = 512;
export const XSAVE_HEADER_SIZE = 64;
/** The reserved words of the XSAVE header (after XSTATE_BV and XCOMP_BV). */
const XSAVE_HEADER_RESERVED = [XSAVE.offsetOf('xcompBv') + 8, XSAVE_HEADER_OFFSET + XSAVE_HEADER_SIZE] as const;
/** MXCSR bits the CPU reserves (the kernel refuses them set; MXCSR_MASK here is 0xffff). */
const MXCSR_RESERVED = 0xffff0000;

/** XSTATE_BV of an XSAVE area (0 if it is too short to have a header). */
export function xsaveStateBv(xs: Buffer): bigint {
  return xs.length >= XSAVE.offsetOf('xstateBv') + 8 ? XSAVE.get(xs, 'xstateBv') : 0n;
}
/** XCR0 as ptrace reports it in an XSAVE area. */
export function xsaveXcr0(xs: Buffer): bigint { return XSAVE.get(xs, 'xcr0'); }

/**
 * What the kernel checks of an XSAVE area set through ptrace (in the
 * standard format): the features present (XSTATE_BV) are among those enabled
 * (XCR0), the compaction word is 0, the rest of the header is 0, and MXCSR has
 * no reserved bit set.
 */
export function xsaveHeaderOk(xs: Buffer): boolean {
  if (xs.length < XSAVE.size) return false;
  const x = XSAVE.decode(xs);
  if ((x.xstateBv & ~x.xcr0) !== 0n || x.xcompBv !== 0n) return false;
  for (let o = XSAVE_HEADER_RESERVED[0]; o < XSAVE_HEADER_RESERVED[1]; o += 8) if (xs.readBigUInt64LE(o) !== 0n) return false;
  return (x.mxcsr & MXCSR_RESERVED) === 0;
}

/** The AMX tile configuration that ldtilecfg loads (palette 1): 64 bytes. */
/** struct termios2 (asm-generic/termbits.h): flags, line discipline, c_cc[NCCS = 19] from byte 17, speeds. */
export const TERMIOS2 = struct('termios2', 44, {
  iflag: [0, 'u32'], oflag: [4, 'u32'], cflag: [8, 'u32'], lflag: [12, 'u32'], line: [16, 'u8'], cc: [17, 'u8'],
  ispeed: [36, 'u32'], ospeed: [40, 'u32'],
} as const);
/** struct winsize. */
export const WINSIZE = struct('winsize', 8, { row: [0, 'u16'], col: [2, 'u16'], xpixel: [4, 'u16'], ypixel: [6, 'u16'] } as const, { whole: true });
/** struct pollfd. */
export const POLLFD = struct('pollfd', 8, { fd: [0, 'i32'], events: [4, 'u16'], revents: [6, 'u16'] } as const, { whole: true });

export const TILECFG = struct('tilecfg', 64, { palette: [0, 'u8'], startRow: [1, 'u8'] } as const);
/** Offsets of the per-tile arrays of TILECFG: bytes per row (u16 each), rows (u8 each). */
export const TILECFG_COLSB = 16;
export const TILECFG_ROWS = 48;

// ---------------------------------------------------------------- epoll and poll

/** struct epoll_event: packed on x86-64 (__EPOLL_PACKED), 12 bytes, the data right after the events. */
export const EPOLL_EVENT = struct('epoll_event', 12, { events: [0, 'u32'], data: [4, 'u64'] } as const, { whole: true, packed: true });
/** struct kcmp_epoll_slot (kcmp KCMP_EPOLL_TFD): the epoll fd, the target fd number, and which of the registrations under that number. */
export const KCMP_EPOLL_SLOT = struct('kcmp_epoll_slot', 12, { efd: [0, 'u32'], tfd: [4, 'u32'], toff: [8, 'u32'] } as const, { whole: true });
// ---------------------------------------------------------------- sockets

/** struct sockaddr_un: the family, then sun_path (108 bytes) at SUN_PATH_OFFSET. */
export const SOCKADDR_UN = struct('sockaddr_un', 110, { family: [0, 'u16'] } as const);
export const SUN_PATH_OFFSET = 2;
export const SUN_PATH_MAX = 108;
/** struct ucred (SO_PEERCRED, SCM_CREDENTIALS). */
export const UCRED = struct('ucred', 12, { pid: [0, 'i32'], uid: [4, 'u32'], gid: [8, 'u32'] } as const, { whole: true });
/** struct timeval (the old SO_RCVTIMEO/SO_SNDTIMEO on 64-bit). */
export const TIMEVAL = struct('timeval', 16, { sec: [0, 'i64'], usec: [8, 'i64'] } as const, { whole: true });

/** struct nlmsghdr. */
export const NLMSGHDR = struct('nlmsghdr', 16, { len: [0, 'u32'], type: [4, 'u16'], flags: [6, 'u16'], seq: [8, 'u32'], pid: [12, 'u32'] } as const, { whole: true });
/** struct unix_diag_req (a sock_diag request for AF_UNIX). */
export const UNIX_DIAG_REQ = struct('unix_diag_req', 24, {
  family: [0, 'u8'], protocol: [1, 'u8'], pad: [2, 'u16'], states: [4, 'u32'], ino: [8, 'u32'], show: [12, 'u32'], cookie0: [16, 'u32'], cookie1: [20, 'u32'],
} as const, { whole: true });
/** struct unix_diag_msg (its attributes follow). */
export const UNIX_DIAG_MSG = struct('unix_diag_msg', 16, {
  family: [0, 'u8'], type: [1, 'u8'], state: [2, 'u8'], pad: [3, 'u8'], ino: [4, 'u32'], cookie0: [8, 'u32'], cookie1: [12, 'u32'],
} as const, { whole: true });
/** struct rtattr (netlink attribute header; the payload follows, the whole padded to 4). */
export const RTATTR = struct('rtattr', 4, { len: [0, 'u16'], type: [2, 'u16'] } as const, { whole: true });
/** struct unix_diag_vfs and struct unix_diag_rqlen. */
export const UNIX_DIAG_VFS = struct('unix_diag_vfs', 8, { ino: [0, 'u32'], dev: [4, 'u32'] } as const, { whole: true });
export const UNIX_DIAG_RQLEN = struct('unix_diag_rqlen', 8, { rqueue: [0, 'u32'], wqueue: [4, 'u32'] } as const, { whole: true });

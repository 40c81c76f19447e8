// Kernel numbers for x86_64 (from the uapi headers). Facts, not code.

export const NR = {
  read: 0, write: 1, open: 2, close: 3, lseek: 8, mmap: 9, mprotect: 10, munmap: 11, brk: 12,
  rt_sigaction: 13, rt_sigprocmask: 14, ioctl: 16, pread64: 17, pwrite64: 18, readv: 19, writev: 20,
  mremap: 25, mincore: 27, madvise: 28, dup: 32, dup2: 33, pause: 34, nanosleep: 35, getitimer: 36, setitimer: 38,
  sendfile: 40, fchown: 93, getpid: 39, sched_yield: 24, socket: 41, sendmsg: 46, recvmsg: 47, socketpair: 53, clone: 56, fork: 57, exit: 60, wait4: 61, kill: 62, fcntl: 72, flock: 73, chdir: 80, fchdir: 81,
  umask: 95, ptrace: 101, getuid: 102, getgid: 104, setfsuid: 122, setfsgid: 123, setpgid: 109, getppid: 110, setsid: 112,
  setgroups: 116, setresuid: 117, setresgid: 119, getpgid: 121, getsid: 124, capget: 125, capset: 126,
  rt_sigpending: 127, rt_sigtimedwait: 128, rt_sigqueueinfo: 129, sigaltstack: 131, personality: 135,
  getpriority: 140, setpriority: 141, sched_getparam: 143, sched_setscheduler: 144, sched_getscheduler: 145,
  mlock: 149, prctl: 157, arch_prctl: 158, chroot: 161, gettid: 186, futex: 202,
  sched_setaffinity: 203, sched_getaffinity: 204, set_tid_address: 218, restart_syscall: 219,
  timer_create: 222, timer_settime: 223, timer_gettime: 224, timer_getoverrun: 225, timer_delete: 226, clock_gettime: 228, seccomp: 317, clock_nanosleep: 230, exit_group: 231, tgkill: 234, waitid: 247, openat: 257,
  set_robust_list: 273, get_robust_list: 274, dup3: 292, preadv: 295, pwritev: 296,
  rt_tgsigqueueinfo: 297, prlimit64: 302, process_vm_readv: 310, process_vm_writev: 311, kcmp: 312,
  memfd_create: 319, userfaultfd: 323, membarrier: 324, mlock2: 325, rseq: 334, pidfd_open: 434, clone3: 435,
  poll: 7, epoll_wait: 232, epoll_ctl: 233, epoll_create1: 291, epoll_pwait: 281, epoll_pwait2: 441,
  bind: 49, listen: 50, connect: 42, accept4: 288, sendto: 44, recvfrom: 45, shutdown: 48, getsockname: 51, getpeername: 52, setsockopt: 54, getsockopt: 55,
  shmget: 29, shmat: 30, shmctl: 31, shmdt: 67,
  close_range: 436, tee: 276, pipe2: 293, fsync: 74, fdatasync: 75, copy_file_range: 326, preadv2: 327, mknodat: 259, utimensat: 280, pwritev2: 328, pidfd_getfd: 438, mseal: 462,
  inotify_add_watch: 254, inotify_rm_watch: 255, timerfd_create: 283, timerfd_settime: 286, timerfd_gettime: 287,
  signalfd4: 289, eventfd2: 290, inotify_init1: 294, fanotify_init: 300, fanotify_mark: 301, open_by_handle_at: 304,
} as const;

export const PTRACE = {
  CONT: 7, KILL: 8, SINGLESTEP: 9, SYSCALL: 24, GETREGS: 12, SETREGS: 13, DETACH: 17,
  SETOPTIONS: 0x4200, GETEVENTMSG: 0x4201, GETSIGINFO: 0x4202, SETSIGINFO: 0x4203,
  GETREGSET: 0x4204, SETREGSET: 0x4205, SEIZE: 0x4206, INTERRUPT: 0x4207, LISTEN: 0x4208,
  PEEKSIGINFO: 0x4209, GETSIGMASK: 0x420a, SETSIGMASK: 0x420b, SECCOMP_GET_FILTER: 0x420c, GET_SECCOMP_METADATA: 0x420d,
  GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

export const PTRACE_O = {
  TRACESYSGOOD: 1, TRACEFORK: 2, TRACEVFORK: 4, TRACECLONE: 8, TRACEEXEC: 0x10,
  TRACEVFORKDONE: 0x20, TRACEEXIT: 0x40, EXITKILL: 0x100000, SUSPEND_SECCOMP: 0x200000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, VFORK_DONE: 5, EXIT: 6, STOP: 128 } as const;

export const NT_X86_XSTATE = 0x202;

export const SIG = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11,
  USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20,
  TTIN: 21, TTOU: 22,
} as const;
export const NSIG = 64;
/** Every signal but SIGKILL and SIGSTOP (bit n-1 stands for signal n). */
export const BLOCKABLE_SIGNALS = 0xffffffffffffffffn & ~((1n << 8n) | (1n << 18n));
/**
 * The mask a task has while ckpt runs syscalls in it: everything blocked but
 * SIGTRAP. A trap the kernel forces on a task whose SIGTRAP is blocked
 * unblocks it and resets the program's handler to SIG_DFL; unblocked, the
 * trap only stops the task for ckpt, which drops it.
 */
export const CALL_SIGMASK = BLOCKABLE_SIGNALS & ~(1n << 4n);

const SIGNAMES = ['', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL',
  'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP',
  'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO',
  'SIGPWR', 'SIGSYS'];
export function signalName(n: number): string {
  if (n > 0 && n < SIGNAMES.length) return SIGNAMES[n];
  if (n >= 32 && n <= 64) return `SIGRT${n - 32}`;
  return `signal ${n}`;
}

export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MAP = {
  SHARED: 0x01, PRIVATE: 0x02, FIXED: 0x10, ANONYMOUS: 0x20, GROWSDOWN: 0x0100, NORESERVE: 0x4000,
  DROPPABLE: 0x08, POPULATE: 0x8000, FIXED_NOREPLACE: 0x100000,
} as const;
/** System V IPC (ipc.h, shm.h): get flags, shmctl commands, shmat flags, and the mode bits the kernel adds to a segment. */
export const IPC = { PRIVATE: 0, CREAT: 0o1000, EXCL: 0o2000, RMID: 0, SET: 1, STAT: 2 } as const;
export const SHM = { LOCK: 11, UNLOCK: 12, NORESERVE: 0o10000, RDONLY: 0o10000, RND: 0o20000, REMAP: 0o40000, EXEC: 0o100000, DEST: 0o1000, LOCKED: 0o2000 } as const;
export const MREMAP = { MAYMOVE: 1, FIXED: 2, DONTUNMAP: 4 } as const;
export const MADV = {
  RANDOM: 1, SEQUENTIAL: 2, DONTNEED: 4, DONTFORK: 10, DOFORK: 11, MERGEABLE: 12, HUGEPAGE: 14, NOHUGEPAGE: 15, DONTDUMP: 16,
  WIPEONFORK: 18, POPULATE_WRITE: 23,
} as const;

export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, ACCMODE: 3, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400, TRUNC: 0o1000,
  APPEND: 0o2000, NONBLOCK: 0o4000, DSYNC: 0o10000, ASYNC: 0o20000, DIRECT: 0o40000, LARGEFILE: 0o100000,
  DIRECTORY: 0o200000, NOFOLLOW: 0o400000, NOATIME: 0o1000000, CLOEXEC: 0o2000000, PATH: 0o10000000, TMPFILE: 0o20200000,
} as const;
export const AT_FDCWD = -100;
export const SEEK = { SET: 0, CUR: 1, END: 2, DATA: 3, HOLE: 4 } as const;
export const F = {
  DUPFD: 0, GETFD: 1, SETFD: 2, GETFL: 3, SETFL: 4, GETLK: 5, SETLK: 6, SETSIG: 10, GETSIG: 11, SETOWN_EX: 15, GETOWN_EX: 16,
  OFD_GETLK: 36, OFD_SETLK: 37, SETLEASE: 1024, GETLEASE: 1025, DUPFD_CLOEXEC: 1030, SETPIPE_SZ: 1031, GETPIPE_SZ: 1032,
  ADD_SEALS: 1033, GET_SEALS: 1034,
} as const;
/** Lock types of struct flock and of F_SETLEASE/F_GETLEASE. */
export const LOCK_TYPE = { RDLCK: 0, WRLCK: 1, UNLCK: 2 } as const;
/** F_SETOWN_EX / F_GETOWN_EX owner types. */
export const F_OWNER = { TID: 0, PID: 1, PGRP: 2 } as const;
/** flock(2) operations. */
export const LOCK_OP = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;
/** File seals (F_ADD_SEALS, F_GET_SEALS). */
export const SEAL = { SEAL: 1, SHRINK: 2, GROW: 4, WRITE: 8, FUTURE_WRITE: 0x10, EXEC: 0x20 } as const;
/** memfd_create(2) flags. */
export const MFD = { CLOEXEC: 1, ALLOW_SEALING: 2, HUGETLB: 4, NOEXEC_SEAL: 8, EXEC: 0x10 } as const;
/** statfs f_type of the filesystems memfds live on. */
export const FS_MAGIC = { TMPFS: 0x01021994, HUGETLBFS: 0x958458f6, SECRETMEM: 0x5345434d, ANON_INODE: 0x09041934 } as const;
export const S_IFIFO = 0o010000;
/** splice(2)/tee(2) flags. */
export const SPLICE = { NONBLOCK: 2 } as const;
export const FD_CLOEXEC = 1;
/** Unix sockets and fd passing. */
export const SOCK = {
  AF_UNIX: 1, AF_NETLINK: 16, STREAM: 1, DGRAM: 2, SEQPACKET: 5, NONBLOCK: 0o4000, CLOEXEC: 0o2000000, SOL_SOCKET: 1,
  SCM_RIGHTS: 1, SCM_CREDENTIALS: 2, SCM_SECURITY: 3, SCM_PIDFD: 0x4c,
  MSG_OOB: 1, MSG_PEEK: 2, MSG_CTRUNC: 8, MSG_TRUNC: 0x20, MSG_DONTWAIT: 0x40, MSG_NOSIGNAL: 0x4000, MSG_CMSG_CLOEXEC: 0x40000000,
  SCM_MAX_FD: 253, SHUT_RD: 0, SHUT_WR: 1, SHUT_RDWR: 2,
} as const;
/** SOL_SOCKET options (asm-generic numbers, which x86_64 uses). */
export const SO = {
  REUSEADDR: 2, TYPE: 3, ERROR: 4, DONTROUTE: 5, BROADCAST: 6, SNDBUF: 7, RCVBUF: 8, KEEPALIVE: 9, OOBINLINE: 10, PRIORITY: 12, REUSEPORT: 15, TIMESTAMP_OLD: 29, TIMESTAMPNS_OLD: 35, PASSCRED: 16, PEERCRED: 17, RCVLOWAT: 18, SNDLOWAT: 19,
  RCVTIMEO_OLD: 20, SNDTIMEO_OLD: 21, ACCEPTCONN: 30, SNDBUFFORCE: 32, RCVBUFFORCE: 33, PASSSEC: 34, MARK: 36,
  PROTOCOL: 38, DOMAIN: 39, PEEK_OFF: 42, PASSPIDFD: 76,
} as const;
/** Netlink and sock_diag (linux/netlink.h, linux/sock_diag.h, linux/unix_diag.h). */
export const NETLINK = {
  SOCK_DIAG: 4, F_REQUEST: 1, F_DUMP: 0x300, NOOP: 1, ERROR: 2, DONE: 3, SOCK_DIAG_BY_FAMILY: 20,
  UDIAG_SHOW_NAME: 1, UDIAG_SHOW_VFS: 2, UDIAG_SHOW_PEER: 4, UDIAG_SHOW_ICONS: 8, UDIAG_SHOW_RQLEN: 0x10, UDIAG_SHOW_UID: 0x40,
  UNIX_DIAG_NAME: 0, UNIX_DIAG_VFS: 1, UNIX_DIAG_PEER: 2, UNIX_DIAG_ICONS: 3, UNIX_DIAG_RQLEN: 4, UNIX_DIAG_SHUTDOWN: 6, UNIX_DIAG_UID: 7,
} as const;
/** Socket states as sock_diag reports them for unix sockets (the TCP numbers). */
export const SK_STATE = { ESTABLISHED: 1, CLOSE: 7, LISTEN: 10 } as const;
/** Address family numbers and names (linux/socket.h), to name what is refused. */
export const AF_NAMES: Record<number, string> = {
  1: 'AF_UNIX', 2: 'AF_INET', 3: 'AF_AX25', 4: 'AF_IPX', 5: 'AF_APPLETALK', 9: 'AF_X25', 10: 'AF_INET6', 16: 'AF_NETLINK',
  17: 'AF_PACKET', 21: 'AF_RDS', 24: 'AF_PPPOX', 26: 'AF_LLC', 29: 'AF_CAN', 30: 'AF_TIPC', 31: 'AF_BLUETOOTH', 38: 'AF_ALG',
  40: 'AF_VSOCK', 41: 'AF_KCM', 42: 'AF_QIPCRTR', 43: 'AF_SMC', 44: 'AF_XDP', 45: 'AF_MCTP',
};
/** pidfd_open flag: a pidfd of a thread, not only of a thread-group leader (O_EXCL). */
export const PIDFD_THREAD = 0o200;
export const KCMP = { FILE: 0, VM: 1, FILES: 2, FS: 3, SIGHAND: 4, EPOLL_TFD: 7 } as const;
/** epoll: epoll_ctl operations and the event bits (uapi eventpoll.h); poll(2) request bits. */
export const EPOLL = {
  CTL_ADD: 1, CTL_DEL: 2, CTL_MOD: 3, CLOEXEC: 0o2000000,
  IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10, NVAL: 0x20, RDNORM: 0x40, RDBAND: 0x80, WRNORM: 0x100, WRBAND: 0x200,
  MSG: 0x400, RDHUP: 0x2000, EXCLUSIVE: 0x10000000, WAKEUP: 0x20000000, ONESHOT: 0x40000000, ET: 0x80000000,
} as const;
/** The bits of an epoll registration that are its mode, not events (EP_PRIVATE_BITS): what stays of a one-shot registration once it fired. */
export const EPOLL_PRIVATE_BITS = (EPOLL.WAKEUP | EPOLL.ONESHOT | EPOLL.ET | EPOLL.EXCLUSIVE) >>> 0;
/** Every event a poll(2) can ask for (POLLIN|PRI|OUT|RDNORM|RDBAND|WRNORM|WRBAND|MSG|RDHUP; ERR and HUP are always reported). */
export const POLL_ALL = 0x1 | 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000;
/** wait4/waitid options and id types. */
export const WAIT = { NOHANG: 1, UNTRACED: 2, STOPPED: 2, NOWAIT: 0x01000000, P_PID: 1 } as const;
export const IOCTL = {
  TIOCSPGRP: 0x5410, TIOCGPGRP: 0x540f, TIOCGSID: 0x5429, TIOCSCTTY: 0x540e, TIOCNOTTY: 0x5422,
  TCGETS2: 0x802c542a, TCSETS2: 0x402c542b, TIOCGWINSZ: 0x5413, TIOCSWINSZ: 0x5414,
  TIOCGPTN: 0x80045430, TIOCSPTLCK: 0x40045431, TIOCGPTLCK: 0x80045439, TIOCGPTPEER: 0x5441,
  TIOCPKT: 0x5420, TIOCGPKT: 0x80045438, TIOCEXCL: 0x540c, TIOCNXCL: 0x540d, TIOCGEXCL: 0x80045440,
  TIOCSTI: 0x5412, TIOCGETD: 0x5424, FIONREAD: 0x541b, TFD_IOC_SET_TICKS: 0x40085400,
} as const;
/** poll(2) events. */
export const POLL = { IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10, NVAL: 0x20 } as const;
/**
 * Terminal facts (asm-generic/termbits.h): termios flag bits, the indexes of
 * c_cc, and the line discipline N_TTY.
 */
export const TERMIOS = {
  // c_iflag
  IGNBRK: 0o1, BRKINT: 0o2, IGNPAR: 0o4, PARMRK: 0o10, INPCK: 0o20, ISTRIP: 0o40, INLCR: 0o100, IGNCR: 0o200,
  ICRNL: 0o400, IUCLC: 0o1000, IXON: 0o2000, IXANY: 0o4000, IXOFF: 0o10000, IMAXBEL: 0o20000, IUTF8: 0o40000,
  // c_oflag
  OPOST: 0o1,
  // c_lflag
  ISIG: 0o1, ICANON: 0o2, XCASE: 0o4, ECHO: 0o10, ECHOE: 0o20, ECHOK: 0o40, ECHONL: 0o100, NOFLSH: 0o200,
  TOSTOP: 0o400, ECHOCTL: 0o1000, ECHOPRT: 0o2000, ECHOKE: 0o4000, FLUSHO: 0o10000, PENDIN: 0o40000,
  IEXTEN: 0o100000, EXTPROC: 0o200000,
} as const;
/** Indexes of c_cc (NCCS is 19 in the kernel's termios). */
export const VCC = {
  VINTR: 0, VQUIT: 1, VERASE: 2, VKILL: 3, VEOF: 4, VTIME: 5, VMIN: 6, VSWTC: 7, VSTART: 8, VSTOP: 9, VSUSP: 10,
  VEOL: 11, VREPRINT: 12, VDISCARD: 13, VWERASE: 14, VLNEXT: 15, VEOL2: 16,
} as const;
export const NCCS = 19;
export const N_TTY = 0;
/** The size of the line discipline's read buffer (N_TTY_BUF_SIZE): one byte of it is never used. */
export const N_TTY_BUF_SIZE = 4096;
/** eventfd2 flags. */
export const EFD = { SEMAPHORE: 1 } as const;
/** timerfd_settime flags. */
export const TFD = { TIMER_ABSTIME: 1, TIMER_CANCEL_ON_SET: 2 } as const;
/** pidfd_open flags (PIDFD_NONBLOCK is O_NONBLOCK, PIDFD_THREAD is O_EXCL). */
export const PIDFD = { NONBLOCK: 0o4000, THREAD: 0o200 } as const;
/** inotify: the mask bits a watch keeps (IN_ALL_EVENTS, IN_EXCL_UNLINK, IN_ONESHOT), and IN_IGNORED. */
export const IN = { ALL_EVENTS: 0xfff, EXCL_UNLINK: 0x04000000, ONESHOT: 0x80000000, IGNORED: 0x8000, Q_OVERFLOW: 0x4000 } as const;
/** fanotify_init and fanotify_mark values. */
export const FAN = {
  CLOEXEC: 1, NONBLOCK: 2,
  MARK_ADD: 1, MARK_DONT_FOLLOW: 4, MARK_ONLYDIR: 8, MARK_MOUNT: 0x10, MARK_IGNORED_MASK: 0x20, MARK_IGNORED_SURV_MODIFY: 0x40,
  MARK_FILESYSTEM: 0x100, MARK_EVICTABLE: 0x200, MARK_IGNORE: 0x400,
  /** The permission events: FAN_OPEN_PERM, FAN_ACCESS_PERM, FAN_OPEN_EXEC_PERM, FAN_PRE_ACCESS. */
  PERM_EVENTS: 0x10000 | 0x20000 | 0x40000 | 0x100000,
} as const;
/** userfaultfd: its ioctl requests (as bigint: the top bit is set) and values. */
export const UFFD = {
  API: 0xaa, REGISTER_MODE_MISSING: 1,
  IOC_API: 0xc018aa3fn, IOC_REGISTER: 0xc020aa00n, IOC_UNREGISTER: 0x8010aa01n, IOC_COPY: 0xc028aa03n,
} as const;

export const PR = {
  SET_PDEATHSIG: 1, GET_PDEATHSIG: 2, GET_DUMPABLE: 3, SET_DUMPABLE: 4, SET_NAME: 15, GET_NAME: 16,
  SET_SECUREBITS: 28, GET_SECUREBITS: 27, CAPBSET_READ: 23, CAPBSET_DROP: 24, SET_KEEPCAPS: 8,
  SET_MM: 35, SET_MM_MAP: 14, SET_MM_MAP_SIZE: 15, SET_CHILD_SUBREAPER: 36, GET_CHILD_SUBREAPER: 37,
  SET_NO_NEW_PRIVS: 38, GET_NO_NEW_PRIVS: 39, GET_TID_ADDRESS: 40, SET_THP_DISABLE: 41, GET_THP_DISABLE: 42,
  CAP_AMBIENT: 47, CAP_AMBIENT_RAISE: 2, CAP_AMBIENT_CLEAR_ALL: 4, SET_VMA: 0x53564d41, SET_VMA_ANON_NAME: 0,
  GET_SPECULATION_CTRL: 52, GET_SECCOMP: 21, SET_SECCOMP: 22, TIMER_CREATE_RESTORE_IDS: 77,
} as const;

/** POSIX timers: sigevent notify kinds, timer_settime flags, the clocks timer_create knows. */
export const SIGEV = { SIGNAL: 0, NONE: 1, THREAD: 2, THREAD_ID: 4 } as const;
export const TIMER_ABSTIME = 1;
export const CLOCK = { REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME_ID: 2, THREAD_CPUTIME_ID: 3, BOOTTIME: 7, REALTIME_ALARM: 8, BOOTTIME_ALARM: 9, TAI: 11 } as const;
/** si_code of a signal sent by a POSIX timer. */
export const SI_TIMER = -2;
/** seccomp(2) operations and filter flags; the filter return actions ckpt looks for. */
export const SECCOMP = {
  MODE_DISABLED: 0, MODE_STRICT: 1, MODE_FILTER: 2, SET_MODE_STRICT: 0, SET_MODE_FILTER: 1,
  FILTER_FLAG_TSYNC: 1, FILTER_FLAG_LOG: 2, FILTER_FLAG_SPEC_ALLOW: 4, FILTER_FLAG_NEW_LISTENER: 8, FILTER_FLAG_TSYNC_ESRCH: 16,
  RET_ACTION_FULL: 0xffff0000, RET_USER_NOTIF: 0x7fc00000,
} as const;
/** classic BPF: the RET instruction class and its K operand source. */
export const BPF = { CLASS_MASK: 0x07, RET: 0x06, SRC_MASK: 0x18, K: 0x00 } as const;

/** mlock2 flags. */
export const MLOCK = { ONFAULT: 1 } as const;
/** sigaltstack flags (SS_ONSTACK is a state the kernel reports, not a setting). */
export const SS = { ONSTACK: 1, DISABLE: 2, AUTODISARM: 1 << 31 } as const;
/** membarrier commands: the registrations, and the query of those made (Linux 6.3+). */
export const MEMBARRIER_CMD = {
  REGISTER_GLOBAL_EXPEDITED: 1 << 2, REGISTER_PRIVATE_EXPEDITED: 1 << 4, REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: 1 << 6,
  REGISTER_PRIVATE_EXPEDITED_RSEQ: 1 << 8, GET_REGISTRATIONS: 1 << 9,
} as const;
/** rseq flags. */
export const RSEQ_FLAG_UNREGISTER = 1;

export const ARCH = { SET_GS: 0x1001, SET_FS: 0x1002, GET_FS: 0x1003, GET_GS: 0x1004, GET_XCOMP_PERM: 0x1022, REQ_XCOMP_PERM: 0x1023 } as const;

export const CLONE = { PARENT: 0x8000, THREAD: 0x10000, VM: 0x100, FS: 0x200, FILES: 0x400, SIGHAND: 0x800, SYSVSEM: 0x40000 } as const;

export const ERESTARTSYS = 512;
export const ERESTARTNOINTR = 513;
export const ERESTARTNOHAND = 514;
export const ERESTART_RESTARTBLOCK = 516;
export const EINTR = 4;

export const E: Record<string, number> = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19, ENOTDIR: 20,
  EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29,
  EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, ENOSYS: 38, ENOTEMPTY: 39, ENOTSOCK: 88, EPROTOTYPE: 91, ENOPROTOOPT: 92,
  EIDRM: 43, ENOTSUP: 95, EADDRINUSE: 98, EADDRNOTAVAIL: 99, ECONNRESET: 104, ENOTCONN: 107, ECONNREFUSED: 111,
  ENONET: 64, EPROTO: 71, EMSGSIZE: 90, ENETUNREACH: 101, EHOSTDOWN: 112, EHOSTUNREACH: 113, ERESTARTSYS: 512,
  ERESTARTNOINTR: 513, ERESTARTNOHAND: 514, ERESTART_RESTARTBLOCK: 516,
};
const ENAMES = new Map(Object.entries(E).map(([k, v]) => [v, k]));
export function errnoName(e: number): string {
  return ENAMES.get(e) ?? `errno ${e}`;
}

export const RLIMIT = { FSIZE: 1, CORE: 4, NOFILE: 7 } as const;
export const RLIMIT_NAMES = ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS',
  'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'] as const;

export const PAGE_SIZE = 4096;
export const WALL = 0x40000000; // __WALL
export const WNOHANG = 1;

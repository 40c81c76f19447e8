// Readers for /proc/PID files.

import fs from 'node:fs';

export interface MapEntry {
  start: bigint;
  end: bigint;
  perms: string; // e.g. "rw-p"
  offset: bigint;
  dev: string;   // "fe:00"
  inode: number;
  path: string;  // '' for anonymous
  vmflags: string[];
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$/;

function parseMapLines(text: string, withFlags: boolean): MapEntry[] {
  const out: MapEntry[] = [];
  let cur: MapEntry | null = null;
  for (const line of text.split('\n')) {
    const m = HEADER.exec(line);
    if (m) {
      cur = {
        start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), perms: m[3], offset: BigInt('0x' + m[4]),
        dev: m[5], inode: Number(m[6]), path: m[7], vmflags: [],
      };
      out.push(cur);
    } else if (withFlags && cur && line.startsWith('VmFlags:')) {
      cur.vmflags = line.slice(8).trim().split(/\s+/).filter(Boolean);
    }
  }
  return out;
}

export function readSmaps(pid: number): MapEntry[] {
  return parseMapLines(fs.readFileSync(`/proc/${pid}/smaps`, 'utf8'), true);
}
export function readMaps(pid: number): MapEntry[] {
  return parseMapLines(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'), false);
}

/** /proc/PID/stat, split so that field numbers match proc(5) (field 1 = pid). */
export function readStat(pid: number): string[] {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const open = s.indexOf('(');
  const close = s.lastIndexOf(')');
  const rest = s.slice(close + 2).trim().split(' ');
  return ['', s.slice(0, open - 1), s.slice(open + 1, close), ...rest];
}

export function readStatus(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

export function listTasks(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
}

export function readChildren(pid: number, tid = pid): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch { return []; }
}

export interface FdEntry {
  fd: number;
  link: string;
  pos: bigint;
  flags: number;
  mntId: number;
  info: Map<string, string>;
  infoText: string;
}

export function readFds(pid: number): FdEntry[] {
  const out: FdEntry[] = [];
  for (const name of fs.readdirSync(`/proc/${pid}/fd`)) {
    const e = readFd(pid, Number(name));
    if (e) out.push(e); // (else closed while we looked: cannot happen once frozen)
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/** One fd of a process (null if it is not open). */
export function readFd(pid: number, fd: number): FdEntry | null {
  let link: string;
  let text: string;
  try {
    link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    text = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  } catch { return null; }
  const info = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !info.has(line.slice(0, i))) info.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return {
    fd, link, infoText: text, info,
    pos: BigInt(info.get('pos') ?? '0'),
    flags: parseInt(info.get('flags') ?? '0', 8),
    mntId: Number(info.get('mnt_id') ?? '0'),
  };
}


/** Kernel release and a few globals. */
export function kernelRelease(): string {
  return fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
}

export function pidExists(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

/** Is the thread still part of the process? */
export function taskExists(pid: number, tid: number): boolean {
  return fs.existsSync(`/proc/${pid}/task/${tid}`);
}

/** The task's state letter from /proc/PID/stat (R, S, D, T, t, Z, X...). */
export function taskState(pid: number): string {
  try { return readStat(pid)[3]; } catch { return ''; }
}

/** One registration of an epoll instance, as /proc/PID/fdinfo lists it ("tfd: N events: X data: D pos: P ino: I sdev: S"). */
export interface EpollTfdLine {
  /** The fd number the file was registered under. */
  tfd: number;
  /** Its events and mode bits (EPOLLET...), as the kernel keeps them (a one-shot one that fired keeps only the mode bits). */
  events: number;
  data: bigint;
  /** The target's inode number and the kernel's device number of its filesystem (MAJOR << 20 | MINOR). */
  ino: number;
  sdev: number;
}

/** The registrations of an epoll instance from the text of its fdinfo, in the kernel's order. */
export function parseEpollFdinfo(text: string): EpollTfdLine[] {
  const out: EpollTfdLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('tfd:')) continue;
    const m = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*-?\d+\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)/.exec(line);
    if (!m) throw new Error(`unexpected epoll fdinfo line: ${line}`);
    out.push({ tfd: Number(m[1]), events: parseInt(m[2], 16) >>> 0, data: BigInt('0x' + m[3]), ino: parseInt(m[4], 16), sdev: parseInt(m[5], 16) });
  }
  return out;
}

/** The lines of /proc/PID/fdinfo/FD (every line, also the repeated ones: inotify watches, fanotify marks). */
export function fdinfoLines(pid: number | 'self', fd: number): string[] {
  return fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').filter(Boolean);
}

/** One mount of /proc/PID/mountinfo. `dev` is the device as the kernel prints it in fdinfo (major << 20 | minor). */
export interface MountEntry { id: number; dev: number; root: string; point: string; fstype: string }

const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

export function readMountinfo(pid: number | 'self'): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    const w = line.split(' ');
    if (w.length < 10) continue;
    const [maj, min] = w[2].split(':').map(Number);
    const sep = w.indexOf('-', 6);
    out.push({ id: Number(w[0]), dev: maj * 2 ** 20 + min, root: unescapeMount(w[3]), point: unescapeMount(w[4]), fstype: sep > 0 ? w[sep + 1] : '' });
  }
  return out;
}

/** One POSIX timer as /proc/PID/timers shows it. */
export interface ProcTimer {
  id: number;
  signo: number;
  /** si_value (sival_ptr), as printed. */
  value: bigint;
  /** "signal", "none" or "thread" (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD), with `toThread` for SIGEV_THREAD_ID. */
  notify: 'signal' | 'none' | 'thread';
  toThread: boolean;
  /** The process (or, with toThread, the thread) the signal goes to. */
  target: number;
  /** The clock, as the kernel keeps it (CPU clocks encoded with their pid, 0 for the caller). */
  clock: number;
}

/** Every POSIX timer of a process (/proc/PID/timers, newest first). */
export function readPosixTimers(pid: number): ProcTimer[] {
  const text = fs.readFileSync(`/proc/${pid}/timers`, 'utf8');
  const out: ProcTimer[] = [];
  let cur: Partial<ProcTimer> | null = null;
  const bad = (line: string) => new Error(`pid ${pid}: unexpected line in /proc/${pid}/timers: ${line}`);
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^ID: (-?\d+)$/))) {
      cur = { id: Number(m[1]) };
      out.push(cur as ProcTimer);
    } else if (!cur) {
      throw bad(line);
    } else if ((m = line.match(/^signal: (-?\d+)\/(?:0x)?([0-9a-f]+)$/))) {
      cur.signo = Number(m[1]);
      cur.value = BigInt('0x' + m[2]);
    } else if ((m = line.match(/^notify: (signal|none|thread)\/(pid|tid)\.(\d+)$/))) {
      cur.notify = m[1] as ProcTimer['notify'];
      cur.toThread = m[2] === 'tid';
      cur.target = Number(m[3]);
    } else if ((m = line.match(/^ClockID: (-?\d+)$/))) {
      cur.clock = Number(m[1]);
    } else {
      throw bad(line);
    }
  }
  for (const t of out) {
    if (t.signo === undefined || t.notify === undefined || t.clock === undefined) throw new Error(`pid ${pid}: timer ${t.id} is incomplete in /proc/${pid}/timers`);
  }
  return out;
}

/** The device of a stat (user-space encoding) in the kernel's encoding, as fdinfo prints it (major << 20 | minor). */
export function kernelDev(dev: number | bigint): number {
  const d = BigInt(dev);
  const maj = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const min = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return maj * 2 ** 20 + min;
}

/**
 * One lock as /proc/locks and the `lock:` lines of /proc/PID/fdinfo/N show
 * it: "1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 0 EOF". `class` is FLOCK,
 * POSIX, OFDLCK, LEASE, DELEG, ACCESS or UNKNOWN; `state` is ADVISORY (or
 * MANDATORY, on old kernels; *NOINODE*) for locks, and ACTIVE, BREAKING or
 * BREAKER for leases; `type` READ, WRITE or UNLCK (for a lease being broken,
 * the type it is being broken to); `pid` -1 for OFD locks; `end` null for EOF.
 * `waiter`: a "->" line of /proc/locks, a request blocked on the lock above it.
 */
export interface LockLine {
  class: string; state: string; type: string; pid: number; dev: string; ino: number; start: bigint; end: bigint | null; waiter: boolean;
}
const LOCK_LINE = /^\s*\d+:\s+(->\s+)?(\S+)\s+(\S+)\s+(READ|WRITE|UNLCK)\s+(-?\d+)\s+(?:([0-9a-f]+:[0-9a-f]+):(\d+)|<none>:0)\s+(-?\d+)\s+(-?\d+|EOF)\s*$/;
export function parseLockLine(line: string): LockLine | null {
  const m = LOCK_LINE.exec(line);
  if (!m) return null;
  return {
    waiter: !!m[1], class: m[2], state: m[3], type: m[4], pid: Number(m[5]), dev: m[6] ?? '', ino: Number(m[7] ?? 0),
    start: BigInt(m[8]), end: m[9] === 'EOF' ? null : BigInt(m[9]),
  };
}
/** The `lock:` lines of /proc/PID/fdinfo/N (of a thread: /proc/PID/task/TID/fdinfo/N), raw. */
export function readFdLocks(pid: number, fd: number, tid = pid): string[] {
  const dir = tid === pid ? `/proc/${pid}` : `/proc/${pid}/task/${tid}`;
  return fs.readFileSync(`${dir}/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('lock:')).map((l) => l.slice(5).trim());
}

/**
 * The resource limits of a process, [soft, hard] each, in the kernel's order
 * (RLIMIT_CPU first), as /proc/PID/limits prints them ("unlimited" is
 * RLIM_INFINITY). Readable for any process ckpt may trace, where prlimit64
 * would need CAP_SYS_RESOURCE for a process of another uid.
 */
export function readLimits(pid: number): Array<[bigint, bigint]> {
  const INF = 0xffffffffffffffffn;
  const v = (s: string) => (s === 'unlimited' ? INF : BigInt(s));
  const rows = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').slice(1).filter(Boolean);
  return rows.map((line) => {
    const m = /^Max .+?\s{2,}(\d+|unlimited)\s+(\d+|unlimited)(\s|$)/.exec(line);
    if (!m) throw new Error(`pid ${pid}: unexpected line in /proc/${pid}/limits: ${line}`);
    return [v(m[1]), v(m[2])];
  });
}

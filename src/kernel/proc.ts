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

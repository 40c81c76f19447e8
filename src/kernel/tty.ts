// Terminal ioctls on ckpt's own fds (a pty master it opened or took from a
// process with pidfd_getfd, a slave it opened with TIOCGPTPEER): termios
// (struct termios2, with the speeds), window size, the pty's index, lock,
// packet mode, exclusive mode, its session and foreground group, input
// injection (TIOCSTI), and poll. Facts of the kernel's tty layer; what to do
// with them is decided in src/objects/pty.ts.

import fs from 'node:fs';
import { sys, syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, IOCTL, POLL, NCCS, E } from './consts.js';
import { TERMIOS2, WINSIZE, POLLFD } from './structs.js';

/** A terminal's termios, as TCGETS2 gives it. */
export interface Termios {
  iflag: number; oflag: number; cflag: number; lflag: number;
  /** c_line: the line discipline number recorded in termios */
  line: number;
  /** c_cc, NCCS (19) bytes */
  cc: number[];
  ispeed: number; ospeed: number;
}
export interface Winsize { row: number; col: number; xpixel: number; ypixel: number }

function ioctlInt(fd: number, req: number, name: string): number {
  const b = Buffer.alloc(4);
  sys(`ioctl(${name})`, NR.ioctl, fd, req, addressOf(b));
  return b.readInt32LE(0);
}
function ioctlSetInt(fd: number, req: number, v: number, name: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  sys(`ioctl(${name})`, NR.ioctl, fd, req, addressOf(b));
}

export function getTermios(fd: number): Termios {
  const b = Buffer.alloc(TERMIOS2.size);
  sys('ioctl(TCGETS2)', NR.ioctl, fd, IOCTL.TCGETS2, addressOf(b));
  const t = TERMIOS2.decode(b);
  const at = TERMIOS2.offsetOf('cc');
  return { iflag: t.iflag, oflag: t.oflag, cflag: t.cflag, lflag: t.lflag, line: t.line, cc: [...b.subarray(at, at + NCCS)], ispeed: t.ispeed, ospeed: t.ospeed };
}
/** TCSETS2: at once, without waiting for output to drain and without flushing input. */
export function setTermios(fd: number, t: Termios): void {
  if (t.cc.length !== NCCS) throw new Error(`internal: c_cc of ${t.cc.length} bytes`);
  const b = TERMIOS2.encode({ iflag: t.iflag, oflag: t.oflag, cflag: t.cflag, lflag: t.lflag, line: t.line, ispeed: t.ispeed, ospeed: t.ospeed });
  Buffer.from(t.cc).copy(b, TERMIOS2.offsetOf('cc'));
  sys('ioctl(TCSETS2)', NR.ioctl, fd, IOCTL.TCSETS2, addressOf(b));
}

export function getWinsize(fd: number): Winsize {
  const b = Buffer.alloc(WINSIZE.size);
  sys('ioctl(TIOCGWINSZ)', NR.ioctl, fd, IOCTL.TIOCGWINSZ, addressOf(b));
  return WINSIZE.decode(b);
}
export function setWinsize(fd: number, w: Winsize): void {
  sys('ioctl(TIOCSWINSZ)', NR.ioctl, fd, IOCTL.TIOCSWINSZ, addressOf(WINSIZE.encode(w)));
}

/** The index N of the pty whose master is `fd` (its slave is /dev/pts/N). */
export function ptyIndex(master: number): number { return ioctlInt(master, IOCTL.TIOCGPTN, 'TIOCGPTN'); }
export function ptyLocked(master: number): boolean { return ioctlInt(master, IOCTL.TIOCGPTLCK, 'TIOCGPTLCK') !== 0; }
export function setPtyLocked(master: number, locked: boolean): void { ioctlSetInt(master, IOCTL.TIOCSPTLCK, locked ? 1 : 0, 'TIOCSPTLCK'); }
export function packetMode(master: number): boolean { return ioctlInt(master, IOCTL.TIOCGPKT, 'TIOCGPKT') !== 0; }
export function setPacketMode(master: number, on: boolean): void { ioctlSetInt(master, IOCTL.TIOCPKT, on ? 1 : 0, 'TIOCPKT'); }
/** The exclusive bit (TIOCEXCL) of the terminal `fd` is open on (master and slave have one each). */
export function exclusive(fd: number): boolean { return ioctlInt(fd, IOCTL.TIOCGEXCL, 'TIOCGEXCL') !== 0; }
export function setExclusive(fd: number, on: boolean): void {
  sys(on ? 'ioctl(TIOCEXCL)' : 'ioctl(TIOCNXCL)', NR.ioctl, fd, on ? IOCTL.TIOCEXCL : IOCTL.TIOCNXCL, 0);
}
/** The line discipline of the terminal `fd` is open on (TIOCGETD). */
export function lineDiscipline(fd: number): number { return ioctlInt(fd, IOCTL.TIOCGETD, 'TIOCGETD'); }
/** Bytes the line discipline has ready for a read (FIONREAD; in canonical mode, complete lines only). */
export function inputQueued(fd: number): number { return ioctlInt(fd, IOCTL.FIONREAD, 'FIONREAD'); }

/** The session whose controlling terminal the pty's slave is (asked of its master), or null. */
export function ptySession(master: number): number | null {
  const b = Buffer.alloc(4);
  const r = syscallRaw(NR.ioctl, master, IOCTL.TIOCGSID, addressOf(b));
  if (r === -E.ENOTTY) return null;
  if (r < 0) throw new SysError('ioctl(TIOCGSID)', -r);
  return b.readInt32LE(0);
}
/** The foreground process group of the pty's slave (asked of its master; 0 when none). */
export function ptyForeground(master: number): number { return ioctlInt(master, IOCTL.TIOCGPGRP, 'TIOCGPGRP'); }

/** Open the slave of the pty whose master is `fd` (TIOCGPTPEER), with these open flags: a new fd of ckpt. */
export function openPeer(master: number, flags: number): number {
  return sys('ioctl(TIOCGPTPEER)', NR.ioctl, master, IOCTL.TIOCGPTPEER, flags);
}

/** Put these bytes into the terminal's input queue as if they had been typed (TIOCSTI, one each; CAP_SYS_ADMIN), processed at once by its termios. */
export function injectInput(fd: number, bytes: Buffer): void {
  const b = Buffer.alloc(1);
  const at = addressOf(b);
  for (const c of bytes) {
    b[0] = c;
    sys('ioctl(TIOCSTI)', NR.ioctl, fd, IOCTL.TIOCSTI, at);
  }
}

/** poll(2) of one fd without waiting: its revents. */
export function pollNow(fd: number, events: number): number {
  const b = POLLFD.encode({ fd, events });
  sys('poll', NR.poll, addressOf(b), 1, 0);
  return POLLFD.get(b, 'revents');
}
export { POLL };

/**
 * Read what is there from an fd without blocking (and without changing its
 * status flags, which a duplicate shares with the program): poll, then read
 * while it is readable. Stops at no data, end of file or EIO (a pty master
 * whose slave is closed).
 */
export function drainReadable(fd: number, chunk = 65536): Buffer {
  const parts: Buffer[] = [];
  for (;;) {
    const ev = pollNow(fd, POLL.IN);
    if (!(ev & POLL.IN)) break;
    const b = Buffer.alloc(chunk);
    let n: number;
    try { n = fs.readSync(fd, b, 0, chunk, null); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EIO' || code === 'EAGAIN') break;
      throw e;
    }
    if (n <= 0) break;
    parts.push(b.subarray(0, n));
  }
  return Buffer.concat(parts);
}

/** One read from a non-blocking fd: the bytes, an empty buffer for end of file, or null for nothing there (EAGAIN, EIO). */
export function readNonblocking(fd: number, chunk = 65536): Buffer | null {
  const b = Buffer.alloc(chunk);
  try {
    const n = fs.readSync(fd, b, 0, chunk, null);
    return b.subarray(0, n);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EIO') return null;
    throw e;
  }
}

// Pseudo-terminal pairs held inside the tree: a master (an fd open on
// /dev/ptmx) and its slave /dev/pts/N (opened by path or with TIOCGPTPEER),
// wherever in the tree their fds are. The master's description carries the
// pair's state: index, termios of the slave (all flags, c_cc, speeds),
// window size, lock, packet mode, exclusive bits, the owner and mode of
// /dev/pts/N, the session whose controlling terminal the slave is and its
// foreground group, and the data queued both ways. A slave whose master is
// held outside the tree is the shell job's terminal (kind `tty`, with
// --shell-job) or refused; a pty with an end held outside the tree is refused.
//
// Queued data. A tty cannot be read without consuming what it reads, so at
// dump ckpt reads both queues while the tree is frozen (the slave's input
// queue from a slave of its own, the output queue from the master) and puts
// them straight back, in order, before it goes on: with --leave-running, or
// when the dump fails, the program finds them as they were. Putting input
// back must not process it a second time (it was echoed, its erase and
// signal characters acted on, CR mapped, when it arrived): ckpt injects it
// with TIOCSTI, processed at once by a termios of its own that does nothing
// to the bytes (no echo, no signals, no mapping, no flow control), then sets
// the program's termios again. In canonical mode the line boundaries are
// kept: each complete line is put back as a line (with its terminator, or
// ended by EOF), its bytes escaped with LNEXT where they would be special,
// and the partial line last, unterminated. Output is written to the slave
// with OPOST off (it was processed when the program wrote it). Restore does
// the same into the new pair.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O, TERMIOS, VCC, NCCS, N_TTY, N_TTY_BUF_SIZE } from '../kernel/consts.js';
import { pidfdGetfd, setFl } from '../kernel/sys.js';
import { ptySlaveIndex, ptySlaveDev } from '../kernel/fdtype.js';
import * as tty from '../kernel/tty.js';
import * as remote from '../kernel/rsys.js';
import { readStat, readStatus } from '../kernel/proc.js';
import { refused, conflict, badImage } from '../errors.js';
import { fileId, u32, count, int, pid } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx, RestoreFileCtx } from './kind.js';
import { ttyKind } from './tty.js';

const u8 = int(0, 255);
const u16 = int(0, 0xffff);
/** Devpts gives indexes below 2^20 (the minor of the slave's device number). */
const ptyIndex = int(0, (1 << 20) - 1);

const TermiosDoc = z.object({
  iflag: u32, oflag: u32, cflag: u32, lflag: u32, line: u8,
  cc: z.array(u8).check(z.length(NCCS)),
  ispeed: u32, ospeed: u32,
});
type TermiosDoc = z.infer<typeof TermiosDoc>;

export const PtyPair = z.object({
  /** The slave's termios (TCGETS2): the one termios of the pair (the master's own is fixed by the kernel). */
  termios: TermiosDoc,
  winsize: z.object({ row: u16, col: u16, xpixel: u16, ypixel: u16 }),
  /** The slave is locked (TIOCSPTLCK: not unlocked with unlockpt, or locked again). */
  locked: z.boolean(),
  /** The master is in packet mode (TIOCPKT). */
  packet: z.boolean(),
  /** TIOCEXCL of each end. */
  exclusive: z.object({ master: z.boolean(), slave: z.boolean() }),
  /** A slave was opened and every slave fd was closed since: the master reads EIO and polls POLLHUP once its data is read. */
  slaveClosed: z.boolean(),
  /** Owner, group and permission bits of /dev/pts/N (grantpt, mesg). */
  owner: z.object({ uid: u32, gid: u32, mode: int(0, 0o7777) }),
  /** The slave is the controlling terminal of session `sid` (led by a process of the tree), with foreground group `foreground`; `detached`: processes of that session that gave it up (TIOCNOTTY). */
  session: z.optional(z.object({ sid: pid, foreground: pid, detached: z.array(pid) })),
  /**
   * Bytes queued for the slave to read (written to the master), in the image
   * file `data`. When `canonical`, the first `lines` are complete lines (each
   * `bytes` long, its terminator included; `eof`: ended by the EOF character,
   * which is not in the data) and what follows is the partial line; otherwise
   * `lines` is empty and the data is plain bytes.
   */
  input: z.optional(z.object({
    data: z.string(),
    canonical: z.boolean(),
    lines: z.array(z.object({ bytes: count, eof: z.boolean() })),
  })),
  /** The image file with the bytes queued for the master to read (written to the slave, and echoes). */
  output: z.optional(z.string()),
});
export type PtyPair = z.infer<typeof PtyPair>;

export const PtyFile = z.object({
  id: fileId,
  kind: z.literal('pty'),
  end: z.enum(['master', 'slave']),
  /** N of /dev/pts/N: restore gives the pair the same index. */
  index: ptyIndex,
  /** open flags of this description, without O_CLOEXEC */
  flags: u32,
  /** The pair's state: in the master's description (one per pair). */
  pair: z.optional(PtyPair),
  /** A slave whose master was closed: hung up (reads end of file, writes EIO), its name gone. Restore hangs up a new one. */
  hungUp: z.optional(z.literal(true)),
});
export type PtyFile = z.infer<typeof PtyFile>;

const T = TERMIOS;
const devPts = (n: number) => `/dev/pts/${n}`;

// ---------------------------------------------------------------- dump

interface Holders { inMasters: Array<{ pid: number; fd: number }>; inSlaves: Array<{ pid: number; fd: number }>; outMasters: number[]; outSlaves: number[] }

/** Who holds each pty, inside and outside the tree (one scan of /proc per dump, before ckpt opens any pty itself). */
function holders(ctx: DumpFileCtx): Map<number, Holders> {
  let m = ctx.state.get('pty:holders') as Map<number, Holders> | undefined;
  if (m) return m;
  m = new Map();
  let ptsDev = -1;
  try { ptsDev = fs.statSync('/dev/pts').dev; } catch { /* no devpts: no pty can be held */ }
  const get = (n: number) => { let h = m!.get(n); if (!h) { h = { inMasters: [], inSlaves: [], outMasters: [], outSlaves: [] }; m!.set(n, h); } return h; };
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const pidN = Number(p);
    const inside = ctx.treeIds.has(pidN);
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link: string;
      try { link = fs.readlinkSync(`/proc/${p}/fd/${fd}`); } catch { continue; }
      const slave = /^\/dev\/pts\/(\d+)$/.exec(link);
      if (slave) {
        // (a /dev/pts/N of another devpts instance, in a container, is another pty)
        if (!inside) { try { if (fs.statSync(`/proc/${p}/fd/${fd}`).dev !== ptsDev) continue; } catch { continue; } }
        const h = get(Number(slave[1]));
        if (inside) h.inSlaves.push({ pid: pidN, fd: Number(fd) }); else h.outSlaves.push(pidN);
      } else if (link === '/dev/ptmx' || link === '/dev/pts/ptmx') {
        let idx: string | undefined;
        try { idx = /^tty-index:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${p}/fdinfo/${fd}`, 'utf8'))?.[1]; } catch { continue; }
        if (idx === undefined) continue;
        const h = get(Number(idx));
        if (inside) h.inMasters.push({ pid: pidN, fd: Number(fd) }); else h.outMasters.push(pidN);
      }
    }
  }
  ctx.state.set('pty:holders', m);
  return m;
}

/** The flags that make the line discipline change input bytes or act on them (echo, signals, mapping, flow control). */
const INPUT_IFLAGS = T.ISTRIP | T.IUCLC | T.IGNCR | T.ICRNL | T.INLCR | T.IXON | T.IXOFF | T.PARMRK | T.IMAXBEL;
const INPUT_LFLAGS = T.ECHO | T.ECHOE | T.ECHOK | T.ECHONL | T.ECHOCTL | T.ECHOPRT | T.ECHOKE | T.ISIG | T.XCASE | T.FLUSHO | T.PENDIN;
/** The special characters of c_cc (VTIME, VMIN and VSWTC are not). */
const SPECIALS = [VCC.VINTR, VCC.VQUIT, VCC.VERASE, VCC.VKILL, VCC.VEOF, VCC.VSTART, VCC.VSTOP, VCC.VSUSP, VCC.VEOL, VCC.VREPRINT, VCC.VDISCARD, VCC.VWERASE, VCC.VLNEXT, VCC.VEOL2];

/** The line discipline reads canonically (ICANON without EXTPROC: with EXTPROC, the line editing is done elsewhere). */
const isCanonical = (t: TermiosDoc) => (t.lflag & T.ICANON) !== 0 && (t.lflag & T.EXTPROC) === 0;
/** Input put through this termios comes out unchanged: what the kernel calls a raw line discipline. */
const isTransparent = (t: TermiosDoc) => !isCanonical(t) && (t.iflag & INPUT_IFLAGS & ~(T.IXOFF | T.IMAXBEL)) === 0 && (t.lflag & (T.ECHO | T.ISIG)) === 0;

/** Is this byte a line terminator of termios t (newline, VEOL, VEOL2 with IEXTEN)? */
function isTerminator(t: TermiosDoc, c: number): boolean {
  if (c === 0x0a) return true;
  if (t.cc[VCC.VEOL] && c === t.cc[VCC.VEOL]) return true;
  return (t.lflag & T.IEXTEN) !== 0 && t.cc[VCC.VEOL2] !== 0 && c === t.cc[VCC.VEOL2];
}

interface Queues { input: Buffer; canonical: boolean; lines: Array<{ bytes: number; eof: boolean }>; output: Buffer }

/**
 * Read both queues of the pair (master `m`, ckpt's own slave `s`, non-blocking).
 * Changes the slave's termios on the way (the caller puts it back).
 */
function readQueues(m: number, s: number, t: TermiosDoc): Queues {
  const canonical = isCanonical(t);
  const lines: Queues['lines'] = [];
  const parts: Buffer[] = [];
  if (canonical) {
    // Complete lines, one read each (in the program's termios: what is still
    // in the flip buffers is processed as it would have been).
    for (let i = 0; i < 100000; i++) {
      const r = tty.readNonblocking(s, 2 * N_TTY_BUF_SIZE);
      if (r === null) break;
      const term = r.length > 0 && isTerminator(t, r[r.length - 1]);
      lines.push({ bytes: r.length, eof: !term });
      parts.push(r);
    }
    // The partial line becomes readable once ICANON is off.
    tty.setTermios(s, { ...t, lflag: t.lflag & ~T.ICANON });
  }
  for (let i = 0; i < 100000; i++) {
    const r = tty.readNonblocking(s, 2 * N_TTY_BUF_SIZE);
    if (r === null || r.length === 0) break;
    parts.push(r);
  }
  // Output: the master's reads (not in packet mode: the caller turned it off).
  const output = tty.drainReadable(m);
  return { input: Buffer.concat(parts), canonical, lines, output };
}

/** A copy of termios t in which input is taken as it comes (see the head of this file), canonical or not as t is. */
function quietTermios(t: TermiosDoc, canonical: boolean): TermiosDoc {
  const q = { ...t, cc: [...t.cc] };
  q.iflag &= ~INPUT_IFLAGS;
  q.lflag &= ~INPUT_LFLAGS;
  q.oflag &= ~T.OPOST;
  if (canonical) {
    q.lflag = (q.lflag | T.ICANON | T.IEXTEN) & ~T.EXTPROC;
    for (const i of SPECIALS) q.cc[i] = 0;
  }
  return q;
}

/**
 * Put the queues into the pair (master `m`, ckpt's slave `s`), through TIOCSTI
 * for input and a write to the slave for output, then set termios `t`.
 * Refuses input the line discipline cannot hold again in the mode it is in.
 */
function putQueues(m: number, s: number, t: TermiosDoc, q: Queues, where: string): void {
  let tooMuch = '';
  try {
    if (q.input.length) {
      if (q.canonical) {
        // Line by line: each with a termios in which only its terminator (and LNEXT, to escape bytes that would be special) acts.
        const base = quietTermios(t, true);
        let at = 0;
        const put = (body: Buffer, term: number | 'eof' | null) => {
          const c = { ...base, cc: [...base.cc] };
          const termChar = term === 'eof' ? 0x04 : term;
          const lnext = [0x16, 0x17, 0x18].find((x) => x !== termChar)!;
          c.cc[VCC.VLNEXT] = lnext;
          if (term === 'eof') c.cc[VCC.VEOF] = 0x04;
          else if (term !== null && term !== 0x0a) c.cc[VCC.VEOL] = term;
          tty.setTermios(s, c);
          const special = (b: number) => b === 0x0a || b === lnext || (termChar !== null && b === termChar);
          const esc: number[] = [];
          for (const b of body) { if (special(b)) esc.push(lnext); esc.push(b); }
          if (termChar !== null) esc.push(termChar);
          tty.injectInput(s, Buffer.from(esc));
        };
        for (const l of q.lines) {
          const line = q.input.subarray(at, at + l.bytes);
          at += l.bytes;
          if (l.eof) put(line, 'eof');
          else put(line.subarray(0, line.length - 1), line[line.length - 1]);
        }
        if (at < q.input.length) put(q.input.subarray(at), null);
        if (q.input.length > N_TTY_BUF_SIZE - 1) tooMuch = `${q.input.length} bytes queued for the slave in canonical mode; the line discipline holds ${N_TTY_BUF_SIZE - 1}`;
      } else {
        tty.setTermios(s, quietTermios(t, false));
        const first = q.input.subarray(0, N_TTY_BUF_SIZE - 1);
        tty.injectInput(s, first);
        // More than the line discipline holds waited in the flip buffers: written to the master, it will be processed as it is read,
        // with the program's termios: right only if that leaves bytes as they are.
        const rest = q.input.subarray(first.length);
        if (rest.length) {
          writeAll(m, rest, `${where}: the input queue`);
          if (!isTransparent(t)) tooMuch = `${q.input.length} bytes queued for the slave, more than the line discipline holds (${N_TTY_BUF_SIZE - 1}), in a mode that processes input`;
        }
      }
    }
    if (q.output.length) {
      if (!q.input.length) tty.setTermios(s, { ...t, oflag: t.oflag & ~T.OPOST });
      writeAll(s, q.output, `${where}: the output queue`);
    }
  } finally {
    tty.setTermios(s, t);
  }
  if (tooMuch) throw refused(`${where}: ${tooMuch}; not supported`);
}

/** Write all of `data` to a non-blocking fd, waiting a little while the pty moves data on (at most 10 s). */
function writeAll(fd: number, data: Buffer, what: string): void {
  let at = 0;
  const end = Date.now() + 10000;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (at < data.length) {
    try { at += fs.writeSync(fd, data, at, data.length - at); continue; } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
    if (Date.now() > end) throw new Error(`${what}: only ${at} of ${data.length} bytes could be put back`);
    Atomics.wait(nap, 0, 0, 2);
  }
}

interface Captured { pair: PtyPair }

/** The pair's state, captured once per pty (its queues read and put back at once). */
function capturePair(index: number, f: FdFacts, ctx: DumpFileCtx): PtyPair {
  const pairs = (ctx.state.get('pty:pairs') ?? new Map()) as Map<number, Captured>;
  ctx.state.set('pty:pairs', pairs);
  const done = pairs.get(index);
  if (done) return done.pair;
  const name = devPts(index);
  const where = `pid ${f.pid}: fd ${f.fd} (${f.link}, the pty ${name})`;
  const h = holders(ctx).get(index);
  if (!h || !h.inMasters.length) throw refused(`${where}: no process of the tree holds its master`);
  if (h.outMasters.length) throw refused(`${where}: its master is also held by pid ${h.outMasters[0]}, outside the tree; a pty with an end outside the tree is not supported`);
  if (h.outSlaves.length) throw refused(`${where}: its slave is also held by pid ${h.outSlaves[0]}, outside the tree; a pty with an end outside the tree is not supported`);
  const m = pidfdGetfd(h.inMasters[0].pid, h.inMasters[0].fd);
  let pair: PtyPair;
  try {
    if (tty.ptyIndex(m) !== index) throw refused(`${where}: the master's index changed while ckpt looked at it`);
    if (tty.lineDiscipline(m) !== N_TTY) throw refused(`${where}: the master has line discipline ${tty.lineDiscipline(m)}; only N_TTY is supported`);
    const locked = tty.ptyLocked(m);
    const packet = tty.packetMode(m);
    const ev = tty.pollNow(m, tty.POLL.IN | tty.POLL.PRI);
    if (packet && (ev & tty.POLL.PRI)) {
      throw refused(`${where}: the master is in packet mode with a control status byte not yet read (TIOCPKT_FLUSHREAD, STOP, ...); it cannot be made again: dump once the program has read it`);
    }
    const slaveClosed = (ev & tty.POLL.HUP) !== 0;
    if (!h.inSlaves.length && !slaveClosed) {
      throw refused(`${where}: its slave has never been opened; ckpt cannot read what is queued for it without opening it, which the master would see as a hang-up: dump once the slave is open`);
    }
    const t = tty.getTermios(m) as TermiosDoc;
    const winsize = tty.getWinsize(m);
    const st = fs.statSync(name);
    const sid = tty.ptySession(m);
    const fg = sid === null ? 0 : tty.ptyForeground(m);
    const exclM = tty.exclusive(m);
    // A slave of ckpt's own (a new description; the program's status flags are not touched).
    if (locked) tty.setPtyLocked(m, false);
    let s: number;
    try { s = tty.openPeer(m, O.RDWR | O.NOCTTY | O.NONBLOCK | O.CLOEXEC); } finally { if (locked) tty.setPtyLocked(m, true); }
    let q: Queues;
    let exclS: boolean;
    try {
      exclS = tty.exclusive(s);
      // Output stopped by flow control (^S, tcflow TCOOFF) is not made again: refused, before anything is changed. A slave
      // that cannot be written because the master has not read its output is not stopped: then the master's line
      // discipline holds all it can (FIONREAD on the master, N_TTY_BUF_SIZE - 1), and the rest waits in the flip buffers.
      if (!(tty.pollNow(s, tty.POLL.OUT) & tty.POLL.OUT) && tty.inputQueued(m) < N_TTY_BUF_SIZE - 1) {
        throw refused(`${where}: its output is stopped (^S with IXON, or tcflow TCOOFF); not supported: dump once it is started again`);
      }
      if (tty.lineDiscipline(s) !== N_TTY) throw refused(`${where}: the slave has line discipline ${tty.lineDiscipline(s)}; only N_TTY is supported`);
      // Packet mode off while ckpt works: its own termios changes would otherwise queue status bytes for the program.
      if (packet) tty.setPacketMode(m, false);
      try {
        try { q = readQueues(m, s, t); } catch (e) { tty.setTermios(s, t); throw e; }
        // With both queues read, only flow control keeps either end from being written.
        const stopped = !(tty.pollNow(s, tty.POLL.OUT) & tty.POLL.OUT) ? 'its output is stopped (^S with IXON, or tcflow TCOOFF)'
          : !(tty.pollNow(m, tty.POLL.OUT) & tty.POLL.OUT) ? 'its master is stopped (tcflow TCOOFF on the master)' : '';
        putQueues(m, s, t, q, where);
        if (stopped) throw refused(`${where}: ${stopped}; not supported`);
      } finally {
        if (packet) tty.setPacketMode(m, true);
      }
    } finally { fs.closeSync(s); }
    pair = {
      termios: t, winsize, locked, packet, exclusive: { master: exclM, slave: exclS }, slaveClosed,
      owner: { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 },
    };
    if (sid !== null) pair.session = sessionOf(index, sid, fg, where, ctx);
    if (q.input.length) pair.input = { data: ctx.writeData(`pty-${index}-in`, q.input), canonical: q.canonical, lines: q.lines };
    if (q.output.length) pair.output = ctx.writeData(`pty-${index}-out`, q.output);
  } finally { fs.closeSync(m); }
  pairs.set(index, { pair });
  return pair;
}

/** The session whose controlling terminal the slave is: its leader, foreground group and the members that gave it up must all be in the tree. */
function sessionOf(index: number, sid: number, fg: number, where: string, ctx: DumpFileCtx): NonNullable<PtyPair['session']> {
  if (!ctx.treeIds.has(sid)) throw refused(`${where}: it is the controlling terminal of session ${sid}, whose leader is outside the tree`);
  const dev = ptySlaveDev(index);
  const detached: number[] = [];
  let fgFound = false;
  for (const id of ctx.treeIds) {
    let st: string[];
    try {
      if (Number(readStatus(id).get('Tgid')) !== id) continue; // (a thread: its process is listed too)
      st = readStat(id);
    } catch { continue; }
    if (Number(st[5]) === fg) fgFound = true;
    if (Number(st[6]) !== sid || st[3] === 'Z') continue;
    const ttyNr = Number(st[7]);
    if (ttyNr === 0) detached.push(id);
    else if (ttyNr !== dev) throw refused(`pid ${id}: in session ${sid}, whose controlling terminal is ${devPts(index)}, it has another one (device ${ttyNr})`);
  }
  if (!fgFound) throw refused(`${where}: its foreground process group ${fg} has no process in the tree (it has ended, or is outside the tree); dump once the program has set another`);
  return { sid, foreground: fg, detached: detached.sort((a, b) => a - b) };
}

function dumpPty(f: FdFacts, ctx: DumpFileCtx): Omit<PtyFile, 'id'> {
  const flags = f.flags & ~O.CLOEXEC;
  if (f.object.type === 'ptmx') {
    if (f.link !== '/dev/ptmx' && f.link !== '/dev/pts/ptmx') {
      throw refused(`pid ${f.pid}: fd ${f.fd} is the master of a pty of another devpts instance (${f.link}); only the host's /dev/pts is supported`);
    }
    const idx = f.info.get('tty-index');
    if (idx === undefined || !/^\d+$/.test(idx)) throw refused(`pid ${f.pid}: fd ${f.fd} (${f.link}): this kernel does not tell the pty's index (tty-index in fdinfo)`);
    const index = Number(idx);
    return { kind: 'pty', end: 'master', index, flags, pair: capturePair(index, f, ctx) };
  }
  const index = ptySlaveIndex(f.st)!;
  const h = holders(ctx).get(index);
  // (a slave whose name is deleted is hung up, even if a new pty has its index by now)
  if (f.link.endsWith(' (deleted)') || !h?.inMasters.length) {
    if (f.link.endsWith(' (deleted)') || !h?.outMasters.length) {
      // The master was closed: the kernel hung the slave up. Nothing of it is left but its open flags.
      const dup = pidfdGetfd(f.pid, f.fd);
      let ev: number;
      try { ev = tty.pollNow(dup, tty.POLL.IN); } finally { fs.closeSync(dup); }
      if (!(ev & tty.POLL.HUP) || !(ev & tty.POLL.ERR)) {
        throw refused(`pid ${f.pid}: fd ${f.fd} (${f.link}) is the slave of a pty whose master no process holds, but it is not hung up`);
      }
      return { kind: 'pty', end: 'slave', index, flags, hungUp: true };
    }
    // The master is outside the tree: a terminal the program was given (a shell job's, with --shell-job).
    if (!ctx.shellJob) {
      throw refused(`pid ${f.pid}: fd ${f.fd} is the terminal ${f.link}, whose master pid ${h.outMasters[0]} holds outside the tree; dump with --shell-job to let restore hand it the caller's terminal`);
    }
    return ttyKind.dump(f, ctx) as unknown as Omit<PtyFile, 'id'>;
  }
  let ptsDev: number;
  try { ptsDev = fs.statSync('/dev/pts').dev; } catch { ptsDev = -1; }
  if (f.st.dev !== ptsDev || f.link !== devPts(index)) {
    throw refused(`pid ${f.pid}: fd ${f.fd} (${f.link}) is the slave of a pty of another devpts instance; only the host's /dev/pts is supported`);
  }
  capturePair(index, f, ctx);
  return { kind: 'pty', end: 'slave', index, flags };
}

// ---------------------------------------------------------------- restore

/** A pair made on restore: ckpt's master and (when the pair needs one) ckpt's own slave; whether the master was handed out. */
interface Made { master: number; slave: number; given: boolean; pair: PtyPair }

function made(ctx: RestoreFileCtx): Map<number, Made> {
  let m = ctx.state.get('pty') as Map<number, Made> | undefined;
  if (!m) { m = new Map(); ctx.state.set('pty', m); }
  return m;
}

/** Who holds pty `index` on this host, for a message: " (by pid P, comm)" or "". */
function heldBy(index: number): string {
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        const l = fs.readlinkSync(`/proc/${p}/fd/${fd}`);
        const mine = l === devPts(index) || ((l === '/dev/ptmx' || l === '/dev/pts/ptmx') && new RegExp(`^tty-index:\\s*${index}$`, 'm').test(fs.readFileSync(`/proc/${p}/fdinfo/${fd}`, 'utf8')));
        if (mine) return ` (by pid ${p}, ${fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim()})`;
      } catch { /* gone */ }
    }
  }
  return '';
}

/** Open /dev/ptmx until the pty with this index is ours (devpts gives the lowest free index); the ones below it are held in `extras`. */
function allocate(index: number, accmode: number, extras: number[]): number {
  for (;;) {
    const fd = fs.openSync('/dev/ptmx', accmode | O.NOCTTY | O.CLOEXEC);
    let n: number;
    try { n = tty.ptyIndex(fd); } catch (e) { fs.closeSync(fd); throw e; }
    if (n === index) return fd;
    if (n < index && extras.length < 65536) { extras.push(fd); continue; }
    fs.closeSync(fd);
    throw conflict(`the pty ${devPts(index)} is in use on this host${heldBy(index)}; the program knows its slave by that name (ttyname, ptsname), so it must get it back`);
  }
}

/** Make each pair of the image, with its state and queues (before any task exists: a slave may be a session's controlling terminal). */
function preparePairs(descs: PtyFile[], ctx: RestoreFileCtx): void {
  const masters = descs.filter((d) => d.end === 'master').sort((a, b) => a.index - b.index);
  const pairs = made(ctx);
  const extras: number[] = [];
  try {
    for (const d of masters) {
      if (pairs.has(d.index)) throw badImage(`image file files.json: open file ${d.id}: a second master of the pty ${devPts(d.index)}`);
      const p = d.pair!;
      const m = allocate(d.index, d.flags & O.ACCMODE, extras);
      const entry: Made = { master: m, slave: -1, given: false, pair: p };
      pairs.set(d.index, entry);
      ctx.onDone(() => {
        try { if (p.locked) tty.setPtyLocked(m, true); } finally {
          if (entry.slave >= 0) fs.closeSync(entry.slave);
          fs.closeSync(m);
        }
      });
      const w = p.winsize;
      // (now, before the slave has a session: a change of size sends SIGWINCH to its foreground group)
      if (w.row || w.col || w.xpixel || w.ypixel) tty.setWinsize(m, w);
      tty.setPtyLocked(m, false); // (locked again once every fd is installed)
      fs.chownSync(devPts(d.index), p.owner.uid, p.owner.gid);
      fs.chmodSync(devPts(d.index), p.owner.mode);
      const slaves = descs.some((x) => x.end === 'slave' && x.index === d.index);
      const where = `open file ${d.id} (${devPts(d.index)})`;
      if (slaves || p.slaveClosed) {
        // ckpt's own slave, kept until every fd is installed: closing it then marks the slave closed if no process holds one.
        entry.slave = tty.openPeer(m, O.RDWR | O.NOCTTY | O.NONBLOCK | O.CLOEXEC);
        const t = p.termios;
        const input = p.input ? ctx.readData(p.input.data) : Buffer.alloc(0);
        const output = p.output ? ctx.readData(p.output) : Buffer.alloc(0);
        if (p.input) {
          const sum = p.input.lines.reduce((s, l) => s + l.bytes, 0);
          if (sum > input.length || (!p.input.canonical && p.input.lines.length)) throw badImage(`image file files.json: ${where}: its input lines do not match ${p.input.data}`);
        }
        putQueues(m, entry.slave, t, { input, canonical: p.input?.canonical ?? isCanonical(t), lines: p.input?.lines ?? [], output }, where);
        if (p.exclusive.slave) tty.setExclusive(entry.slave, true);
      } else {
        // The slave was never opened: nothing can be queued (dump refuses otherwise), and opening one would show the master a hang-up later.
        if (p.input || p.output) throw badImage(`image file files.json: ${where}: data queued in a pty whose slave was never opened`);
        tty.setTermios(m, p.termios);
      }
      if (p.exclusive.master) tty.setExclusive(m, true);
      if (p.packet) tty.setPacketMode(m, true);
    }
  } finally {
    for (const fd of extras) fs.closeSync(fd);
  }
}

export const ptyKind = defineKind<PtyFile>({
  kind: 'pty',
  schema: PtyFile,
  takes: (f) => f.object.type === 'ptmx' || (f.object.type === 'tty' && ptySlaveIndex(f.st) !== null),
  dump: dumpPty,
  describe(d) {
    if (d.end === 'slave') return d.hungUp ? `pty slave ${devPts(d.index)}, hung up (its master was closed)` : `pty slave ${devPts(d.index)}`;
    const p = d.pair;
    const bits = [p?.locked ? 'locked' : '', p?.packet ? 'packet mode' : '', p?.session ? `controlling terminal of session ${p.session.sid}` : '',
      p?.input ? 'input queued' : '', p?.output ? 'output queued' : ''].filter(Boolean);
    return `pty master of ${devPts(d.index)}${bits.length ? ` (${bits.join(', ')})` : ''}`;
  },
  check(d, ctx) {
    if (d.end === 'slave') return;
    if (!d.pair) throw badImage(`image file files.json: open file ${d.id}: the master of ${devPts(d.index)} has no pair state`);
    for (const f of [d.pair.input?.data, d.pair.output]) {
      if (f && !ctx.hasFile(f)) throw badImage(`image file files.json: open file ${d.id}: its data file ${f} is not in the manifest`);
    }
    if (fs.existsSync(devPts(d.index))) {
      throw conflict(`the pty ${devPts(d.index)} is in use on this host${heldBy(d.index)}; pid ${ctx.holder} knows its slave by that name (ttyname, ptsname), so it must get it back`);
    }
  },
  phase: 'objects',
  prepare: preparePairs,
  processMade(descs, rt, p, leads) {
    for (const d of descs) {
      const s = d.pair?.session;
      if (!s) continue;
      if (s.sid === p.pid) {
        if (!leads) throw conflict(`pid ${p.pid} leads the session whose controlling terminal is ${devPts(d.index)}, but it is kept in ckpt's session (--shell-job); restore it without --shell-job`);
        // (opened by path: the pair exists and is unlocked; without O_NOCTTY the open alone would do it, but explicitly is clearer)
        const fd = remote.openat(rt, devPts(d.index), O.RDWR | O.NOCTTY | O.CLOEXEC);
        try { remote.ioctlTiocsctty(rt, fd, devPts(d.index)); } finally { remote.closeQuietly(rt, fd); }
      } else if (p.sid === s.sid && s.detached.includes(p.pid)) {
        const fd = remote.openat(rt, '/dev/tty', O.RDWR | O.NOCTTY | O.CLOEXEC);
        try { remote.ioctlTiocnotty(rt, fd, '/dev/tty'); } finally { remote.closeQuietly(rt, fd); }
      }
    }
  },
  groupsMade(descs, tasks) {
    for (const d of descs) {
      const s = d.pair?.session;
      if (!s) continue;
      const leader = tasks.get(s.sid);
      if (!leader) throw badImage(`image file files.json: open file ${d.id}: session ${s.sid}, whose terminal ${devPts(d.index)} is, has no process in the image`);
      const fd = remote.openat(leader, devPts(d.index), O.RDWR | O.NOCTTY | O.CLOEXEC);
      try { remote.ioctlTiocspgrp(leader, fd, s.foreground); } finally { remote.closeQuietly(leader, fd); }
    }
  },
  create(d, _holder, ctx) {
    if (d.hungUp) {
      // A new pair (any index: the old name is gone), its slave opened, its master closed: the slave is hung up.
      const m = fs.openSync('/dev/ptmx', O.RDWR | O.NOCTTY | O.CLOEXEC);
      let fd: number;
      try {
        tty.setPtyLocked(m, false);
        fd = tty.openPeer(m, (d.flags & (O.ACCMODE | O.NONBLOCK)) | O.NOCTTY | O.CLOEXEC);
      } finally { fs.closeSync(m); }
      setFl(fd, d.flags);
      return { local: fd, closeAfter: true };
    }
    const pair = made(ctx).get(d.index);
    if (!pair) throw badImage(`image file files.json: open file ${d.id} is the slave of ${devPts(d.index)}, which has no master in the image`);
    if (d.end === 'master') {
      if (pair.given) throw badImage(`image file files.json: open file ${d.id}: a second master of ${devPts(d.index)}`);
      pair.given = true;
      setFl(pair.master, d.flags);
      return { local: pair.master, closeAfter: false };
    }
    const fd = tty.openPeer(pair.master, (d.flags & (O.ACCMODE | O.NONBLOCK)) | O.NOCTTY | O.CLOEXEC);
    setFl(fd, d.flags);
    return { local: fd, closeAfter: true };
  },
});

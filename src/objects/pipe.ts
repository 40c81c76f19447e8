// Pipes. Each pipe is made once on restore, in ckpt (pipe2), with its
// capacity and the data that was buffered in it, and its ends are handed to
// every fd that held them. The data is read at dump without consuming it
// (tee into a pipe of ckpt's) from a copy of a read end the tree holds
// (pidfd_getfd: the same open file, so no new reader comes and goes, which
// would wake the pipe's waiters), so a dump with --leave-running leaves it in
// place. Every end of the pipe must be held in the tree: a pipe whose other
// end a process outside the tree holds is refused (its peer would be lost).

import fs from 'node:fs';
import * as z from 'zod/mini';
import { O } from '../kernel/consts.js';
import { pipe2, pipeSize, setPipeSize, peekPipe, setFl, pidfdGetfd } from '../kernel/sys.js';
import { refused, conflict, badImage } from '../errors.js';
import { fileId, u32, count, int } from '../image/schema.js';
import { defineKind, FdFacts, DumpFileCtx } from './kind.js';

export const PipeFile = z.object({
  id: fileId,
  kind: z.literal('pipe'),
  /** The pipe's inode number at dump: descriptions with the same one are ends of one pipe. */
  pipe: count,
  end: z.enum(['read', 'write']),
  /** status flags of this description (O_NONBLOCK...), without O_CLOEXEC */
  flags: u32,
  /** The pipe's capacity in bytes (F_GETPIPE_SZ). */
  size: int(4096, 2 ** 31),
  /** The ends the tree holds: an end no process held is closed after restore made the pipe. */
  ends: z.array(z.enum(['read', 'write'])).check(z.minLength(1)),
  /** The image file holding the data buffered in the pipe, when there was some. */
  data: z.optional(z.string()),
});
export type PipeFile = z.infer<typeof PipeFile>;

/** A pipe met at dump: its capacity, an fd of the tree on its read end, and one on any end. */
interface DumpedPipe { size: number; read?: { pid: number; fd: number }; any: { pid: number; fd: number } }

/** Pipes held outside the tree: pipe inode -> a PID outside the tree that holds it (one scan of /proc per dump). */
function outsideHolders(ctx: DumpFileCtx): Map<number, number> {
  let m = ctx.state.get('pipe:outside') as Map<number, number> | undefined;
  if (m) return m;
  m = new Map();
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || ctx.treeIds.has(Number(p))) continue;
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link: string;
      if (ctx.isOwnCopy(Number(p), Number(fd))) continue; // (a pipe in flight in a socket's queue, which ckpt looks at)
      try { link = fs.readlinkSync(`/proc/${p}/fd/${fd}`); } catch { continue; }
      const mm = /^pipe:\[(\d+)\]$/.exec(link);
      if (mm && !m.has(Number(mm[1]))) m.set(Number(mm[1]), Number(p));
    }
  }
  ctx.state.set('pipe:outside', m);
  return m;
}

function dumpPipe(f: FdFacts, ctx: DumpFileCtx): Omit<PipeFile, 'id'> {
  const ino = f.st.ino;
  const where = `pid ${f.pid}: fd ${f.fd} (${f.link})`;
  const outside = outsideHolders(ctx).get(ino);
  if (outside !== undefined) {
    throw refused(`${where}: the pipe is also held by pid ${outside}, outside the tree; pipes to processes outside the tree are not supported yet`);
  }
  const pipes = (ctx.state.get('pipe') ?? new Map()) as Map<number, DumpedPipe>;
  ctx.state.set('pipe', pipes);
  const end = (f.flags & O.ACCMODE) === O.WRONLY ? 'write' : 'read';
  let p = pipes.get(ino);
  if (!p) {
    const dup = pidfdGetfd(f.pid, f.fd);
    try { p = { size: pipeSize(dup), any: { pid: f.pid, fd: f.fd } }; } finally { fs.closeSync(dup); }
    pipes.set(ino, p);
  }
  if (end === 'read' && !p.read) p.read = { pid: f.pid, fd: f.fd };
  // (`ends` and `data` are filled in by finish(), once every end the tree holds is known)
  return { kind: 'pipe', pipe: ino, end, flags: f.flags & ~(O.CLOEXEC | O.ACCMODE), size: p.size, ends: [end] };
}

/**
 * The data buffered in a pipe, read without consuming it: from a copy of a
 * read end of the tree; with none (no reader is left, so none will read it
 * but through /proc), from a read end of ckpt's own opened through
 * /proc/PID/fd of a write end.
 */
function readPipeData(ino: number, p: DumpedPipe, direct: boolean, ctx: DumpFileCtx): string | undefined {
  const where = `pid ${p.any.pid}: fd ${p.any.fd} (pipe:[${ino}])`;
  const r = p.read ? pidfdGetfd(p.read.pid, p.read.fd) : fs.openSync(`/proc/${p.any.pid}/fd/${p.any.fd}`, O.RDONLY | O.NONBLOCK | O.CLOEXEC);
  try {
    const bytes = peekPipe(r, p.size);
    if (!bytes.length) return undefined;
    if (direct) throw refused(`${where}: a packet-mode pipe (O_DIRECT) with data queued; its packet boundaries are not kept yet`);
    return ctx.writeData(`pipe-${ino}`, bytes);
  } finally { fs.closeSync(r); }
}

/** Every description of a pipe lists all the ends the tree holds, and the pipe's data. */
function finishPipes(descs: PipeFile[], ctx: DumpFileCtx): void {
  const ends = new Map<number, Set<'read' | 'write'>>();
  for (const d of descs) ends.set(d.pipe, (ends.get(d.pipe) ?? new Set()).add(d.end));
  const pipes = (ctx.state.get('pipe') ?? new Map()) as Map<number, DumpedPipe>;
  const data = new Map<number, string | undefined>();
  for (const [ino, p] of pipes) data.set(ino, readPipeData(ino, p, descs.some((d) => d.pipe === ino && (d.flags & O.DIRECT) !== 0), ctx));
  for (const d of descs) {
    d.ends = [...ends.get(d.pipe)!].sort();
    const file = data.get(d.pipe);
    if (file) d.data = file;
  }
}

/** A pipe made on restore: its ends, open in ckpt (-1 once closed), and whether each was handed out already. */
interface MadePipe { fds: Record<'read' | 'write', number>; given: Record<'read' | 'write', boolean> }

export const pipeKind = defineKind<PipeFile>({
  kind: 'pipe',
  schema: PipeFile,
  takes: (f) => f.object.type === 'pipe',
  dump: dumpPipe,
  finish: finishPipes,
  describe: (p) => `pipe ${p.pipe} ${p.end} end${p.data ? ', with data' : ''}, capacity ${p.size}`,
  check(p, ctx) {
    if (p.data && !ctx.hasFile(p.data)) throw badImage(`image file files.json: open file ${p.id}: its data file ${p.data} is not in the manifest`);
  },
  phase: 'objects',
  create(p, _holder, ctx) {
    const pipes = (ctx.state.get('pipe') ?? new Map()) as Map<number, MadePipe>;
    ctx.state.set('pipe', pipes);
    let made = pipes.get(p.pipe);
    if (!made) {
      const [r, w] = pipe2(O.CLOEXEC | (p.flags & O.DIRECT));
      made = { fds: { read: r, write: w }, given: { read: false, write: false } };
      pipes.set(p.pipe, made);
      const m = made;
      ctx.onDone(() => { for (const e of ['read', 'write'] as const) if (m.fds[e] >= 0) fs.closeSync(m.fds[e]); });
      if (pipeSize(w) !== p.size) {
        const got = setPipeSize(w, p.size);
        if (got < 0) {
          const max = fs.readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim();
          throw conflict(`open file ${p.id}: the pipe had a capacity of ${p.size} bytes; this host refuses it (errno ${-got}; fs.pipe-max-size is ${max})`);
        }
      }
      if (p.data) {
        const data = ctx.readData(p.data);
        if (data.length > p.size) throw badImage(`image file ${p.data}: ${data.length} bytes of data for a pipe of ${p.size}`);
        let at = 0;
        while (at < data.length) at += fs.writeSync(w, data, at, data.length - at);
      }
      // An end no process of the tree held is closed: readers see the end of the data, writers EPIPE.
      for (const e of ['read', 'write'] as const) {
        if (!p.ends.includes(e)) { fs.closeSync(m.fds[e]); m.fds[e] = -1; }
      }
    }
    const fd = made.fds[p.end];
    if (fd < 0) throw badImage(`image file files.json: open file ${p.id} is the ${p.end} end of pipe ${p.pipe}, which its other descriptions say no process held`);
    if (!made.given[p.end]) {
      made.given[p.end] = true;
      setFl(fd, p.flags & ~O.DIRECT);
      return { local: fd, closeAfter: false };
    }
    // Another description of the same end (the pipe reopened through /proc/PID/fd): a new one.
    const again = fs.openSync(`/proc/self/fd/${fd}`, (p.end === 'read' ? O.RDONLY : O.WRONLY) | O.NONBLOCK | O.CLOEXEC);
    setFl(again, p.flags & ~O.DIRECT);
    return { local: again, closeAfter: true };
  },
});

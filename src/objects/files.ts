// The open-file table. Every open file description of the tree is recorded
// once in files.json, with an id; each process's fd table maps fd numbers
// (with their close-on-exec flag) to those ids, whether the description was
// inherited, dup'ed or passed between processes. The module of each kind
// (registry.ts) captures and creates descriptions; this module finds which
// fds share one, and on restore creates each once and puts it at every fd
// number of every process that holds it (over a unix socket, SCM_RIGHTS).

import fs from 'node:fs';
import * as z from 'zod/mini';
import { readFds, readFd, FdEntry } from '../kernel/proc.js';
import { RemoteTask } from '../kernel/remote.js';
import { O, KCMP, FD_CLOEXEC } from '../kernel/consts.js';
import * as remote from '../kernel/rsys.js';
import { fdObject } from '../kernel/fdtype.js';
import { kcmpSame, pidfdGetfd } from '../kernel/sys.js';
import { socketFacts } from '../kernel/inet.js';
import { AF_NAMES } from '../kernel/consts.js';
import { sendFds, recvFdsRemote, MAX_FDS_PER_MESSAGE } from '../kernel/fdpass.js';
import { refused, badImage, CkptError } from '../errors.js';
import { fdNum, fileId, superRefine } from '../image/schema.js';
import { FILE_KINDS } from './registry.js';
import { FileBase, FileKind, FdFacts, DumpFileCtx, RestoreFileCtx, Created, CreatePhase, SocketFacts } from './kind.js';
import { planInstall, FILLER } from './fdmoves.js';
import { StoredInode } from './inodes.js';

const KINDS = new Map(FILE_KINDS.map((k) => [k.kind, k]));

/** An open file description of the image: one of the kinds' descriptions. */
export const FileDesc = z.discriminatedUnion('kind', FILE_KINDS.map((k) => k.schema) as unknown as [z.ZodMiniObject, ...z.ZodMiniObject[]]) as unknown as z.ZodMiniType<FileBase & Record<string, unknown>>;
export type FileDesc = FileBase & Record<string, unknown>;

/** files.json: every open file description of the tree, each once; and the inodes stored in the image (inodes.ts). */
export const FilesImage = z.object({ files: z.array(FileDesc), inodes: z.optional(z.array(StoredInode)) }).check(superRefine((doc, ctx) => {
  const ids = new Set<number>();
  doc.files.forEach((f, i) => {
    if (ids.has(f.id)) ctx.addIssue({ code: 'custom', message: `open file ${f.id} is listed twice`, path: ['files', i, 'id'], input: f.id });
    ids.add(f.id);
  });
}));
export type FilesImage = z.infer<typeof FilesImage>;

/** One fd of a process: its number, its close-on-exec flag and the open file description it refers to. */
export const FdRef = z.object({ fd: fdNum, file: fileId, cloexec: z.boolean() });
export type FdRef = z.infer<typeof FdRef>;

/** A process's fd table: each number once. */
export const FdTable = z.array(FdRef).check(superRefine((fds, ctx) => {
  const seen = new Set<number>();
  fds.forEach((f, i) => {
    if (seen.has(f.fd)) ctx.addIssue({ code: 'custom', message: `fd ${f.fd} is listed twice`, path: [i, 'fd'], input: f.fd });
    seen.add(f.fd);
  });
}));

export function kindOf(d: FileDesc): FileKind {
  const k = KINDS.get(d.kind);
  if (!k) throw badImage(`image file files.json: open file ${d.id} has kind ${JSON.stringify(d.kind)}, which this ckpt does not know`);
  return k;
}

// ---- dump ----

/** The descriptions met so far in a dump; fds that share one get its id. */
export class FileTableBuilder {
  readonly files: FileDesc[] = [];
  /** Per inode: one fd (pid, fd) of each description of it, to compare others with (kcmp). */
  private readonly seen = new Map<string, Array<{ pid: number; fd: number; id: number }>>();
  /** ckpt's own copies of descriptions held in flight (kept open until the dump ends, for kcmp). */
  private readonly own = new Set<number>();
  private readonly ctx: DumpFileCtx;
  /** What kinds asked to run when the dump ends (atEnd). */
  private readonly ends: Array<(goesOn: boolean) => void> = [];

  constructor(ctx: Omit<DumpFileCtx, 'findFile' | 'describeOwnFds' | 'isOwnCopy' | 'atEnd'>) {
    this.ctx = {
      ...ctx,
      atEnd: (fn) => this.ends.push(fn),
      findFile: (same, near) => this.findFile(same, near),
      describeOwnFds: (fds, what) => { for (const fd of fds) this.own.add(fd); return fds.map((fd) => this.describeOwn(fd, what)); },
      isOwnCopy: (pid, fd) => pid === process.pid && this.own.has(fd),
    };
  }

  /** The description (and one fd of it) whose file passes `same`: those of inode `near` first, then all others. */
  private findFile(same: (pid: number, fd: number) => boolean, near?: { dev: number; ino: number }): { id: number; pid: number; fd: number } | null {
    const first = near ? this.seen.get(`${near.dev}:${near.ino}`) ?? [] : [];
    for (const s of first) if (same(s.pid, s.fd)) return s;
    for (const list of this.seen.values()) {
      if (list === first) continue;
      for (const s of list) if (same(s.pid, s.fd)) return s;
    }
    return null;
  }

  /** The fd table of a frozen process; descriptions it shares with fds seen before get their ids. */
  dumpProcess(pid: number): FdRef[] {
    const out: FdRef[] = [];
    for (const e of readFds(pid)) {
      const id = this.describe(pid, e);
      out.push({ fd: e.fd, file: id, cloexec: (e.flags & O.CLOEXEC) !== 0 });
    }
    return out;
  }

  /** Once every process is dumped: let each kind see all its descriptions. */
  finish(): FileDesc[] {
    for (const k of FILE_KINDS) k.finish?.(this.files.filter((f) => f.kind === k.kind), this.ctx);
    return this.files;
  }

  /**
   * The dump ends: run what the kinds asked for (atEnd), each once, all of
   * them even if one fails, then close ckpt's copies of files in flight;
   * throws then, naming every failure.
   */
  end(goesOn: boolean): void {
    const problems: string[] = [];
    try {
      for (const fn of this.ends.splice(0)) { try { fn(goesOn); } catch (e) { problems.push((e as Error).message); } }
    } finally { this.close(); } // (after the kinds: a socket in flight is ckpt's copy, taken out of repair mode first)
    if (problems.length) throw new CkptError('failed', problems.join('; '));
  }

  /** Close ckpt's copies of files in flight (also when the dump fails). */
  private close(): void {
    for (const fd of this.own) { try { fs.closeSync(fd); } catch { /* closed */ } }
    this.own.clear();
  }

  /** A description in flight, open in ckpt as `fd` (which the table owns). */
  private describeOwn(fd: number, what: string): number {
    const e = readFd(process.pid, fd);
    if (!e) throw new Error(`internal: ckpt's fd ${fd} (${what}) is not open`);
    return this.describe(process.pid, e, what);
  }

  private describe(pid: number, e: FdEntry, inFlight?: string): number {
    const where = inFlight ? `${inFlight}: a file in flight` : `pid ${pid}: fd ${e.fd}`;
    let st: fs.Stats | null = null;
    let statErr = '';
    try { st = fs.statSync(`/proc/${pid}/fd/${e.fd}`); } catch (err) { statErr = (err as Error).message; }
    const object = fdObject(e.link, st);
    const key = st ? `${st.dev}:${st.ino}` : e.link;
    const same = this.seen.get(key) ?? [];
    for (const s of same) if (kcmpSame(s.pid, pid, KCMP.FILE, s.fd, e.fd)) return s.id;
    // (a socket: its family, type and protocol decide which kind takes it)
    let socket: SocketFacts | undefined;
    if (object.type === 'socket' && st && e.link.startsWith('socket:')) { // (not an O_PATH fd of a socket file)
      const copy = pid === process.pid ? e.fd : pidfdGetfd(pid, e.fd);
      try { socket = socketFacts(copy); } finally { if (copy !== e.fd || pid !== process.pid) fs.closeSync(copy); }
    }
    const kind = FILE_KINDS.find((k) => st && k.takes({ ...e, pid, st, object, socket } as FdFacts));
    if (!kind || !st) {
      if (!st && object.type === 'other') throw refused(`${where} (${e.link}) cannot be examined: ${statErr}`);
      if (socket) throw refused(`${where} is ${describeSocket(socket)}, which is not supported: ${e.link}`);
      throw refused(`${where} is ${object.noun} (${object.plural} are not supported yet): ${e.link}`);
    }
    // (file locks, on this fd or any other of the table: objects/locks.ts)
    const facts: FdFacts = { pid, fd: e.fd, link: e.link, flags: e.flags, pos: e.pos, info: e.info, st, object, socket };
    // (the id is taken before the kind looks: a socket may hold itself in flight)
    const id = this.files.length + 1;
    this.files.push({ id, kind: kind.kind } as FileDesc);
    same.push({ pid, fd: e.fd, id });
    this.seen.set(key, same);
    this.files[id - 1] = { id, ...kind.dump(facts, this.ctx) } as FileDesc;
    return id;
  }
}

const SOCK_TYPE_NAMES: Record<number, string> = { 1: 'SOCK_STREAM', 2: 'SOCK_DGRAM', 3: 'SOCK_RAW', 4: 'SOCK_RDM', 5: 'SOCK_SEQPACKET', 6: 'SOCK_DCCP', 10: 'SOCK_PACKET' };

/** A socket for people: `an AF_INET socket of type SOCK_STREAM, protocol 262`. */
export function describeSocket(s: SocketFacts): string {
  const fam = AF_NAMES[s.family] ?? `address family ${s.family}`;
  return `an ${fam} socket of type ${SOCK_TYPE_NAMES[s.type] ?? s.type}, protocol ${s.protocol}`;
}

// ---- restore ----

/** What the image's documents say of open files must agree: every fd names a description, every description is held. */
export function checkFileRefs(files: FilesImage, tables: Array<{ pid: number; fds: FdRef[] }>): void {
  const ids = new Set(files.files.map((f) => f.id));
  files.files.forEach((f, i) => {
    for (const r of kindOf(f).refs?.(f) ?? []) {
      if (!ids.has(r)) throw badImage(`image file files.json: field files[${i}]: open file ${f.id} refers to open file ${r}, which is not in files.json`);
    }
  });
  refsOrder(new Map(files.files.map((f) => [f.id, f])), files.files.map((f) => f.id));
  const held = new Set<number>();
  for (const t of tables) {
    t.fds.forEach((f, i) => {
      if (!ids.has(f.file)) throw badImage(`image file process-${t.pid}.json: field fds[${i}].file: open file ${f.file} is not in files.json`);
      held.add(f.file);
    });
  }
  // Descriptions may hold others (files in flight in a socket's queue).
  const byId = new Map(files.files.map((f) => [f.id, f]));
  const todo = [...held];
  while (todo.length) {
    const d = byId.get(todo.pop()!)!;
    for (const r of kindOf(d).holds?.(d) ?? []) {
      if (!ids.has(r)) throw badImage(`image file files.json: open file ${d.id} holds open file ${r}, which is not in files.json`);
      if (!held.has(r)) { held.add(r); todo.push(r); }
    }
  }
  files.files.forEach((f, i) => {
    kindOf(f);
    if (!held.has(f.id)) throw badImage(`image file files.json: field files[${i}]: open file ${f.id} is held by no fd`);
  });
}

/** Before any process is created: can every description be made here? (`tables` in tree order) */
export function checkFiles(files: FilesImage, tables: Array<{ pid: number; fds: FdRef[] }>, shellJob: boolean, hasFile: (name: string) => boolean, extUnixSk = false): void {
  for (const f of files.files) {
    const holder = tables.find((t) => t.fds.some((x) => x.file === f.id))?.pid ?? 0;
    kindOf(f).check(f, { shellJob, extUnixSk, holder, hasFile });
  }
}

/** The first of these fds that is a shell job's terminal (a description of a `terminal` kind). */
export function terminalFd(files: FilesImage, fds: FdRef[]): FdRef | undefined {
  const ids = new Set(files.files.filter((f) => kindOf(f).terminal).map((f) => f.id));
  return fds.find((f) => ids.has(f.file));
}

/** `ids` ordered so that each comes after the descriptions it refers to (refs()); a cycle is a bad image. */
function refsOrder(byId: Map<number, FileDesc>, ids: number[]): number[] {
  const out: number[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const wanted = new Set(ids);
  const visit = (id: number) => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') throw badImage(`image file files.json: open file ${id} refers to itself through other open files`);
    state.set(id, 'visiting');
    const d = byId.get(id)!;
    for (const r of kindOf(d).refs?.(d) ?? []) if (wanted.has(r)) visit(r);
    state.set(id, 'done');
    out.push(id);
  };
  ids.forEach(visit);
  return out;
}

/** A description once created, and where ckpt has it. */
interface Instance { created: Created; holder: number; local: number; closeLocal: boolean }

/**
 * The restore phases of open files. create(): once every task exists, each
 * description is made once, in the first process that holds it (or in ckpt).
 * install(): each process gets its fd table: what it does not hold already
 * is sent to it over the restore socket, and everything is moved to its number.
 */
export class OpenFiles {
  private readonly instances = new Map<number, Instance>();
  private readonly byId: Map<number, FileDesc>;
  private readonly ctx: RestoreFileCtx;
  private tasks = new Map<number, RemoteTask>();
  private first: RemoteTask | null = null;

  constructor(files: FilesImage, ctx: Omit<RestoreFileCtx, 'withFileAt' | 'descs' | 'open' | 'task'>, private readonly channel: { local: number; remote: number }) {
    this.byId = new Map(files.files.map((f) => [f.id, f]));
    this.ctx = {
      ...ctx, descs: files.files, open: (id) => this.openLocal(id), task: (pid) => this.tasks.get(pid),
      withFileAt: (rt, id, fd, fn) => this.withFileAt(rt, id, fd, fn),
    };
  }

  private ofKind(k: FileKind): FileDesc[] { return [...this.byId.values()].filter((d) => d.kind === k.kind); }

  /** Before any task is made: the kinds' prepare(). */
  prepare(): void {
    for (const k of FILE_KINDS) { const ds = this.ofKind(k); if (k.prepare && ds.length) k.prepare(ds, this.ctx); }
  }
  /** A process was made in its session (`leads`: it was made a session leader): the kinds' processMade(). */
  processMade(rt: RemoteTask, p: { pid: number; sid: number; pgid: number }, leads: boolean): void {
    for (const k of FILE_KINDS) { const ds = this.ofKind(k); if (k.processMade && ds.length) k.processMade(ds, rt, p, leads, this.ctx); }
  }
  /** Every process exists in its group: the kinds' groupsMade(). */
  groupsMade(tasks: ReadonlyMap<number, RemoteTask>): void {
    for (const k of FILE_KINDS) { const ds = this.ofKind(k); if (k.groupsMade && ds.length) k.groupsMade(ds, tasks, this.ctx); }
  }

  /**
   * Create every description of the kinds of `phase`, each in the first of
   * `procs` (in tree order) whose fd table holds it ('refs': each after those
   * it refers to).
   */
  create(procs: Array<{ rt: RemoteTask; fds: FdRef[] }>, phase: CreatePhase): void {
    this.tasks = new Map(procs.map((p) => [p.rt.pid, p.rt]));
    this.first = procs[0]?.rt ?? null;
    const holders = new Map<number, RemoteTask[]>();
    for (const p of procs) {
      for (const f of p.fds) {
        const list = holders.get(f.file) ?? [];
        if (!list.includes(p.rt)) list.push(p.rt);
        holders.set(f.file, list);
      }
    }
    const ids = [...holders.keys()].filter((id) => kindOf(this.byId.get(id)!).phase === phase);
    for (const id of phase === 'refs' ? refsOrder(this.byId, ids) : ids) {
      if (this.instances.has(id)) continue; // (made already, for a file in flight)
      this.make(id, holders.get(id)![0]);
    }
  }

  private make(id: number, rt: RemoteTask): Instance {
    const d = this.byId.get(id)!;
    let created: Created;
    try {
      created = kindOf(d).create(d, rt, this.ctx);
    } catch (e) {
      if (e instanceof CkptError) throw e;
      throw new CkptError('failed', `pid ${rt.pid}: creating open file ${id} (${kindOf(d).describe(d)}): ${(e as Error).message}`);
    }
    const inst: Instance = { created, holder: rt.pid, local: -1, closeLocal: false };
    // (ckpt has every description: one made in a process is copied out, to be sent where it is wanted)
    if ('local' in created) { inst.local = created.local; inst.closeLocal = created.closeAfter; }
    else { inst.local = pidfdGetfd(rt.pid, created.remote); inst.closeLocal = true; }
    this.instances.set(id, inst);
    return inst;
  }

  /** ctx.open: the description made (in the first process of the tree if no fd holds it), open in ckpt. */
  private openLocal(id: number): number {
    if (!this.byId.has(id)) throw badImage(`image file files.json: open file ${id} is not in files.json`);
    return (this.instances.get(id) ?? this.make(id, this.first!)).local;
  }

  /** RestoreFileCtx.withFileAt: description `id` at number `fd` of `rt` while `fn` runs (what was there is parked and put back). */
  private withFileAt(rt: RemoteTask, id: number, fd: number, fn: () => void): void {
    const inst = this.instances.get(id);
    if (!inst) throw new Error(`internal: open file ${id} is used before it was created`);
    if (this.installed.get(rt.pid)?.get(fd) === id) { fn(); return; } // (there already: its fd table is in place)
    let src: number;
    let received = false;
    if ('remote' in inst.created && inst.holder === rt.pid) src = inst.created.remote;
    else {
      sendFds(this.channel.local, [inst.local]);
      src = recvFdsRemote(rt, this.channel.remote, 1)[0];
      received = true;
    }
    try {
      if (src === fd) { fn(); return; }
      const had = remote.tryFcntlGetfd(rt, fd);
      const parked = had >= 0 ? remote.fcntlDupfdCloexec(rt, fd, 0) : -1;
      remote.dup3(rt, src, fd, O.CLOEXEC);
      try {
        fn();
      } finally {
        if (parked >= 0) {
          remote.dup3(rt, parked, fd, had & FD_CLOEXEC ? O.CLOEXEC : 0);
          remote.close(rt, parked);
        } else remote.close(rt, fd);
      }
    } finally {
      if (received) remote.close(rt, src);
    }
  }

  /**
   * Give a task its fd table, and close everything else it has open. The
   * files are sent in the order of their numbers and land at them
   * (planInstall): at most one remote call per fd. In two passes: 'first'
   * puts every description of the 'objects' phase in place (so that those of
   * the 'refs' phase, made next, find the files they refer to at their
   * numbers), leaving the numbers of 'refs' descriptions free and the restore
   * socket open where some follow; 'rest' puts those in place and closes
   * what is left (the restore socket included).
   */
  install(rt: RemoteTask, fds: FdRef[], pass: 'first' | 'rest'): void {
    const isRefs = (f: FdRef) => kindOf(this.byId.get(f.file)!).phase === 'refs';
    const now = fds.filter((f) => isRefs(f) === (pass === 'rest'));
    if (pass === 'rest' && !now.length) return;
    const later = pass === 'first' && fds.some(isRefs);
    const keep = pass === 'first' ? (later ? [this.channel.remote] : []) : fds.filter((f) => !isRefs(f)).map((f) => f.fd);
    const inPlace = new Map<number, { file: number; cloexec: boolean }>();
    for (const [id, inst] of this.instances) {
      if ('remote' in inst.created && inst.holder === rt.pid) inPlace.set(inst.created.remote, { file: id, cloexec: true });
    }
    const open = fs.readdirSync(`/proc/${rt.pid}/fd`).map(Number);
    const plan = planInstall(now.map((f) => ({ dst: f.fd, file: f.file, cloexec: f.cloexec })), open, inPlace, { keep, maxPerMessage: MAX_FDS_PER_MESSAGE });
    for (const m of plan.receives) {
      sendFds(this.channel.local, m.files.map((id) => (id === FILLER ? this.filler() : this.instances.get(id)!.local)));
      const got = recvFdsRemote(rt, this.channel.remote, m.files.length, m.cloexec);
      got.forEach((fd, i) => { if (fd !== m.at[i]) throw new Error(`pid ${rt.pid}: a received fd landed at ${fd}, not at ${m.at[i]} (its fd table changed under ckpt)`); });
    }
    for (const o of plan.ops) {
      if (o.op === 'dup3') remote.dup3(rt, o.src, o.dst, o.cloexec ? O.CLOEXEC : 0);
      else if (o.op === 'setfd') remote.fcntlSetCloexec(rt, o.fd, o.cloexec);
      else remote.closeRange(rt, o.from, o.to);
    }
    const table = this.installed.get(rt.pid) ?? new Map<number, number>();
    for (const f of now) table.set(f.fd, f.file);
    this.installed.set(rt.pid, table);
  }

  /** What each task has at its numbers once installed (task id -> fd -> description). */
  private readonly installed = new Map<number, Map<number, number>>();

  private fillerFd = -1;
  /** What fills a gap among received fds (closed again): /dev/null, open in ckpt. */
  private filler(): number {
    if (this.fillerFd < 0) this.fillerFd = fs.openSync('/dev/null', O.RDONLY | O.CLOEXEC);
    return this.fillerFd;
  }

  /** Close what ckpt holds (after success or failure). */
  close(): void {
    for (const inst of this.instances.values()) if (inst.closeLocal && inst.local >= 0) { try { fs.closeSync(inst.local); } catch { /* closed */ } }
    this.instances.clear();
    if (this.fillerFd >= 0) { fs.closeSync(this.fillerFd); this.fillerFd = -1; }
    for (const fn of this.done.splice(0)) { try { fn(); } catch { /* what a kind could not close */ } }
  }

  /** For the kinds' contexts: what to run once every fd is installed. */
  readonly done: Array<() => void> = [];
}

export function describeFile(d: FileDesc): string {
  return kindOf(d).describe(d);
}

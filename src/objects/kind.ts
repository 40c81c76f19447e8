// What a module for one kind of open file provides. Each kind (a file opened
// by path, a terminal, and every later one: pipes, sockets, event objects)
// is one module under src/objects that exports a FileKind, listed once in
// registry.ts. The open-file table (files.ts) does the rest: finding which
// fds share a description, recording each description once, creating it
// once on restore and putting it at every fd number that holds it.

import fs from 'node:fs';
import * as z from 'zod/mini';
import { FdObject } from '../kernel/fdtype.js';
import { RemoteTask } from '../kernel/remote.js';
import type { InodeTable, MadeInodes } from './inodes.js';

/** What ckpt knows of one fd of a frozen process when it dumps it. */
export interface FdFacts {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N */
  link: string;
  /** open flags from fdinfo (O_CLOEXEC included; the table keeps it per fd) */
  flags: number;
  pos: bigint;
  info: Map<string, string>;
  st: fs.Stats;
  object: FdObject;
  /** Sockets: what the kernel says the socket is (SO_DOMAIN, SO_TYPE, SO_PROTOCOL). */
  socket?: SocketFacts;
}

/** A socket's address family, type and protocol. */
export interface SocketFacts { family: number; type: number; protocol: number }

export interface DumpFileCtx {
  shellJob: boolean;
  /** --ext-unix-sk: unix sockets connected to sockets outside the tree may be dumped (see unix.ts). */
  extUnixSk?: boolean;
  /** --leave-running: the tree goes on after the dump (a kind must not take anything from it). */
  leaveRunning?: boolean;
  /** --tcp-established: established TCP connections may be dumped (see tcp.ts). */
  tcpEstablished?: boolean;
  /** --skip-in-flight: connections a listener's queue holds, not yet accepted, are left out (their clients see a reset). */
  skipInFlight?: boolean;
  /**
   * Run `fn` when the dump ends, before the tree goes on (`goesOn`: with
   * --leave-running, or after a failure) or once it was killed: put back what
   * a kind changed on the tree's objects (TCP repair mode), close its copies.
   */
  atEnd(fn: (goesOn: boolean) => void): void;
  /** PIDs and TIDs of the tree (a file under /proc/PID of one is reopened once it exists again). */
  treeIds: Set<number>;
  /** Store data of an object in the image, as file `file-NAME.img`; returns that file's name. */
  writeData(name: string, data: Buffer): string;
  /** What a kind keeps for the whole dump (objects met already, a scan of the host), by kind. */
  state: Map<string, unknown>;
  /**
   * For finish(), once every fd is dumped: the description whose file passes
   * `same`, asked of one fd (pid, fd) of each description (those of inode
   * `near` first), with that fd; null when no fd of the tree holds it.
   */
  findFile(same: (pid: number, fd: number) => boolean, near?: { dev: number; ino: number }): { id: number; pid: number; fd: number } | null;
  /**
   * Record a description that no fd of the tree holds but something a kind
   * dumps does (files in flight in a unix socket's queue): `fds` are ckpt's
   * own copies of them, which the table keeps open until the dump ends (all
   * at once: one may be another's other end). Returns their ids (the same id
   * as an fd of the tree that holds the same description).
   */
  describeOwnFds(fds: number[], what: string): number[];
  /** Is fd `fd` of process `pid` one of ckpt's own copies of a description (not a holder of its own)? */
  isOwnCopy(pid: number, fd: number): boolean;
  /** Files whose contents go into the image (deleted files, memfds): stored once, referred to by id (inodes.ts). */
  inodes: InodeTable;
}

export interface RestoreFileCtx {
  shellJob: boolean;
  /** --ext-unix-sk given to restore. */
  extUnixSk?: boolean;
  /** --tcp-close: established TCP connections are restored closed (the program sees a reset). */
  tcpClose?: boolean;
  /** The contents of an image file that dump() wrote with writeData. */
  readData(file: string): Buffer;
  /** What a kind keeps for the whole restore (objects already made), by kind. */
  state: Map<string, unknown>;
  /** Run this once every fd is installed (or the restore failed): close what the kind still holds. */
  onDone(fn: () => void): void;
  /**
   * In the 'refs' phase: run `fn` while description `id` (made already) is
   * open in `rt` at number `fd`; what `rt` had at `fd` before is parked at
   * another number meanwhile (so `fn` must not use it) and put back after.
   */
  withFileAt(rt: RemoteTask, id: number, fd: number, fn: () => void): void;
  /** Every description of the image. */
  descs: readonly FileBase[];
  /** The description `id` made (now, if it is not yet), open in ckpt: for what a kind's objects hold (files in flight). Do not close it. */
  open(id: number): number;
  /** The remote-call context of a process of the tree, by PID (undefined if the tree has no such process). */
  task(pid: number): RemoteTask | undefined;
  /** The image's stored inodes, made before any task (inodes.ts). */
  inodes: MadeInodes;
}

/**
 * A description once created: open in a process of the tree at a number of
 * its own (`remote`), or open in ckpt (`local`; `closeAfter`: ckpt made it and
 * closes it when restore is done with it).
 */
export type Created = { remote: number } | { local: number; closeAfter: boolean };

/** The fields every description has in the image. */
export interface FileBase { id: number; kind: string }

/**
 * The restore phase a kind's descriptions are created in, both once every
 * task of the tree exists and before any fd is installed. 'objects': files,
 * terminals, pipes, sockets. 'refs': descriptions that refer to others (an
 * epoll instance to the files it watches), once every 'objects' one exists,
 * each after the 'refs' ones it refers to (its refs()).
 */
export type CreatePhase = 'objects' | 'refs';

export interface FileKind<D extends FileBase = FileBase> {
  /** Its `kind` in the image. */
  kind: D['kind'];
  /** The schema of its descriptions (with `id` and `kind`). */
  schema: z.ZodMiniType<D>;
  /** Does this kind take the fd? (Fds no kind takes are refused, named by their object type.) */
  takes(f: FdFacts): boolean;
  /** Capture one description (refuse what cannot be captured, naming pid and fd). */
  dump(f: FdFacts, ctx: DumpFileCtx): Omit<D, 'id'>;
  /** Once every fd of the tree is dumped: fill in what one description says of the others (optional). */
  finish?(descs: D[], ctx: DumpFileCtx): void;
  /** The other descriptions this one holds (files in flight in a socket's queue), by id; they may hold it in turn. */
  holds?(d: D): number[];
  /** One line for `ckpt info`. */
  describe(d: D): string;
  /** Before any process is created: can the description be made on this host? (`holder`: the first process that holds it; `hasFile`: is an image file there) */
  check(d: D, ctx: { shellJob: boolean; extUnixSk?: boolean; holder: number; hasFile(name: string): boolean }): void;
  /** Its descriptions are the terminal of a shell job (--shell-job): a root in the foreground gets its group made the terminal's foreground. */
  terminal?: true;
  phase: CreatePhase;
  /** The descriptions this one refers to (ids of files.json): each exists before it is created. */
  refs?(d: D): number[];
  /** Before any task of the tree is made: make what tasks need while they are made (a pty that will be a session's controlling terminal). */
  prepare?(descs: D[], ctx: RestoreFileCtx): void;
  /** A process was made, in its session (`leads`: it was made the leader of a session of its own), before its children: give it what it needs from its kind's objects (a controlling terminal). */
  processMade?(descs: D[], rt: RemoteTask, p: { pid: number; sid: number; pgid: number }, leads: boolean, ctx: RestoreFileCtx): void;
  /** Every process of the tree exists and is in its group (a foreground group can be set). */
  groupsMade?(descs: D[], tasks: ReadonlyMap<number, RemoteTask>, ctx: RestoreFileCtx): void;
  /** Create the description, in `holder` (the first process of the tree that holds it) or in ckpt. */
  create(d: D, holder: RemoteTask, ctx: RestoreFileCtx): Created;
}

/** Declare a kind (keeps its description type while the registry holds kinds of every type). */
export function defineKind<D extends FileBase>(k: FileKind<D>): FileKind<D> { return k; }

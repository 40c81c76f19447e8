// Errors that ckpt reports to users, each with a meaningful exit status.
//
// There is one class per exit status (RefusedError, BadImageError, ...), all
// extending CkptError, with the process (pid), the resource (an fd, a memory
// area, an image file) and the step they are about as fields. The library
// throws them; the command line turns them into its exit status.

export const EXIT = {
  OK: 0,
  FAILED: 1,      // the operation failed (details in the message and log)
  USAGE: 2,       // bad command line
  REFUSED: 3,     // the target holds something ckpt cannot capture (nothing was changed)
  BAD_IMAGE: 4,   // the image is missing, truncated, corrupted, foreign or incompatible
  CONFLICT: 5,    // restore cannot proceed on this host: PID taken, file missing or changed
  MISSING: 6,     // `check`: a required kernel or CPU feature is missing
  INTERRUPTED: 130,
} as const;

export type ErrorKind = 'failed' | 'refused' | 'bad-image' | 'conflict' | 'missing' | 'usage' | 'interrupted';

const KIND_EXIT: Record<ErrorKind, number> = {
  failed: EXIT.FAILED, refused: EXIT.REFUSED, 'bad-image': EXIT.BAD_IMAGE, conflict: EXIT.CONFLICT,
  missing: EXIT.MISSING, usage: EXIT.USAGE, interrupted: EXIT.INTERRUPTED,
};

/** What an error is about. All optional. */
export interface ErrorFields {
  /** The process (or thread) the error is about. */
  pid?: number;
  /** The resource: `fd 3`, `memory area 0x7f..-0x7f..`, an image file name, ... */
  resource?: string;
  /** The step of the dump or restore it happened in. */
  step?: string;
  cause?: unknown;
}

/**
 * Where a message says which process or resource it is about ("pid 123: fd
 * 4 ..."), and the thrower did not pass them, they are taken from it: the
 * object modules name them that way.
 */
function fromMessage(message: string): { pid?: number; resource?: string } {
  const pid = /\b(?:pid|PID|process|thread) (\d+)\b/.exec(message);
  const res = /\bimage file ([^\s:]+)/.exec(message)
    ?? /\b(fd \d+)\b/.exec(message)
    ?? /\b(memory area 0x[0-9a-f]+-0x[0-9a-f]+)/.exec(message)
    ?? /\b(area 0x[0-9a-f]+)\b/.exec(message);
  return { pid: pid ? Number(pid[1]) : undefined, resource: res?.[1] };
}

/**
 * Marks ckpt's errors, so that `instanceof` also knows them when they come
 * from another copy of this module (the engine's bundle and the library's
 * are two: info() runs the engine's code on the caller's thread).
 */
const BRAND = Symbol.for('ckpt.CkptError');

export class CkptError extends Error {
  /** The kind a subclass stands for (undefined: any kind). */
  static readonly forKind: ErrorKind | undefined = undefined;
  static override [Symbol.hasInstance](x: unknown): boolean {
    if (typeof x !== 'object' || x === null || !(BRAND in x)) return Function.prototype[Symbol.hasInstance].call(this, x);
    const k = this.forKind;
    return k === undefined || (x as unknown as CkptError).kind === k;
  }

  readonly kind!: ErrorKind;
  readonly step?: string;
  readonly pid?: number;
  readonly resource?: string;

  /**
   * `new CkptError(kind, message, step?)` gives an instance of the class for
   * that kind (a RefusedError for 'refused', ...). The third argument may
   * also be the fields: `{ pid, resource, step }`.
   */
  constructor(kind: ErrorKind, message: string, stepOrFields?: string | ErrorFields) {
    const f: ErrorFields = typeof stepOrFields === 'string' ? { step: stepOrFields } : stepOrFields ?? {};
    super(message, f.cause !== undefined ? { cause: f.cause } : undefined);
    if (new.target === CkptError) return new KIND_CLASS[kind](message, f);
    this.kind = kind;
    Object.defineProperty(this, BRAND, { value: true });
    const got = fromMessage(message);
    if (f.step !== undefined) this.step = f.step;
    const pid = f.pid ?? got.pid;
    if (pid !== undefined) this.pid = pid;
    const resource = f.resource ?? got.resource;
    if (resource !== undefined) this.resource = resource;
    this.name = new.target.name;
  }

  get exitCode(): number { return KIND_EXIT[this.kind]; }

  /** The same error with a step (keeps the class, fields and stack). */
  withStep(step: string): CkptError {
    const e = new KIND_CLASS[this.kind](this.message, { pid: this.pid, resource: this.resource, step, cause: this.cause });
    e.stack = this.stack;
    return e;
  }

  /** Plain data, as --json prints it and as it crosses a thread boundary. */
  toJSON(): SerializedCkptError {
    return { kind: this.kind, message: this.message, step: this.step, pid: this.pid, resource: this.resource, exitCode: this.exitCode };
  }
}

export interface SerializedCkptError { kind: ErrorKind; message: string; step?: string; pid?: number; resource?: string; exitCode: number }

/** The operation failed (exit 1). */
export class FailedError extends CkptError {
  static override readonly forKind: ErrorKind = 'failed';
  constructor(message: string, f?: ErrorFields) { super('failed', message, f); }
}
/** Bad use: a bad option or argument (exit 2). */
export class UsageError extends CkptError {
  static override readonly forKind: ErrorKind = 'usage';
  constructor(message: string, f?: ErrorFields) { super('usage', message, f); }
}
/** The process holds something ckpt cannot capture; it was left unchanged (exit 3). */
export class RefusedError extends CkptError {
  static override readonly forKind: ErrorKind = 'refused';
  constructor(message: string, f?: ErrorFields) { super('refused', message, f); }
}
/** The image is missing, truncated, corrupted, foreign or incompatible (exit 4). */
export class BadImageError extends CkptError {
  static override readonly forKind: ErrorKind = 'bad-image';
  constructor(message: string, f?: ErrorFields) { super('bad-image', message, f); }
}
/** Restore cannot proceed on this host: a PID is taken, a file is missing or changed (exit 5). */
export class ConflictError extends CkptError {
  static override readonly forKind: ErrorKind = 'conflict';
  constructor(message: string, f?: ErrorFields) { super('conflict', message, f); }
}
/** `check`: a required kernel or CPU feature is missing (exit 6). */
export class MissingError extends CkptError {
  static override readonly forKind: ErrorKind = 'missing';
  constructor(message: string, f?: ErrorFields) { super('missing', message, f); }
}
/** Interrupted (a signal to ckpt, or the caller's AbortSignal); everything was put back (exit 130). */
export class InterruptedError extends CkptError {
  static override readonly forKind: ErrorKind = 'interrupted';
  constructor(message: string, f?: ErrorFields) { super('interrupted', message, f); }
}

const KIND_CLASS: Record<ErrorKind, new (message: string, f?: ErrorFields) => CkptError> = {
  failed: FailedError, usage: UsageError, refused: RefusedError, 'bad-image': BadImageError,
  conflict: ConflictError, missing: MissingError, interrupted: InterruptedError,
};

/** Rebuild an error from its plain data (the right class, the same fields). */
export function errorFromJSON(o: Omit<SerializedCkptError, 'exitCode'> & { stack?: string }): CkptError {
  const e = new KIND_CLASS[o.kind](o.message, { pid: o.pid, resource: o.resource, step: o.step });
  if (o.stack) e.stack = o.stack;
  return e;
}

export const refused = (msg: string, f?: ErrorFields) => new RefusedError(msg, f);
export const badImage = (msg: string, f?: ErrorFields) => new BadImageError(msg, f);
export const conflict = (msg: string, f?: ErrorFields) => new ConflictError(msg, f);

/** Wrap a low-level failure with the step it happened in, keeping CkptErrors as they are. */
export function inStep(step: string, e: unknown, f?: Omit<ErrorFields, 'step'>): CkptError {
  if (e instanceof CkptError) return e.step ? e : e.withStep(step);
  const msg = e instanceof Error ? e.message : String(e);
  return new FailedError(msg, { ...f, step, cause: e });
}

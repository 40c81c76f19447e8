// Errors that ckpt reports to users, each with a meaningful exit status.

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

export class CkptError extends Error {
  constructor(public readonly kind: ErrorKind, message: string, public readonly step?: string) {
    super(message);
    this.name = 'CkptError';
  }
  get exitCode(): number { return KIND_EXIT[this.kind]; }
}

export const refused = (msg: string) => new CkptError('refused', msg);
export const badImage = (msg: string) => new CkptError('bad-image', msg);
export const conflict = (msg: string) => new CkptError('conflict', msg);

/** Wrap a low-level failure with the step it happened in, keeping CkptErrors as they are. */
export function inStep(step: string, e: unknown): CkptError {
  if (e instanceof CkptError) return e.step ? e : new CkptError(e.kind, e.message, step);
  const msg = e instanceof Error ? e.message : String(e);
  return new CkptError('failed', msg, step);
}

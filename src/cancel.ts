// SIGINT/SIGTERM/SIGHUP to ckpt must not kill it in the middle of work on a
// stopped target: they set a flag that is checked between steps, and the
// step's cleanup runs before ckpt exits.

import { CkptError } from './errors.js';

let interrupted: string | null = null;
let installed = false;

export function installCancelHandlers(): void {
  if (installed) return;
  installed = true;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(s, () => { interrupted = s; });
  }
}

/** Let pending signal callbacks run, then throw if ckpt was asked to stop. */
export async function checkpointYield(): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  if (interrupted) throw new CkptError('interrupted', `interrupted by ${interrupted}`);
}

export function wasInterrupted(): string | null { return interrupted; }

// Looking at a target's fd from ckpt: pidfd_getfd gives ckpt a duplicate of
// the same open file description without touching the target's fd table.

import fs from 'node:fs';
import { pidfdGetfd } from '../kernel/sys.js';

export function peekFd<T>(pid: number, fd: number, fn: (localFd: number) => T): T {
  const local = pidfdGetfd(pid, fd);
  try { return fn(local); } finally { fs.closeSync(local); }
}

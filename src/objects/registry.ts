// Every kind of open file ckpt supports: one module each, one line each here.

import { FileKind } from './kind.js';
import { pathKind } from './regfile.js';
import { ttyKind } from './tty.js';
import { pipeKind } from './pipe.js';
import { unixKind } from './unix.js';

export const FILE_KINDS: readonly FileKind<any>[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  pathKind,
  ttyKind,
  pipeKind,
  unixKind,
];

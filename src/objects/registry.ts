// Every kind of open file ckpt supports: one module each, one line each here.

import { FileKind } from './kind.js';
import { pathKind, ghostKind } from './regfile.js';
import { memfdKind } from './memfd.js';
import { ttyKind } from './tty.js';
import { ptyKind } from './pty.js';
import { pipeKind } from './pipe.js';
import { epollKind } from './epoll.js';
import { eventfdKind } from './eventfd.js';
import { signalfdKind } from './signalfd.js';
import { timerfdKind } from './timerfd.js';
import { inotifyKind } from './inotify.js';
import { fanotifyKind } from './fanotify.js';
import { pidfdKind } from './pidfd.js';
import { unixKind } from './unix.js';
import { tcpKind } from './tcp.js';
import { udpKind } from './udp.js';
import { rawSockKind, pingSockKind } from './rawsock.js';
import { packetSockKind } from './packetsock.js';
import { netlinkSockKind } from './netlinksock.js';

export const FILE_KINDS: readonly FileKind<any>[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  pathKind,
  ptyKind, // (before ttyKind: a pty slave whose master is in the tree is this kind's; one whose master is outside, the shell job's terminal)
  ttyKind,
  pipeKind,
  eventfdKind,
  signalfdKind,
  timerfdKind,
  inotifyKind,
  fanotifyKind,
  pidfdKind,
  epollKind,
  ghostKind,
  memfdKind,
  unixKind,
  tcpKind,
  udpKind,
  rawSockKind,
  pingSockKind,
  packetSockKind,
  netlinkSockKind,
];

// What kind of kernel object an fd refers to, from its /proc link and stat:
// facts of the kernel's naming (anon_inode:[eventfd], pipe:[123], ...) and of
// its device numbers. Which of these ckpt supports is decided in src/objects.

import fs from 'node:fs';

export type FdObjectType =
  | 'file' | 'dir' | 'fifo' | 'chr' | 'tty' | 'ptmx' | 'blk' | 'pipe' | 'socket' | 'memfd'
  | 'eventfd' | 'epoll' | 'signalfd' | 'timerfd' | 'inotify' | 'fanotify' | 'pidfd' | 'userfaultfd'
  | 'io_uring' | 'perf_event' | 'bpf' | 'kvm' | 'fscontext' | 'landlock' | 'nsfs'
  | 'anon' | 'other';

/** The object type, and how to name it to a user: singular and plural. */
export interface FdObject { type: FdObjectType; noun: string; plural: string }

// The names the kernel gives its objects in /proc/PID/fd links. Objects on an
// anonymous inode are "anon_inode:NAME" with the NAME the kernel passes to
// anon_inode_getfile() (bracketed for some, not for others); a namespace
// opened from /proc/PID/ns is "TYPE:[INODE]".
const BY_LINK: Array<[RegExp, FdObjectType, string, string]> = [
  [/^pipe:/, 'pipe', 'a pipe', 'pipes'],
  [/^socket:/, 'socket', 'a socket', 'sockets'],
  [/^anon_inode:\[?eventfd/, 'eventfd', 'an eventfd', 'eventfds'],
  [/^anon_inode:\[?eventpoll/, 'epoll', 'an epoll instance', 'epoll instances'],
  [/^anon_inode:\[?signalfd/, 'signalfd', 'a signalfd', 'signalfds'],
  [/^anon_inode:\[?timerfd/, 'timerfd', 'a timerfd', 'timerfds'],
  [/^anon_inode:inotify/, 'inotify', 'an inotify instance', 'inotify instances'],
  [/^anon_inode:\[?fanotify/, 'fanotify', 'a fanotify instance', 'fanotify instances'],
  [/^anon_inode:\[?pidfd/, 'pidfd', 'a pidfd', 'pidfds'],
  [/^anon_inode:\[?userfaultfd/, 'userfaultfd', 'a userfaultfd', 'userfaultfds'],
  [/^anon_inode:\[io_uring\]/, 'io_uring', 'an io_uring instance', 'io_uring instances'],
  [/^anon_inode:\[perf_event\]/, 'perf_event', 'a perf event', 'perf events'],
  [/^anon_inode:bpf-map$/, 'bpf', 'a BPF map', 'BPF objects'],
  [/^anon_inode:bpf-prog$/, 'bpf', 'a BPF program', 'BPF objects'],
  [/^anon_inode:bpf_link$/, 'bpf', 'a BPF link', 'BPF objects'],
  [/^anon_inode:bpf_iter$/, 'bpf', 'a BPF iterator', 'BPF objects'],
  [/^anon_inode:btf$/, 'bpf', 'a BPF type description', 'BPF objects'],
  [/^anon_inode:bpf-token$/, 'bpf', 'a BPF token', 'BPF objects'],
  [/^anon_inode:kvm-/, 'kvm', 'a KVM object', 'KVM objects'],
  [/^anon_inode:\[?fscontext/, 'fscontext', 'a filesystem context (fsopen)', 'filesystem contexts'],
  [/^anon_inode:\[?landlock-ruleset/, 'landlock', 'a Landlock ruleset', 'Landlock rulesets'],
  [/^(cgroup|ipc|mnt|net|pid|pid_for_children|time|time_for_children|user|uts):\[\d+\]$/, 'nsfs', 'a namespace file (from /proc/PID/ns)', 'namespace files'],
  [/^\/memfd:/, 'memfd', 'a memfd', 'memfds'],
];

export const major = (rdev: number) => Number((BigInt(rdev) >> 8n) & 0xfffn);
export const minor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));

/** A device number as the kernel keeps it inside (MAJOR << 20 | MINOR, as fdinfo prints it) to the one stat gives. */
export function devFromKernel(kdev: number): number {
  const maj = Math.floor(kdev / 2 ** 20), min = kdev % 2 ** 20;
  return (min & 0xff) + maj * 256 + Math.floor(min / 256) * 2 ** 20;
}

/** A terminal: pty slaves (136), virtual consoles (4), /dev/tty and /dev/console (5:0, 5:1); not /dev/ptmx (5:2). */
export function isTerminal(st: fs.Stats): boolean {
  if (!st.isCharacterDevice()) return false;
  const maj = major(st.rdev);
  return maj === 136 || maj === 4 || (maj === 5 && (minor(st.rdev) === 0 || minor(st.rdev) === 1));
}

/** The pty multiplexer, /dev/ptmx (5:2): an fd open on it is the master of a pseudo-terminal pair. */
export function isPtmx(st: fs.Stats): boolean {
  return st.isCharacterDevice() && major(st.rdev) === 5 && minor(st.rdev) === 2;
}

/** A Unix98 pty slave (major 136, the minor is the index: N of /dev/pts/N): its index, or null for another device. */
export function ptySlaveIndex(st: fs.Stats): number | null {
  return st.isCharacterDevice() && major(st.rdev) === 136 ? minor(st.rdev) : null;
}
/** The device number of the slave of pty `index` (as /proc/PID/stat's tty_nr gives a controlling terminal). */
export function ptySlaveDev(index: number): number {
  return Number((BigInt(136 & 0xfff) << 8n) | BigInt(index & 0xff) | (BigInt(index & ~0xff) << 12n));
}

/** Classify an fd by its link (readlink of /proc/PID/fd/N) and, when it has one, its stat. */
export function fdObject(link: string, st: fs.Stats | null): FdObject {
  for (const [re, type, noun, plural] of BY_LINK) if (re.test(link)) return { type, noun, plural };
  // Any other object on an anonymous inode: named by the name the kernel gave it.
  const anon = /^anon_inode:(.+)$/.exec(link);
  if (anon) return { type: 'anon', noun: `an anonymous-inode object named ${anon[1]}`, plural: 'anonymous-inode objects' };
  if (!st) return { type: 'other', noun: 'an object that cannot be examined', plural: 'such objects' };
  if (st.isFile()) return { type: 'file', noun: 'a file', plural: 'files' };
  if (st.isDirectory()) return { type: 'dir', noun: 'a directory', plural: 'directories' };
  if (st.isFIFO()) return { type: 'fifo', noun: 'a FIFO', plural: 'FIFOs' };
  if (isPtmx(st)) return { type: 'ptmx', noun: 'a pseudo-terminal master', plural: 'pseudo-terminal masters' };
  if (isTerminal(st)) return { type: 'tty', noun: 'a terminal', plural: 'terminals' };
  if (st.isCharacterDevice()) return { type: 'chr', noun: 'a character device', plural: 'character devices' };
  if (st.isBlockDevice()) return { type: 'blk', noun: 'a block device', plural: 'block devices' };
  if (st.isSocket()) return { type: 'socket', noun: 'a socket', plural: 'sockets' };
  return { type: 'other', noun: 'a special file', plural: 'special files' };
}

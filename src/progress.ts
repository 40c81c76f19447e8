// Progress of a dump or restore, as events: each names its phase and says how
// far it is, in a unit. The CLI prints them (--progress); library callers get
// them through onProgress.

export type ProgressPhase =
  // dump
  | 'freeze' | 'inspect' | 'memory' | 'files' | 'write' | 'release'
  // restore
  | 'check' | 'tasks' | 'objects' | 'fds' | 'restore' | 'run';

export type ProgressUnit = 'bytes' | 'processes';

export interface ProgressEvent {
  op: 'dump' | 'restore';
  phase: ProgressPhase;
  done: number;
  total: number;
  unit: ProgressUnit;
  /** The process the event is about, when it is about one. */
  pid?: number;
}

export type ProgressFn = (e: ProgressEvent) => void;

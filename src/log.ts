// Leveled logging: -v0 (nothing) .. -v4 (debug). Errors always reach stderr;
// -o FILE sends the full log (at the chosen level) to FILE as well.
//
// The logger is per operation: a dump or restore runs in an engine thread of
// its own (src/engine/worker.ts), which sets the level, the file and the sink
// for its run. What would go to stderr goes to the sink, which the engine
// thread hands to its caller as messages.

import fs from 'node:fs';

export const LEVELS = { error: 1, warn: 2, info: 3, debug: 4 } as const;
export type Level = keyof typeof LEVELS;

/** Where the lines meant for stderr go. */
export type LogSink = (text: string) => void;

const stderrSink: LogSink = (text) => { process.stderr.write(text); };

export class Logger {
  level = 2;
  private fd: number | null = null;
  private t0 = performance.now();
  private sink: LogSink = stderrSink;

  setFile(path: string): void {
    this.fd = fs.openSync(path, 'a', 0o600);
  }
  setSink(sink: LogSink | null): void { this.sink = sink ?? stderrSink; }
  close(): void {
    if (this.fd !== null) { try { fs.closeSync(this.fd); } catch { /* closed */ } this.fd = null; }
  }
  private emit(lvl: Level, msg: string): void {
    if (LEVELS[lvl] > this.level) return;
    const t = ((performance.now() - this.t0) / 1000).toFixed(3);
    const line = `(${t.padStart(8)}) ${lvl.toUpperCase().padEnd(5)} ${msg}\n`;
    if (this.fd !== null) fs.writeSync(this.fd, line);
    // Warnings always reach stderr. An error ends the command with its own
    // message, so the log's account of it (and info, debug) goes to stderr
    // only from -v3 on, when there is no log file.
    if (lvl === 'warn' || (this.fd === null && this.level >= 3)) this.sink(line);
  }
  /** A line for stderr whatever the level (debug pauses for tests); not in the log file. */
  note(text: string): void { this.sink(text); }
  error(msg: string): void { this.emit('error', msg); }
  warn(msg: string): void { this.emit('warn', msg); }
  info(msg: string): void { this.emit('info', msg); }
  debug(msg: string): void { if (this.level >= 4) this.emit('debug', msg); }
  get debugOn(): boolean { return this.level >= 4; }
}

/** The logger of this thread's operation (see above). */
export const log = new Logger();

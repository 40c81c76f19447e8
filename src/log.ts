// Leveled logging: -v0 (nothing) .. -v4 (debug). Errors always reach stderr;
// -o FILE sends the full log (at the chosen level) to FILE as well.

import fs from 'node:fs';

export const LEVELS = { error: 1, warn: 2, info: 3, debug: 4 } as const;
export type Level = keyof typeof LEVELS;

class Logger {
  level = 2;
  private fd: number | null = null;
  private t0 = performance.now();

  setFile(path: string): void {
    this.fd = fs.openSync(path, 'a', 0o600);
  }
  private emit(lvl: Level, msg: string): void {
    if (LEVELS[lvl] > this.level) return;
    const t = ((performance.now() - this.t0) / 1000).toFixed(3);
    const line = `(${t.padStart(8)}) ${lvl.toUpperCase().padEnd(5)} ${msg}\n`;
    if (this.fd !== null) fs.writeSync(this.fd, line);
    // Warnings always reach stderr. An error ends the command with its own
    // message, so the log's account of it (and info, debug) goes to stderr
    // only from -v3 on, when there is no log file.
    if (lvl === 'warn' || (this.fd === null && this.level >= 3)) process.stderr.write(line);
  }
  error(msg: string): void { this.emit('error', msg); }
  warn(msg: string): void { this.emit('warn', msg); }
  info(msg: string): void { this.emit('info', msg); }
  debug(msg: string): void { if (this.level >= 4) this.emit('debug', msg); }
  get debugOn(): boolean { return this.level >= 4; }
}

export const log = new Logger();

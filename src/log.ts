// Leveled logging: -v0 (nothing) .. -v4 (debug). Errors always reach stderr;
// -o FILE sends the full log (at the chosen level) to FILE as well.

import fs from 'node:fs';

export const LEVELS = { error: 1, warn: 2, info: 3, debug: 4 } as const;
export type Level = keyof typeof LEVELS;

class Logger {
  level = 2;
  private fd: number | null = null;
  private t0 = performance.now();
  quiet = false;

  setFile(path: string): void {
    this.fd = fs.openSync(path, 'a', 0o600);
  }
  private emit(lvl: Level, msg: string): void {
    const n = LEVELS[lvl];
    if (n > this.level && !(lvl === 'error')) return;
    const t = ((performance.now() - this.t0) / 1000).toFixed(3);
    const line = `(${t.padStart(8)}) ${lvl.toUpperCase().padEnd(5)} ${msg}\n`;
    if (this.fd !== null) { if (n <= this.level) fs.writeSync(this.fd, line); }
    if (!this.quiet && (this.fd === null || lvl === 'error' || lvl === 'warn')) {
      if (n <= this.level || lvl === 'error') process.stderr.write(line);
    }
  }
  error(msg: string): void { this.emit('error', msg); }
  warn(msg: string): void { this.emit('warn', msg); }
  info(msg: string): void { this.emit('info', msg); }
  debug(msg: string): void { if (this.level >= 4) this.emit('debug', msg); }
  get debugOn(): boolean { return this.level >= 4; }
}

export const log = new Logger();

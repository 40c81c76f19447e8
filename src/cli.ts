// The command line. Verbs and flags follow CRIU's where they mean the same.

import path from 'node:path';
import fs from 'node:fs';
import { Command, Option, CommanderError } from 'commander';
import { log } from './log.js';
import { CkptError, EXIT } from './errors.js';
import { installCancelHandlers } from './cancel.js';
import { VERSION } from './version.js';
import { ProgressFn } from './progress.js';

interface Globals { verbosity?: string; logFile?: string; json?: boolean }

function parseVerbosity(v: string | true | undefined): number {
  if (v === undefined) return 2;
  if (v === true || v === '') return 3;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 4) throw new CkptError('usage', `-v takes a level from 0 to 4, not "${v}"`);
  return n;
}

function setupLogging(g: Globals, imagesDir?: string, create = false): void {
  log.level = parseVerbosity(g.verbosity as string | undefined);
  if (g.logFile) {
    if (create && imagesDir && !path.isAbsolute(g.logFile)) fs.mkdirSync(imagesDir, { recursive: true, mode: 0o700 });
    const p = path.isAbsolute(g.logFile) || !imagesDir ? g.logFile : path.join(imagesDir, g.logFile);
    try {
      log.setFile(p);
    } catch (e) {
      if (imagesDir && !fs.existsSync(imagesDir)) throw new CkptError('bad-image', `image directory ${imagesDir} does not exist`);
      throw new CkptError('failed', `cannot open the log file ${p}: ${(e as Error).message}`);
    }
  }
}

/** CRIU-style verbosity: -v alone raises the level by one, -vv by two; -vN sets it. */
export function normalizeArgs(argv: string[]): string[] {
  return argv.map((a) => (/^-v+$/.test(a) ? `-v${Math.min(4, 2 + a.length - 1)}` : a));
}

function out(g: Globals, data: unknown, text: () => string): void {
  // process.stdout is created on first use, which costs a little: only touch it with something to say.
  const s = g.json ? JSON.stringify(data, null, 2) + '\n' : text();
  if (s) process.stdout.write(s);
}

function ms(x: number): string { return `${x.toFixed(1)} ms`; }

function progressPrinter(enabled: boolean): ProgressFn | undefined {
  if (!enabled) return undefined;
  let last = 0;
  return (e) => {
    const now = performance.now();
    if (now - last < 200 && e.done !== e.total) return;
    last = now;
    const n = (x: number) => (e.unit === 'bytes' ? `${(x / 1048576).toFixed(0)}` : `${x}`);
    process.stderr.write(`\r${e.op} ${e.phase}${e.pid ? ` pid ${e.pid}` : ''}: ${n(e.done)}/${n(e.total)}${e.unit === 'bytes' ? ' MiB' : ` ${e.unit}`}   `);
  };
}

function pidArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CkptError('usage', `not a PID: ${v}`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('ckpt')
    .description('Checkpoint and restore Linux processes')
    .version(VERSION, '-V, --version')
    .addOption(new Option('-v, --verbosity [level]', 'log level 0-4 (0 silent, 1 errors, 2 warnings (default), 3 info, 4 debug); -v raises it by one, -vv by two'))
    .option('-o, --log-file <file>', 'write the log to FILE (for dump and restore a relative path is inside the images directory, as in CRIU)')
    .option('--json', 'print results as JSON')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  let code = EXIT.OK as number;
  const g = () => program.opts<Globals>();

  program.command('dump')
    .description('checkpoint a process into an image directory (the process is ended unless --leave-running)')
    .requiredOption('-t, --tree <pid>', 'the process to checkpoint', pidArg)
    .requiredOption('-D, --images-dir <dir>', 'directory to write the image into')
    .option('-R, --leave-running', 'let the process go on after the dump')
    .option('-j, --shell-job', 'the process uses the terminal of the shell that started it')
    .option('--progress', 'show progress on stderr')
    .action(async (o) => {
      setupLogging(g(), o.imagesDir, true);
      installCancelHandlers();
      const { dump } = await import('./dump.js');
      const t0 = performance.now();
      const r = await dump({ pid: o.tree, dir: o.imagesDir, leaveRunning: o.leaveRunning, shellJob: o.shellJob, onProgress: progressPrinter(!!o.progress && process.stderr.isTTY) });
      const total = performance.now() - t0;
      out(g(), { ok: true, pid: o.tree, imagesDir: path.resolve(o.imagesDir), pageBytes: r.pageBytes, leftRunning: !!o.leaveRunning, timingsMs: { ...r.timings, total }, peakRssKiB: process.resourceUsage().maxRSS },
        () => (log.level >= 3 ? `dumped pid ${o.tree} to ${o.imagesDir} (${(r.pageBytes / 1048576).toFixed(1)} MiB of pages) in ${ms(total)}\n` : ''));
    });

  program.command('pre-dump')
    .description('copy memory while the process runs, for a shorter dump later (planned)')
    .requiredOption('-t, --tree <pid>', 'the process', pidArg)
    .requiredOption('-D, --images-dir <dir>', 'directory for the image')
    .action(() => { throw new CkptError('failed', 'pre-dump is not implemented yet (planned; see docs/support.md)'); });

  program.command('restore')
    .description('recreate a process from an image; waits for it and exits with its status unless -d')
    .requiredOption('-D, --images-dir <dir>', 'image directory')
    .option('-d, --restore-detached', 'return once the process runs, leaving it running')
    .option('--pidfile <file>', 'write the restored PID to FILE')
    .option('-j, --shell-job', 'give the process the terminal ckpt runs on')
    .action(async (o) => {
      setupLogging(g(), o.imagesDir);
      installCancelHandlers();
      const { restore } = await import('./restore/index.js');
      const t0 = performance.now();
      const r = await restore({ dir: o.imagesDir, detached: o.restoreDetached, pidfile: o.pidfile, shellJob: o.shellJob });
      const total = performance.now() - t0;
      if (o.restoreDetached) {
        out(g(), { ok: true, pid: r.pid, timingsMs: { ...r.timings, total }, peakRssKiB: process.resourceUsage().maxRSS }, () => (log.level >= 3 ? `restored pid ${r.pid} in ${ms(total)}\n` : ''));
      } else {
        code = r.exitCode ?? 0;
        if (g().json) out(g(), { ok: true, pid: r.pid, exitCode: r.exitCode }, () => '');
      }
    });

  program.command('info')
    .description('show what an image holds')
    .requiredOption('-D, --images-dir <dir>', 'image directory')
    .action(async (o) => {
      setupLogging(g());
      const { imageInfo, renderInfo } = await import('./info.js');
      const info = imageInfo(o.imagesDir);
      out(g(), info, () => renderInfo(info));
    });

  const image = program.command('image').description('work on image directories');
  image.command('upgrade')
    .description('rewrite an image of an older format version in the current one (the old image is replaced once the new one is complete)')
    .requiredOption('-D, --images-dir <dir>', 'image directory')
    .action(async (o) => {
      setupLogging(g());
      const { upgradeImage } = await import('./image/upgrade.js');
      const r = await upgradeImage(o.imagesDir);
      out(g(), { ok: true, ...r }, () => (r.steps.length ? `${r.dir}: upgraded from format ${r.from} to ${r.to} (${r.steps.join('; ')})\n` : `${r.dir}: already format ${r.to}\n`));
    });

  program.command('check')
    .description('check that this kernel and CPU offer everything ckpt relies on')
    .action(async () => {
      setupLogging(g());
      const { runChecks, renderChecks } = await import('./check.js');
      const r = runChecks();
      out(g(), r, () => renderChecks(r));
      if (!r.ok) code = EXIT.MISSING;
    });

  try {
    await program.parseAsync(normalizeArgs(argv), { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    if (e instanceof CkptError) {
      if (g().json) process.stdout.write(JSON.stringify({ ok: false, error: e.message, kind: e.kind, step: e.step ?? null, exitCode: e.exitCode }, null, 2) + '\n');
      process.stderr.write(`ckpt: ${e.step ? `${e.step}: ` : ''}${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`ckpt: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.FAILED;
  }
}


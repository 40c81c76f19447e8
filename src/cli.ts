// The command line: a thin shell over the library (src/api.ts). Verbs and
// flags follow CRIU's where they mean the same. It reads the environment's
// debug switches and hands them to the operation; SIGINT/SIGTERM/SIGHUP
// interrupt the operation as an abort does.

import path from 'node:path';
import fs from 'node:fs';
import { Command, Option, CommanderError } from 'commander';
import { CkptError, UsageError, BadImageError, FailedError, EXIT } from './errors.js';
import * as api from './api.js';
import { engineModule, adoptEngine, exitThroughEngine, Engine } from './engine/host.js';

export { exitThroughEngine };
import type { DebugSwitches } from './cancel.js';
import { VERSION } from './version.js';
import { ProgressFn } from './progress.js';

interface Globals { verbosity?: string; logFile?: string; json?: boolean }

/** --network-lock MODE (CRIU's option): how peers' packets are held back while sockets are dumped and until restore. */
function networkLockOption(): Option {
  return new Option('--network-lock <mode>', 'hold peers\' packets back with nftables or iptables (default: whichever is present), or skip').choices(['nftables', 'iptables', 'skip']);
}

function parseVerbosity(v: string | true | undefined): number {
  if (v === undefined) return 2;
  if (v === true || v === '') return 3;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 4) throw new UsageError(`-v takes a level from 0 to 4, not "${v}"`);
  return n;
}

/** Log level and file of an operation; a relative log file is inside the images directory, as in CRIU. */
function logOptions(g: Globals, imagesDir?: string, create = false): { logLevel: number; logFile?: string } {
  const logLevel = parseVerbosity(g.verbosity as string | undefined);
  if (!g.logFile) return { logLevel };
  if (path.isAbsolute(g.logFile) || !imagesDir) return { logLevel, logFile: g.logFile };
  if (create) fs.mkdirSync(imagesDir, { recursive: true, mode: 0o700 });
  else if (!fs.existsSync(imagesDir)) throw new BadImageError(`image directory ${imagesDir} does not exist`);
  return { logLevel, logFile: path.join(imagesDir, g.logFile) };
}

/** The debug switches of the environment (CKPT_DEBUG_PAUSE, _FAIL, _CRASH), for tests. */
function debugFromEnv(): DebugSwitches {
  const e = process.env;
  return { pause: e.CKPT_DEBUG_PAUSE || undefined, fail: e.CKPT_DEBUG_FAIL || undefined, crash: e.CKPT_DEBUG_CRASH || undefined, failAt: e.CKPT_DEBUG_FAIL_AT || undefined };
}

/** SIGINT/SIGTERM/SIGHUP abort the operation (with the signal's name as the reason). */
function signalsAbort(): AbortSignal {
  const ac = new AbortController();
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => ac.abort(s));
  return ac.signal;
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
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`not a PID: ${v}`);
  return n;
}

/** Run the command line; `engine`: an engine thread the entry started early (see main.ts). */
export async function main(argv: string[], engine?: Engine): Promise<number> {
  if (engine) adoptEngine(engine);
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
    .option('--ext-unix-sk', 'allow unix sockets connected to sockets outside the tree (datagram sockets are connected to the same name again on restore)')
    .option('-l, --file-locks', 'keep the file locks and leases the processes hold (only safe when no process outside the tree uses those files\' locks)')
    .option('--tcp-established', 'keep established TCP connections (TCP repair; the peers are held off by the network lock until restore)')
    .option('--skip-in-flight', 'leave out connections that a listener holds and the program has not accepted yet (their clients see a reset)')
    .addOption(networkLockOption())
    .option('--progress', 'show progress on stderr')
    .action(async (o) => {
      const lo = logOptions(g(), o.imagesDir, true);
      const t0 = performance.now();
      const r = await api.dump({
        pid: o.tree, dir: o.imagesDir, leaveRunning: !!o.leaveRunning, shellJob: !!o.shellJob, extUnixSk: !!o.extUnixSk, fileLocks: !!o.fileLocks,
        tcpEstablished: !!o.tcpEstablished, skipInFlight: !!o.skipInFlight, networkLock: o.networkLock,
        onProgress: progressPrinter(!!o.progress && process.stderr.isTTY), signal: signalsAbort(), debug: debugFromEnv(), ...lo,
      });
      const total = performance.now() - t0;
      out(g(), { ok: true, pid: o.tree, imagesDir: r.dir, pageBytes: r.pageBytes, leftRunning: r.leftRunning, timingsMs: { ...r.timings, total }, peakRssKiB: process.resourceUsage().maxRSS },
        () => (lo.logLevel >= 3 ? `dumped pid ${o.tree} to ${o.imagesDir} (${(r.pageBytes / 1048576).toFixed(1)} MiB of pages) in ${ms(total)}\n` : ''));
    });

  program.command('pre-dump')
    .description('copy memory while the process runs, for a shorter dump later (planned)')
    .requiredOption('-t, --tree <pid>', 'the process', pidArg)
    .requiredOption('-D, --images-dir <dir>', 'directory for the image')
    .action(() => { throw new FailedError('pre-dump is not implemented yet (planned; see docs/support.md)'); });

  program.command('restore')
    .description('recreate a process from an image; waits for it and exits with its status unless -d')
    .requiredOption('-D, --images-dir <dir>', 'image directory')
    .option('-d, --restore-detached', 'return once the process runs, leaving it running')
    .option('--pidfile <file>', 'write the restored PID to FILE')
    .option('-j, --shell-job', 'give the process the terminal ckpt runs on')
    .option('--ext-unix-sk', 'connect again the unix sockets that were connected outside the tree (an image dumped with --ext-unix-sk)')
    .option('-l, --file-locks', 'take the file locks and leases of the image again')
    .option('--tcp-established', 'restore established TCP connections (accepted for CRIU\'s scripts: an image\'s connections are always restored)')
    .option('--tcp-close', 'restore established TCP connections closed: the program sees them reset (for a host the peers will not follow to)')
    .addOption(networkLockOption())
    .action(async (o) => {
      const lo = logOptions(g(), o.imagesDir);
      const t0 = performance.now();
      const r = await api.restore({
        dir: o.imagesDir, detached: !!o.restoreDetached, pidfile: o.pidfile, shellJob: !!o.shellJob, extUnixSk: !!o.extUnixSk, fileLocks: !!o.fileLocks,
        tcpClose: !!o.tcpClose, networkLock: o.networkLock,
        signal: signalsAbort(), debug: debugFromEnv(), ...lo,
      });
      const total = performance.now() - t0;
      if (o.restoreDetached) {
        out(g(), { ok: true, pid: r.pid, timingsMs: { ...r.timings, total }, counts: r.counts, peakRssKiB: process.resourceUsage().maxRSS }, () => (lo.logLevel >= 3 ? `restored pid ${r.pid} in ${ms(total)}\n` : ''));
      } else {
        code = r.exitCode ?? 0;
        if (g().json) out(g(), { ok: true, pid: r.pid, exitCode: r.exitCode }, () => '');
      }
    });

  program.command('info')
    .description('show what an image holds')
    .requiredOption('-D, --images-dir <dir>', 'image directory')
    .action(async (o) => {
      logOptions(g());
      const info = await api.info({ dir: o.imagesDir });
      const render = g().json ? null : (await engineModule()).renderInfo;
      out(g(), info, () => render!(info));
    });

  const image = program.command('image').description('work on image directories');
  image.command('upgrade')
    .description('rewrite an image of an older format version in the current one (the old image is replaced once the new one is complete)')
    .requiredOption('-D, --images-dir <dir>', 'image directory')
    .action(async (o) => {
      const r = await api.upgrade({ dir: o.imagesDir, signal: signalsAbort(), ...logOptions(g()) });
      out(g(), { ok: true, ...r }, () => (r.steps.length ? `${r.dir}: upgraded from format ${r.from} to ${r.to} (${r.steps.join('; ')})\n` : `${r.dir}: already format ${r.to}\n`));
    });

  program.command('check')
    .description('check that this kernel and CPU offer everything ckpt relies on')
    .action(async () => {
      const lo = logOptions(g());
      const r = await api.check({ signal: signalsAbort(), ...lo });
      const render = g().json ? null : (await engineModule()).renderChecks;
      out(g(), r, () => render!(r));
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
      if (g().json) process.stdout.write(JSON.stringify({ ok: false, error: e.message, kind: e.kind, step: e.step ?? null, pid: e.pid ?? null, resource: e.resource ?? null, exitCode: e.exitCode }, null, 2) + '\n');
      process.stderr.write(`ckpt: ${e.step ? `${e.step}: ` : ''}${e.message}\n`);
      if (e.message.startsWith('internal error') && e.stack) process.stderr.write(`${e.stack}\n`);
      return e.exitCode;
    }
    process.stderr.write(`ckpt: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.FAILED;
  }
}

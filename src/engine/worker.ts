// The engine thread: runs one dump, restore or check, start to end, and is
// the tracer of every process it works on (ptrace is per thread). Its
// module-level state (the logger, the interrupt flag, the debug switches,
// the bounds of the waits) is that of its one operation: it is set here
// from what the caller sent, never read from the caller's environment.
//
// The caller's thread (src/engine/host.ts) starts it as early as it can, so
// that loading this bundle overlaps with the caller's own start-up, and
// sends the operation when it knows it. Progress events and log lines go
// back as messages; so does the result, or the error as plain data, which
// the caller rebuilds as the same class with the same fields.
//
// Loaded as a module outside an engine thread (the library's info(), the
// command line's text output), it only exports the functions below.

import { parentPort, workerData, isMainThread, receiveMessageOnPort } from 'node:worker_threads';
import { dump, DumpOptions } from '../dump.js';
import { restore, RestoreOptions } from '../restore/index.js';
import { runChecks } from '../check.js';
import { upgradeImage } from '../image/upgrade.js';
import { log } from '../log.js';
import { useInterruptFlag, setDebugSwitches, pendingInterrupt } from '../cancel.js';
import { configureWaits } from '../kernel/ptrace.js';
import { exitGroup } from '../kernel/sys.js';
import { configureFaults, reportFaults } from '../kernel/faults.js';
import { pretendNoPagemapScan } from '../kernel/mm.js';
import { CkptError, FailedError } from '../errors.js';
import type { ProgressFn } from '../progress.js';
import type { EngineData, EngineMessage, RunMessage, SerializedError } from './protocol.js';

export { imageInfo, renderInfo } from '../info.js';
export { runChecks, renderChecks } from '../check.js';

let codeCacheSaver: ((op: string) => void) | null = null;
/** The loader of the bundle (src/engine/host.ts) hands over how to add this run's compiled code to the cache. */
export function useCodeCacheSaver(f: (op: string) => void): void { codeCacheSaver = f; }

function serialize(e: unknown): SerializedError {
  if (e instanceof CkptError) return { kind: e.kind, name: e.name, message: e.message, stack: e.stack, step: e.step, pid: e.pid, resource: e.resource };
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: 'Error', message: String(e) };
}

async function run(m: RunMessage, post: (msg: EngineMessage) => void): Promise<unknown> {
  log.level = m.log.level;
  log.setSink((text) => post({ t: 'log', text }));
  if (m.log.file) {
    try { log.setFile(m.log.file); } catch (e) {
      throw new FailedError(`cannot open the log file ${m.log.file}: ${(e as Error).message}`);
    }
  }
  setDebugSwitches(m.debug);
  configureFaults(m.debug.failAt);
  pretendNoPagemapScan(m.debug.fail === 'pagemap-scan');
  configureWaits({
    ...(m.timeouts.waitMs ? { timeoutMs: m.timeouts.waitMs } : {}),
    ...(m.timeouts.ioWaitMs ? { ioTimeoutMs: m.timeouts.ioWaitMs } : {}),
  });
  const onProgress: ProgressFn | undefined = m.progress ? (e) => post({ t: 'progress', e }) : undefined;
  const o = m.opts;
  switch (m.op) {
    case 'dump':
      // (the options as the library got them, less the caller's own: api.ts operationFields)
      return dump({ ...(o as unknown as DumpOptions), onProgress });
    case 'restore':
      return restore({ ...(o as unknown as RestoreOptions), onProgress });
    case 'check':
      return runChecks();
    case 'upgrade':
      return upgradeImage(o.dir as string);
  }
}

if (!isMainThread && (workerData as EngineData | undefined)?.ckptEngine) {
  const port = parentPort!;
  const data = workerData as EngineData;
  useInterruptFlag(data.flag);
  configureWaits({ flag: data.flag, pending: pendingInterrupt });
  const post = (msg: EngineMessage) => port.postMessage(msg);
  const start = (m: RunMessage) => {
    // Once it is done: the command's request to end the process (see exitThroughEngine in host.ts).
    const afterwards = () => port.on('message', (x: { t?: string; code?: number }) => { if (x?.t === 'exit') exitGroup(x.code ?? 1); });
    run(m, post).finally(reportFaults).finally(afterwards).then(
      (result) => {
        log.close();
        try { codeCacheSaver?.(m.op); } catch { /* only a cache */ }
        post({ t: 'done', result });
      },
      (e: unknown) => { log.close(); post({ t: 'error', error: serialize(e) }); },
    );
    // Nothing else is to come: the caller ends this thread.
  };
  // The operation is usually waiting already (the caller sent it while this
  // bundle loaded): take it now rather than on the next turn of the loop.
  const queued = receiveMessageOnPort(port);
  if (queued) start(queued.message as RunMessage); else port.once('message', start);
}

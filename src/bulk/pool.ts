// A small pool of worker threads for bulk jobs. Started only when an image is
// large enough for two cores to pay off; small jobs run inline.

import type { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { Job, JobResult } from './jobs.js';

// In the bundle (dist/ckpt.cjs) the worker is dist/bulk-worker.cjs; in build/ it is worker.js.
const WORKER_URL = new URL(import.meta.url.endsWith('.cjs') ? './bulk-worker.cjs' : './worker.js', import.meta.url);

/** worker_threads is loaded only when a pool is started (most runs need none). */
function loadWorkerThreads(): typeof import('node:worker_threads') {
  return createRequire(import.meta.url)('node:worker_threads');
}

export class Pool {
  private workers: Worker[] = [];
  private next = 0;
  private seq = 0;
  private waiting = new Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>();

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const w = new (loadWorkerThreads().Worker)(WORKER_URL);
      w.on('message', (m: { id: number; ok: boolean; result?: JobResult; error?: string }) => {
        const p = this.waiting.get(m.id);
        if (!p) return;
        this.waiting.delete(m.id);
        if (m.ok) p.resolve(m.result!); else p.reject(new Error(m.error));
      });
      w.on('error', (e) => { for (const p of this.waiting.values()) p.reject(e); this.waiting.clear(); });
      this.workers.push(w);
    }
  }

  get size(): number { return this.workers.length; }

  /** Run a job on the given worker (round robin when not given). */
  run(job: Job, worker?: number): Promise<JobResult> {
    const w = this.workers[worker ?? this.next++ % this.workers.length];
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}

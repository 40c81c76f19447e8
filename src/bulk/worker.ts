// Worker thread entry: runs bulk jobs (src/bulk/jobs.ts) posted by the pool.
import { parentPort } from 'node:worker_threads';
import { runJob, Job } from './jobs.js';

parentPort!.on('message', (m: { id: number; job: Job }) => {
  try {
    parentPort!.postMessage({ id: m.id, ok: true, result: runJob(m.job) });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, ok: false, error: (e as Error).message });
  }
});

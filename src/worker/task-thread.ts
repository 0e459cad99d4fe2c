// Entry point of the executor's worker threads: runs a chunk of tasks one after the other
// and returns each one's results as JSON text, or its error as plain data, and its run time. It keeps the
// pool told, through shared memory, which task runs and since when, so a timeout or a
// cancellation can be pinned on that task alone.
import { runTaskToJson } from './tasks/run-task.js';
import {
  DONE,
  PROGRESS_RUNNING,
  PROGRESS_SINCE,
  PROGRESS_TASKS,
  STARTED,
  thrownError,
  WAITING,
  type ChunkOutcome,
  type ChunkRequest,
} from './task-chunks.js';

export default async function runChunk(req: ChunkRequest): Promise<ChunkOutcome[]> {
  const progress = req.progress ? new Int32Array(req.progress) : undefined;
  const started = Date.now();
  const outcomes: ChunkOutcome[] = [];
  for (let i = 0; i < req.specs.length; i++) {
    if (i > 0 && Date.now() - started >= req.budgetMs) break;
    if (progress) {
      // Named before claimed: a pool that sees the claim STARTED sees which task it is.
      Atomics.store(progress, PROGRESS_SINCE, Date.now() - req.base);
      Atomics.store(progress, PROGRESS_RUNNING, i);
      if (Atomics.compareExchange(progress, PROGRESS_TASKS + i, WAITING, STARTED) !== WAITING) {
        outcomes.push({ withdrawn: true });
        continue;
      }
    }
    const t0 = performance.now();
    try {
      const json = await runTaskToJson(req.specs[i]!);
      outcomes.push({ json, ms: performance.now() - t0 });
    } catch (err) {
      outcomes.push({ error: thrownError(err), ms: performance.now() - t0 });
    }
    if (progress) Atomics.store(progress, PROGRESS_TASKS + i, DONE);
  }
  return outcomes;
}

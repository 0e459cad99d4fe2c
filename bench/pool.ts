// The machine's ceiling for the same work: one in-process piscina pool, no network, no log.
import { Piscina } from 'piscina';

const TASK_FILE = new URL('./noop-task.js', import.meta.url).href;

export function startPool(threads: number): Piscina {
  return new Piscina({ filename: TASK_FILE, minThreads: threads, maxThreads: threads });
}

/** Runs `total` no-op tasks, all queued at once; returns tasks per second. */
export async function poolRound(pool: Piscina, total: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: total }, (_, i) => pool.run(i)));
  return total / ((performance.now() - t0) / 1000);
}

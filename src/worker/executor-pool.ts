import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { TaskError } from '../state/commands.js';
import type { TaskSpec } from '../ops/batch-ops.js';
import { fetchFailureOf } from '../ops/shuffle-files.js';

export interface RunLimits {
  timeoutMs: number;
  memoryMb: number;
  /** Aborting it stops the task (its thread is terminated and replaced). */
  signal?: AbortSignal;
}

export class TaskTimeoutError extends Error {
  constructor(ms: number) {
    super(`task timed out after ${ms} ms`);
    this.name = 'TaskTimeoutError';
  }
}

/**
 * Runs tasks in worker threads, one task per thread at a time, so a task that loops, throws
 * or exhausts its heap takes down only its own thread: the pool replaces it and the worker
 * lives on. Threads with different memory limits live in different pools (a heap limit is
 * fixed when a thread starts). With fewer threads than slots, tasks wait here for a thread,
 * and a task's timeout starts only when it gets one.
 */
export class ExecutorPool {
  private readonly pools = new Map<number, Piscina>();
  private readonly filename = new URL('./task-thread.js', import.meta.url).href;
  private busy = 0;
  private readonly waiting: { start: () => void; signal?: AbortSignal }[] = [];

  constructor(private readonly maxThreads: number) {}

  private pool(memoryMb: number): Piscina {
    let p = this.pools.get(memoryMb);
    if (!p) {
      p = new Piscina({
        filename: this.filename,
        minThreads: Math.min(this.maxThreads, Math.max(1, availableParallelism())),
        maxThreads: this.maxThreads,
        concurrentTasksPerWorker: 1,
        idleTimeout: 30_000,
        recordTiming: false,
        resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: Math.min(64, memoryMb / 4) },
      });
      this.pools.set(memoryMb, p);
    }
    return p;
  }

  async run(spec: TaskSpec, limits: RunLimits): Promise<string> {
    await this.acquire(limits.signal);
    try {
      return await this.runNow(spec, limits);
    } finally {
      this.release();
    }
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    if (this.busy < this.maxThreads) {
      this.busy++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = { start: () => resolve(), ...(signal ? { signal } : {}) };
      this.waiting.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiting.indexOf(waiter);
          if (i >= 0) {
            this.waiting.splice(i, 1);
            reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
          }
        },
        { once: true },
      );
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.start();
    else this.busy--;
  }

  private async runNow(spec: TaskSpec, limits: RunLimits): Promise<string> {
    const ac = new AbortController();
    const onAbort = () => ac.abort(limits.signal?.reason);
    limits.signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new TaskTimeoutError(limits.timeoutMs));
    }, limits.timeoutMs);
    try {
      return (await this.pool(limits.memoryMb).run(spec, { signal: ac.signal })) as string;
    } catch (err) {
      if (timedOut) throw new TaskTimeoutError(limits.timeoutMs);
      throw err;
    } finally {
      clearTimeout(timer);
      limits.signal?.removeEventListener('abort', onAbort);
    }
  }

  get threads(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.threads.length;
    return n;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.pools.values()].map((p) => p.close({ force: true })));
    this.pools.clear();
  }
}

/** A task's failure as reported to the master; thread boundaries lose prototypes, not names. */
export function describeError(err: unknown): TaskError {
  if (err && typeof err === 'object') {
    const e = err as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown };
    let message = typeof e.message === 'string' ? e.message : String(err);
    if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') message = `task ran out of memory (${message})`;
    const name = typeof e.name === 'string' ? e.name : 'Error';
    const lost = fetchFailureOf({ name, message });
    return {
      name,
      message,
      ...(typeof e.stack === 'string' ? { stack: e.stack } : {}),
      ...(lost ? { fetch_failed: lost } : {}),
    };
  }
  return { name: 'Error', message: String(err) };
}

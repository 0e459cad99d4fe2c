import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { TaskError } from '../protocol/task-ref.js';
import type { TaskSpec } from '../protocol/task-spec.js';
import { fetchFailureOf } from './tasks/shuffle-files.js';
import {
  CHUNK_BUDGET_MS,
  chunkSize,
  PROGRESS_RUNNING,
  PROGRESS_SINCE,
  PROGRESS_TASKS,
  QUICK_TASK_MS,
  STARTED,
  WAITING,
  thrownError,
  WITHDRAWN,
  type Chunkable,
  type ChunkOutcome,
  type ChunkRequest,
  type ThrownError,
} from './task-chunks.js';

export interface RunLimits {
  timeoutMs: number;
  memoryMb: number;
  /** Aborting it stops the task (its thread is terminated and replaced). */
  signal?: AbortSignal;
  /** The task's job: tasks of a job seen to run quickly share thread messages. */
  key?: string;
}

export class TaskTimeoutError extends Error {
  constructor(ms: number) {
    super(`task timed out after ${ms} ms`);
    this.name = 'TaskTimeoutError';
  }
}

/** A task waiting for a thread or running in one. */
interface Task extends Chunkable {
  spec: TaskSpec;
  resolve(json: string): void;
  reject(err: unknown): void;
  settled: boolean;
  onAbort: (() => void) | undefined;
  signal: AbortSignal | undefined;
  /** The chunk it was sent in, and its place there. */
  chunk: Chunk | undefined;
  slot: number;
}

interface Chunk {
  tasks: Task[];
  /** Shared with the thread (task-chunks.ts); none for a task sent alone. */
  progress: Int32Array | undefined;
  /** Date.now() when it was sent; the thread's PROGRESS_SINCE counts from here. */
  base: number;
  /** Aborting it terminates the thread (the pool replaces it). */
  kill: AbortController;
  /** The task it was killed for, and that task's error. */
  culprit: { slot: number; error: unknown } | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Runs tasks in worker threads, so a task that loops, throws or exhausts its heap takes
 * down only a thread: the pool replaces it and the worker lives on. Threads with different
 * memory limits live in different pools (a heap limit is fixed when a thread starts). With
 * fewer threads than slots, tasks wait here for a thread, and a task's timeout starts only
 * when it starts.
 *
 * When tasks of quick jobs queue up, a free thread gets several in one message (a chunk, see
 * task-chunks.ts), which it runs one after the other. Each task still fails alone: a timeout
 * or a cancellation kills the thread for the task that runs at that moment, a crash (such as
 * running out of memory) is pinned on it, and its chunk-mates that had not reported go back
 * to the queue to run again, each on its own — tasks may run more than once in Weir anyway
 * (retries, speculation), so that is safe.
 */
export class ExecutorPool {
  private readonly pools = new Map<number, Piscina>();
  private readonly filename = new URL('./task-thread.js', import.meta.url).href;
  private readonly queue: Task[] = [];
  /** Chunks running: at most one per thread. */
  private busy = 0;
  private closed = false;
  private tasksSent = 0;
  private chunksSent = 0;
  /**
   * Per job, whether its last task ran quickly (see QUICK_TASK_MS), for the jobs seen lately:
   * two generations, the older dropped whole when the newer fills, so keeping the memory
   * bounded costs no scan for the oldest entry.
   */
  private quickNow = new Map<string, boolean>();
  private quickBefore = new Map<string, boolean>();
  private readonly isQuick = (key: string) => (this.quickNow.get(key) ?? this.quickBefore.get(key)) === true;

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

  run(spec: TaskSpec, limits: RunLimits): Promise<string> {
    const { signal } = limits;
    if (signal?.aborted) return Promise.reject(reasonOf(signal));
    if (this.closed) return Promise.reject(new Error('the executor is closed'));
    return new Promise((resolve, reject) => {
      const task: Task = {
        spec,
        memoryMb: limits.memoryMb,
        timeoutMs: limits.timeoutMs,
        key: limits.key,
        solo: false,
        resolve,
        reject,
        settled: false,
        signal,
        onAbort: undefined,
        chunk: undefined,
        slot: 0,
      };
      if (signal) {
        task.onAbort = () => this.cancel(task, reasonOf(signal));
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.queue.push(task);
      this.pump();
    });
  }

  private pump(): void {
    while (this.busy < this.maxThreads && this.queue.length > 0) {
      this.send(this.queue.splice(0, chunkSize(this.queue, this.maxThreads, this.isQuick)));
    }
  }

  private send(tasks: Task[]): void {
    this.busy++;
    this.chunksSent++;
    this.tasksSent += tasks.length;
    const { memoryMb, timeoutMs } = tasks[0]!;
    const shared =
      tasks.length > 1
        ? new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * (PROGRESS_TASKS + tasks.length))
        : undefined;
    const chunk: Chunk = {
      tasks,
      progress: shared && new Int32Array(shared),
      base: Date.now(),
      kill: new AbortController(),
      culprit: undefined,
      timer: undefined,
    };
    if (chunk.progress) chunk.progress[PROGRESS_RUNNING] = -1;
    tasks.forEach((t, i) => {
      t.chunk = chunk;
      t.slot = i;
    });
    chunk.timer = setTimeout(() => this.checkTimeout(chunk, timeoutMs), timeoutMs);
    const req: ChunkRequest = {
      specs: tasks.map((t) => t.spec),
      ...(shared ? { progress: shared } : {}),
      base: chunk.base,
      budgetMs: CHUNK_BUDGET_MS,
    };
    let running: Promise<unknown>;
    try {
      running = this.pool(memoryMb).run(req, { signal: chunk.kill.signal });
    } catch (err) {
      // No thread could take it (the pool refused its limits): each task fails, none hangs.
      running = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    running
      .then(
        (outcomes) => this.finished(chunk, outcomes as ChunkOutcome[]),
        (err: unknown) => this.died(chunk, err),
      )
      .finally(() => {
        clearTimeout(chunk.timer);
        this.busy--;
        this.pump();
      });
  }

  /** The chunk's timer: fails the task running now if it has run its time, else waits on. */
  private checkTimeout(chunk: Chunk, timeoutMs: number): void {
    const running = runningIn(chunk);
    // Before its first task starts, the chunk's time is its first task's (a thread starting).
    // Between two tasks, the next one's time has not begun.
    const since = running < 0 || !chunk.progress ? 0 : Atomics.load(chunk.progress, PROGRESS_SINCE);
    const left = running === BETWEEN ? timeoutMs : chunk.base + since + timeoutMs - Date.now();
    if (left > 0) chunk.timer = setTimeout(() => this.checkTimeout(chunk, timeoutMs), left);
    else this.killFor(chunk, Math.max(0, running), new TaskTimeoutError(timeoutMs));
  }

  private killFor(chunk: Chunk, slot: number, error: unknown): void {
    if (chunk.culprit) return;
    chunk.culprit = { slot, error };
    chunk.kill.abort(error);
  }

  private cancel(task: Task, reason: Error): void {
    if (task.settled) return;
    const chunk = task.chunk;
    if (!chunk) {
      const i = this.queue.indexOf(task);
      if (i >= 0) this.queue.splice(i, 1);
    } else if (
      !chunk.progress ||
      Atomics.compareExchange(chunk.progress, PROGRESS_TASKS + task.slot, WAITING, WITHDRAWN) !== WAITING
    ) {
      // The thread has it: stop it if it runs now; if it is done, its result is dropped.
      if (runningIn(chunk) === task.slot) this.killFor(chunk, task.slot, reason);
    }
    this.settle(task, reason);
  }

  private finished(chunk: Chunk, outcomes: ChunkOutcome[]): void {
    outcomes.forEach((o, i) => {
      const task = chunk.tasks[i]!;
      if ('withdrawn' in o) return;
      this.observe(task, o.ms);
      if ('json' in o) this.settle(task, undefined, o.json);
      else this.settle(task, errorFrom(o.error));
    });
    // The thread ran out of its budget before these: they wait for the next free thread.
    this.requeue(chunk.tasks.slice(outcomes.length), false);
  }

  private died(chunk: Chunk, err: unknown): void {
    const taken = chunk.progress ? Math.max(0, Atomics.load(chunk.progress, PROGRESS_RUNNING)) : 0;
    const culprit = chunk.culprit ?? { slot: taken, error: err };
    const culpritTask = chunk.tasks[culprit.slot]!;
    // Killed for a cancellation, the task said nothing about its job's speed.
    if (culprit.error instanceof TaskTimeoutError || !chunk.culprit) this.observe(culpritTask, Infinity);
    this.settle(culpritTask, culprit.error);
    this.requeue(
      chunk.tasks.filter((t) => t !== culpritTask),
      true,
    );
  }

  /** Puts tasks of a chunk back at the head of the queue, in order. */
  private requeue(tasks: Task[], solo: boolean): void {
    const again = tasks.filter((t) => !t.settled);
    for (const t of again) {
      t.chunk = undefined;
      t.solo ||= solo;
    }
    if (this.closed) for (const t of again) this.settle(t, new Error('the executor is closed'));
    else this.queue.unshift(...again);
  }

  private observe(task: Task, ms: number): void {
    if (task.key === undefined) return;
    this.quickNow.set(task.key, ms < QUICK_TASK_MS);
    if (this.quickNow.size >= QUICK_JOBS_KEPT) {
      this.quickBefore = this.quickNow;
      this.quickNow = new Map();
    }
  }

  private settle(task: Task, error: unknown, json?: string): void {
    if (task.settled) return;
    task.settled = true;
    if (task.onAbort) task.signal?.removeEventListener('abort', task.onAbort);
    if (error === undefined) task.resolve(json!);
    else task.reject(error);
  }

  /** Tasks and thread messages (chunks) so far: how much chunking saved. */
  get sent(): { tasks: number; chunks: number } {
    return { tasks: this.tasksSent, chunks: this.chunksSent };
  }

  get threads(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.threads.length;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) this.settle(t, new Error('the executor is closed'));
    await Promise.allSettled([...this.pools.values()].map((p) => p.close({ force: true })));
    this.pools.clear();
  }
}

/** Jobs per generation of the pool's quickness memory. */
const QUICK_JOBS_KEPT = 512;

/** runningIn's answer when the thread is between two tasks of its chunk (or done with all). */
const BETWEEN = -2;

/**
 * The index of the task a chunk's thread runs now: -1 before the first, BETWEEN when the one
 * it took last has returned. A lone task counts as running from the start.
 */
function runningIn(chunk: Chunk): number {
  if (!chunk.progress) return 0;
  const i = Atomics.load(chunk.progress, PROGRESS_RUNNING);
  if (i < 0) return i;
  return Atomics.load(chunk.progress, PROGRESS_TASKS + i) === STARTED ? i : BETWEEN;
}

const reasonOf = (signal: AbortSignal): Error =>
  signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));

/** A task's error as thrown in its thread: same name, message and stack. */
function errorFrom(e: ThrownError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = e.stack;
  return err;
}

/** A task's failure as reported to the master; thread boundaries lose prototypes, not names. */
export function describeError(err: unknown): TaskError {
  const e = thrownError(err);
  if ((err as { code?: unknown } | null)?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    e.message = `task ran out of memory (${e.message})`;
  }
  const lost = fetchFailureOf(e);
  return { ...e, ...(lost ? { fetch_failed: lost } : {}) };
}

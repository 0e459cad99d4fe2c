// What passes between the executor pool and its threads when tasks travel in chunks, and
// how a chunk is chosen. Handing a thread one task costs ~40 µs of CPU for the two
// messages and the wake-ups on each side; a chunk pays that once for all its tasks.
import type { TaskSpec } from '../protocol/task-spec.js';

/** Most tasks in one chunk: beyond this the saving per task is under a microsecond. */
export const MAX_CHUNK = 32;

/**
 * Only tasks of jobs whose last task ran faster than this share a thread message: a chunk's
 * results come back together, so a slow task would hold back its chunk-mates' reports.
 */
export const QUICK_TASK_MS = 1;

/**
 * A thread starts no further task of its chunk once the chunk has run this long; the rest
 * come back unstarted and go to the next free thread. So a chunk holds its tasks' reports
 * back by at most this and one task.
 */
export const CHUNK_BUDGET_MS = 2;

/**
 * Shared between the pool and the thread running a chunk: which task the thread took last
 * and since when (written before it claims it), and per task who has it — the thread when
 * it starts it, the pool when it takes it back unstarted (a cancellation). Both claim a task
 * by compare-and-exchange from WAITING, so exactly one of them gets it; the thread marks it
 * DONE when it returns. A task runs now iff it is RUNNING and its claim is STARTED.
 */
export const PROGRESS_RUNNING = 0; // index of the task taken last; -1 before the first
export const PROGRESS_SINCE = 1; // when it was taken, ms after ChunkRequest.base
export const PROGRESS_TASKS = 2; // then one claim per task:
export const WAITING = 0;
export const STARTED = 1;
export const WITHDRAWN = 2;
export const DONE = 3;

export interface ChunkRequest {
  specs: TaskSpec[];
  /**
   * Int32Array over a SharedArrayBuffer laid out as above; none for a task sent alone (it
   * runs at once, and sharing memory with a thread costs a lone task ~0.1 ms more).
   */
  progress?: SharedArrayBuffer;
  /** Date.now() when the pool sent the chunk; PROGRESS_SINCE counts from it. */
  base: number;
  budgetMs: number;
}

/** A task's failure as plain data: thread boundaries keep fields, not prototypes. */
export interface ThrownError {
  name: string;
  message: string;
  stack?: string;
}

/** What a task threw — an Error or anything else — as a name, a message and a stack. */
export function thrownError(err: unknown): ThrownError {
  if (err && typeof err === 'object') {
    const e = err as { name?: unknown; message?: unknown; stack?: unknown };
    return {
      name: typeof e.name === 'string' ? e.name : 'Error',
      message: typeof e.message === 'string' ? e.message : String(err),
      ...(typeof e.stack === 'string' ? { stack: e.stack } : {}),
    };
  }
  return { name: 'Error', message: String(err) };
}

/**
 * One per task the thread got to, in order, with how long it ran; fewer than the chunk's
 * tasks when the budget ran out (the rest were not started). `withdrawn`: the pool took it
 * back before it started.
 */
export type ChunkOutcome = { json: string; ms: number } | { error: ThrownError; ms: number } | { withdrawn: true };

/** A task waiting for a thread; what the pool needs to know to chunk it. */
export interface Chunkable {
  memoryMb: number;
  timeoutMs: number;
  /** Its job, when the caller named one: quickness is learnt per job. */
  key: string | undefined;
  /** It was in a chunk that a chunk-mate's timeout, crash or cancellation took down. */
  solo: boolean;
}

/**
 * How many tasks from the head of `queue` go to the next free thread: the head and those
 * right behind it that share its limits (a thread's heap limit and the timer are per chunk)
 * and belong to jobs known to be quick, at most a fair share of the queue per thread so no
 * thread idles while another holds a backlog, and never a task that must run alone.
 */
export function chunkSize(
  queue: readonly Chunkable[],
  threads: number,
  isQuick: (key: string) => boolean,
  max = MAX_CHUNK,
): number {
  const head = queue[0];
  if (!head) return 0;
  const share = Math.min(max, Math.ceil(queue.length / Math.max(1, threads)));
  let n = 0;
  while (n < share) {
    const t = queue[n]!;
    const joins =
      !t.solo &&
      t.key !== undefined &&
      isQuick(t.key) &&
      t.memoryMb === head.memoryMb &&
      t.timeoutMs === head.timeoutMs;
    if (!joins) break;
    n++;
  }
  return Math.max(1, n);
}

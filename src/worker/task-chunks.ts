// What passes between the executor pool and its executor processes when tasks travel in
// chunks, and how a chunk is chosen. Handing an executor one task costs tens of µs of CPU
// for the two messages and the wake-ups on each side; a chunk pays that once for all its tasks.
import type { ExecutorSpec } from './stream/stream-apply.js';

/** Most tasks in one chunk: beyond this the saving per task is under a microsecond. */
export const MAX_CHUNK = 32;

/**
 * Only tasks of jobs whose tasks lately ran faster than this share an executor message: a
 * chunk's results come back together, so a slow task would hold back its chunk-mates' reports.
 */
export const QUICK_TASK_MS = 1;

/**
 * An executor starts no further task of its chunk once the chunk has run this long; the rest
 * come back unstarted and go to the next free executor. So a chunk holds its tasks' reports
 * back by at most this and one task.
 */
export const CHUNK_BUDGET_MS = 2;

export interface ChunkRequest {
  /** Which chunk of its executor this is: what its tasks print is tagged with it. */
  seq: number;
  specs: ExecutorSpec[];
  budgetMs: number;
}

/** A task's failure as plain data: process boundaries keep fields, not prototypes. */
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
 * One per task the executor got to, in order, with how long it ran; fewer than the chunk's
 * tasks when the budget ran out (the rest were not started).
 */
export type ChunkOutcome = { json: string; ms: number } | { error: ThrownError; ms: number };

/**
 * Whether an executor's message is an answer to a chunk of `count` specs. A task's code shares
 * the executor's process and can call process.send itself: what it sends is checked, not trusted.
 */
export function isChunkAnswer(m: unknown, count: number): m is ChunkOutcome[] {
  return Array.isArray(m) && m.length <= count && m.every(isOutcome);
}

function isOutcome(o: unknown): boolean {
  if (!o || typeof o !== 'object') return false;
  const { json, error, ms } = o as { json?: unknown; error?: unknown; ms?: unknown };
  if (typeof ms !== 'number') return false;
  if (typeof json === 'string') return true;
  if (!error || typeof error !== 'object') return false;
  const e = error as { name?: unknown; message?: unknown; stack?: unknown };
  return (
    typeof e.name === 'string' &&
    typeof e.message === 'string' &&
    (e.stack === undefined || typeof e.stack === 'string')
  );
}

/** A task waiting for an executor; what the pool needs to know to chunk it. */
export interface Chunkable {
  memoryMb: number;
  timeoutMs: number;
  /** Its job, when the caller named one: quickness is learnt per job. */
  key: string | undefined;
  /** The job whose user code it runs (see userCodeJob): only executors of that job take it. */
  job: string | undefined;
  /** It was in a chunk that a chunk-mate's timeout, crash or cancellation took down. */
  solo: boolean;
}

/**
 * A backlog is split between free executors only where each part would run at least this
 * long: a split costs a message each way (tens of µs of CPU on each side, and a process to
 * wake), which a handful of microsecond tasks does not repay in time saved.
 */
export const SPLIT_MIN_MS = 0.25;

/**
 * How many tasks from the head of `queue` go to the next free executor: the head and those
 * right behind it that share its limits (an executor's heap limit and the timer are per chunk),
 * at most a fair share of the queue per free executor so none idles while another holds a
 * backlog — unless the share of a job known to be quick would run for less than SPLIT_MIN_MS
 * — and never a task that must run alone or one of a job known to be slow. A job not yet seen
 * chunks too: an executor starts no task of a chunk once its budget is spent, so a slow job's
 * first chunk returns after one task, and its tasks are sent alone from then on.
 * `msOf` is a job's recent time per task.
 */
export function chunkSize(
  queue: readonly Chunkable[],
  freeExecutors: number,
  msOf: (key: string) => number | undefined,
  max = MAX_CHUNK,
): number {
  const head = queue[0];
  if (!head) return 0;
  const msOfTask = (t: Chunkable) => (t.key === undefined ? Infinity : msOf(t.key));
  const chunkable = (t: Chunkable) => {
    const ms = msOfTask(t);
    return !t.solo && (ms === undefined || ms < QUICK_TASK_MS);
  };
  if (!chunkable(head)) return 1;
  const fair = Math.ceil(queue.length / Math.max(1, freeExecutors));
  const headMs = msOfTask(head);
  const worthSplitting = headMs === undefined ? 1 : Math.ceil(SPLIT_MIN_MS / Math.max(headMs, 0.001));
  const share = Math.min(max, Math.max(fair, worthSplitting));
  let n = 1;
  while (n < share && n < queue.length) {
    const t = queue[n]!;
    const joins = chunkable(t) && t.memoryMb === head.memoryMb && t.timeoutMs === head.timeoutMs && t.job === head.job;
    if (!joins) break;
    n++;
  }
  return n;
}

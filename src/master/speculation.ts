import type { StageTask } from '../state/queries.js';

/**
 * When a task is a straggler worth a speculative copy, after Spark's rules: once a share
 * (`quantile`) of a stage's tasks have completed, a running task taking more than
 * `multiplier` × their median duration (and at least `minMs`) gets a copy on another
 * worker. Pure: the caller supplies the stage's tasks and the time.
 */
export interface SpeculationPolicy {
  quantile: number;
  multiplier: number;
  minMs: number;
}

export const DEFAULT_SPECULATION: SpeculationPolicy = { quantile: 0.75, multiplier: 1.5, minMs: 1000 };

export function stragglers(
  tasks: readonly StageTask[],
  stageSize: number,
  now: number,
  policy: SpeculationPolicy = DEFAULT_SPECULATION,
): StageTask[] {
  const durations = tasks
    .filter((t) => t.status === 'completed' && t.finished_at !== null)
    .map((t) => t.finished_at! - t.started_at)
    .sort((a, b) => a - b);
  if (durations.length === 0 || durations.length < policy.quantile * stageSize) return [];
  const median = durations[Math.floor((durations.length - 1) / 2)]!;
  const threshold = Math.max(policy.minMs, policy.multiplier * median);
  return tasks.filter((t) => t.status === 'running' && t.alt_attempt === null && now - t.started_at > threshold);
}

/** A worker that failed a task this recently takes no speculative copies. */
export const NO_COPIES_AFTER_FAILURE_MS = 30_000;

/**
 * The workers that failed a task lately, for speculation to pass over. A copy is a bet that
 * another worker does better, and one that fails ends its race: the task is charged a failure
 * and retried, its healthy original stopped (apply.ts). A worker whose disk is full fails
 * every task at once, so it always has free slots: the stragglers of a loaded cluster were
 * copied to it and charged for it.
 */
export class RecentFailures {
  private readonly last = new Map<string, number>();

  note(workerId: string, at: number): void {
    this.last.set(workerId, Math.max(at, this.last.get(workerId) ?? at));
  }

  /** Whether `workerId` failed a task in the NO_COPIES_AFTER_FAILURE_MS before `now` (an older failure is forgotten). */
  failedLately(workerId: string, now: number): boolean {
    const at = this.last.get(workerId);
    if (at === undefined) return false;
    if (now - at < NO_COPIES_AFTER_FAILURE_MS) return true;
    this.last.delete(workerId);
    return false;
  }
}

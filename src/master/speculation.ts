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

/**
 * The stages of a batch job and how its task indexes map onto them. A job with a reduce
 * step runs `map` tasks whose outputs are partitioned by key into `reduce` tasks; a job
 * that orders its output by range first runs `sample` tasks that pick the partition
 * boundaries. Task indexes are consecutive across stages: `[sample…][map…][reduce…]`.
 */
export type StageName = 'sample' | 'map' | 'reduce';

export interface Stage {
  name: StageName;
  /** Index of the stage's first task. */
  first: number;
  count: number;
}

/** What the state database keeps about a multi-stage job (jobs.plan). */
export interface JobPlan {
  stages: Stage[];
  /** Range partitioning's split points, set when the sample stage completes. */
  boundaries?: unknown[];
}

export interface StageShape {
  task_count: number;
  reduce_tasks: number;
  partitioner: 'hash' | 'range';
}

/** The stages of a job; `undefined` for a single-stage job (every task is independent). */
export function planStages(shape: StageShape | { reduce_tasks?: undefined }): Stage[] | undefined {
  if (!shape.reduce_tasks) return undefined;
  const { task_count: m, reduce_tasks: r, partitioner } = shape as StageShape;
  const stages: Stage[] = [];
  let first = 0;
  const add = (name: StageName, count: number) => {
    stages.push({ name, first, count });
    first += count;
  };
  if (partitioner === 'range' && r > 1) add('sample', m);
  add('map', m);
  add('reduce', r);
  return stages;
}

export function stageOf(stages: readonly Stage[], idx: number): { stage: number; local: number } {
  for (let s = 0; s < stages.length; s++) {
    const st = stages[s]!;
    if (idx >= st.first && idx < st.first + st.count) return { stage: s, local: idx - st.first };
  }
  throw new RangeError(`task ${idx} is in no stage`);
}

export const totalTasks = (stages: readonly Stage[]): number => stages.reduce((n, s) => n + s.count, 0);

/** The stage whose tasks' results the job's results are made of. */
export const finalStage = (stages: readonly Stage[]): Stage => stages[stages.length - 1]!;

import { isStreamConfig, type StreamConfig } from '../protocol/stream-job.js';
import type { DataTaskSpec, MapOutput, PlacedInstance, TaskSpec } from '../protocol/task-spec.js';
import { isDataJob, type BatchConfig, type DataJobConfig } from './batch-config.js';
import { contiguousPartition } from './partition.js';
import { planStages, stageOf, type JobPlan } from './stages.js';

/** What the leader knows at dispatch beyond the config: the job's plan and its map outputs. */
export interface DispatchContext {
  job_id: string;
  attempt: number;
  plan?: JobPlan | undefined;
  maps?: MapOutput[];
  /** A streaming job's instances, where they run now. */
  placement?: PlacedInstance[];
}

/**
 * The input of task `idx` of a job — a pure function of the config (and, for later stages,
 * of the plan and map outputs), so every master derives the same tasks from a logged
 * submitJob and the log never carries them twice.
 */
export function taskSpec(config: BatchConfig | StreamConfig, idx: number, ctx?: DispatchContext): TaskSpec {
  if (isStreamConfig(config)) {
    const { job_id = '', attempt = 1, placement = [] } = ctx ?? {};
    return { operation: 'stream', job_id, idx, attempt, config, placement };
  }
  if (isDataJob(config)) return dataTaskSpec(config, idx, ctx ?? { job_id: '', attempt: 1 });
  switch (config.operation) {
    case 'multiply': {
      const n = config.data ? config.data.length : config.task_count;
      const { start, end } = contiguousPartition(n, config.task_count, idx);
      const input = config.data ? { values: config.data.slice(start, end) } : { from: start + 1, to: end };
      return { operation: 'multiply', params: { factor: config.factor }, input, idx };
    }
    case 'noop':
      return { operation: 'noop', params: {}, input: null, idx };
    case 'sleep':
      return { operation: 'sleep', params: { ms: config.ms }, input: null, idx };
  }
}

function dataTaskSpec(c: DataJobConfig, idx: number, ctx: DispatchContext): DataTaskSpec {
  const stages = planStages(c) ?? [{ name: 'map' as const, first: 0, count: c.task_count }];
  const { stage, local } = stageOf(stages, idx);
  const name = stages[stage]!.name;
  const spec: DataTaskSpec = {
    operation: c.operation,
    idx,
    job_id: ctx.job_id,
    attempt: ctx.attempt,
    stage: name,
    part: local,
    ...(c.module !== undefined ? { module: c.module } : {}),
    params: c.params,
    reduce_tasks: c.reduce_tasks,
    combine: c.combine,
    partitioner: c.partitioner,
    results: c.results,
    ...(c.env ? { user_env: c.env } : {}),
  };
  if (name === 'reduce') {
    return { ...spec, maps: ctx.maps ?? [], ...(c.output ? { output: c.output } : {}) };
  }
  // Sample and map tasks read split `local`: a file is read by the worker; inline data travels here.
  if (c.data) {
    const { start, end } = contiguousPartition(c.data.length, c.task_count, local);
    spec.records = c.data.slice(start, end);
  } else if (c.input) {
    spec.input = { spec: c.input, splits: c.task_count };
  }
  if (name === 'map' && c.partitioner === 'range') spec.boundaries = ctx.plan?.boundaries ?? [];
  return spec;
}

/** Jobs whose results are `{key, value}` rows, served sorted by key. */
export const isKeyed = (c: BatchConfig | StreamConfig): boolean => isDataJob(c) && c.results === 'rows' && !c.output;

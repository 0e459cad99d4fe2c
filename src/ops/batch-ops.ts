import { setTimeout as sleep } from 'node:timers/promises';
import type { BatchConfig } from './batch-config.js';
import { readInputSplit, type InputSpec } from './input-split.js';
import { contiguousPartition } from './partition.js';
import { runUserMap } from './user-module.js';

/** What one task gets: enough to run without the job's config (which may be large). */
export interface TaskSpec {
  operation: BatchConfig['operation'];
  params: Record<string, unknown>;
  input: unknown;
  idx: number;
}

/**
 * The input of task `idx` of a job — a pure function of the config, so every master derives
 * the same tasks from a logged submitJob and the log never carries them twice.
 */
export function taskSpec(config: BatchConfig, idx: number): TaskSpec {
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
    case 'map': {
      const params = { module: config.module, task_count: config.task_count };
      // A file is read by the worker (split idx of task_count); inline data travels with the task.
      if (config.input) return { operation: 'map', params: { ...params, input: config.input }, input: null, idx };
      const { start, end } = contiguousPartition(config.data.length, config.task_count, idx);
      return { operation: 'map', params, input: config.data.slice(start, end), idx };
    }
  }
}

/** Jobs whose results are `{key, value}` rows, served sorted by key. */
export const KEYED_OPERATIONS: ReadonlySet<string> = new Set(['map']);

/** Runs one task; called inside a worker thread. Returns the task's results, in order. */
export async function runTask(spec: TaskSpec): Promise<unknown[]> {
  switch (spec.operation) {
    case 'multiply': {
      const factor = spec.params.factor as number;
      const input = spec.input as { values?: number[]; from?: number; to?: number };
      if (input.values) return input.values.map((x) => x * factor);
      const out: number[] = [];
      for (let x = input.from ?? 1; x <= (input.to ?? 0); x++) out.push(x * factor);
      return out;
    }
    case 'noop':
      return [spec.idx];
    case 'sleep':
      await sleep(spec.params.ms as number);
      return [spec.idx];
    case 'map': {
      const file = spec.params.input as InputSpec | undefined;
      const records = file
        ? await readInputSplit(file, spec.params.task_count as number, spec.idx)
        : (spec.input as unknown[]);
      return runUserMap(spec.params.module as string, records);
    }
  }
}

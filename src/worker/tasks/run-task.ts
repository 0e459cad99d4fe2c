import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskSpec } from '../../protocol/task-spec.js';
import { runDataTask } from './data-task.js';

/** Results of one task carried through the log; beyond it, part files (config.output). */
export const MAX_TASK_RESULT_BYTES = 16 * 1024 * 1024;

/**
 * Runs one task inside a worker thread and returns its results as the JSON text the masters
 * store: made once, here, and carried as it is to the state database.
 */
export async function runTaskToJson(spec: TaskSpec): Promise<string> {
  const json = JSON.stringify(await runTask(spec));
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_TASK_RESULT_BYTES) {
    throw new RangeError(
      `this task's results are ${(bytes / 1048576).toFixed(1)} MiB, over the ${MAX_TASK_RESULT_BYTES / 1048576} MiB kept on the masters per task; write them to part files with config.output = {"path": "/dir"}`,
    );
  }
  return json;
}

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
    case 'stream':
      throw new TypeError('a stream instance runs in the worker’s stream runtime, not in a task thread');
    default:
      return runDataTask(spec);
  }
}

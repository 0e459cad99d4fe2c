// Entry point of the executor's worker threads: runs one task and returns its results.
// Errors thrown here reach the pool with their name, message and stack.
import { runTask, type TaskSpec } from '../ops/batch-ops.js';

export default function run(spec: TaskSpec): Promise<unknown[]> {
  return runTask(spec);
}

// Entry point of the executor's worker threads: runs one task and returns its results as
// JSON text. Errors thrown here reach the pool with their name, message and stack.
import { runTaskToJson, type TaskSpec } from '../ops/batch-ops.js';

export default function run(spec: TaskSpec): Promise<string> {
  return runTaskToJson(spec);
}

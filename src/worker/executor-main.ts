// Entry point of an executor process: runs the chunks of tasks (and of streaming bolts'
// batches, see stream/stream-apply.ts) its worker sends it, one after the other, and sends
// back each one's results as JSON text, or its error as plain data, and its run time. It
// starts with a clean environment and under Node's permission model (see executor-rules.ts);
// a task sees only the environment its job gave it.
import { permissionMessage, PERMISSION_DENIED } from './executor-rules.js';
import { runTaskToJson } from './tasks/run-task.js';
import { thrownError, type ChunkOutcome, type ChunkRequest, type ThrownError } from './task-chunks.js';
import { runStreamApply, type ExecutorSpec } from './stream/stream-apply.js';
import { asTask, captureOutput } from './executor-output.js';
import { confineSignals } from './executor-signals.js';

// Orphaned, an executor has no one to report to: it goes (its worker was killed).
process.on('disconnect', () => process.exit(0));
// A stop signal sent to the worker's whole process group (systemd stopping it, Ctrl-C in its
// terminal) is the worker's to act on: it drains, and the task running here is one it waits
// for. The worker ends this process itself (SIGKILL), or its own end does (pdeathsig). Only an
// executor still starting, before this line, dies of such a signal: its task fails, and is
// retried.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => undefined);
captureOutput();
confineSignals();

function useEnv(spec: ExecutorSpec): void {
  const env = 'user_env' in spec ? spec.user_env : undefined;
  for (const k of Object.keys(process.env)) delete process.env[k];
  if (env) Object.assign(process.env, env);
}

function failure(err: unknown): ThrownError {
  const denied = permissionMessage(err);
  return denied ? { name: PERMISSION_DENIED, message: denied } : thrownError(err);
}

async function runChunk(req: ChunkRequest): Promise<ChunkOutcome[]> {
  const started = Date.now();
  const outcomes: ChunkOutcome[] = [];
  for (let i = 0; i < req.specs.length; i++) {
    if (i > 0 && Date.now() - started >= req.budgetMs) break;
    const spec = req.specs[i]!;
    useEnv(spec);
    const t0 = performance.now();
    try {
      const json = await asTask(req.seq, i, () =>
        spec.operation === 'stream_apply' ? runStreamApply(spec) : runTaskToJson(spec),
      );
      outcomes.push({ json, ms: performance.now() - t0 });
    } catch (err) {
      outcomes.push({ error: failure(err), ms: performance.now() - t0 });
    }
  }
  return outcomes;
}

process.on('message', (req: ChunkRequest) => {
  void runChunk(req).then((outcomes) => process.send!(outcomes));
});
process.send!('ready');

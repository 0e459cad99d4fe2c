// The executor's side of task logs: what user code writes to process.stdout / process.stderr
// (console.* writes there too) goes to the worker over the IPC channel, tagged with the task
// attempt that wrote it, instead of to the worker's own output.
//
// The attempt is the one whose async context made the write (AsyncLocalStorage around each
// task's run), not the one running now: a line that a task's timer prints after it returned
// is still that task's, never the next task's. The worker keeps it if that attempt's log is
// still being collected (a chunk-mate still runs), and drops it otherwise.
//
// Each write is sent as it happens, not gathered: a task that prints and then loops until its
// memory limit or its timeout kills this process, or calls process.exit, has sent what it
// printed by then (a message on the channel is written to its pipe at once when the pipe has
// room, and the channel is the same ordered pipe its outcome takes). A task that prints nothing
// costs nothing. Past the budget of one attempt's log, writes are dropped here, and the worker
// told once, so a task printing in a loop costs neither side more than the cap.
import { AsyncLocalStorage } from 'node:async_hooks';
import { LOG_CAP_BYTES, LOG_LINE_OVERHEAD } from '../protocol/task-log.js';

/**
 * What an executor sends its worker for a write of user code: `c` is the chunk (its `seq`) and
 * `i` the task's place in it.
 */
export type OutputMessage =
  | { t: 'log'; c: number; i: number; s: 0 | 1; at: number; d: string }
  | { t: 'log_cut'; c: number; i: number; at: number };

export const isOutputMessage = (m: unknown): m is OutputMessage => {
  if (typeof m !== 'object' || m === null) return false;
  const o = m as { t?: unknown; c?: unknown; i?: unknown; at?: unknown; d?: unknown; s?: unknown };
  if (typeof o.c !== 'number' || typeof o.i !== 'number' || typeof o.at !== 'number') return false;
  if (o.t === 'log_cut') return true;
  return o.t === 'log' && typeof o.d === 'string' && (o.s === 0 || o.s === 1);
};

type Write = typeof process.stdout.write;

/** One task attempt, as its writes know it, and what they may still cost. */
interface Attempt {
  c: number;
  i: number;
  budget: number;
}

const attempt = new AsyncLocalStorage<Attempt>();

/**
 * Runs task `i` of chunk `c`: what its code writes, now or from any callback it leaves behind,
 * is its own (writes outside every task go to the worker's output).
 */
export function asTask<T>(c: number, i: number, run: () => Promise<T>): Promise<T> {
  return attempt.run({ c, i, budget: LOG_CAP_BYTES + LOG_LINE_OVERHEAD }, run);
}

function capture(stream: NodeJS.WriteStream, s: 0 | 1): void {
  const original = stream.write.bind(stream) as Write;
  const write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
    const a = attempt.getStore();
    if (!a || !process.send) return original(chunk as string, encoding as BufferEncoding, cb as () => void);
    const done = typeof encoding === 'function' ? encoding : cb;
    if (a.budget > 0) {
      let d =
        typeof chunk === 'string'
          ? chunk
          : chunk instanceof Uint8Array
            ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8')
            : String(chunk);
      if (d.length > a.budget) d = d.slice(0, a.budget);
      a.budget -= d.length + LOG_LINE_OVERHEAD;
      process.send({ t: 'log', c: a.c, i: a.i, s, at: Date.now(), d } satisfies OutputMessage);
      if (a.budget <= 0) process.send({ t: 'log_cut', c: a.c, i: a.i, at: Date.now() } satisfies OutputMessage);
    }
    if (typeof done === 'function') queueMicrotask(() => (done as (err?: Error) => void)());
    return true;
  };
  stream.write = write as Write;
}

/** Takes over the process's stdout and stderr (once, at the executor's start). */
export function captureOutput(): void {
  capture(process.stdout, 0);
  capture(process.stderr, 1);
}

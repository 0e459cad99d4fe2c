// The executor's side of task logs: what user code writes to process.stdout / process.stderr
// (console.* writes there too) goes to the worker over the IPC channel, tagged with the task
// that wrote it, instead of to the worker's own output.
//
// Each write is sent as it happens, not gathered: a task that prints and then loops until its
// memory limit or its timeout kills this process, or calls process.exit, has sent what it
// printed by then (a message on the channel is written to its pipe at once when the pipe has
// room, and the channel is the same ordered pipe its outcome takes). A task that prints nothing
// costs nothing. Past the budget of one attempt's log, writes are dropped here, and the worker
// told once, so a task printing in a loop costs neither side more than the cap.
import { LOG_CAP_BYTES, LOG_LINE_OVERHEAD } from '../protocol/task-log.js';

/** What an executor sends its worker for a write of user code: `i` is the task's place in its chunk. */
export type OutputMessage =
  { t: 'log'; i: number; s: 0 | 1; at: number; d: string } | { t: 'log_cut'; i: number; at: number };

export const isOutputMessage = (m: unknown): m is OutputMessage => {
  if (typeof m !== 'object' || m === null) return false;
  const o = m as { t?: unknown; i?: unknown; at?: unknown; d?: unknown; s?: unknown };
  if (typeof o.i !== 'number' || typeof o.at !== 'number') return false;
  if (o.t === 'log_cut') return true;
  return o.t === 'log' && typeof o.d === 'string' && (o.s === 0 || o.s === 1);
};

type Write = typeof process.stdout.write;

/** The task running now, by its place in the chunk (-1: none), and what its writes may still cost. */
let current = -1;
let budget = 0;

/** Writes from now on belong to the chunk's task `i` (-1: to nobody, they go to the worker's output). */
export function outputOf(i: number): void {
  current = i;
  budget = LOG_CAP_BYTES + LOG_LINE_OVERHEAD;
}

function capture(stream: NodeJS.WriteStream, s: 0 | 1): void {
  const original = stream.write.bind(stream) as Write;
  const write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
    if (current < 0 || !process.send) return original(chunk as string, encoding as BufferEncoding, cb as () => void);
    const done = typeof encoding === 'function' ? encoding : cb;
    if (budget > 0) {
      let d =
        typeof chunk === 'string'
          ? chunk
          : chunk instanceof Uint8Array
            ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8')
            : String(chunk);
      if (d.length > budget) d = d.slice(0, budget);
      budget -= d.length + LOG_LINE_OVERHEAD;
      process.send({ t: 'log', i: current, s, at: Date.now(), d } satisfies OutputMessage);
      if (budget <= 0) process.send({ t: 'log_cut', i: current, at: Date.now() } satisfies OutputMessage);
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

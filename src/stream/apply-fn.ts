// What a map, filter or flat_map bolt does to its input batches with the user's function, as
// a pure function: it runs inside an executor process (see worker/stream/stream-apply.ts),
// and the bolt in the worker only emits and acks what comes back.

export type FnOp = 'map' | 'filter' | 'flat_map';

export type StreamEvent = Record<string, unknown>;

/**
 * Per input batch, in order: for map and flat_map the events to emit, for filter the indexes
 * of the input events kept (the bolt emits its own copies: nothing to send back but numbers).
 * `errors` counts events dropped because the function threw on them.
 */
export type ApplyOutcome =
  | { op: 'map' | 'flat_map'; out: StreamEvent[][]; errors: number }
  | {
      op: 'filter';
      keep: number[][];
      errors: number;
    };

const isEvent = (e: unknown): e is StreamEvent => e !== null && typeof e === 'object';

/** What a call of the function came to: its value, or that it threw (`threw` holds why). */
const THREW = Symbol('threw');
interface Threw {
  [THREW]: unknown;
  /** What an async generator yielded before it threw: kept, as a sync one's is. */
  yielded?: unknown[];
}

const threw = (err: unknown, yielded?: unknown[]): Threw => ({ [THREW]: err, ...(yielded ? { yielded } : {}) });
const isThrew = (r: unknown): r is Threw => r !== null && typeof r === 'object' && THREW in r;

const isThenable = (r: unknown): r is PromiseLike<unknown> =>
  r !== null &&
  (typeof r === 'object' || typeof r === 'function') &&
  typeof (r as { then?: unknown }).then === 'function';

const isAsyncIterable = (r: unknown): r is AsyncIterable<unknown> =>
  r !== null &&
  typeof r === 'object' &&
  typeof (r as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';

/**
 * Applies `f` to every event of every batch. A function that throws on an event drops that
 * event (counted) rather than its batch, unless `fatal` says the error must end the whole
 * call (a refusal of the permission model: the same event would be refused again).
 * map keeps what is an object; flat_map the objects of what is iterable; filter what is truthy.
 * An `async` function (or one returning a promise, or an async generator for flat_map) is
 * awaited, as a batch job's map is: its calls for one message run together, their outcomes
 * taken in order. Only then is the outcome a promise.
 */
export function applyFn(
  f: (event: StreamEvent) => unknown,
  op: FnOp,
  batches: readonly (readonly StreamEvent[])[],
  fatal: (err: unknown) => boolean = () => false,
): ApplyOutcome | Promise<ApplyOutcome> {
  let waits: Promise<void>[] | undefined;
  const raw = batches.map((events) => {
    const results: unknown[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      let r: unknown;
      try {
        r = f(events[i]!);
      } catch (err) {
        if (fatal(err)) throw err;
        r = threw(err);
      }
      results[i] = r;
      if (isThenable(r) || (op === 'flat_map' && isAsyncIterable(r))) {
        (waits ??= []).push(
          settle(r).then((v) => {
            results[i] = v;
          }),
        );
      }
    }
    return results;
  });
  if (waits === undefined) return outcomeOf(op, raw, fatal);
  return Promise.all(waits).then(() => outcomeOf(op, raw, fatal));
}

/** A promise's value (an async generator's items, as an array), or that it threw. Never rejects. */
async function settle(r: unknown): Promise<unknown> {
  try {
    const v = isThenable(r) ? await r : r;
    if (!isAsyncIterable(v)) return v;
    const items: unknown[] = [];
    try {
      for await (const x of v) items.push(x);
    } catch (err) {
      return threw(err, items);
    }
    return items;
  } catch (err) {
    return threw(err);
  }
}

function outcomeOf(op: FnOp, raw: unknown[][], fatal: (err: unknown) => boolean): ApplyOutcome {
  let errors = 0;
  const failed = (err: unknown) => {
    if (fatal(err)) throw err;
    errors++;
  };
  if (op === 'filter') {
    const keep = raw.map((results) => {
      const kept: number[] = [];
      for (let i = 0; i < results.length; i++) {
        const r = results[i];
        if (isThrew(r)) failed(r[THREW]);
        else if (r) kept.push(i);
      }
      return kept;
    });
    return { op, keep, errors };
  }
  const out = raw.map((results) => {
    const emitted: StreamEvent[] = [];
    for (const r of results) {
      if (isThrew(r)) {
        for (const x of r.yielded ?? []) if (isEvent(x)) emitted.push(x);
        failed(r[THREW]);
        continue;
      }
      if (op === 'map') {
        if (isEvent(r)) emitted.push(r);
      } else if (r && typeof (r as Iterable<unknown>)[Symbol.iterator] === 'function') {
        // A generator that throws part way keeps what it yielded before.
        try {
          for (const x of r as Iterable<unknown>) if (isEvent(x)) emitted.push(x);
        } catch (err) {
          failed(err);
        }
      }
    }
    return emitted;
  });
  return { op, out, errors };
}

/**
 * An outcome as the bolt receives it from the executor, checked against what it sent: user
 * code shares that process and could answer anything, and no answer may crash the worker.
 * Undefined when it does not fit (the bolt then fails its instance).
 */
export function checkOutcome(
  value: unknown,
  op: FnOp,
  batches: readonly (readonly StreamEvent[])[],
): ApplyOutcome | undefined {
  if (!isEvent(value)) return undefined;
  const o = value as { op?: unknown; out?: unknown; keep?: unknown; errors?: unknown };
  if (o.op !== op || typeof o.errors !== 'number' || !Number.isInteger(o.errors) || o.errors < 0) return undefined;
  if (op === 'filter') {
    const keep = o.keep;
    if (!Array.isArray(keep) || keep.length !== batches.length) return undefined;
    const fits = keep.every(
      (k: unknown, b) =>
        Array.isArray(k) &&
        k.every((i: unknown) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < batches[b]!.length),
    );
    return fits ? { op, keep: keep as number[][], errors: o.errors } : undefined;
  }
  const out = o.out;
  if (!Array.isArray(out) || out.length !== batches.length) return undefined;
  const fits = out.every((events: unknown) => Array.isArray(events) && events.every(isEvent));
  return fits ? { op, out: out as StreamEvent[][], errors: o.errors } : undefined;
}

/** A bolt's batches cut in two, and how to join the halves' outcomes; undefined for one event. */
export interface Halves {
  parts: [StreamEvent[][], StreamEvent[][]];
  join(a: ApplyOutcome, b: ApplyOutcome): ApplyOutcome;
}

/**
 * Halves of an apply message whose outcome was too large to take at once: its batches split
 * between them, or a lone batch's events. What a map or flat_map returned for the halves, joined,
 * is what it would have returned for the whole (a filter's outcome is never larger than its input).
 */
export function halve(batches: StreamEvent[][]): Halves | undefined {
  const outs = (o: ApplyOutcome): StreamEvent[][] => (o.op === 'filter' ? [] : o.out);
  const joined = (a: ApplyOutcome, out: StreamEvent[][], b: ApplyOutcome): ApplyOutcome =>
    a.op === 'filter' ? a : { op: a.op, out, errors: a.errors + b.errors };
  if (batches.length > 1) {
    const k = Math.floor(batches.length / 2);
    return {
      parts: [batches.slice(0, k), batches.slice(k)],
      join: (a, b) => joined(a, [...outs(a), ...outs(b)], b),
    };
  }
  const events = batches[0] ?? [];
  if (events.length < 2) return undefined;
  const h = Math.floor(events.length / 2);
  return {
    parts: [[events.slice(0, h)], [events.slice(h)]],
    join: (a, b) => joined(a, [[...(outs(a)[0] ?? []), ...(outs(b)[0] ?? [])]], b),
  };
}

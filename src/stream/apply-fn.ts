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

/**
 * Applies `f` to every event of every batch. A function that throws on an event drops that
 * event (counted) rather than its batch, unless `fatal` says the error must end the whole
 * call (a refusal of the permission model: the same event would be refused again).
 * map keeps what is an object; flat_map the objects of what is iterable; filter what is truthy.
 */
export function applyFn(
  f: (event: StreamEvent) => unknown,
  op: FnOp,
  batches: readonly (readonly StreamEvent[])[],
  fatal: (err: unknown) => boolean = () => false,
): ApplyOutcome {
  let errors = 0;
  const failed = (err: unknown) => {
    if (fatal(err)) throw err;
    errors++;
  };
  if (op === 'filter') {
    const keep = batches.map((events) => {
      const kept: number[] = [];
      for (let i = 0; i < events.length; i++) {
        try {
          if (f(events[i]!)) kept.push(i);
        } catch (err) {
          failed(err);
        }
      }
      return kept;
    });
    return { op, keep, errors };
  }
  const out = batches.map((events) => {
    const emitted: StreamEvent[] = [];
    for (const e of events) {
      try {
        const r = f(e);
        if (op === 'map') {
          if (isEvent(r)) emitted.push(r);
        } else if (r && typeof (r as Iterable<unknown>)[Symbol.iterator] === 'function') {
          // A generator that throws part way keeps what it yielded before.
          for (const x of r as Iterable<unknown>) if (isEvent(x)) emitted.push(x);
        }
      } catch (err) {
        failed(err);
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

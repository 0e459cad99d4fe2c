// What a function bolt's executor does to its batches, and how the bolt judges the answer
// it gets back from a process that user code shares.
import { describe, expect, it } from 'vitest';
import { applyFn, checkOutcome, halve, type ApplyOutcome, type StreamEvent } from '../../src/stream/apply-fn.js';

describe('applying a function to batches', () => {
  it('map keeps what is an object, per batch, in order', () => {
    const o = applyFn((e) => ((e.n as number) > 1 ? { m: e.n } : 7), 'map', [[{ n: 1 }, { n: 2 }], [], [{ n: 3 }]]);
    expect(o).toEqual({ op: 'map', out: [[{ m: 2 }], [], [{ m: 3 }]], errors: 0 });
  });

  it('flat_map keeps the objects of what is iterable, and what a generator yielded before it threw', () => {
    const f = function* (e: Record<string, unknown>) {
      yield { a: e.n };
      yield 5;
      if (e.n === 2) throw new Error('half way');
      yield { b: e.n };
    };
    expect(applyFn(f, 'flat_map', [[{ n: 1 }, { n: 2 }]])).toEqual({
      op: 'flat_map',
      out: [[{ a: 1 }, { b: 1 }, { a: 2 }]],
      errors: 1,
    });
  });

  it('filter answers with the indexes kept, and drops (counting) events the function throws on', () => {
    const f = (e: Record<string, unknown>) => {
      if (e.n === 0) throw new Error('zero');
      return (e.n as number) > 1;
    };
    expect(applyFn(f, 'filter', [[{ n: 0 }, { n: 1 }, { n: 2 }], [{ n: 3 }]])).toEqual({
      op: 'filter',
      keep: [[2], [0]],
      errors: 1,
    });
  });

  it('lets an error that must end the call through (a refused path would be refused again)', () => {
    const denied = Object.assign(new Error('denied'), { code: 'ERR_ACCESS_DENIED' });
    const f = () => {
      throw denied;
    };
    expect(() => applyFn(f, 'map', [[{}]], (e) => (e as { code?: string }).code === 'ERR_ACCESS_DENIED')).toThrow(
      denied,
    );
  });
});

// An async function returned a promise for each event; map took the promise for the event
// (an object) and emitted `{}`, and filter kept every event (a promise is truthy).
describe('applying an async function: awaited, as a batch job’s map is', () => {
  const later = <T>(v: T, ms: number) => new Promise<T>((r) => setTimeout(() => r(v), ms));

  it('map emits what each promise resolves to, in input order whatever order they settle in', async () => {
    const o = applyFn((e) => later({ m: e.n }, 10 - (e.n as number)), 'map', [[{ n: 1 }, { n: 2 }], [{ n: 3 }]]);
    expect(o).toBeInstanceOf(Promise);
    expect(await o).toEqual({ op: 'map', out: [[{ m: 1 }, { m: 2 }], [{ m: 3 }]], errors: 0 });
  });

  it('filter keeps what resolves truthy; a rejection drops (counts) its event', async () => {
    const f = async (e: StreamEvent) => {
      if (e.n === 0) throw new Error('zero');
      return (e.n as number) > 1;
    };
    expect(await applyFn(f, 'filter', [[{ n: 0 }, { n: 1 }, { n: 2 }]])).toEqual({
      op: 'filter',
      keep: [[2]],
      errors: 1,
    });
  });

  it('flat_map takes a promised array and an async generator, keeping what it yielded before it threw', async () => {
    const f = async function* (e: StreamEvent) {
      yield { a: e.n };
      if (e.n === 2) throw new Error('half way');
      yield { b: e.n };
    };
    expect(await applyFn(f, 'flat_map', [[{ n: 1 }, { n: 2 }]])).toEqual({
      op: 'flat_map',
      out: [[{ a: 1 }, { b: 1 }, { a: 2 }]],
      errors: 1,
    });
    expect(await applyFn(async (e) => [{ x: e.n }, { y: e.n }], 'flat_map', [[{ n: 1 }]])).toEqual({
      op: 'flat_map',
      out: [[{ x: 1 }, { y: 1 }]],
      errors: 0,
    });
  });

  // What user code hands back may be any object with a `then`: one that throws, or never
  // calls back (left to the apply's timeout, as a loop that never ends is).
  it('counts a thenable whose then throws as a throw, and keeps the other events', async () => {
    const f = (e: StreamEvent) =>
      e.n === 1
        ? {
            then() {
              throw new Error('bad then');
            },
          }
        : { n: e.n };
    expect(await applyFn(f, 'map', [[{ n: 1 }, { n: 2 }]])).toEqual({ op: 'map', out: [[{ n: 2 }]], errors: 1 });
  });

  it('lets a refusal that must end the call through as a rejection', async () => {
    const denied = Object.assign(new Error('denied'), { code: 'ERR_ACCESS_DENIED' });
    const o = applyFn(
      async () => {
        throw denied;
      },
      'map',
      [[{}]],
      (e) => (e as { code?: string }).code === 'ERR_ACCESS_DENIED',
    );
    await expect(o).rejects.toBe(denied);
  });
});

describe('an outcome from the executor', () => {
  const batches = [[{ a: 1 }, { a: 2 }], [{ a: 3 }]];

  it('is taken when it fits what was sent', () => {
    expect(checkOutcome({ op: 'filter', keep: [[1], []], errors: 0 }, 'filter', batches)).toBeDefined();
    expect(checkOutcome({ op: 'map', out: [[{ x: 1 }], []], errors: 2 }, 'map', batches)).toBeDefined();
  });

  it.each([
    ['not an object', 'nonsense'],
    ['another op', { op: 'map', keep: [[], []], errors: 0 }],
    ['a batch missing', { op: 'filter', keep: [[]], errors: 0 }],
    ['an index out of its batch', { op: 'filter', keep: [[2], []], errors: 0 }],
    ['an index that is no integer', { op: 'filter', keep: [['0'], []], errors: 0 }],
    ['an event that is no object', { op: 'map', out: [[1], []], errors: 0 }],
    ['a negative error count', { op: 'map', out: [[], []], errors: -1 }],
  ])('is refused when it is %s', (_why, value) => {
    const op = (value as { op?: string }).op === 'map' ? 'map' : 'filter';
    expect(checkOutcome(value, op, batches)).toBeUndefined();
  });
});

describe('an apply message whose outcome is too large, asked for again in halves', () => {
  const flatMap = (batches: StreamEvent[][], times: number) =>
    applyFn((e) => Array.from({ length: times }, (_, i) => ({ ...e, i })), 'flat_map', batches) as ApplyOutcome;

  it('splits its batches, then a lone batch’s events, down to one event', () => {
    const three = [[{ n: 1 }], [{ n: 2 }, { n: 3 }], [{ n: 4 }]];
    expect(halve(three)!.parts).toEqual([[[{ n: 1 }]], [[{ n: 2 }, { n: 3 }], [{ n: 4 }]]]);
    expect(halve([[{ n: 1 }, { n: 2 }, { n: 3 }]])!.parts).toEqual([[[{ n: 1 }]], [[{ n: 2 }, { n: 3 }]]]);
    expect(halve([[{ n: 1 }]])).toBeUndefined();
    expect(halve([])).toBeUndefined();
  });

  it('joins what the halves returned into what the whole would have returned', () => {
    for (const batches of [[[{ n: 1 }], [{ n: 2 }, { n: 3 }], [{ n: 4 }]], [[{ n: 1 }, { n: 2 }, { n: 3 }]]]) {
      const h = halve(batches)!;
      expect(h.join(flatMap(h.parts[0], 2), flatMap(h.parts[1], 2))).toEqual(flatMap(batches, 2));
    }
  });
});

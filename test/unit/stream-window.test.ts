import { describe, expect, it } from 'vitest';
import type { WindowParams } from '../../src/protocol/stream-job.js';
import { IDLE_MS, WindowOperator, type FiredWindow } from '../../src/stream/window.js';

const tumbling = (size_ms: number, extra: Partial<WindowParams['window']> = {}): WindowParams['window'] => ({
  type: 'tumbling',
  size_ms,
  slide_ms: size_ms,
  allowed_lateness_ms: 0,
  ...extra,
});
const sliding = (size_ms: number, slide_ms: number, extra: Partial<WindowParams['window']> = {}) => ({
  ...tumbling(size_ms, extra),
  type: 'sliding' as const,
  slide_ms,
});
const results = <A>(fired: FiredWindow<A>[]) => fired.map((f) => f.result);
const spans = <A>(fired: FiredWindow<A>[]) => fired.map((f) => [f.result.window_start, f.result.window_end]);

describe('window assignment', () => {
  it('puts an event at t in the tumbling window [floor(t/size)*size, +size)', () => {
    const w = new WindowOperator({ aggregate: 'count', window: tumbling(1000) });
    for (const t of [0, 999, 1000, 1999, 2000]) w.add({}, t);
    // Boundaries: 999 is in the first window, 1000 starts the second; a window fires once the clock reaches its end.
    expect(results(w.advance(2000))).toEqual([
      { key: null, window_start: 0, window_end: 1000, value: 2 },
      { key: null, window_start: 1000, window_end: 2000, value: 2 },
    ]);
    expect(w.advance(2999)).toEqual([]);
    expect(results(w.advance(3000))).toEqual([{ key: null, window_start: 2000, window_end: 3000, value: 1 }]);
  });

  it('puts an event in each sliding window of length size starting at a multiple of slide that contains it', () => {
    const w = new WindowOperator({ aggregate: 'count', window: sliding(1000, 250) });
    w.add({}, 1000); // a window's start is inside it...
    expect(spans(w.advance(Infinity))).toEqual([
      [250, 1250],
      [500, 1500],
      [750, 1750],
      [1000, 2000],
    ]);
    const v = new WindowOperator({ aggregate: 'count', window: sliding(1000, 250) });
    v.add({}, 1249); // ...and its end is not
    expect(spans(v.advance(Infinity))).toEqual([
      [250, 1250],
      [500, 1500],
      [750, 1750],
      [1000, 2000],
    ]);
  });

  it('aligns windows to the epoch, also before it', () => {
    const w = new WindowOperator({ aggregate: 'count', window: tumbling(1000, { time_field: 't' }) });
    w.add({ t: -1 }, 0);
    expect(spans(w.drain())).toEqual([[-1000, 0]]);
  });

  it('keeps one window per key, and a single null key without a key field', () => {
    const w = new WindowOperator({ aggregate: 'count', key: 'word', window: tumbling(100) });
    for (const word of ['a', 'b', 'a', undefined]) w.add(word ? { word } : {}, 10);
    expect(w.openWindows).toBe(3);
    expect(results(w.advance(100)).map((r) => [r.key, r.value])).toEqual([
      ['a', 2],
      ['b', 1],
      [null, 1],
    ]);
    expect(w.openWindows).toBe(0);
  });

  it('tells apart keys that differ only in type', () => {
    const w = new WindowOperator({ aggregate: 'count', key: 'k', window: tumbling(100) });
    w.add({ k: 1 }, 0);
    w.add({ k: '1' }, 0);
    expect(results(w.advance(100)).map((r) => r.key)).toEqual([1, '1']);
  });

  it('uses the largest processing time seen, so a clock stepping back cannot reopen windows', () => {
    const w = new WindowOperator({ aggregate: 'count', window: tumbling(100) });
    w.advance(500);
    w.add({}, 50); // placed at 500, not 50
    expect(spans(w.advance(600))).toEqual([[500, 600]]);
  });
});

describe('aggregates', () => {
  const over = (aggregate: WindowParams['aggregate'], values: unknown[]) => {
    const w = new WindowOperator({ aggregate, ...(aggregate === 'count' ? {} : { field: 'v' }), window: tumbling(10) });
    for (const v of values) w.add({ v }, 0);
    return results(w.advance(10))[0]!.value;
  };

  it('computes count, sum, min, max and avg over the field', () => {
    const vs = [3, -1, 4, 1.5];
    expect(over('count', vs)).toBe(4);
    expect(over('sum', vs)).toBe(7.5);
    expect(over('min', vs)).toBe(-1);
    expect(over('max', vs)).toBe(4);
    expect(over('avg', vs)).toBe(7.5 / 4);
  });

  it('skips values that are not finite numbers, and counts them', () => {
    expect(over('sum', [1, '2', null, 3])).toBe(4);
    expect(over('avg', [1, 'x', 3])).toBe(2);
    expect(over('min', ['a', undefined])).toBeNull();
    expect(over('sum', ['a'])).toBe(0);
    const w = new WindowOperator({ aggregate: 'max', field: 'v', window: tumbling(10) });
    w.add({ v: 'x' }, 0);
    w.add({}, 0);
    expect(w.stats.not_numeric).toBe(2);
  });
});

describe('event time', () => {
  const op = (window: WindowParams['window']) => new WindowOperator<string>({ aggregate: 'count', window });

  it('assigns by the time field, in ms or as an ISO string, not by arrival', () => {
    const w = op(tumbling(1000, { time_field: 'ts' }));
    w.add({ ts: 1500 }, 99_999);
    w.add({ ts: new Date(1700).toISOString() }, 0);
    w.add({ ts: 2500 }, 0);
    expect(results(w.advance(0))).toEqual([{ key: null, window_start: 1000, window_end: 2000, value: 2 }]);
  });

  it('refuses events without a usable time, and counts them', () => {
    const w = op(tumbling(1000, { time_field: 'ts' }));
    expect(w.add({}, 0).outcome).toBe('no_time');
    expect(w.add({ ts: 'yesterday' }, 0).outcome).toBe('no_time');
    expect(w.add({ ts: '5' }, 0).outcome).toBe('no_time');
    expect(w.add({ ts: Infinity }, 0).outcome).toBe('no_time');
    expect(w.stats.no_time).toBe(4);
    expect(w.heldEvents).toBe(0);
  });

  it('keeps a watermark of the largest event time seen minus the allowed lateness', () => {
    const w = op(tumbling(1000, { time_field: 'ts', allowed_lateness_ms: 300 }));
    expect(w.watermark).toBe(-Infinity);
    w.add({ ts: 1200 }, 0);
    w.add({ ts: 900 }, 0); // out of order: does not move the watermark back
    expect(w.watermark).toBe(900);
  });

  it('fires a window when the watermark reaches its end, whatever the clock says while events flow', () => {
    const w = op(tumbling(1000, { time_field: 'ts', allowed_lateness_ms: 300 }));
    w.add({ ts: 500 }, 0);
    w.add({ ts: 1299 }, 0);
    expect(w.advance(IDLE_MS)).toEqual([]); // watermark 999 < 1000
    w.add({ ts: 1300 }, IDLE_MS);
    expect(results(w.advance(IDLE_MS))).toEqual([{ key: null, window_start: 0, window_end: 1000, value: 1 }]);
  });

  it('moves event time on with the clock once no event came for IDLE_MS, so the last windows close', () => {
    const w = op(tumbling(1000, { time_field: 'ts', allowed_lateness_ms: 300 }));
    w.add({ ts: 1500 }, 10_000); // watermark 1200
    expect(w.advance(10_000 + IDLE_MS)).toEqual([]);
    expect(w.watermark).toBe(1200);
    // Idle: 800 ms past IDLE_MS, the watermark is 2000 and [1000, 2000) closes.
    expect(spans(w.advance(10_000 + IDLE_MS + 800))).toEqual([[1000, 2000]]);
    expect(w.watermark).toBe(2000);
  });

  it('never moves the watermark back when events come again after an idle stretch', () => {
    const w = op(tumbling(1000, { time_field: 'ts' }));
    w.add({ ts: 500 }, 0);
    w.advance(IDLE_MS + 2000); // idle: watermark 2500
    expect(w.watermark).toBe(2500);
    expect(w.add({ ts: 1900 }, IDLE_MS + 2000).outcome).toBe('late'); // [1000, 2000) closed while idle
    expect(w.add({ ts: 2600 }, IDLE_MS + 2001).outcome).toBe('held');
    expect(w.watermark).toBe(2600);
  });

  it('accepts disorder up to the lateness and drops what comes later, counting it', () => {
    const w = op(tumbling(1000, { time_field: 'ts', allowed_lateness_ms: 300 }));
    w.add({ ts: 1250 }, 0);
    expect(w.add({ ts: 999 }, 0).outcome).toBe('held'); // 251 ms late, window [0, 1000) still open
    w.add({ ts: 1400 }, 0); // watermark 1100: [0, 1000) is closed
    expect(w.add({ ts: 999 }, 0, 'late-one').outcome).toBe('late');
    expect(w.stats.late).toBe(1);
    const fired = w.advance(0);
    expect(results(fired)).toEqual([{ key: null, window_start: 0, window_end: 1000, value: 1 }]);
    expect(fired.flatMap((f) => f.acks)).toEqual([]);
  });

  it('decides lateness when the event arrives, so results do not depend on how often advance runs', () => {
    const run = (advanceEvery: boolean) => {
      const w = op(tumbling(100, { time_field: 'ts' }));
      const out: unknown[] = [];
      for (const ts of [10, 150, 90, 260, 120, 199, 300]) {
        w.add({ ts }, 0);
        if (advanceEvery) out.push(...results(w.advance(0)));
      }
      out.push(...results(w.advance(0)), ...results(w.drain()));
      return out;
    };
    expect(run(true)).toEqual(run(false));
    expect(run(false)).toEqual([
      { key: null, window_start: 0, window_end: 100, value: 1 },
      { key: null, window_start: 100, window_end: 200, value: 1 },
      { key: null, window_start: 200, window_end: 300, value: 1 },
      { key: null, window_start: 300, window_end: 400, value: 1 },
    ]);
  });

  it('puts a partly late event in the sliding windows still open', () => {
    const w = op(sliding(1000, 500, { time_field: 'ts' }));
    w.add({ ts: 1200 }, 0); // watermark 1200: [0, 1000) is closed
    expect(w.add({ ts: 700 }, 0).outcome).toBe('held'); // in [0, 1000) (closed) and [500, 1500) (open)
    expect(results(w.advance(0))).toEqual([]);
    w.add({ ts: 2000 }, 0);
    expect(results(w.advance(0))).toEqual([
      { key: null, window_start: 500, window_end: 1500, value: 2 },
      { key: null, window_start: 1000, window_end: 2000, value: 1 },
    ]);
  });

  it('drains every open window at the end of a bounded stream; later events for them are late', () => {
    const w = op(tumbling(100, { time_field: 'ts' }));
    w.add({ ts: 50 }, 0);
    w.add({ ts: 250 }, 0);
    expect(spans(w.drain())).toEqual([
      [0, 100],
      [200, 300],
    ]);
    expect(w.add({ ts: 260 }, 0).outcome).toBe('late');
    expect(w.add({ ts: 300 }, 0).outcome).toBe('held');
  });
});

describe('acks', () => {
  it('returns the ack ids of the events a window held when it fires, with that result', () => {
    const w = new WindowOperator<string>({ aggregate: 'count', key: 'k', window: tumbling(100) });
    w.add({ k: 'a' }, 10, 'a1');
    w.add({ k: 'b' }, 20, 'b1');
    w.add({ k: 'a' }, 30, 'a2');
    w.add({ k: 'a' }, 150, 'a3');
    expect(w.heldEvents).toBe(4);
    expect(w.advance(100).map((f) => [f.result.key, f.acks])).toEqual([
      ['a', ['a1', 'a2']],
      ['b', ['b1']],
    ]);
    expect(w.heldEvents).toBe(1);
    expect(w.advance(200).map((f) => f.acks)).toEqual([['a3']]);
    expect(w.heldEvents).toBe(0);
  });

  it('holds an event in several sliding windows in each of them, so it is acked after the last fires', () => {
    const w = new WindowOperator<string>({ aggregate: 'count', window: sliding(300, 100) });
    expect(w.add({}, 250, 'e').newHolds).toBe(3); // in [0, 300), [100, 400), [200, 500)
    expect(w.add({}, 350, 'f').newHolds).toBe(3); // in [100, 400), [200, 500), [300, 600)
    const step = (now: number) => w.advance(now).map((f) => [f.result.window_start, f.result.value, f.acks]);
    expect(step(300)).toEqual([[0, 1, ['e']]]);
    expect(step(400)).toEqual([[100, 2, ['e', 'f']]]);
    expect(w.heldEvents).toBe(2);
    expect(step(500)).toEqual([[200, 2, ['e', 'f']]]);
    expect(w.heldEvents).toBe(1);
    expect(step(600)).toEqual([[300, 1, ['f']]]);
    expect(w.heldEvents).toBe(0);
  });

  it('returns every ack id once per pane it was counted in', () => {
    const w = new WindowOperator<number>({ aggregate: 'count', key: 'k', window: sliding(1000, 100) });
    let holds = 0;
    for (let i = 0; i < 500; i++) holds += w.add({ k: i % 7 }, i * 13, i).newHolds;
    const fired = [...w.advance(3000), ...w.advance(9000)];
    const acks = fired.flatMap((f) => f.acks);
    expect(acks).toHaveLength(holds);
    expect(new Set(acks).size).toBe(500);
    expect(fired.reduce((n, f) => n + (f.result.value ?? 0), 0)).toBe(holds); // one count per pane
    expect(w.openWindows).toBe(0);
  });

  it('holds an ack id shared by a batch once per pane, and says how many panes newly took it', () => {
    const w = new WindowOperator<string>({ aggregate: 'count', key: 'k', window: tumbling(100) });
    const holds = (k: string, t: number, id: string) => w.add({ k }, t, id).newHolds;
    expect(holds('a', 10, 'batch1')).toBe(1);
    expect(holds('a', 11, 'batch1')).toBe(0);
    expect(holds('b', 12, 'batch1')).toBe(1);
    expect(holds('a', 13, 'batch2')).toBe(1);
    expect(holds('a', 150, 'batch2')).toBe(1); // another window: another pane
    expect(w.advance(100).map((f) => [f.result.key, f.result.value, f.acks])).toEqual([
      ['a', 3, ['batch1', 'batch2']],
      ['b', 1, ['batch1']],
    ]);
    expect(w.advance(200).map((f) => f.acks)).toEqual([['batch2']]);
  });

  it('counts a hold again when another batch came in between: the caller counts pushes, not batches', () => {
    const w = new WindowOperator<string>({ aggregate: 'count', key: 'k', window: tumbling(100) });
    expect(['a', 'b', 'a'].map((k) => w.add({ k }, 10, 'b1').newHolds)).toEqual([1, 1, 0]);
    expect(w.add({ k: 'a' }, 11, 'b2').newHolds).toBe(1);
    expect(w.add({ k: 'a' }, 12, 'b1').newHolds).toBe(1);
    expect(w.advance(100)[0]!.acks).toEqual(['b1', 'b2', 'b1']);
  });

  it('counts events without an ack id as held all the same', () => {
    const w = new WindowOperator({ aggregate: 'count', window: tumbling(100) });
    w.add({}, 0);
    expect(w.heldEvents).toBe(1);
    expect(w.advance(100)[0]!.acks).toEqual([]);
    expect(w.heldEvents).toBe(0);
  });
});

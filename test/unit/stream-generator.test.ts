import { describe, expect, it } from 'vitest';
import { EventGenerator, type GeneratorSpec } from '../../src/stream/generator.js';

const spec = (p: Partial<GeneratorSpec> = {}): GeneratorSpec => ({
  id: 'g',
  type: 'generator',
  parallelism: 1,
  keys: 1,
  ...p,
});

describe('EventGenerator', () => {
  it('emits {seq, key, value: 1, ts} with keys cycling over k0..k(keys-1)', () => {
    const g = new EventGenerator(spec({ keys: 3 }), 0, 0);
    expect(g.take(7, 4)).toEqual([
      { seq: 0, key: 'k0', value: 1, ts: 7 },
      { seq: 1, key: 'k1', value: 1, ts: 7 },
      { seq: 2, key: 'k2', value: 1, ts: 7 },
      { seq: 3, key: 'k0', value: 1, ts: 7 },
    ]);
  });

  it('replays a batch from its first seq, size and time: the same events again', () => {
    const g = new EventGenerator(spec({ parallelism: 2, keys: 5 }), 1, 0);
    g.take(3, 2);
    const batch = g.take(9, 3);
    expect(g.replay({ seq: batch[0]!.seq, n: 3, ts: 9 })).toEqual(batch);
    expect(g.take(9, 1)[0]!.seq).toBe(11); // replaying does not move the generator on
  });

  it('splits the seqs between instances without overlap, and stops at count', () => {
    const s = spec({ parallelism: 3, count: 10 });
    const seqs = [0, 1, 2].map((i) => new EventGenerator(s, i, 0).take(0, 100).map((e) => e.seq));
    expect(seqs).toEqual([
      [0, 3, 6, 9],
      [1, 4, 7],
      [2, 5, 8],
    ]);
    const g = new EventGenerator(s, 1, 0);
    g.take(0, 100);
    expect(g.done).toBe(true);
    expect(g.take(1, 100)).toEqual([]);
  });

  it('paces to rate/parallelism per instance, counting from the start so it catches up', () => {
    const g = new EventGenerator(spec({ rate: 1000, parallelism: 2 }), 0, 10_000);
    expect(g.take(10_000, 100)).toHaveLength(1); // the first is due at once
    expect(g.take(10_001, 100)).toHaveLength(0);
    expect(g.take(10_002, 100)).toHaveLength(1); // 500/s: one every 2 ms
    expect(g.take(10_100, 100)).toHaveLength(49); // a late call gets all that is due
    expect(g.take(20_000, 10)).toHaveLength(10); // but no more than asked for
  });

  it('emits as fast as asked without a rate, and forever without a count', () => {
    const g = new EventGenerator(spec(), 0, 0);
    expect(g.take(0, 1000)).toHaveLength(1000);
    expect(g.done).toBe(false);
  });
});

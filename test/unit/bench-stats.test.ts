import { describe, expect, it } from 'vitest';
import { FIRST_CALLS, medianInterval, pairRatios, sampleLatencyInTurn } from '../../bench/stats.js';

describe('medianInterval', () => {
  it('gives the order statistics a Binomial(n, ½) puts around the median', () => {
    // n = 20: P(X <= 5) = 0.0207 <= 0.025 < P(X <= 6) = 0.0577, so ranks 6 and 15.
    const values = Array.from({ length: 20 }, (_, i) => 20 - i);
    expect(medianInterval(values)).toEqual({ low: 6, high: 15 });
    // n = 6: P(X <= 0) = 1/64 <= 0.025, so the extremes.
    expect(medianInterval([3, 1, 2, 6, 5, 4])).toEqual({ low: 1, high: 6 });
  });

  it('has none when too few values reach the confidence asked', () => {
    expect(medianInterval([1, 2, 3, 4, 5])).toBeUndefined();
    expect(medianInterval([])).toBeUndefined();
  });

  it('narrows as values are added', () => {
    const noisy = (n: number) => Array.from({ length: n }, (_, i) => 1 + 0.2 * Math.sin(i * 12.9898));
    const w = (n: number) => {
      const r = medianInterval(noisy(n))!;
      return r.high - r.low;
    };
    expect(w(200)).toBeLessThan(w(20));
  });
});

describe('sampleLatencyInTurn', () => {
  it('makes a turn of calls of each system per round, the first of a round rotating', async () => {
    const order: string[] = [];
    const call = (name: string) => async () => {
      order.push(name);
    };
    const r = await sampleLatencyInTurn([call('a'), call('b'), call('c')], 4, 2, 2);
    expect(order.join('')).toEqual('aabbcc' + 'bbccaa' + 'ccaabb');
    // The first round is the warm-up: timed as first calls, not as samples.
    expect(r.map((s) => [s.first.length, s.warm.length, s.blocks.length])).toEqual([
      [2, 4, 2],
      [2, 4, 2],
      [2, 4, 2],
    ]);
  });

  it('tells each turn as it starts and ends, outside its calls, and whether it is timed', async () => {
    const seen: string[] = [];
    const call = (name: string) => async () => {
      seen.push(name);
    };
    await sampleLatencyInTurn([call('a'), call('b')], 2, 2, 2, (i, edge, timed) =>
      seen.push(`${edge === 'start' ? '[' : ']'}${i}${timed ? 't' : ''}`),
    );
    expect(seen.join(' ')).toBe('[0 a a ]0 [1 b b ]1 [1t b b ]1t [0t a a ]0t');
  });

  it('times the first FIRST_CALLS calls of a longer warm-up apart, and the rest of it not at all', async () => {
    const r = await sampleLatencyInTurn([async () => {}], 7, FIRST_CALLS + 3, 10);
    expect(r[0]!.first).toHaveLength(FIRST_CALLS);
    expect(r[0]!.warm).toHaveLength(7);
  });

  it('ends with a shorter turn when the turns do not divide the calls', async () => {
    let calls = 0;
    const r = await sampleLatencyInTurn(
      [
        async () => {
          calls++;
        },
      ],
      3,
      0,
      2,
    );
    expect(calls).toBe(3);
    expect(r[0]!.blocks).toHaveLength(2);
  });
});

describe('pairRatios', () => {
  it('gives the quartiles of the ratios pair by pair, not the ratio of the medians', () => {
    // a is twice b in every pair while both drift tenfold.
    const b = [1, 10, 2, 20, 3];
    const a = b.map((x) => 2 * x);
    expect(pairRatios(a, b)).toEqual({ p25: 2, p50: 2, p75: 2 });
  });
});

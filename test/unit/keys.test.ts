import { describe, expect, it } from 'vitest';
import {
  compareKeys,
  evenSample,
  groupByKey,
  hashPartition,
  mergeSortedRuns,
  rangeBoundaries,
  rangePartition,
  type Run,
} from '../../src/ops/keys.js';

const sorted = (keys: unknown[]) => [...keys].sort(compareKeys);
const sign = (n: number) => Math.sign(n) + 0; // +0: -0 and 0 are the same answer

describe('compareKeys: the order of keys', () => {
  it('orders numbers numerically, not by their text', () => {
    expect(sorted([10, 9, -1, 100, 2.5, 0])).toEqual([-1, 0, 2.5, 9, 10, 100]);
  });

  it('puts every number before every string', () => {
    expect(sorted(['1', 'a', 3, '', 2])).toEqual([2, 3, '', '1', 'a']);
    expect(compareKeys(1e9, '')).toBeLessThan(0);
    expect(compareKeys('', -1e9)).toBeGreaterThan(0);
  });

  it('orders strings by UTF-16 code unit, as a byte-wise sort would for ASCII', () => {
    expect(sorted(['b', 'B', 'a', 'ab', 'A', ''])).toEqual(['', 'A', 'B', 'a', 'ab', 'b']);
    // Code units, not locale: an accented letter comes after every ASCII letter.
    expect(sorted(['é', 'z', 'e'])).toEqual(['e', 'z', 'é']);
  });

  it('says equal keys are equal, and is antisymmetric', () => {
    const keys: unknown[] = [0, -3, 7.5, '', 'a', 'b', 'ab', null, [1, 2], { a: 1 }, true];
    for (const a of keys) {
      expect(compareKeys(a, a)).toBe(0);
      for (const b of keys) expect(sign(compareKeys(a, b))).toBe(sign(-compareKeys(b, a)));
    }
    expect(compareKeys([1, 2], [1, 2])).toBe(0);
    expect(compareKeys({ a: 1 }, { a: 1 })).toBe(0);
  });

  it('orders keys that are neither numbers nor strings by their JSON text', () => {
    // By text, not element by element: '[1,9]' < '[1]' because ',' < ']'.
    expect(sorted([[2], [1, 9], [1]])).toEqual([[1, 9], [1], [2]]);
    expect(compareKeys({ a: 2 }, { a: 10 })).toBeGreaterThan(0); // '{"a":2}' > '{"a":10}'
    expect(compareKeys(false, true)).toBeLessThan(0);
  });

  it('is transitive over a mixed set of keys (sorting twice gives the same order)', () => {
    const keys: unknown[] = [3, 'c', null, [1], 'a', 1, { k: 'v' }, true, 'b', 2, [0, 1], false];
    const once = sorted(keys);
    for (let i = 0; i < once.length; i++) {
      for (let j = i + 1; j < once.length; j++) expect(compareKeys(once[i], once[j])).toBeLessThanOrEqual(0);
    }
    expect(sorted([...keys].reverse())).toEqual(once);
  });

  it('tells a string apart from a non-string key whose JSON is that string', () => {
    expect(compareKeys('null', null)).not.toBe(0);
    expect(compareKeys('[1]', [1])).not.toBe(0);
    expect(compareKeys('true', true)).not.toBe(0);
  });

  it('puts every string before every key that is neither number nor string', () => {
    expect(sorted(['z', null, 'a', [1], true])).toEqual(['a', 'z', [1], null, true]);
  });
});

describe('hashPartition: equal keys meet', () => {
  it('is deterministic and always in range', () => {
    for (const partitions of [1, 2, 3, 7, 64]) {
      for (const key of ['', 'a', 'word', 0, 1, -5, 3.25, null, [1, 'x'], { a: 1 }, true]) {
        const p = hashPartition(key, partitions);
        expect(Number.isInteger(p)).toBe(true);
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThan(partitions);
        expect(hashPartition(key, partitions)).toBe(p);
      }
    }
  });

  it('sends every key to partition 0 when there is one partition', () => {
    expect(['a', 1, null, { x: 1 }].map((k) => hashPartition(k, 1))).toEqual([0, 0, 0, 0]);
  });

  it('sends equal keys to the same partition, even when built separately', () => {
    expect(hashPartition([1, 'a'], 16)).toBe(hashPartition(JSON.parse('[1,"a"]'), 16));
    expect(hashPartition({ a: { b: 2 } }, 16)).toBe(hashPartition(JSON.parse('{"a":{"b":2}}'), 16));
    expect(hashPartition(`w${1}`, 16)).toBe(hashPartition('w1', 16));
  });

  it('is FNV-1a (32 bit) of the key, so every master and worker agrees on it', () => {
    // Reference values of FNV-1a; a change here would re-partition the map outputs of running jobs.
    expect(hashPartition('', 2 ** 32)).toBe(0x811c9dc5);
    expect(hashPartition('a', 2 ** 32)).toBe(0xe40c292c);
    expect(hashPartition('foobar', 2 ** 32)).toBe(0xbf9cf968);
    expect(hashPartition('foobar', 10)).toBe(0xbf9cf968 % 10);
  });

  it('tells a number key from the string of its digits', () => {
    const pairs = Array.from({ length: 50 }, (_, i) => [hashPartition(i, 2 ** 32), hashPartition(String(i), 2 ** 32)]);
    for (const [n, s] of pairs) expect(n).not.toBe(s);
  });

  it('spreads many keys roughly evenly over the partitions', () => {
    const check = (keys: unknown[], partitions: number) => {
      const counts = new Array<number>(partitions).fill(0);
      for (const k of keys) counts[hashPartition(k, partitions)]!++;
      const even = keys.length / partitions;
      for (const c of counts) {
        expect(c, `${counts.join(',')}`).toBeGreaterThan(even * 0.8);
        expect(c, `${counts.join(',')}`).toBeLessThan(even * 1.2);
      }
    };
    const words = Array.from({ length: 20_000 }, (_, i) => `word${i}`);
    const numbers = Array.from({ length: 20_000 }, (_, i) => i);
    for (const partitions of [2, 3, 8, 10]) {
      check(words, partitions);
      check(numbers, partitions);
    }
  });
});

describe('range partitioning: boundaries from a sample', () => {
  const letters = 'abcdefghijklmnopqrstuvwxyz'.split('');

  it('picks partitions - 1 boundaries at even quantiles of the sorted sample', () => {
    const sample = Array.from({ length: 100 }, (_, i) => 99 - i);
    expect(rangeBoundaries(sample, 4)).toEqual([25, 50, 75]);
    expect(rangeBoundaries(['d', 'b', 'a', 'c'], 2)).toEqual(['c']);
  });

  it('gives no boundaries for one partition or an empty sample', () => {
    expect(rangeBoundaries([1, 2, 3], 1)).toEqual([]);
    expect(rangeBoundaries([], 5)).toEqual([]);
    expect(rangePartition('anything', [])).toBe(0);
  });

  it('puts a key in partition i when b[i-1] <= key < b[i]', () => {
    const b = [10, 20, 30];
    expect([-5, 9, 10, 19, 20, 29, 30, 1000].map((k) => rangePartition(k, b))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    const s = ['g', 'p'];
    expect(['a', 'g', 'gz', 'p', 'pa', 'z'].map((k) => rangePartition(k, s))).toEqual([0, 1, 1, 2, 2, 2]);
  });

  it('keeps every key in range and concatenating partitions in order is a total order', () => {
    const keys = Array.from({ length: 500 }, (_, i) => `${letters[(i * 7) % 26]}${(i * 13) % 97}`);
    for (const partitions of [2, 3, 5, 16]) {
      const b = rangeBoundaries(evenSample(keys, 40), partitions);
      const parts: string[][] = Array.from({ length: partitions }, () => []);
      for (const k of keys) {
        const p = rangePartition(k, b);
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThan(partitions);
        parts[p]!.push(k);
      }
      const concatenated = parts.flatMap((p) => sorted(p));
      expect(concatenated).toEqual(sorted(keys));
      // The sample is from the keys, so no partition up to the last boundary's is empty.
      for (let i = 0; i <= b.length; i++) expect(parts[i]!.length, `partition ${i}`).toBeGreaterThan(0);
    }
  });

  it('keeps boundaries strictly increasing when the sample repeats keys', () => {
    const sample = [7, 7, 7, 7, 7, 7, 1, 9];
    const b = rangeBoundaries(sample, 4);
    for (let i = 1; i < b.length; i++) expect(compareKeys(b[i - 1], b[i])).toBeLessThan(0);
    expect(rangeBoundaries([5, 5, 5, 5], 4)).toEqual([5]);
    // Equal keys meet: every 7 goes to one partition.
    expect(new Set([7, 7, 7].map((k) => rangePartition(k, b))).size).toBe(1);
  });

  it('with fewer samples than partitions, uses fewer partitions but stays in range', () => {
    const b = rangeBoundaries(['m'], 8);
    expect(b).toEqual(['m']);
    for (const k of ['a', 'm', 'z']) expect(rangePartition(k, b)).toBeLessThan(8);
    expect(rangeBoundaries([3, 1], 8)).toEqual([1, 3]);
  });

  it('orders mixed number and string keys with numbers first', () => {
    const b = rangeBoundaries([1, 5, 'a', 'm'], 2);
    expect(b).toEqual(['a']);
    expect([0, 99, 'a', 'z'].map((k) => rangePartition(k, b))).toEqual([0, 0, 1, 1]);
  });
});

describe('evenSample', () => {
  it('takes everything when there are at most n items', () => {
    const items = [3, 1, 2];
    const s = evenSample(items, 3);
    expect(s).toEqual([3, 1, 2]);
    expect(s).not.toBe(items);
    expect(evenSample([], 5)).toEqual([]);
  });

  it('takes n items spread evenly, in their order, deterministically', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    expect(evenSample(items, 4)).toEqual([0, 25, 50, 75]);
    expect(evenSample(items, 10)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(evenSample(items, 7)).toEqual(evenSample(items, 7));
    expect(evenSample(items, 7)).toHaveLength(7);
  });

  it('takes nothing when asked for nothing', () => {
    expect(evenSample([1, 2, 3], 0)).toEqual([]);
  });
});

describe('groupByKey: the map side of a combine', () => {
  it('puts keys that compare equal in one group, values in arrival order, groups in first-seen order', () => {
    const pairs: [unknown, unknown][] = [
      ['b', 1],
      [2, 'x'],
      ['b', 2],
      [{ a: 1 }, 'o1'],
      [2, 'y'],
      [{ a: 1 }, 'o2'],
      [-0, 'z'],
    ];
    expect(groupByKey(pairs)).toEqual([
      ['b', [1, 2]],
      [2, ['x', 'y']],
      [{ a: 1 }, ['o1', 'o2']],
      [-0, ['z']],
    ]);
  });

  it('keeps a string apart from a non-string key whose JSON is that string', () => {
    const groups = groupByKey([
      ['null', 1],
      [null, 2],
      ['[1]', 3],
      [[1], 4],
      ['1', 5],
      [1, 6],
    ]);
    expect(groups).toHaveLength(6);
  });
});

describe('mergeSortedRuns: the reduce side of the shuffle', () => {
  const run = (...pairs: [unknown, unknown][]): Run => ({
    keys: pairs.map((p) => p[0]),
    values: pairs.map((p) => p[1]),
  });
  const merge = async (runs: Run[]) => {
    const out: [unknown, unknown[]][] = [];
    await mergeSortedRuns(runs, (k, vs) => void out.push([k, vs]));
    return out;
  };

  it('calls back once per key, in key order, with the values of every run', async () => {
    const out = await merge([run([1, 'a'], ['k', 'b']), run([0, 'c'], [1, 'd'], ['z', 'e']), run()]);
    expect(out).toEqual([
      [0, ['c']],
      [1, ['a', 'd']],
      ['k', ['b']],
      ['z', ['e']],
    ]);
  });

  it('gives the values of a key run by run, in run order, whatever the runs hold', async () => {
    const out = await merge([run(['k', 'r0-a'], ['k', 'r0-b']), run(['k', 'r1']), run(['j', 'r2'], ['k', 'r2'])]);
    expect(out).toEqual([
      ['j', ['r2']],
      ['k', ['r0-a', 'r0-b', 'r1', 'r2']],
    ]);
  });

  it('merges many runs into the same groups as sorting everything at once', async () => {
    let x = 7;
    const rand = () => (x = (x * 1103515245 + 12345) % 2 ** 31) % 50;
    const runs = Array.from({ length: 9 }, (_, r) =>
      run(
        ...Array.from({ length: 40 }, (): [unknown, unknown] => [rand() % 3 ? `w${rand()}` : rand(), r]).sort((a, b) =>
          compareKeys(a[0], b[0]),
        ),
      ),
    );
    const all = runs.flatMap((r) => r.keys.map((k, i): [unknown, unknown] => [k, r.values[i]]));
    const expected = groupByKey([...all].sort((a, b) => compareKeys(a[0], b[0])));
    expect(await merge(runs)).toEqual(expected);
  });

  it('waits for an asynchronous callback before the next key', async () => {
    const seen: unknown[] = [];
    await mergeSortedRuns([run(['a', 1], ['b', 2])], async (k) => {
      await new Promise((r) => setTimeout(r, 1));
      seen.push(k);
    });
    expect(seen).toEqual(['a', 'b']);
  });
});

import { describe, expect, it } from 'vitest';
import { contiguousPartition } from '../../src/ops/partition.js';

describe('contiguousPartition', () => {
  it('covers every item exactly once, in order', () => {
    for (const [n, k] of [
      [5, 5],
      [100, 7],
      [7, 3],
      [1, 1],
      [10, 10],
      [1000, 999],
    ] as const) {
      let next = 0;
      for (let i = 0; i < k; i++) {
        const { start, end } = contiguousPartition(n, k, i);
        expect(start).toBe(next);
        next = end;
      }
      expect(next).toBe(n);
    }
  });

  it('makes partitions whose sizes differ by at most one', () => {
    const sizes = Array.from({ length: 7 }, (_, i) => {
      const { start, end } = contiguousPartition(100, 7, i);
      return end - start;
    });
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('refuses a partition that does not exist', () => {
    expect(() => contiguousPartition(10, 3, 3)).toThrow(RangeError);
    expect(() => contiguousPartition(10, 0, 0)).toThrow(RangeError);
  });
});

import { describe, expect, it } from 'vitest';
import { ID_PATTERN, newId } from '../../src/common/ids.js';

describe('newId', () => {
  it('gives no two ids alike, across many refills of its pool of random bytes', () => {
    const ids = Array.from({ length: 10_000 }, () => newId('job', 1_700_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(id).toMatch(ID_PATTERN);
      expect(id).toMatch(/^job-[0-9a-z]{8}[0-9a-f]{16}$/);
    }
  });

  it('sorts ids of later moments after earlier ones', () => {
    const [a, b] = [newId('job', 1_700_000_000_000), newId('job', 1_700_000_000_001)];
    expect(a.slice(0, 12) < b.slice(0, 12)).toBe(true);
  });
});

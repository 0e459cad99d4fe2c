import { describe, expect, it } from 'vitest';
import { mayRetry, retryBackoffMs } from '../../src/state/retry-policy.js';

describe('retry policy', () => {
  it('backs off exponentially from 200 ms, capped at 10 s', () => {
    expect([1, 2, 3, 4].map(retryBackoffMs)).toEqual([200, 400, 800, 1600]);
    expect(retryBackoffMs(30)).toBe(10_000);
  });

  it('allows max_retries retries after the first attempt', () => {
    expect(mayRetry(1, 3)).toBe(true);
    expect(mayRetry(3, 3)).toBe(true);
    expect(mayRetry(4, 3)).toBe(false);
    expect(mayRetry(1, 0)).toBe(false);
  });
});

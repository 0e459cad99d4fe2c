import { describe, expect, it } from 'vitest';
import { expiredLeases, type LeasedAttempt, type LeaseHolder } from '../../src/master/lease-policy.js';

const attempt = (o: Partial<LeasedAttempt> = {}): LeasedAttempt => ({
  job_id: 'j',
  idx: 0,
  attempt: 1,
  worker_id: 'w',
  started_at: 1_000,
  timeout_ms: 5_000,
  ...o,
});
const oneSlot = new Map<string, LeaseHolder>([['w', { max_tasks: 1, executors: 1 }]]);
const GRACE = 2_000;

describe('the lease on a running attempt', () => {
  it('lasts timeout_ms plus the grace from its start, and ends after that', () => {
    const a = attempt();
    expect(expiredLeases([a], oneSlot, 1_000 + 7_000, 0, GRACE)).toEqual([]);
    expect(expiredLeases([a], oneSlot, 1_000 + 7_001, 0, GRACE)).toEqual([{ ...a, held_ms: 7_001, lease_ms: 7_000 }]);
  });

  it('counts from the moment this master began to lead when that is later (another clock stamped the start)', () => {
    const a = attempt({ started_at: 1_000 });
    const leaderSince = 50_000;
    expect(expiredLeases([a], oneSlot, leaderSince + 7_000, leaderSince, GRACE)).toEqual([]);
    expect(expiredLeases([a], oneSlot, leaderSince + 7_001, leaderSince, GRACE)).toHaveLength(1);
  });

  it('holds none for an attempt without a timeout (a stream instance runs until its job ends)', () => {
    expect(expiredLeases([attempt({ timeout_ms: 0 })], oneSlot, 1e12, 0, GRACE)).toEqual([]);
  });

  it('allows for the waves of tasks that may run before it on a worker with fewer executors than slots', () => {
    const workers = new Map<string, LeaseHolder>([['w', { max_tasks: 4, executors: 2 }]]);
    // Two waves: one of up to the longest timeout on that worker (9 s) may run first.
    const quick = attempt({ idx: 0, timeout_ms: 1_000 });
    const slow = attempt({ idx: 1, timeout_ms: 9_000 });
    const lease = 1_000 + 9_000 + GRACE;
    expect(expiredLeases([quick, slow], workers, 1_000 + lease, 0, GRACE)).toEqual([]);
    expect(expiredLeases([quick, slow], workers, 1_000 + lease + 1, 0, GRACE).map((e) => e.idx)).toEqual([0]);
  });

  it('takes a worker that never said how many executors it has, or said nonsense, to have one (the longest lease)', () => {
    const lease = 5_000 * 3 + GRACE;
    for (const executors of [undefined, 0, -2, NaN, Infinity]) {
      const workers = new Map<string, LeaseHolder>([['w', { max_tasks: 3, executors }]]);
      expect(expiredLeases([attempt()], workers, 1_000 + lease, 0, GRACE)).toEqual([]);
      expect(expiredLeases([attempt()], workers, 1_000 + lease + 1, 0, GRACE)).toHaveLength(1);
    }
  });
});

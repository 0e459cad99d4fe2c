import { describe, expect, it } from 'vitest';
import { NO_COPIES_AFTER_FAILURE_MS, RecentFailures, stragglers } from '../../src/master/speculation.js';
import type { StageTask } from '../../src/state/queries.js';

const done = (idx: number, ms: number): StageTask => ({
  idx,
  status: 'completed',
  attempt: 1,
  worker_id: 'w1',
  alt_attempt: null,
  started_at: 0,
  finished_at: ms,
});
const running = (idx: number, startedAt: number, copied = false): StageTask => ({
  idx,
  status: 'running',
  attempt: copied ? 2 : 1,
  worker_id: 'w2',
  alt_attempt: copied ? 1 : null,
  started_at: startedAt,
  finished_at: null,
});

describe('speculative execution picks stragglers', () => {
  const fast = [done(0, 2000), done(1, 2200), done(2, 1800), done(3, 2100), done(4, 2000), done(5, 1900)];

  it('copies a task running over 1.5× the median once 75% of the stage completed', () => {
    const tasks = [...fast, running(6, 10_000), running(7, 12_000)];
    // median 2000 → threshold 3000: the task started at 10 000 has run 3 100 ms at 13 100.
    expect(stragglers(tasks, 8, 13_100).map((t) => t.idx)).toEqual([6]);
  });

  it('waits until enough of the stage completed to know its pace', () => {
    expect(stragglers([...fast.slice(0, 5), running(6, 0), running(7, 0)], 8, 60_000)).toEqual([]);
  });

  it('never copies a task twice, nor one shorter than the minimum', () => {
    expect(stragglers([...fast, running(6, 0, true), running(7, 0, true)], 8, 60_000)).toEqual([]);
    const quick = [done(0, 10), done(1, 12), done(2, 11), running(3, 0)];
    expect(stragglers(quick, 4, 900)).toEqual([]);
    expect(stragglers(quick, 4, 1001).map((t) => t.idx)).toEqual([3]);
  });
});

describe('speculative copies pass over a worker that failed lately', () => {
  // A full disk fails every task at once, so that worker always has free slots; each copy it
  // failed ended its race and charged the task a failure.
  it('for NO_COPIES_AFTER_FAILURE_MS after its last failure, then takes them again', () => {
    const f = new RecentFailures();
    expect(f.failedLately('w', 1_000)).toBe(false);
    f.note('w', 1_000);
    expect(f.failedLately('w', 1_000 + NO_COPIES_AFTER_FAILURE_MS - 1)).toBe(true);
    expect(f.failedLately('other', 1_000)).toBe(false);
    expect(f.failedLately('w', 1_000 + NO_COPIES_AFTER_FAILURE_MS)).toBe(false);
  });

  it('counts from the latest failure, whatever order they are noted in', () => {
    const f = new RecentFailures();
    f.note('w', 50_000);
    f.note('w', 10_000);
    expect(f.failedLately('w', 50_000 + NO_COPIES_AFTER_FAILURE_MS - 1)).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { placeTasks, type WorkerSlot } from '../../src/master/scheduler-policy.js';

const task = (idx: number, avoid?: string) => ({ job_id: 'j', idx, attempt: 1, ...(avoid ? { avoid } : {}) });
const workers = (...spec: [string, number, number][]): WorkerSlot[] =>
  spec.map(([worker_id, max_tasks, running]) => ({ worker_id, max_tasks, running }));

describe('placeTasks (round-robin + load-aware)', () => {
  it('takes equal workers in turns', () => {
    const { assignments } = placeTasks([task(0), task(1), task(2), task(3)], workers(['a', 10, 0], ['b', 10, 0]), 0);
    expect(assignments.map((a) => a.worker_id)).toEqual(['a', 'b', 'a', 'b']);
  });

  it('carries the round-robin turn over to the next call', () => {
    const ws = workers(['a', 10, 0], ['b', 10, 0], ['c', 10, 0]);
    const first = placeTasks([task(0)], ws, 0);
    const second = placeTasks([task(1)], ws, first.cursor);
    expect(first.assignments[0]!.worker_id).toBe('a');
    expect(second.assignments[0]!.worker_id).toBe('b');
  });

  it('prefers the least loaded worker, relative to its capacity', () => {
    const { assignments } = placeTasks([task(0)], workers(['a', 10, 5], ['b', 4, 1], ['c', 2, 1]), 0);
    expect(assignments[0]!.worker_id).toBe('b'); // 1/4 < 5/10 < 1/2
  });

  it('skips workers at max_tasks and stops when every worker is full', () => {
    const { assignments } = placeTasks([task(0), task(1), task(2)], workers(['a', 1, 1], ['b', 2, 0]), 0);
    expect(assignments.map((a) => a.worker_id)).toEqual(['b', 'b']);
  });

  it('sends a retried task to another worker when there is one', () => {
    const { assignments } = placeTasks([task(0, 'a')], workers(['a', 10, 0], ['b', 10, 5]), 0);
    expect(assignments[0]!.worker_id).toBe('b');
  });

  it('retries on the same worker when it is the only one with room', () => {
    const { assignments } = placeTasks([task(0, 'a')], workers(['a', 10, 0], ['b', 1, 1]), 0);
    expect(assignments[0]!.worker_id).toBe('a');
  });

  it('places nothing without workers', () => {
    expect(placeTasks([task(0)], [], 3)).toEqual({ assignments: [], cursor: 3 });
  });

  it('does not change the workers it was given', () => {
    const ws = workers(['a', 2, 0]);
    placeTasks([task(0), task(1)], ws, 0);
    expect(ws[0]!.running).toBe(0);
  });
});

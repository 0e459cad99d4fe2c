import { describe, expect, it } from 'vitest';
import { placeTasks, type WorkerSlot } from '../../src/master/scheduler-policy.js';

const task = (idx: number, avoid?: string, strict?: boolean) => ({
  job_id: 'j',
  idx,
  attempt: 1,
  ...(avoid ? { avoid } : {}),
  ...(strict ? { strict } : {}),
});
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

  it('strictly: leaves a retried task for later rather than on the worker it failed on, while another is there', () => {
    const placed = placeTasks([task(0, 'a', true), task(1)], workers(['a', 10, 0], ['b', 1, 1]), 0);
    expect(placed.assignments.map((x) => [x.task.idx, x.worker_id])).toEqual([[1, 'a']]);
    // Alone, the worker takes it back.
    expect(placeTasks([task(0, 'a', true)], workers(['a', 10, 0]), 0).assignments).toHaveLength(1);
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

/**
 * The rule, said declaratively: of the workers with room, the one not to avoid, then the least
 * loaded, then the nearest after the turn; the turn moves past it. A strict task is not placed
 * on the worker to avoid while the cluster has another (with room or not).
 */
function placeByRule(tasks: ReturnType<typeof task>[], ws: WorkerSlot[], cursor: number) {
  const slots = ws.map((w) => ({ ...w }));
  const n = slots.length;
  const out: string[] = [];
  if (n === 0) return { out, cursor };
  let turn = ((cursor % n) + n) % n;
  for (const t of tasks) {
    const rank = (i: number) => {
      const w = slots[i]!;
      return [t.avoid === w.worker_id ? 1 : 0, w.running / w.max_tasks, (i - turn + n) % n];
    };
    const open = slots.map((_, i) => i).filter((i) => slots[i]!.running < slots[i]!.max_tasks);
    if (open.length === 0) break;
    const [pick] = open.sort((a, b) => {
      const [x, y] = [rank(a), rank(b)];
      return x[0]! - y[0]! || x[1]! - y[1]! || x[2]! - y[2]!;
    });
    if (t.strict && slots[pick!]!.worker_id === t.avoid && slots.some((w) => w.worker_id !== t.avoid)) continue;
    slots[pick!]!.running++;
    out.push(slots[pick!]!.worker_id);
    turn = (pick! + 1) % n;
  }
  return { out, cursor: turn };
}

describe('placeTasks at scale', () => {
  it('picks as the rule says, over 2,000 random clusters', () => {
    let seed = 7;
    const rand = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % k;
    };
    for (let round = 0; round < 2000; round++) {
      const ws = Array.from({ length: 1 + rand(12) }, (_, i) => {
        const max = 1 + rand(6);
        return { worker_id: `w${i}`, max_tasks: max, running: rand(max + 1) };
      });
      const tasks = Array.from({ length: rand(40) }, (_, i) =>
        task(i, rand(5) === 0 ? `w${rand(12)}` : undefined, rand(2) === 0),
      );
      const cursor = rand(20);
      const got = placeTasks(tasks, ws, cursor);
      const want = placeByRule(tasks, ws, cursor);
      expect({ out: got.assignments.map((a) => a.worker_id), cursor: got.cursor }).toEqual(want);
    }
  });

  it('places 8,000 tasks over 1,000 workers, each taking its 8 in turn', () => {
    const ws = Array.from({ length: 1000 }, (_, i) => ({ worker_id: `w${i}`, max_tasks: 8, running: 0 }));
    const { assignments } = placeTasks(
      Array.from({ length: 8001 }, (_, i) => task(i)),
      ws,
      0,
    );
    expect(assignments).toHaveLength(8000);
    expect(assignments.slice(0, 1001).map((a) => a.worker_id)).toEqual([...ws.map((w) => w.worker_id), 'w0']);
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { taskSpec } from '../../src/ops/batch-ops.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { ExecutorPool, TaskTimeoutError } from '../../src/worker/executor-pool.js';

// The pool loads its thread entry from the compiled tree (npm test builds first).
const built = '../../dist/src/worker/executor-pool.js';
const { ExecutorPool: BuiltPool } = (await import(built)) as {
  ExecutorPool: typeof ExecutorPool;
};

const sleep = (ms: number, idx = 0) => ({ operation: 'sleep' as const, params: { ms }, input: null, idx });
const user = (module: string) => taskSpec(normalizeBatchConfig({ module, data: [1] }), 0);
const limits = { timeoutMs: 5_000, memoryMb: 64 };

describe('the executor pool', () => {
  const pool = new BuiltPool(1);
  afterAll(() => pool.close());

  it('runs a task in a thread and returns its results', async () => {
    expect(await pool.run(sleep(1, 7), limits)).toBe('[7]');
  });

  it('fails a task that loops past its timeout, and goes on running others', async () => {
    await expect(
      pool.run(user('export function map() { for (;;) {} }'), { ...limits, timeoutMs: 200 }),
    ).rejects.toThrow(/timed out after 200 ms/);
    expect(await pool.run(sleep(1, 1), limits)).toBe('[1]');
  });

  it('starts a queued task’s timeout only when it gets a thread', async () => {
    const first = pool.run(sleep(300, 1), limits);
    // Waits ~300 ms for the only thread, then needs 50 ms of its 200 ms budget.
    const second = pool.run(sleep(50, 2), { ...limits, timeoutMs: 200 });
    expect(await Promise.all([first, second])).toEqual(['[1]', '[2]']);
  });

  it('drops a queued task that is cancelled before it starts', async () => {
    const ac = new AbortController();
    const first = pool.run(sleep(200, 1), limits);
    const second = pool.run(sleep(1, 2), { ...limits, signal: ac.signal });
    ac.abort(new Error('task cancelled'));
    await expect(second).rejects.toThrow(/cancelled/);
    expect(await first).toBe('[1]');
  });

  it('names its timeout error', () => {
    expect(new TaskTimeoutError(5).name).toBe('TaskTimeoutError');
  });
});

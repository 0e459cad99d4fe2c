// A function bolt's message to an executor process: the module travels by key, and the
// executor applies the named export to every batch (the pool starts executors from the
// compiled tree, which npm test builds first).
import { afterAll, describe, expect, it } from 'vitest';
import type { ExecutorPool } from '../../src/worker/executor-pool.js';
import type { StreamApplySpec } from '../../src/worker/stream/stream-apply.js';

const built = '../../dist/src/worker/executor-pool.js';
const { ExecutorPool: BuiltPool } = (await import(built)) as { ExecutorPool: typeof ExecutorPool };

const limits = { timeoutMs: 5_000, memoryMb: 64 };
const module = 'export function double(e) { if (e.n === 0) throw new Error("zero"); return { n: e.n * 2 } }';
const spec = (o: Partial<StreamApplySpec> = {}): StreamApplySpec => ({
  operation: 'stream_apply',
  job_id: 'job-1',
  module_key: 'double-v1',
  fn: 'double',
  op: 'map',
  batches: [[{ n: 1 }, { n: 0 }], [{ n: 3 }]],
  ...o,
});

describe('an apply message', () => {
  const pool = new BuiltPool(1);
  afterAll(() => pool.close());

  it('is answered module_unknown by an executor that has not loaded the module', async () => {
    await expect(pool.run(spec(), limits)).rejects.toMatchObject({ name: 'module_unknown' });
  });

  it('with the source, loads it and applies the function to every batch, counting the events it threw on', async () => {
    expect(JSON.parse(await pool.run(spec({ module }), limits))).toEqual({
      op: 'map',
      out: [[{ n: 2 }], [{ n: 6 }]],
      errors: 1,
    });
    // The same executor keeps it, by key.
    expect(JSON.parse(await pool.run(spec({ batches: [[{ n: 5 }]] }), limits))).toMatchObject({ out: [[{ n: 10 }]] });
  });

  it('drops (counting) an output with no JSON, and keeps the rest', async () => {
    const big = 'export function f(e) { return e.n === 1 ? { n: 1n } : e }';
    const answer = JSON.parse(await pool.run(spec({ module: big, module_key: 'big', fn: 'f' }), limits));
    expect(answer).toEqual({ op: 'map', out: [[{ n: 0 }], [{ n: 3 }]], errors: 1 });
  });

  it('fails as a whole when the export is missing', async () => {
    await expect(pool.run(spec({ module, fn: 'nope' }), limits)).rejects.toThrow(/no function export 'nope'/);
  });
});

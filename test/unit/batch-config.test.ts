import { describe, expect, it } from 'vitest';
import { WeirError } from '../../src/common/errors.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { runTask, taskSpec } from '../../src/ops/batch-ops.js';

const refused = (config: unknown) => {
  try {
    normalizeBatchConfig(config);
  } catch (err) {
    expect(err).toBeInstanceOf(WeirError);
    return (err as WeirError).message;
  }
  throw new Error(`accepted ${JSON.stringify(config)}`);
};

async function resultsOf(config: unknown): Promise<unknown[]> {
  const c = normalizeBatchConfig(config);
  const out: unknown[] = [];
  for (let i = 0; i < c.task_count; i++) out.push(...(await runTask(taskSpec(c, i))));
  return out;
}

describe('batch job configs', () => {
  it('makes a job with no config one noop task with the default limits', () => {
    expect(normalizeBatchConfig(undefined)).toEqual({
      operation: 'noop',
      task_count: 1,
      max_retries: 3,
      timeout_ms: 60_000,
      memory_mb: 256,
    });
  });

  it("runs the seed's multiply over 1..task_count, in input order", async () => {
    expect(await resultsOf({ operation: 'multiply', factor: 3, task_count: 5 })).toEqual([3, 6, 9, 12, 15]);
  });

  it('multiplies given data split into contiguous partitions', async () => {
    const data = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(await resultsOf({ operation: 'multiply', factor: 2, task_count: 7, data })).toEqual(data.map((x) => 2 * x));
  });

  it('gives noop and sleep results as task indexes', async () => {
    expect(await resultsOf({ operation: 'noop', task_count: 4 })).toEqual([0, 1, 2, 3]);
    expect(await resultsOf({ operation: 'sleep', ms: 1, task_count: 3 })).toEqual([0, 1, 2]);
  });

  it('refuses what it cannot run, naming the field', () => {
    expect(refused({ operation: 'divide' })).toMatch(/unknown operation "divide"/);
    expect(refused({ operation: 'noop', task_count: 0 })).toMatch(/task_count/);
    expect(refused({ operation: 'noop', task_count: 1.5 })).toMatch(/task_count/);
    expect(refused({ operation: 'noop', task_count: '5' })).toMatch(/task_count/);
    expect(refused({ operation: 'noop', task_count: 100_001 })).toMatch(/task_count/);
    expect(refused({ operation: 'multiply', data: [1, 2], task_count: 3 })).toMatch(/task_count/);
    expect(refused({ operation: 'multiply', data: [1, 'x'] })).toMatch(/data\[1\]/);
    expect(refused({ operation: 'multiply', factor: 'x' })).toMatch(/factor/);
    expect(refused({ operation: 'noop', max_retries: -1 })).toMatch(/max_retries/);
    expect(refused([1, 2])).toMatch(/object/);
  });

  it('checks a user module at submission without running it', () => {
    expect(refused({ module: 'export function map( {', data: [1] })).toMatch(/syntax error/);
    expect(refused({ module: 'export function mop() {}', data: [1] })).toMatch(
      /does not export 'map'; it exports 'mop'/,
    );
    expect(refused({ module: 'export function map() {}' })).toMatch(/config.data/);
  });

  it("runs a user module's map and collects what it emits", async () => {
    const module = 'export function map(r, emit) { emit(r % 2, r * 10) }';
    expect(await resultsOf({ module, data: [1, 2, 3], task_count: 2 })).toEqual([
      { key: 1, value: 10 },
      { key: 0, value: 20 },
      { key: 1, value: 30 },
    ]);
  });
});

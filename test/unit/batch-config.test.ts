import { describe, expect, it } from 'vitest';
import { WeirError } from '../../src/common/errors.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { taskSpec } from '../../src/ops/batch-ops.js';
import { runTask, runTaskToJson } from '../../src/worker/tasks/run-task.js';

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

  it('hands results on as the JSON text the masters keep, and refuses more than 16 MiB of it', async () => {
    const config = normalizeBatchConfig({ operation: 'multiply', factor: 3, task_count: 1, data: [1, 2] });
    expect(await runTaskToJson(taskSpec(config, 0, { job_id: 'j', attempt: 1 }))).toBe('[3,6]');
    const big = normalizeBatchConfig({
      operation: 'multiply',
      factor: 1,
      task_count: 1,
      data: new Array(2_000_000).fill(1e15),
    });
    await expect(runTaskToJson(taskSpec(big, 0, { job_id: 'j', attempt: 1 }))).rejects.toThrow(
      /over the 16 MiB.*config\.output/,
    );
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

  it('refuses a field the job would not read, with the field it likely meant and the ones it has', () => {
    expect(refused({ operation: 'multiply', factr: 3, task_count: 2 })).toMatch(
      /config\.factr is not a field of a 'multiply' job: did you mean 'factor'\?; its fields are .*factor/,
    );
    expect(refused({ operation: 'sleep', ms: 10, task_cnt: 2 })).toMatch(
      /config\.task_cnt .* did you mean 'task_count'/,
    );
    expect(refused({ operation: 'grep', pattern: 'a', flag: 'i', data: ['a'] })).toMatch(/did you mean 'flags'/);
    expect(refused({ operation: 'noop', env: { A: '1' } })).toMatch(/config\.env is not a field of a 'noop' job/);
    // No operation and no module is noop, which reads no data: said, not run on nothing.
    expect(refused({ data: ['a bb'], task_count: 1 })).toMatch(/config\.data .*neither operation nor module runs noop/);
    expect(refused({ operation: 'wordcount', data: ['a'], xyzzy: 1 })).not.toMatch(/did you mean/);
  });

  it('takes every field a job reads, the retention and the limits included', () => {
    const limits = { max_retries: 1, timeout_ms: 1000, memory_mb: 128 };
    expect(() =>
      normalizeBatchConfig({ operation: 'multiply', factor: 2, data: [1], task_count: 1, ...limits }),
    ).not.toThrow();
    expect(() => normalizeBatchConfig({ operation: 'sleep', ms: 1, retention: '1h' })).not.toThrow();
    expect(() =>
      normalizeBatchConfig({
        operation: 'avg',
        field: 'v',
        group_by: 'g',
        data: [{ v: 1 }],
        task_count: 1,
        reduce_tasks: 1,
        combine: true,
        speculation: false,
        env: { A: '1' },
        output: { path: '/tmp/out' },
      }),
    ).not.toThrow();
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

describe('data job configs', () => {
  const words = ['a b', 'b c', 'c d'];

  it('gives wordcount one hash-partitioned reduce task and a combiner by default', () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: words });
    expect(c).toMatchObject({
      operation: 'wordcount',
      params: {},
      task_count: 1,
      reduce_tasks: 1,
      combine: true,
      partitioner: 'hash',
      results: 'rows',
      data: words,
      max_retries: 3,
    });
    expect(c).not.toHaveProperty('module');
    expect(c).not.toHaveProperty('output');
  });

  it('gives sort a range partitioner, as many reduce tasks as map tasks, and plain values as results', () => {
    expect(normalizeBatchConfig({ operation: 'sort', data: [3, 1, 2], task_count: 3 })).toMatchObject({
      reduce_tasks: 3,
      partitioner: 'range',
      combine: false,
      results: 'values',
    });
  });

  it('gives a user module a reduce stage only when it exports reduce', () => {
    const mapOnly = normalizeBatchConfig({ module: 'export function map(r, emit) {}', data: [1] });
    expect(mapOnly).toMatchObject({ operation: 'map', reduce_tasks: 0, combine: false, partitioner: 'hash' });
    const withReduce = normalizeBatchConfig({
      module: 'export function map(r, emit) {}\nexport function reduce(k, vs, emit) {}',
      data: [1],
      reduce_tasks: 4,
    });
    expect(withReduce).toMatchObject({ reduce_tasks: 4, combine: false });
  });

  it('takes a file input instead of inline data, lines by default', () => {
    expect(normalizeBatchConfig({ operation: 'wordcount', input: { path: '/data/in.txt' } })).toMatchObject({
      input: { path: '/data/in.txt', format: 'lines' },
    });
    expect(
      normalizeBatchConfig({ operation: 'sum', field: 'x', input: { url: 'http://h/in.csv', format: 'csv' } }),
    ).toMatchObject({ input: { url: 'http://h/in.csv', format: 'csv' }, params: { field: 'x' } });
  });

  it('refuses data job configs it cannot run, naming the field', () => {
    const map = 'export function map(r, emit) {}';
    expect(refused({ module: map, data: [1], reduce_tasks: 2 })).toMatch(/reduce_tasks needs a reduce stage/);
    expect(refused({ module: map, data: [1], output: { path: '/out' } })).toMatch(/output needs a reduce stage/);
    expect(refused({ module: map, data: [1], combine: true })).toMatch(/exports no combine/);
    expect(refused({ operation: 'wordcount', module: map, data: [1] })).toMatch(/built in/);
    expect(refused({ operation: 'wordcount', data: words, reduce_tasks: 0 })).toMatch(/reduce_tasks/);
    expect(refused({ operation: 'wordcount', data: words, task_count: 4 })).toMatch(/task_count/);
    expect(refused({ operation: 'wordcount', data: words, output: { path: 'out' } })).toMatch(/config.output/);
    expect(refused({ operation: 'wordcount' })).toMatch(/config.data/);
    expect(refused({ operation: 'wordcount', data: [] })).toMatch(/config.data/);
    expect(refused({ operation: 'wordcount', data: words, input: { path: '/x' } })).toMatch(/either/);
    expect(refused({ operation: 'wordcount', input: { path: 'relative.txt' } })).toMatch(/absolute path/);
    expect(refused({ operation: 'wordcount', input: { path: '/x', format: 'xml' } })).toMatch(/format/);
    expect(refused({ operation: 'wordcount', input: { url: 'ftp://h/x' } })).toMatch(/http/);
    expect(refused({ operation: 'grep', data: words })).toMatch(/config.pattern/);
    expect(refused({ operation: 'grep', data: words, pattern: '(' })).toMatch(/not a valid regular expression/);
    expect(refused({ operation: 'sum', data: words })).toMatch(/config.field/);
    expect(refused({ operation: 'pi', samples: 0 })).toMatch(/config.samples/);
  });

  it('needs no input for pi: each map task draws its own points', () => {
    expect(normalizeBatchConfig({ operation: 'pi', task_count: 5 })).toMatchObject({
      task_count: 5,
      reduce_tasks: 1,
      params: { samples: 1_000_000 },
    });
  });
});

describe('data task specs', () => {
  it('splits inline data into contiguous parts, one per map task', () => {
    const data = Array.from({ length: 10 }, (_, i) => i);
    const c = normalizeBatchConfig({ operation: 'wordcount', data, task_count: 3, reduce_tasks: 2 });
    const specs = [0, 1, 2].map((i) => taskSpec(c, i, { job_id: 'j', attempt: 1 }));
    expect(specs.map((s) => ('records' in s ? s.records : undefined))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8, 9],
    ]);
    expect(specs[1]).toMatchObject({ stage: 'map', part: 1, idx: 1, job_id: 'j', reduce_tasks: 2, combine: true });
  });

  it('gives a reduce task its partition, the map outputs to fetch and no records', () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: [1, 2, 3], task_count: 3, reduce_tasks: 2 });
    const maps = [{ idx: 0, attempt: 2, address: 'w:1' }];
    const s = taskSpec(c, 4, { job_id: 'j', attempt: 3, maps });
    expect(s).toMatchObject({ stage: 'reduce', part: 1, idx: 4, attempt: 3, maps });
    expect(s).not.toHaveProperty('records');
  });

  it("has a sort job's sample and map tasks read the same split, the map with the plan's boundaries", () => {
    const c = normalizeBatchConfig({ operation: 'sort', data: [5, 4, 3, 2, 1, 0], task_count: 2, reduce_tasks: 2 });
    const sample = taskSpec(c, 1, { job_id: 'j', attempt: 1 });
    const plan = { stages: [], boundaries: [3] };
    const map = taskSpec(c, 3, { job_id: 'j', attempt: 1, plan });
    expect(sample).toMatchObject({ stage: 'sample', part: 1, records: [2, 1, 0] });
    expect(sample).not.toHaveProperty('boundaries');
    expect(map).toMatchObject({ stage: 'map', part: 1, records: [2, 1, 0], boundaries: [3] });
  });

  it('tells a task reading a file which split of how many is its own', () => {
    const c = normalizeBatchConfig({ operation: 'grep', pattern: 'x', input: { path: '/in.txt' }, task_count: 4 });
    expect(taskSpec(c, 2, { job_id: 'j', attempt: 1 })).toMatchObject({
      stage: 'map',
      part: 2,
      input: { spec: { path: '/in.txt', format: 'lines' }, splits: 4 },
    });
  });
});

describe('bounds on the shuffle at submission', () => {
  const input = { path: '/data/in.txt' };
  const code = (config: unknown) => {
    try {
      normalizeBatchConfig(config);
    } catch (err) {
      return (err as WeirError).code;
    }
    return 'accepted';
  };

  it('refuses more than 10,000 reduce tasks, saying the limit and what to do', () => {
    const config = { operation: 'wordcount', input, reduce_tasks: 10_001 };
    expect(code(config)).toBe('bad_request');
    expect(refused(config)).toMatch(/10001, over the limit of 10000; ask for fewer reduce tasks/);
    expect(normalizeBatchConfig({ ...config, reduce_tasks: 10_000 })).toMatchObject({ reduce_tasks: 10_000 });
  });

  it('refuses more than 1,000,000 map output files (task_count × reduce_tasks), saying how to get under it', () => {
    const config = { operation: 'wordcount', input, task_count: 1001, reduce_tasks: 1000 };
    expect(code(config)).toBe('bad_request');
    expect(refused(config)).toMatch(
      /1001 × 1000 = 1001000 map output files, over the limit of 1000000; use fewer map tasks \(larger splits\) or fewer reduce tasks/,
    );
    expect(normalizeBatchConfig({ ...config, task_count: 1000 })).toMatchObject({
      task_count: 1000,
      reduce_tasks: 1000,
    });
  });

  it("keeps a range partitioner's default (a reduce per map) within both bounds", () => {
    expect(normalizeBatchConfig({ operation: 'sort', input, task_count: 50_000 })).toMatchObject({
      task_count: 50_000,
      reduce_tasks: 20,
    });
    expect(normalizeBatchConfig({ operation: 'sort', input, task_count: 500 })).toMatchObject({ reduce_tasks: 500 });
    expect(normalizeBatchConfig({ operation: 'sort', input, task_count: 20_000 })).toMatchObject({ reduce_tasks: 50 });
  });

  it('refuses a reduce_tasks that is not a positive integer, naming the field', () => {
    for (const v of [0, -1, 1.5, '3', null])
      expect(refused({ operation: 'wordcount', input, reduce_tasks: v })).toMatch(
        /config\.reduce_tasks must be an integer from 1 to 10000/,
      );
  });
});

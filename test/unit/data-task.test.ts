import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpack } from 'msgpackr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeBatchConfig, type BatchConfig } from '../../src/ops/batch-config.js';
import { taskSpec, type DispatchContext } from '../../src/ops/batch-ops.js';
import { runDataTask } from '../../src/worker/tasks/data-task.js';
import type { DataTaskSpec, MapOutput } from '../../src/protocol/task-spec.js';
import { compareKeys, hashPartition, rangeBoundaries, rangePartition, type Run } from '../../src/ops/keys.js';
import { planStages, type JobPlan } from '../../src/ops/stages.js';
import { fetchFailureOf } from '../../src/worker/tasks/shuffle-files.js';

let dir: string;
let shuffleDir: string;
let server: Server;
let address: string;
/** Milliseconds the shuffle server waits before answering for a map output, by `<idx>.<attempt>`. */
let delays: Map<string, number>;

/** Serves map outputs as a worker does: GET /api/shuffle/<job>/<idx>.<attempt>/<partition>. */
function shuffleServer(): Server {
  return createServer((req, res) => {
    const m = /^\/api\/shuffle\/([^/]+)\/(\d+\.\d+)\/(\d+)$/.exec(req.url ?? '');
    const path = m ? join(shuffleDir, m[1]!, m[2]!, `${m[3]!}.bin`) : undefined;
    const answer = () => {
      if (!path || !existsSync(path)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(path));
    };
    const delay = m ? delays.get(m[2]!) : undefined;
    if (delay) setTimeout(answer, delay);
    else answer();
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weir-data-tasks-'));
  shuffleDir = join(dir, 'shuffle');
  delays = new Map();
  server = shuffleServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** Task `idx` of a job as the leader would dispatch it, with this worker's shuffle directory. */
const spec = (config: BatchConfig, idx: number, ctx: Partial<DispatchContext> = {}): DataTaskSpec => ({
  ...(taskSpec(config, idx, { job_id: 'job1', attempt: 1, ...ctx }) as DataTaskSpec),
  env: { shuffle_dir: shuffleDir },
});

const outputDir = (job: string, idx: number, attempt: number) => join(shuffleDir, job, `${idx}.${attempt}`);
/** A map output partition: keys and values as two columns, sorted by key. */
function partitionPairs(job: string, idx: number, attempt: number, p: number): [unknown, unknown][] {
  const run = unpack(readFileSync(join(outputDir(job, idx, attempt), `${p}.bin`))) as Run;
  const pairs = run.keys.map((k, i): [unknown, unknown] => [k, run.values[i]]);
  for (let i = 1; i < pairs.length; i++) expect(compareKeys(pairs[i - 1]![0], pairs[i]![0])).toBeLessThanOrEqual(0);
  return pairs;
}

/** Runs every map task of a staged job; returns the map outputs its reduce tasks fetch. */
async function runMaps(config: BatchConfig, ctx: Partial<DispatchContext> = {}): Promise<MapOutput[]> {
  const map = planStages(config as { task_count: number; reduce_tasks: number; partitioner: 'hash' })!.find(
    (s) => s.name === 'map',
  )!;
  const maps: MapOutput[] = [];
  for (let idx = map.first; idx < map.first + map.count; idx++) {
    await runDataTask(spec(config, idx, ctx));
    maps.push({ idx, attempt: ctx.attempt ?? 1, address });
  }
  return maps;
}

/** Runs every reduce task of a staged job against `maps`; returns each task's results. */
async function runReduces(config: BatchConfig, maps: MapOutput[], ctx: Partial<DispatchContext> = {}) {
  const reduce = planStages(config as { task_count: number; reduce_tasks: number; partitioner: 'hash' })!.at(-1)!;
  const out: unknown[][] = [];
  for (let idx = reduce.first; idx < reduce.first + reduce.count; idx++) {
    out.push(await runDataTask(spec(config, idx, { ...ctx, maps })));
  }
  return out;
}

const lines = ['the cat sat', 'the dog sat on the cat', 'a dog', 'the end'];
const counts = { a: 1, cat: 2, dog: 2, end: 1, on: 1, sat: 2, the: 4 };

/** A user module: map emits (word, 1); combine and reduce sum; `reduce` may be replaced. */
const wordModule = (reduce = 'emit(k, vs.reduce((a, b) => a + b, 0))') => `
  export function map(line, emit) { for (const w of line.split(' ')) emit(w, 1) }
  export function combine(k, vs, emit) { emit(k, vs.reduce((a, b) => a + b, 0)) }
  export function reduce(k, vs, emit) { ${reduce} }
`;

describe('a map task with a reduce stage', () => {
  it('writes one msgpack file per reduce partition under <shuffle_dir>/<job>/<idx>.<attempt>/', async () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: lines, task_count: 2, reduce_tasks: 3 });
    const result = await runDataTask(spec(c, 1));
    expect(readdirSync(join(shuffleDir, 'job1'))).toEqual(['1.1']); // no temporary directory left behind
    expect(readdirSync(outputDir('job1', 1, 1)).sort()).toEqual(['0.bin', '1.bin', '2.bin']);
    let records = 0;
    let bytes = 0;
    for (let p = 0; p < 3; p++) {
      const pairs = partitionPairs('job1', 1, 1, p);
      records += pairs.length;
      bytes += readFileSync(join(outputDir('job1', 1, 1), `${p}.bin`)).length;
      for (const [key] of pairs) expect(hashPartition(key, 3), `key ${String(key)}`).toBe(p);
    }
    // Only the sizes travel to the master.
    expect(result).toEqual([{ records, bytes }]);
    // Split 1 of 2 is lines 2-3: 'a dog', 'the end'.
    const all = [0, 1, 2].flatMap((p) => partitionPairs('job1', 1, 1, p)).sort((x, y) => compareKeys(x[0], y[0]));
    expect(all).toEqual([
      ['a', 1],
      ['dog', 1],
      ['end', 1],
      ['the', 1],
    ]);
  });

  it('keeps each attempt in its own directory', async () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: lines, task_count: 2, reduce_tasks: 2 });
    await runDataTask(spec(c, 0, { attempt: 1 }));
    await runDataTask(spec(c, 0, { attempt: 2 }));
    expect(readdirSync(join(shuffleDir, 'job1')).sort()).toEqual(['0.1', '0.2']);
  });

  it('writes combined pairs when the job combines, and every emitted pair when it does not', async () => {
    const combined = normalizeBatchConfig({ module: wordModule(), data: lines, reduce_tasks: 1, combine: true });
    const plain = normalizeBatchConfig({ module: wordModule(), data: lines, reduce_tasks: 1, combine: false });
    expect(await runDataTask({ ...spec(combined, 0), job_id: 'combined' })).toEqual([
      { records: 7, bytes: expect.any(Number) },
    ]);
    await runDataTask({ ...spec(plain, 0), job_id: 'plain' });
    // Combined: one pair per key, in key order, holding the partial sum.
    expect(partitionPairs('combined', 0, 1, 0)).toEqual(Object.entries(counts));
    // Not combined: a (word, 1) pair for every word of every line.
    const raw = partitionPairs('plain', 0, 1, 0);
    expect(raw).toHaveLength(lines.join(' ').split(' ').length);
    expect(raw.every(([, v]) => v === 1)).toBe(true);
  });

  it('refuses to run on a worker with no shuffle directory', async () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: lines, reduce_tasks: 1 });
    const { env: _env, ...noEnv } = spec(c, 0);
    await expect(runDataTask(noEnv)).rejects.toThrow(/no shuffle directory/);
  });

  it('without a reduce stage, returns the emitted pairs as rows and writes nothing', async () => {
    const c = normalizeBatchConfig({ module: 'export function map(r, emit) { emit(r % 2, r) }', data: [1, 2, 3] });
    expect(await runDataTask(spec(c, 0))).toEqual([
      { key: 1, value: 1 },
      { key: 0, value: 2 },
      { key: 1, value: 3 },
    ]);
    expect(existsSync(shuffleDir)).toBe(false);
  });
});

describe('a reduce task', () => {
  it('fetches its partition of every map output over HTTP and reduces each key once, in key order', async () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: lines, task_count: 3, reduce_tasks: 2 });
    const maps = await runMaps(c);
    const parts = (await runReduces(c, maps)) as { key: string; value: number }[][];
    parts.forEach((rows, p) => {
      expect(rows.map((r) => r.key)).toEqual(rows.map((r) => r.key).sort());
      for (const r of rows) expect(hashPartition(r.key, 2)).toBe(p);
    });
    expect(Object.fromEntries(parts.flat().map((r) => [r.key, r.value]))).toEqual(counts);
  });

  it('hands reduce all the values of a key together', async () => {
    // reduce emits (key, sorted values): each key once, with one value per map task that saw it.
    const c = normalizeBatchConfig({
      module: wordModule('emit(k, [...vs].sort())'),
      data: lines,
      task_count: 4,
      reduce_tasks: 1,
    });
    const [rows] = await runReduces(c, await runMaps(c));
    expect(rows).toEqual([
      { key: 'a', value: [1] },
      { key: 'cat', value: [1, 1] },
      { key: 'dog', value: [1, 1] },
      { key: 'end', value: [1] },
      { key: 'on', value: [1] },
      { key: 'sat', value: [1, 1] },
      { key: 'the', value: [1, 1, 2] },
    ]);
  });

  it('hands reduce the values of a key in map-task order, whatever order the fetches finish in', async () => {
    const c = normalizeBatchConfig({
      module: `
        export function map(r, emit) { emit('k', r) }
        export function reduce(k, vs, emit) { emit(k, vs) }`,
      data: ['m0', 'm1', 'm2'],
      task_count: 3,
      reduce_tasks: 1,
    });
    const maps = await runMaps(c);
    delays.set('0.1', 150); // map 0's worker answers last
    const [rows] = await runReduces(c, maps);
    expect(rows).toEqual([{ key: 'k', value: ['m0', 'm1', 'm2'] }]);
  });

  // null and the string 'null' are distinct keys: strings sort before the rest.
  it('keeps groups of distinct keys apart, even null and the string "null"', async () => {
    const c = normalizeBatchConfig({
      operation: 'sum',
      field: 'x',
      group_by: 'g',
      data: [{ g: null, x: 1 }, { g: 'null', x: 2 }, { x: 4 }],
      reduce_tasks: 1,
    });
    const [rows] = await runReduces(c, await runMaps(c));
    expect(rows).toEqual([
      { key: 'null', value: 2 },
      { key: null, value: 5 },
    ]);
  });

  it('fails with a FetchFailedError naming the map output when its worker answers 404', async () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: lines, task_count: 2, reduce_tasks: 1 });
    const maps = await runMaps(c);
    const gone = [maps[0]!, { ...maps[1]!, attempt: 7 }]; // attempt 7 never ran
    const err = (await runReduces(c, gone).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('FetchFailedError');
    expect(err.message).toMatch(/404/);
    // What crosses the thread boundary is the name and message; the map output is recovered from them.
    expect(fetchFailureOf({ name: err.name, message: err.message })).toEqual({ idx: 1, attempt: 7 });
  });

  it('fails with a FetchFailedError when the map output’s worker refuses the connection', async () => {
    const c = normalizeBatchConfig({ operation: 'wordcount', data: lines, task_count: 2, reduce_tasks: 1 });
    const maps = await runMaps(c);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve)); // nothing listens there now
    const err = (await runReduces(c, [{ idx: 0, attempt: 1, address: `127.0.0.1:${port}` }, maps[1]!]).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err.name).toBe('FetchFailedError');
    expect(err.message).toMatch(/unreachable/);
    expect(fetchFailureOf(err)).toEqual({ idx: 0, attempt: 1 });
  });

  it('writes its output as part-NNNNN under config.output and returns only a summary', async () => {
    const out = join(dir, 'out');
    const c = normalizeBatchConfig({
      operation: 'wordcount',
      data: lines,
      task_count: 2,
      reduce_tasks: 2,
      output: { path: out },
    });
    const parts = await runReduces(c, await runMaps(c));
    expect(readdirSync(out).sort()).toEqual(['part-00000', 'part-00001']);
    parts.forEach(([summary], p) => {
      const path = join(out, `part-0000${p}`);
      const text = readFileSync(path, 'utf8');
      expect(summary).toEqual({ part: path, records: text.trimEnd().split('\n').length, bytes: text.length });
      expect(text.endsWith('\n')).toBe(true);
    });
    const rows = parts
      .map((_, p) => readFileSync(join(out, `part-0000${p}`), 'utf8'))
      .join('')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { key: string; value: number });
    expect(Object.fromEntries(rows.map((r) => [r.key, r.value]))).toEqual(counts);
  });

  it('writes an empty part file for an empty partition', async () => {
    const out = join(dir, 'out');
    const c = normalizeBatchConfig({
      operation: 'grep',
      pattern: 'zzz',
      data: lines,
      reduce_tasks: 1,
      output: { path: out },
    });
    const [part] = await runReduces(c, await runMaps(c));
    const [summary] = part!;
    expect(summary).toEqual({ part: join(out, 'part-00000'), records: 0, bytes: 0 });
    expect(readFileSync(join(out, 'part-00000'), 'utf8')).toBe('');
  });
});

describe('a sort job end to end: sample, range-partitioned map, reduce', () => {
  it('concatenating the reduce outputs in order gives every record, sorted', async () => {
    const data = Array.from({ length: 200 }, (_, i) => `k${String((i * 37) % 200).padStart(3, '0')}`);
    const c = normalizeBatchConfig({ operation: 'sort', data, task_count: 4, reduce_tasks: 3 });
    const stages = planStages(c as { task_count: number; reduce_tasks: number; partitioner: 'range' })!;
    expect(stages.map((s) => s.name)).toEqual(['sample', 'map', 'reduce']);
    const keys: unknown[] = [];
    for (let idx = 0; idx < 4; idx++) {
      const sampled = await runDataTask(spec(c, idx));
      expect(sampled.length).toBeGreaterThan(0);
      expect(sampled.length).toBeLessThanOrEqual(256);
      keys.push(...sampled);
    }
    const plan: JobPlan = { stages, boundaries: rangeBoundaries(keys, 3) };
    expect(plan.boundaries).toHaveLength(2);
    const maps = await runMaps(c, { plan });
    // The map wrote each record to the partition its boundaries say.
    for (const m of maps) {
      for (let p = 0; p < 3; p++) {
        for (const [k] of partitionPairs('job1', m.idx, 1, p)) expect(rangePartition(k, plan.boundaries!)).toBe(p);
      }
    }
    const parts = await runReduces(c, maps, { plan });
    for (const part of parts) expect(part.length).toBeGreaterThan(0);
    expect(parts.flat()).toEqual([...data].sort());
  });

  it('returns at most 256 sample keys from a large split', async () => {
    const data = Array.from({ length: 2000 }, (_, i) => i);
    const c = normalizeBatchConfig({ operation: 'sort', data, task_count: 2, reduce_tasks: 2 });
    const sampled = await runDataTask(spec(c, 0));
    expect(sampled).toHaveLength(256);
    expect(sampled.every((k) => typeof k === 'number' && k < 1000)).toBe(true);
  });
});

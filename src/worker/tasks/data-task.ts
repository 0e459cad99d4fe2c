import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import type { DataTaskSpec, MapOutput } from '../../protocol/task-spec.js';
import { BUILTIN_JOBS, type Emit, type JobFunctions } from '../../ops/builtin-jobs.js';
import { readInputSplit } from './input-reader.js';
import {
  compareKeys,
  evenSample,
  groupByKey,
  hashPartition,
  mergeSortedRuns,
  rangePartition,
  type Run,
} from '../../ops/keys.js';
import { FetchFailedError, mapOutputDir, partitionFile, shuffleUrl } from './shuffle-files.js';
import { clusterFetch, clusterScheme } from './cluster-fetch.js';
import { loadUserModule } from './load-module.js';

/** Keys a sample task returns: enough for even quantiles, few enough for the log. */
const SAMPLE_KEYS = 256;

const packr = new Packr({ useRecords: false });

async function functionsOf(spec: DataTaskSpec): Promise<JobFunctions> {
  if (spec.operation !== 'map') return BUILTIN_JOBS[spec.operation].functions(spec.params);
  const mod = await loadUserModule(spec.module!);
  for (const name of ['map', 'combine', 'reduce'] as const) {
    if (mod[name] !== undefined && typeof mod[name] !== 'function') {
      throw new TypeError(`the job's module exports '${name}' but it is not a function`);
    }
  }
  if (typeof mod.map !== 'function') throw new TypeError("the job's module has no function export 'map'");
  return mod as unknown as JobFunctions;
}

async function recordsOf(spec: DataTaskSpec, sample?: { windows: number; bytes: number }): Promise<unknown[]> {
  if (spec.records) return spec.records;
  if (spec.input) {
    return readInputSplit(
      spec.input.spec,
      spec.input.splits,
      spec.part,
      sample,
      spec.env?.masters,
      spec.env?.tls,
      spec.env?.allow_net,
    );
  }
  return [spec.part]; // no input: each map task's one record is its own index (pi)
}

async function runMap(fns: JobFunctions, records: readonly unknown[], emit: Emit): Promise<void> {
  if (fns.mapSplit) return fns.mapSplit(records, emit);
  for (const r of records) await fns.map(r, emit);
}

/** Runs `combine` over each key's values, grouped by hashing: no order is needed on the map side. */
async function combined(pairs: [unknown, unknown][], combine: NonNullable<JobFunctions['combine']>) {
  const out: [unknown, unknown][] = [];
  const emit: Emit = (k, v) => void out.push([k, v]);
  for (const [key, values] of groupByKey(pairs)) {
    const done = combine(key, values, emit);
    if (done instanceof Promise) await done;
  }
  return out;
}

const byKey = (a: readonly [unknown, unknown], b: readonly [unknown, unknown]) => compareKeys(a[0], b[0]);

/** Runs one task of a data job inside a worker thread; returns what the master records. */
export async function runDataTask(spec: DataTaskSpec): Promise<unknown[]> {
  const fns = await functionsOf(spec);
  switch (spec.stage) {
    case 'sample':
      return sampleKeys(spec, fns);
    case 'map':
      return spec.reduce_tasks > 0 ? mapToShuffle(spec, fns) : mapOnly(spec, fns);
    case 'reduce':
      return reduce(spec, fns);
  }
}

async function mapOnly(spec: DataTaskSpec, fns: JobFunctions): Promise<unknown[]> {
  const rows: { key: unknown; value: unknown }[] = [];
  await runMap(fns, await recordsOf(spec), (key, value) => void rows.push({ key, value }));
  return rows;
}

/** The keys the map emits over a few windows of the split: the range partitioner's sample. */
async function sampleKeys(spec: DataTaskSpec, fns: JobFunctions): Promise<unknown[]> {
  const keys: unknown[] = [];
  const records = await recordsOf(spec, { windows: 8, bytes: 64 * 1024 });
  await runMap(fns, records, (key) => void keys.push(key));
  return evenSample(keys, SAMPLE_KEYS);
}

/**
 * Map side of the shuffle: partitions what the map emits by key into `reduce_tasks` files
 * on this worker's disk (combined first when the job has a combiner). The master records
 * only their sizes; reduce tasks fetch the files from this worker directly.
 */
async function mapToShuffle(spec: DataTaskSpec, fns: JobFunctions): Promise<unknown[]> {
  const r = spec.reduce_tasks;
  const parts: [unknown, unknown][][] = Array.from({ length: r }, () => []);
  const partition =
    spec.partitioner === 'range'
      ? (k: unknown) => rangePartition(k, spec.boundaries ?? [])
      : (k: unknown) => hashPartition(k, r);
  await runMap(fns, await recordsOf(spec), (key, value) => void parts[partition(key)]!.push([key, value]));
  const root = spec.env?.shuffle_dir;
  if (!root) throw new Error('this worker keeps no shuffle directory; cannot run a map task with a reduce stage');
  const dir = mapOutputDir(root, spec.job_id, spec.idx, spec.attempt);
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const sizes: number[] = [];
  let records = 0;
  for (let p = 0; p < r; p++) {
    let pairs = parts[p]!;
    parts[p] = [];
    // A mapSplit combines inside: each key comes once already.
    if (spec.combine && fns.combine && !fns.mapSplit && pairs.length > 1) pairs = await combined(pairs, fns.combine);
    // Sorted here, in parallel over the map tasks, so the reduce only merges (stable: values
    // of one key keep the order they were emitted in).
    pairs.sort(byKey);
    const run: Run = { keys: pairs.map((kv) => kv[0]), values: pairs.map((kv) => kv[1]) };
    const bytes = packr.pack(run);
    await writeFile(partitionFile(tmp, p), bytes);
    sizes.push(bytes.length);
    records += pairs.length;
  }
  // Appears whole or not at all: a half-written output is never served.
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return [{ records, bytes: sizes.reduce((a, b) => a + b, 0) }];
}

async function fetchPartition(spec: DataTaskSpec, m: MapOutput): Promise<Run> {
  const tls = spec.env?.tls;
  const url = shuffleUrl(clusterScheme(tls), m.address, spec.job_id, m.idx, m.attempt, spec.part);
  let res: Response;
  try {
    res = await clusterFetch(tls)(url, { headers: spec.env?.auth ? { authorization: spec.env.auth } : {} });
  } catch (err) {
    throw new FetchFailedError(m.idx, m.attempt, `${m.address} unreachable (${(err as Error).message})`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new FetchFailedError(m.idx, m.attempt, `${m.address} answered ${res.status}`);
  }
  return packr.unpack(Buffer.from(await res.arrayBuffer())) as Run;
}

/**
 * Reduce side: fetches this partition from every map output (a few at a time), each sorted
 * by key, and merges them, calling `reduce(key, values, emit)` once per key, in key order.
 */
async function reduce(spec: DataTaskSpec, fns: JobFunctions): Promise<unknown[]> {
  if (!fns.reduce) throw new TypeError("the job's module has no function export 'reduce'");
  const maps = spec.maps ?? [];
  const fetched: Run[] = [];
  let next = 0;
  // Outputs keep map-task order, whatever order they arrive in: a retried reduce sees its
  // values in the same order and writes the same bytes.
  const fetcher = async () => {
    while (next < maps.length) {
      const i = next++;
      fetched[i] = await fetchPartition(spec, maps[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, maps.length) }, fetcher));
  const out: unknown[] = [];
  const emit: Emit =
    spec.results === 'values' ? (_key, value) => void out.push(value) : (key, value) => void out.push({ key, value });
  const reduceFn = fns.reduce;
  await mergeSortedRuns(fetched, (key, values) => reduceFn(key, values, emit));
  return spec.output ? [await writePart(spec, out)] : out;
}

/** Writes a reduce task's output as `part-NNNNN` under the job's output directory. */
async function writePart(
  spec: DataTaskSpec,
  out: unknown[],
): Promise<{ part: string; records: number; bytes: number }> {
  const dir = spec.output!.path;
  await mkdir(dir, { recursive: true });
  const path = join(dir, `part-${String(spec.part).padStart(5, '0')}`);
  const text = out.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join('\n');
  const body = text === '' ? '' : `${text}\n`;
  // A retried or duplicate reduce writes the same bytes; the rename makes each write whole.
  const tmp = `${path}.${spec.attempt}.tmp`;
  await writeFile(tmp, body);
  await rename(tmp, path);
  return { part: path, records: out.length, bytes: Buffer.byteLength(body) };
}

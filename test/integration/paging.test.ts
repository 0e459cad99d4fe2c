// Results pages, the cap on stored results and the bounds at submission, on a real master and
// real workers (addresses 127.0.0.191–199 belong to this file).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareKeys } from '../../src/ops/keys.js';
import { Cluster, http, submitJob, untilJobStatus, type Json, type MasterProc } from '../helpers/cluster.js';

const c = new Cluster('paging');
let m: MasterProc;

const submit = (config: unknown) => submitJob(m.url, { name: 'paging', type: 'batch', config });

/** Every row of a job, page after page of `limit`; the pages' cursors are checked as they come. */
async function allPages(id: string, limit: number): Promise<Json[]> {
  const rows: Json[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const r = await http('GET', `${m.url}/api/jobs/${id}/results?limit=${limit}${q}`);
    expect(r.status, r.text).toBe(200);
    expect(r.json.results.length).toBeLessThanOrEqual(limit);
    rows.push(...r.json.results);
    cursor = r.json.next_cursor;
    if (cursor !== null) expect(r.json.results.length).toBe(limit);
    expect(++pages).toBeLessThan(100_000);
  } while (cursor !== null);
  return rows;
}

beforeAll(async () => {
  m = await c.master('127.0.0.191');
  await c.worker('127.0.0.192', m, { maxTasks: 4 });
  await c.worker('127.0.0.193', m, { maxTasks: 4 });
});

afterAll(() => c.cleanup());

describe('a keyed job paged to its end', () => {
  it('serves every row of a wordcount exactly once, sorted by key, whatever the page size', async () => {
    const lines = Array.from({ length: 6000 }, (_, i) => `w${(i * 7919) % 4001} Río ${i % 13} x${i % 3}`);
    const path = join(c.tmp, 'words.txt');
    writeFileSync(path, lines.join('\n') + '\n');
    const id = await submit({ operation: 'wordcount', input: { path }, task_count: 3, reduce_tasks: 4 });
    await untilJobStatus(m.url, id, 'completed', 60_000);
    const counts = new Map<string, number>();
    for (const l of lines)
      for (const w of l.toLowerCase().split(/[^\p{L}\p{N}]+/u)) if (w) counts.set(w, (counts.get(w) ?? 0) + 1);
    const want = [...counts].sort((a, b) => compareKeys(a[0], b[0])).map(([key, value]) => ({ key, value }));
    expect(want.length).toBeGreaterThan(4000);
    for (const limit of [1000, 333, 4096, 10_000]) expect(await allPages(id, limit)).toEqual(want);
    // Small pages from the start and from the middle agree with the whole.
    expect(await allPages(id, 7).then((rows) => rows.slice(0, 50))).toEqual(want.slice(0, 50));
  });

  it('sorts keys of every type (numbers, strings, arrays, objects, null) as compareKeys does, through a reduce', async () => {
    const keys: unknown[] = [3, -1, 2.5, 'b', 'a', '', 'é', [1, 'x'], [0], { k: 'v' }, null, true, false, 10, 'B', 1e6];
    const data = Array.from({ length: 400 }, (_, i) => ({ k: keys[i % keys.length] }));
    const id = await submit({
      module: `export function map(r, emit) { emit(r.k, 1) }
export function reduce(k, ones, emit) { emit(k, ones.length) }`,
      data,
      task_count: 4,
      reduce_tasks: 3,
    });
    await untilJobStatus(m.url, id, 'completed', 60_000);
    const want = [...keys].sort(compareKeys).map((key) => ({ key, value: 25 }));
    for (const limit of [1, 2, 5, 100]) expect(await allPages(id, limit)).toEqual(want);
  });

  it('refuses a cursor of the old pager, or one it never gave out, with 400 and a way out', async () => {
    const id = await submit({ operation: 'wordcount', data: ['a b c'], task_count: 1, reduce_tasks: 1 });
    await untilJobStatus(m.url, id, 'completed', 60_000);
    for (const cursor of ['k1', '0.1', 'r%2F%2F', 'zzz']) {
      const r = await http('GET', `${m.url}/api/jobs/${id}/results?limit=1&cursor=${cursor}`);
      expect(r.status, r.text).toBe(400);
      expect(r.json.error.code).toBe('bad_request');
      expect(r.json.error.message).toMatch(/start again without a cursor/);
    }
  });
});

describe('a list job paged to its end', () => {
  it('serves every value exactly once, in input order, across tasks and page sizes', async () => {
    const data = Array.from({ length: 1000 }, (_, i) => i);
    const id = await submit({ operation: 'multiply', factor: 3, data, task_count: 7 });
    await untilJobStatus(m.url, id, 'completed', 60_000);
    const want = data.map((x) => x * 3);
    for (const limit of [1, 13, 143, 1000, 5000]) expect(await allPages(id, limit)).toEqual(want);
  });
});

describe('the cap on a job’s stored results', () => {
  it('fails a job whose results pass 64 MiB, with a message that names config.output', async () => {
    // 70 tasks of about 1 MiB of results each.
    const id = await submit({
      module: `export function map(r, emit) { emit(r, 'x'.repeat(1024 * 1024)) }`,
      data: Array.from({ length: 70 }, (_, i) => i),
      task_count: 70,
    });
    const job = await untilJobStatus(m.url, id, 'failed', 120_000);
    expect(job.error.message).toMatch(/64 MiB/);
    expect(job.error.message).toMatch(/config\.output/);
    const r = await http('GET', `${m.url}/api/jobs/${id}/results?limit=1`);
    expect(r.status).toBe(409);
  });
});

describe('bounds at submission', () => {
  it('refuses more than 10,000 reduce tasks with 400, saying the limit and what to do', async () => {
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'wide',
      type: 'batch',
      config: { operation: 'wordcount', data: ['a'], reduce_tasks: 10_001 },
    });
    expect(r.status, r.text).toBe(400);
    expect(r.json.error.code).toBe('bad_request');
    expect(r.json.error.message).toMatch(/over the limit of 10000; ask for fewer reduce tasks/);
  });

  it('refuses task_count × reduce_tasks over 1,000,000 map output files with 400', async () => {
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'wide',
      type: 'batch',
      config: { operation: 'wordcount', input: { path: '/tmp/x' }, task_count: 2000, reduce_tasks: 501 },
    });
    expect(r.status, r.text).toBe(400);
    expect(r.json.error.message).toMatch(/2000 × 501 = 1002000 map output files, over the limit of 1000000/);
    const jobs = (await http('GET', `${m.url}/api/jobs?limit=1000`)).json.jobs as Json[];
    expect(jobs.some((j) => j.name === 'wide')).toBe(false);
  });
});

describe('lists of jobs and workers', () => {
  it('pages the workers by keyset, each worker once', async () => {
    const first = await http('GET', `${m.url}/api/workers?limit=1`);
    expect(first.status, first.text).toBe(200);
    expect(first.json.workers).toHaveLength(1);
    expect(first.json.next_cursor).toEqual(expect.any(String));
    const second = await http('GET', `${m.url}/api/workers?limit=1&cursor=${first.json.next_cursor}`);
    expect(second.json.workers).toHaveLength(1);
    expect(second.json.workers[0].worker_id).not.toBe(first.json.workers[0].worker_id);
    const all = (await http('GET', `${m.url}/api/workers`)).json;
    expect(all.workers.map((w: Json) => w.worker_id)).toEqual([
      first.json.workers[0].worker_id,
      second.json.workers[0].worker_id,
    ]);
    expect(all.next_cursor).toBeNull();
    expect((await http('GET', `${m.url}/api/workers?cursor=nope`)).status).toBe(400);
  });

  it('pages the jobs filtered by status by keyset, newest first', async () => {
    const page = await http('GET', `${m.url}/api/jobs?status=completed&limit=2`);
    expect(page.json.jobs).toHaveLength(2);
    const next = await http('GET', `${m.url}/api/jobs?status=completed&limit=100&cursor=${page.json.next_cursor}`);
    const all = (await http('GET', `${m.url}/api/jobs?status=completed&limit=100`)).json.jobs as Json[];
    expect([...page.json.jobs, ...next.json.jobs].map((j: Json) => j.job_id)).toEqual(all.map((j) => j.job_id));
  });
});

// User code over an input file the workers read themselves, split on record boundaries
// (addresses 127.0.0.101–109 belong to this file).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, http, jobIdFrom, untilJobStatus, type MasterProc } from '../helpers/cluster.js';

const c = new Cluster('user-code');
let m: MasterProc;

const WORDS = ['río', 'weir', 'agua', 'dam', 'flow', 'stone', 'Río', 'WEIR'];
const countModule = `export function map(line, emit) {
  for (const w of line.toLowerCase().split(/[^\\p{L}\\p{N}]+/u)) if (w) emit(w, 1);
}`;

beforeAll(async () => {
  m = await c.master('127.0.0.101');
  await c.worker('127.0.0.102', m, { maxTasks: 4 });
  await c.worker('127.0.0.103', m, { maxTasks: 4 });
});

afterAll(() => c.cleanup());

describe('a user map over an input file', () => {
  it('covers every line of the file exactly once across its splits', async () => {
    // Over 1 MiB, so splits cross the readers' chunk boundaries too.
    const lines = Array.from({ length: 60_000 }, (_, i) => `${WORDS[i % 8]} ${WORDS[(i * 7) % 8]}, line ${i % 13}`);
    const path = join(c.tmp, 'words.txt');
    writeFileSync(path, lines.join('\n') + '\n');
    const expected = new Map<string, number>();
    for (const l of lines) {
      for (const w of l.toLowerCase().split(/[^\p{L}\p{N}]+/u)) if (w) expected.set(w, (expected.get(w) ?? 0) + 1);
    }
    const modulePath = join(c.tmp, 'count.mjs');
    writeFileSync(modulePath, countModule);
    const sub = await c.cli([
      '--master',
      m.url,
      'submit',
      'batch',
      'count',
      JSON.stringify({ input: { path, format: 'lines' }, task_count: 7 }),
      '--module',
      modulePath,
    ]);
    expect(sub.code, sub.stderr).toBe(0);
    const id = jobIdFrom(sub.stdout);
    await untilJobStatus(m.url, id, 'completed', 60_000);
    const rows: { key: string; value: number }[] = [];
    for (let cursor: string | null = null, first = true; first || cursor; first = false) {
      const q: string = cursor ? `&cursor=${cursor}` : '';
      const page = (await http('GET', `${m.url}/api/jobs/${id}/results?limit=100000${q}`)).json;
      rows.push(...page.results);
      cursor = page.next_cursor;
    }
    const counted = new Map<string, number>();
    for (const r of rows) counted.set(r.key, (counted.get(r.key) ?? 0) + r.value);
    expect(counted).toEqual(expected);
  });

  it('parses JSON lines into records', async () => {
    const path = join(c.tmp, 'people.jsonl');
    writeFileSync(
      path,
      [
        { n: 'ana', a: 31 },
        { n: 'bo', a: 4 },
        { n: 'cy', a: 58 },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'ages',
      type: 'batch',
      config: {
        module: 'export function map(p, emit) { emit(p.n, p.a * 2) }',
        input: { path, format: 'jsonl' },
        task_count: 2,
      },
    });
    expect(r.status, r.text).toBe(201);
    await untilJobStatus(m.url, r.json.job_id, 'completed', 30_000);
    const res = await http('GET', `${m.url}/api/jobs/${r.json.job_id}/results`);
    expect(res.json.results).toEqual([
      { key: 'ana', value: 62 },
      { key: 'bo', value: 8 },
      { key: 'cy', value: 116 },
    ]);
  });

  it('fails a task whose results nest deeper than 100, saying so; the masters go on (applied, they would overflow their stacks)', async () => {
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'deep-results',
      type: 'batch',
      config: {
        module: 'export function map(x, emit) { let v = x; for (let i = 0; i < 150; i++) v = [v]; emit("k", v) }',
        data: [1],
        task_count: 1,
        max_retries: 0,
      },
    });
    expect(r.status, r.text).toBe(201);
    const job = await untilJobStatus(m.url, r.json.job_id, 'failed', 30_000);
    expect(job.error.message).toMatch(/the task's results nest arrays and objects more than 100 deep; flatten them/);
    expect((await http('GET', `${m.url}/health`)).status).toBe(200);
  });

  it('refuses an input it cannot read the way it was described, at submission', async () => {
    const bad = async (input: unknown) =>
      http('POST', `${m.url}/api/jobs`, { name: 'x', type: 'batch', config: { module: countModule, input } });
    expect((await bad({ path: 'relative.txt' })).json.error.message).toMatch(/absolute path/);
    expect((await bad({ path: '/x', format: 'xml' })).json.error.message).toMatch(/lines, jsonl, csv/);
    expect((await bad({ url: 'ftp://x/y' })).json.error.message).toMatch(/http:\/\/ or https:\/\//);
    expect((await bad({ path: '/x', url: 'http://x/y' })).json.error.message).toMatch(/not both/);
  });

  it('fails the job, with the reason, when the workers cannot read the file', async () => {
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'missing',
      type: 'batch',
      config: { module: countModule, input: { path: join(c.tmp, 'nonexistent.txt') }, max_retries: 0 },
    });
    const job = await untilJobStatus(m.url, r.json.job_id, 'failed', 30_000);
    expect(job.error.message).toMatch(/ENOENT/);
  });
});

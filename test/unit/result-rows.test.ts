import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { WeirError } from '../../src/common/errors.js';
import { pageResults } from '../../src/master/results-pager.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { compareKeys } from '../../src/ops/keys.js';
import { Applier } from '../../src/state/apply.js';
import type { ApplyResult, Command } from '../../src/state/commands.js';
import { Queries } from '../../src/state/queries.js';
import { RESULTS_CAP_BYTES } from '../../src/state/result-rows.js';
import { migrate } from '../../src/state/schema.js';

let db: Db;
let applier: Applier;
let clock: number;
const apply = (command: Command): ApplyResult => db.transaction(() => applier.apply(command))();
const at = () => (clock += 10);
const queries = () => new Queries({ db, generation: 0 });

beforeEach(() => {
  db = new Database(':memory:');
  migrate(db);
  applier = new Applier(db);
  clock = 1000;
  apply({ type: 'registerWorker', at: at(), worker_id: 'w', address: 'w:1', max_tasks: 8 });
});

const submit = (job_id: string, config: unknown) =>
  apply({ type: 'submitJob', at: at(), job_id, name: job_id, job_type: 'batch', config: normalizeBatchConfig(config) });
/** Assigns and completes task `idx` with `result`. */
function run(job_id: string, idx: number, result: unknown[] | string) {
  apply({ type: 'assignTasks', at: at(), assignments: [{ job_id, idx, attempt: 1, worker_id: 'w' }] });
  const result_json = typeof result === 'string' ? result : JSON.stringify(result);
  return apply({
    type: 'completeTasks',
    at: at(),
    completions: [{ job_id, idx, attempt: 1, worker_id: 'w', result_json }],
  });
}

/** Every row of a completed job, page after page of `limit`. */
function allPages(job_id: string, limit: number): unknown[] {
  const q = queries();
  const job = q.job(job_id)!;
  const rows: unknown[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = pageResults(q, job, cursor, limit);
    rows.push(...page.results);
    if (page.next_cursor === null) return rows;
    cursor = page.next_cursor;
  }
  throw new Error('the pages never end');
}

/** A wordcount of 2 maps and 3 reduces whose reduces emit these rows (keys of every kind). */
function keyedJob(job_id: string, reduces: unknown[][]) {
  submit(job_id, { operation: 'wordcount', data: ['a', 'b'], task_count: 2, reduce_tasks: 3 });
  run(job_id, 0, []);
  run(job_id, 1, []);
  reduces.forEach((rows, r) => run(job_id, 2 + r, rows));
  expect(queries().job(job_id)!.status).toBe('completed');
}

const row = (key: unknown, value: unknown = 1) => ({ key, value });
const REDUCES = [
  [row('b'), row(10), row([1, 'x']), row('é'), row(null)],
  [row(-0.5), row('a'), row(''), row('b', 'second b'), row({ k: 1 })],
  [row(9), row('ab'), row(true), row('a\u0000'), row(-1e9)],
];
const stableSorted = (reduces: unknown[][]) =>
  reduces.flat().sort((a, b) => compareKeys((a as { key: unknown }).key, (b as { key: unknown }).key));

describe('keyed results: indexed as the final stage completes, paged by keyset', () => {
  it('pages on past keys too long for a URL: their cursors stay short, and every row comes once', () => {
    const long = (c: string) => row('k'.repeat(20_000) + c);
    const reduces = [
      [long('b'), row('a')],
      [long('a'), row('z')],
      [long('c'), long('a'), row(1)],
    ];
    keyedJob('long', reduces);
    const q = queries();
    const job = q.job('long')!;
    let cursor: string | undefined;
    const seen: unknown[] = [];
    for (;;) {
      const page = pageResults(q, job, cursor, 1);
      seen.push(...page.results);
      if (page.next_cursor === null) break;
      expect(page.next_cursor.length).toBeLessThan(6000);
      cursor = page.next_cursor;
    }
    expect(seen).toEqual(stableSorted(reduces));
  });

  it('refuses a long-key cursor whose row is not there, as one to start again without', () => {
    keyedJob('gone', [[row('a')], [row('b')], []]);
    const q = queries();
    const bad = `h${Buffer.from('x'.repeat(10)).toString('base64url')}.${'A'.repeat(22)}`;
    expect(() => pageResults(q, q.job('gone')!, bad, 10)).toThrow(/start again without a cursor/);
  });

  it('serves every row exactly once, in compareKeys order, whatever the page size', () => {
    keyedJob('j', REDUCES);
    for (const limit of [1, 2, 3, 7, 15, 1000]) expect(allPages('j', limit)).toEqual(stableSorted(REDUCES));
  });

  it('indexes tasks of many rows (written in batches) in any order they come, duplicates of a key included', () => {
    const reduces = [0, 1, 2].map((r) =>
      Array.from({ length: 64 * 2 + 37 + r }, (_, i) => row((i * 7919 + r) % 101, `${r}.${i}`)),
    );
    keyedJob('many', reduces);
    for (const limit of [1, 64, 65, 1000]) expect(allPages('many', limit)).toEqual(stableSorted(reduces));
  });

  it('keeps only the final stage in the index (map tasks feed it)', () => {
    keyedJob('j', REDUCES);
    expect((db.prepare(`SELECT count(*) AS n FROM result_rows`).get() as { n: number }).n).toBe(15);
  });

  it('refuses the cursors of the old pager (k<offset>) and made-up ones with a way out', () => {
    keyedJob('j', REDUCES);
    const q = queries();
    for (const cursor of ['k10', '0.3', 'r!!', 'r']) {
      expect(() => pageResults(q, q.job('j')!, cursor, 10)).toThrow(/start again without a cursor/);
      try {
        pageResults(q, q.job('j')!, cursor, 10);
      } catch (e) {
        expect((e as WeirError).code).toBe('bad_request');
      }
    }
  });

  it('indexes a map-only keyed job (a user map) from its first task', () => {
    submit('m', { module: 'export function map(x, emit) { emit(x, 1) }', data: [3, 1, 2], task_count: 3 });
    run('m', 0, [row(3)]);
    run('m', 1, [row(1)]);
    run('m', 2, [row(2)]);
    expect(allPages('m', 2)).toEqual([row(1), row(2), row(3)]);
  });

  it('indexes nothing of a result that is not a JSON array of rows, and never throws on one', () => {
    submit('m', { module: 'export function map(x, emit) { emit(x, 1) }', data: [3, 1], task_count: 2 });
    expect(run('m', 0, '{"not": "an array"}')).toMatchObject({ ok: true });
    expect(run('m', 1, [7, null, row('k')])).toMatchObject({ ok: true });
    // Rows without a key sort as the key undefined does (its JSON text is empty).
    expect(allPages('m', 10)).toEqual([row('k'), 7, null]);
  });
});

describe('list results: input order, a cursor that resumes at its task', () => {
  it('serves every value exactly once, in task order, whatever the page size', () => {
    submit('l', { operation: 'multiply', factor: 2, data: [1, 2, 3, 4, 5, 6, 7], task_count: 3 });
    run('l', 0, [2, 4, 6]);
    run('l', 1, [8, 10]);
    run('l', 2, [12, 14]);
    for (const limit of [1, 2, 3, 4, 100]) expect(allPages('l', limit)).toEqual([2, 4, 6, 8, 10, 12, 14]);
  });
});

describe('the cap on stored results', () => {
  it('fails a job whose results pass 64 MiB, with a message naming config.output, and keeps its results out', () => {
    submit('big', { operation: 'multiply', factor: 1, data: [1, 2, 3, 4, 5], task_count: 5 });
    const chunk = JSON.stringify(['x'.repeat(20 * 1024 * 1024)]);
    for (let idx = 0; idx < 3; idx++) expect(run('big', idx, chunk)).toMatchObject({ finished_jobs: [] });
    // The fourth takes the job over the cap: the job fails there, and ends for its watchers.
    const r = run('big', 3, chunk);
    expect(r).toMatchObject({ ok: true, finished_jobs: ['big'], accepted: [] });
    const job = queries().job('big')!;
    expect(job.status).toBe('failed');
    expect(job.result_bytes).toBeGreaterThan(RESULTS_CAP_BYTES);
    const error = JSON.parse(job.error!) as { task: number; message: string };
    expect(error.task).toBe(3);
    expect(error.message).toMatch(/64 MiB/);
    expect(error.message).toMatch(/config\.output/);
    expect(
      queries()
        .tasksOfJob('big', 10)
        .map((t) => t.status),
    ).toEqual(['completed', 'completed', 'completed', 'failed', 'cancelled']);
    expect((db.prepare(`SELECT result FROM tasks WHERE idx = 3`).get() as { result: string | null }).result).toBeNull();
    // A late report of the cancelled task changes nothing.
    expect(
      apply({
        type: 'completeTasks',
        at: at(),
        completions: [{ job_id: 'big', idx: 4, attempt: 1, worker_id: 'w', result_json: '[1]' }],
      }),
    ).toMatchObject({ accepted: [] });
  });

  it('counts a job up to the cap exactly, and lets it complete', () => {
    submit('fit', { operation: 'multiply', factor: 1, data: [1, 2], task_count: 2 });
    const half = RESULTS_CAP_BYTES / 2;
    run('fit', 0, JSON.stringify(['x'.repeat(half - 4)])); // ["…"] is 4 bytes more than its text
    run('fit', 1, JSON.stringify(['y'.repeat(half - 4)]));
    expect(queries().job('fit')).toMatchObject({ status: 'completed', result_bytes: RESULTS_CAP_BYTES });
  });
});

describe('the migration to indexed results', () => {
  it('indexes the keyed results of jobs stored before it, so their pages come from the index', () => {
    const old = new Database(':memory:');
    migrate(old, 7); // the layout before result_rows
    const wordcount = normalizeBatchConfig({
      operation: 'wordcount',
      data: ['a', 'b'],
      task_count: 2,
      reduce_tasks: 3,
    });
    const plan = {
      stages: [
        { name: 'map', first: 0, count: 2 },
        { name: 'reduce', first: 2, count: 3 },
      ],
    };
    old
      .prepare(
        `INSERT INTO jobs (job_id, seq, name, type, status, config, created_at, max_retries, total, pending, running,
                           completed, failed, plan, stage, untouched_from)
         VALUES (?, ?, ?, 'batch', 'completed', ?, 1000, 3, ?, 0, 0, ?, 0, ?, ?, ?)`,
      )
      .run('kw', 1, 'kw', JSON.stringify(wordcount), 5, 5, JSON.stringify(plan), 1, 5);
    const multiply = normalizeBatchConfig({ operation: 'multiply', data: [1, 2], task_count: 2 });
    old
      .prepare(
        `INSERT INTO jobs (job_id, seq, name, type, status, config, created_at, max_retries, total, pending, running,
                           completed, failed, plan, stage, untouched_from)
         VALUES (?, ?, ?, 'batch', 'completed', ?, 1000, 3, ?, 0, 0, ?, 0, NULL, 0, ?)`,
      )
      .run('ls', 2, 'ls', JSON.stringify(multiply), 2, 2, 2);
    const task = old.prepare(
      `INSERT INTO tasks (seq, idx, status, attempt, failures, worker_id, not_before, result)
       VALUES (?, ?, 'completed', 1, 0, 'w', 1000, ?)`,
    );
    task.run(1, 0, '[]');
    task.run(1, 1, '[]');
    REDUCES.forEach((rows, r) => task.run(1, 2 + r, JSON.stringify(rows)));
    task.run(2, 0, '[1]');
    task.run(2, 1, '[2]');

    migrate(old);
    db = old;
    const q = queries();
    expect(q.job('kw')).toMatchObject({ rows_from: 2 });
    expect(q.job('ls')).toMatchObject({ rows_from: null, result_bytes: 6 });
    expect(allPages('kw', 4)).toEqual(stableSorted(REDUCES));
    expect(allPages('ls', 1)).toEqual([1, 2]);
  });
});

// Deleting jobs in the state machine: the job is gone (404) from the first command on, its
// rows go in bounded slices, and what retention asks of the state is answered from indexes.
import { performance } from 'node:perf_hooks';
import { beforeEach, describe, expect, it } from 'vitest';
import { retentionOf } from '../../src/ops/retention.js';
import { PURGE_SLICE_ROWS } from '../../src/state/apply.js';
import type { ApplyResult, Command, JobConfig } from '../../src/state/commands.js';
import { LifecycleQueries } from '../../src/state/lifecycle-queries.js';
import type { Queries } from '../../src/state/queries.js';
import type { StateMachine } from '../../src/state/state-machine.js';
import { sweepIntervalMs } from '../../src/master/janitor.js';
import { stateEachTest } from '../helpers/state.js';

const state = stateEachTest('weir-delete-');
const { apply, submit, register } = state;
let sm: StateMachine;
let q: Queries;
let life: LifecycleQueries;
const count = (sql: string, ...args: unknown[]) => (sm.db.prepare(sql).get(...args) as { n: number }).n;
const taskRows = () => count(`SELECT count(*) AS n FROM tasks`);

/** Runs a job of `n` tasks to completion on worker `w`, 10,000 tasks per command. */
function runToCompletion(job_id: string, n: number, w = 'w') {
  for (let first = 0; first < n; first += 10_000) {
    const idx = Array.from({ length: Math.min(10_000, n - first) }, (_, i) => first + i);
    apply({
      type: 'assignTasks',
      at: 2000,
      assignments: idx.map((i) => ({ job_id, idx: i, attempt: 1, worker_id: w })),
    });
    apply({
      type: 'completeTasks',
      at: 3000,
      completions: idx.map((i) => ({ job_id, idx: i, attempt: 1, worker_id: w, result_json: `[${i}]` })),
    });
  }
}

/** Deletes a job and proposes purgeJob slices as the leader does, until none is left. */
function deleteFully(job_id: string, at = 5000): { commands: number; removed: number[]; ms: number[] } {
  const ms: number[] = [];
  let t = performance.now();
  const first = apply({ type: 'deleteJob', at, job_id });
  ms.push(performance.now() - t);
  if (!first.ok) throw new Error(first.message);
  const r = first as Extract<ApplyResult<'deleteJob'>, { ok: true }>;
  const removed: number[] = [];
  let more = r.more;
  while (more) {
    t = performance.now();
    const p = apply({ type: 'purgeJob', at, seq: r.seq }) as Extract<ApplyResult<'purgeJob'>, { ok: true }>;
    ms.push(performance.now() - t);
    removed.push(p.removed);
    more = p.more;
    if (removed.length > 1000) throw new Error('purging never ends');
  }
  return { commands: ms.length, removed, ms };
}

beforeEach(() => {
  ({ sm, q } = state);
  life = new LifecycleQueries(sm);
});

describe('deleteJob', () => {
  it('removes a completed job, its tasks and results; a second delete finds no job', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 3 });
    runToCompletion('j', 3);
    expect(q.job('j')?.status).toBe('completed');
    expect(apply({ type: 'deleteJob', at: 5000, job_id: 'j' })).toMatchObject({ ok: true, more: false, to_stop: [] });
    expect(q.job('j')).toBeUndefined();
    expect(taskRows()).toBe(0);
    expect(count(`SELECT count(*) AS n FROM purging`)).toBe(0);
    expect(apply({ type: 'deleteJob', at: 5001, job_id: 'j' })).toMatchObject({ ok: false, code: 'not_found' });
  });

  it('cancels a running job first: its attempts are named to stop, its slots are free at once', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 5 });
    apply({
      type: 'assignTasks',
      at: 2000,
      assignments: [0, 1].map((idx) => ({ job_id: 'j', idx, attempt: 1, worker_id: 'w' })),
    });
    expect(q.runningByWorker().get('w')).toBe(2);
    const r = apply({ type: 'deleteJob', at: 5000, job_id: 'j' });
    expect(r).toMatchObject({ ok: true, more: false });
    expect((r as { to_stop: unknown[] }).to_stop).toEqual([
      { job_id: 'j', idx: 0, attempt: 1, worker_id: 'w' },
      { job_id: 'j', idx: 1, attempt: 1, worker_id: 'w' },
    ]);
    expect(q.runningByWorker().get('w') ?? 0).toBe(0);
    expect([...q.pending(10)]).toEqual([]);
    // Reports of the deleted job's attempts change nothing.
    expect(
      apply({
        type: 'completeTasks',
        at: 6000,
        completions: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w', result_json: '[0]' }],
      }),
    ).toMatchObject({ ok: true, accepted: [] });
  });

  it('offers the scheduler none of a deleted job’s tasks while its purge has rows left, only other jobs’', () => {
    register('w');
    const n = PURGE_SLICE_ROWS + 10;
    // In stages: its tasks' rows are there from submission, all pending.
    const module =
      'export function map(r, emit) { emit(String(r), 1); }\nexport function reduce(k, vs) { return vs.length; }';
    submit('doomed', { module, data: Array.from({ length: n }, (_, i) => i), task_count: n, reduce_tasks: 1 });
    submit('next', { operation: 'noop', task_count: 2 });
    // A pass before the delete met the doomed job's rows.
    expect([...q.pending(3)].map((t) => t.job_id)).toEqual(['doomed', 'doomed', 'doomed']);
    expect(apply({ type: 'deleteJob', at: 5000, job_id: 'doomed' })).toMatchObject({ ok: true, more: true });
    expect(taskRows()).toBeGreaterThan(0);
    expect([...q.pending(10)].map((t) => `${t.job_id} ${t.idx}`)).toEqual(['next 0', 'next 1']);
  });

  it('removes a streaming job’s collected rows too', () => {
    const config = { operation: 'stream', task_count: 1, max_retries: 3 } as unknown as JobConfig;
    apply({ type: 'submitJob', at: 1000, job_id: 's', name: 's', job_type: 'streaming', config });
    const rows = Array.from({ length: PURGE_SLICE_ROWS + 5 }, (_, i) => ({ key: `k${i}`, value: i }));
    apply({ type: 'collectRows', at: 2000, job_id: 's', rows });
    const { commands } = deleteFully('s');
    expect(commands).toBe(Math.ceil((PURGE_SLICE_ROWS + 5) / PURGE_SLICE_ROWS));
    expect(count(`SELECT count(*) AS n FROM stream_rows`)).toBe(0);
  });

  it('removes a keyed job’s indexed result rows too, in slices', () => {
    register('w');
    submit('keyed', { operation: 'noop' });
    runToCompletion('keyed', 1);
    const seq = q.job('keyed')!.seq;
    const insert = sm.db.prepare(`INSERT INTO result_rows (seq, sort_key, row) VALUES (?, ?, ?)`);
    sm.db.transaction(() => {
      for (let i = 0; i < PURGE_SLICE_ROWS + 10; i++) insert.run(seq, Buffer.from(`k${i}`), `{"key":"k${i}"}`);
    })();
    const { commands } = deleteFully('keyed');
    expect(commands).toBe(2);
    expect(count(`SELECT count(*) AS n FROM result_rows`)).toBe(0);
  });

  it('names the upload of the last job reading it, so every master removes its copy', () => {
    const up = `up_${'a'.repeat(32)}`;
    const input = { url: `http://127.0.0.1:9/uploads/${up}`, format: 'lines' };
    submit('a', { operation: 'wordcount', input, task_count: 1 });
    submit('b', { operation: 'wordcount', input, task_count: 1 });
    submit('c', { operation: 'noop' });
    expect(apply({ type: 'deleteJob', at: 5000, job_id: 'a' })).not.toHaveProperty('upload_id');
    expect(life.uploadDeleted(up)).toBe(false);
    expect(apply({ type: 'deleteJob', at: 5000, job_id: 'c' })).not.toHaveProperty('upload_id');
    expect(apply({ type: 'deleteJob', at: 5000, job_id: 'b' })).toMatchObject({ ok: true, upload_id: up });
    expect(life.uploadDeleted(up)).toBe(true);
  });

  it('refuses, in the log, a job reading an upload that a delete applied just before it took away', () => {
    // The route looked before proposing; the delete came first in the log all the same.
    const up = `up_${'b'.repeat(32)}`;
    const input = { url: `http://127.0.0.1:9/uploads/${up}`, format: 'lines' };
    submit('last-reader', { operation: 'wordcount', input, task_count: 1 });
    expect(apply({ type: 'deleteJob', at: 5000, job_id: 'last-reader' })).toMatchObject({ ok: true, upload_id: up });
    const jobs = count(`SELECT count(*) AS n FROM jobs`);
    expect(submit('late', { operation: 'wordcount', input, task_count: 1 })).toEqual({
      ok: false,
      code: 'not_found',
      message: `upload ${up} was deleted (no job read it any more); upload the file again (weir submit --input FILE)`,
    });
    expect(q.job('late')).toBeUndefined();
    expect(count(`SELECT count(*) AS n FROM jobs`)).toBe(jobs);
    // A job reading another upload, or none, is taken as before.
    expect(submit('other', { operation: 'noop' })).toMatchObject({ ok: true, job_id: 'other' });
  });

  it('forgets an upload no job reads: a submit naming it is refused from then on', () => {
    const up = `up_${'c'.repeat(44)}`;
    const input = { url: `http://127.0.0.1:9/uploads/${up}`, format: 'lines' };
    expect(apply({ type: 'forgetUpload', at: 5000, upload_id: up })).toEqual({ ok: true });
    expect(life.uploadDeleted(up)).toBe(true);
    // Asked again (a sweep's second ask, or the uploader's), the answer is the same.
    expect(apply({ type: 'forgetUpload', at: 5001, upload_id: up })).toEqual({ ok: true });
    expect(submit('late', { operation: 'wordcount', input, task_count: 1 })).toMatchObject({
      ok: false,
      code: 'not_found',
      message: expect.stringContaining(`upload ${up} was deleted`),
    });
  });

  it('refuses to forget an upload a job reads, whichever came first in the log', () => {
    const up = `up_${'d'.repeat(44)}`;
    const input = { url: `http://127.0.0.1:9/uploads/${up}`, format: 'lines' };
    submit('reader', { operation: 'wordcount', input, task_count: 1 });
    expect(apply({ type: 'forgetUpload', at: 5000, upload_id: up })).toEqual({
      ok: false,
      code: 'conflict',
      message: `job reader reads upload ${up}: delete the jobs that read it, and it goes with the last one`,
    });
    expect(life.uploadDeleted(up)).toBe(false);
    // Its last reader deleted, it goes with it.
    expect(apply({ type: 'deleteJob', at: 5000, job_id: 'reader' })).toMatchObject({ upload_id: up });
  });

  it('refuses to forget what is no upload id, changing nothing', () => {
    for (const bad of ['up_', '../state.db', 7, null]) {
      expect(apply({ type: 'forgetUpload', at: 5000, upload_id: bad as string })).toMatchObject({ ok: false });
    }
    // Nor a command with no time (an upload deleted, unrecorded, would be taken again).
    for (const at of [undefined, null, 1.5, '5000']) {
      const cmd = { type: 'forgetUpload', at, upload_id: `up_${'e'.repeat(44)}` } as unknown as Command;
      expect(apply(cmd)).toMatchObject({ ok: false });
    }
    expect(count(`SELECT count(*) AS n FROM deleted_uploads`)).toBe(0);
  });

  it('deletes a big job in slices of at most PURGE_SLICE_ROWS rows, invisible from the first', () => {
    register('w');
    const n = 100_000;
    submit('big', { operation: 'noop', task_count: n });
    runToCompletion('big', n);
    submit('other', { operation: 'noop', task_count: 2 });
    expect(taskRows()).toBe(n);
    const t = performance.now();
    const first = apply({ type: 'deleteJob', at: 5000, job_id: 'big' });
    const firstMs = performance.now() - t;
    expect(first).toMatchObject({ ok: true, more: true });
    expect(q.job('big')).toBeUndefined();
    expect(taskRows()).toBe(n - PURGE_SLICE_ROWS);
    const seq = (first as { seq: number }).seq;
    // A slice proposed twice (an old leader and a new one) is harmless.
    const slices: number[] = [firstMs];
    let removed = PURGE_SLICE_ROWS;
    for (let more = true; more;) {
      const s = performance.now();
      const p = apply({ type: 'purgeJob', at: 5000, seq }) as { more: boolean; removed: number };
      slices.push(performance.now() - s);
      expect(p.removed).toBeLessThanOrEqual(PURGE_SLICE_ROWS);
      removed += p.removed;
      more = p.more;
    }
    expect(removed).toBe(n);
    expect(taskRows()).toBe(0);
    expect(apply({ type: 'purgeJob', at: 5000, seq })).toEqual({ ok: true, more: false, removed: 0 });
    expect(q.job('other')?.total).toBe(2);
    // Measured, not asserted: each apply of a 100,000-task job's delete.
    console.log(
      `delete of a ${n}-task job: ${slices.length} applies of ≤ ${PURGE_SLICE_ROWS} rows, ms each: ${slices.map((x) => x.toFixed(1)).join(' ')}`,
    );
  });

  it('deletes a running job of 100,000 tasks in a first apply that does not read them all', () => {
    register('w');
    const data = Array.from({ length: 100_000 }, (_, i) => `line ${i}`);
    submit('staged', { operation: 'wordcount', data, task_count: 100_000, reduce_tasks: 1 });
    apply({ type: 'assignTasks', at: 2000, assignments: [{ job_id: 'staged', idx: 7, attempt: 1, worker_id: 'w' }] });
    const t = performance.now();
    const r = apply({ type: 'deleteJob', at: 5000, job_id: 'staged' });
    const ms = performance.now() - t;
    expect(r).toMatchObject({
      ok: true,
      more: true,
      to_stop: [{ job_id: 'staged', idx: 7, attempt: 1, worker_id: 'w' }],
    });
    expect(q.runningByWorker().get('w') ?? 0).toBe(0);
    console.log(`first apply of the delete of a running 100,001-task job: ${ms.toFixed(1)} ms`);
  });

  it('keeps the job’s own retention from config.retention', () => {
    const { retention_ms, rest } = retentionOf({ operation: 'noop', retention: '2s' });
    expect(retention_ms).toBe(2000);
    expect(rest).toEqual({ operation: 'noop' });
    expect(retentionOf({ retention: '0' }).retention_ms).toBe(0);
    expect(retentionOf({ task_count: 1 })).toEqual({ rest: { task_count: 1 } });
    expect(() => retentionOf({ retention: 5 })).toThrow(/duration/);
    expect(() => retentionOf({ retention: 'soon' })).toThrow(/config.retention/);
  });
});

describe('retention', () => {
  it('finds jobs finished longer ago than their retention, the cluster’s or their own', () => {
    register('w');
    submit('default', { operation: 'noop' });
    submit('short', { operation: 'noop' }, { retention_ms: 100 });
    submit('kept', { operation: 'noop' }, { retention_ms: 0 });
    submit('running', { operation: 'noop', task_count: 2 }, { retention_ms: 100 });
    for (const id of ['default', 'short', 'kept']) runToCompletion(id, 1);
    apply({ type: 'assignTasks', at: 2000, assignments: [{ job_id: 'running', idx: 0, attempt: 1, worker_id: 'w' }] });
    // Finished at 3000 (the completions' time).
    expect(life.expiredJobs(3050, 1000, 10)).toEqual([]);
    expect(life.expiredJobs(3200, 1000, 10)).toEqual(['short']);
    expect(life.expiredJobs(4500, 1000, 10).sort()).toEqual(['default', 'short']);
    expect(life.expiredJobs(4500, 0, 10)).toEqual(['short']);
    expect(life.expiredJobs(10_000_000, 1000, 10)).not.toContain('kept');
  });

  it('answers from indexes, whatever the number of jobs', () => {
    const plan = (sql: string) =>
      (sm.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(1, 1) as { detail: string }[]).map((r) => r.detail).join('; ');
    expect(
      plan(`SELECT job_id FROM jobs WHERE finished_at < ? AND retention_ms IS NULL ORDER BY finished_at LIMIT ?`),
    ).toMatch(/USING INDEX jobs_expiring/);
    expect(
      plan(
        `SELECT job_id FROM jobs WHERE retention_ms > 0 AND finished_at + retention_ms < ? ORDER BY finished_at + retention_ms LIMIT ?`,
      ),
    ).toMatch(/USING INDEX jobs_expiring_own/);
  });

  it('forgets a dead worker only if it died before the time the command names', () => {
    register('live');
    register('dead');
    apply({ type: 'markWorkerDead', at: 2000, worker_id: 'dead', reason: 'test' });
    expect(life.deadWorkers(2500, 10).map((w) => w.worker_id)).toEqual(['dead']);
    expect(apply({ type: 'forgetWorker', at: 2500, worker_id: 'dead', dead_before: 1999 })).toEqual({
      ok: true,
      forgotten: false,
    });
    expect(apply({ type: 'forgetWorker', at: 2500, worker_id: 'live', dead_before: 2500 })).toEqual({
      ok: true,
      forgotten: false,
    });
    expect(apply({ type: 'forgetWorker', at: 2500, worker_id: 'dead', dead_before: 2000 })).toEqual({
      ok: true,
      forgotten: true,
    });
    expect(q.workers().map((w) => w.worker_id)).toEqual(['live']);
  });

  it('sweeps at least every 10 s, more often for a short retention', () => {
    expect(sweepIntervalMs(7 * 86_400_000)).toBe(10_000);
    expect(sweepIntervalMs(0)).toBe(10_000);
    expect(sweepIntervalMs(2000)).toBe(500);
    expect(sweepIntervalMs(100)).toBe(250);
  });
});

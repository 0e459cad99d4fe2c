import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import type { JobPlan } from '../../src/ops/stages.js';
import { Applier } from '../../src/state/apply.js';
import type { TaskError } from '../../src/protocol/task-ref.js';
import type { ApplyResult, Command } from '../../src/state/commands.js';
import { Queries } from '../../src/state/queries.js';
import { migrate } from '../../src/state/schema.js';

/** A fresh state database in memory, and `apply` as the state machine runs it: one transaction per command. */
function fresh() {
  const db = new Database(':memory:');
  migrate(db);
  const applier = new Applier(db);
  const apply = (command: Command): ApplyResult => db.transaction(() => applier.apply(command))();
  return { db, apply };
}

let db: Db;
let apply: (command: Command) => ApplyResult;
let clock: number;

beforeEach(() => {
  ({ db, apply } = fresh());
  clock = 1000;
});

const at = () => (clock += 10);
const register = (worker_id: string) =>
  apply({ type: 'registerWorker', at: at(), worker_id, address: `${worker_id}:7000`, max_tasks: 8 });
const submit = (job_id: string, config: unknown) =>
  apply({ type: 'submitJob', at: at(), job_id, name: job_id, job_type: 'batch', config: normalizeBatchConfig(config) });
const assign = (job_id: string, idx: number, worker_id: string, attempt = 1) =>
  apply({ type: 'assignTasks', at: at(), assignments: [{ job_id, idx, attempt, worker_id }] });
const complete = (job_id: string, idx: number, worker_id: string, attempt = 1, result: unknown[] = [{ idx }]) =>
  apply({
    type: 'completeTasks',
    at: at(),
    completions: [{ job_id, idx, attempt, worker_id, result_json: JSON.stringify(result) }],
  });
/** Assigns and completes a task in one go. */
const run = (job_id: string, idx: number, worker_id: string, attempt = 1, result?: unknown[]) => {
  expect(assign(job_id, idx, worker_id, attempt)).toMatchObject({ assigned: [{ idx }] });
  return complete(job_id, idx, worker_id, attempt, result);
};
const fail = (job_id: string, idx: number, worker_id: string, attempt: number, error: TaskError) =>
  apply({ type: 'failTasks', at: at(), failures: [{ job_id, idx, attempt, worker_id, error }] });
const dead = (worker_id: string) => apply({ type: 'markWorkerDead', at: at(), worker_id, reason: 'lost' });
const cancel = (job_id: string) => apply({ type: 'cancelJob', at: at(), job_id });

/** A job's tasks as the API lists them (tasks never assigned have no row of their own). */
const tasks = (job_id: string) => new Queries({ db, generation: 0 }).tasksOfJob(job_id, 1000);
const task = (job_id: string, idx: number) => tasks(job_id).find((t) => t.idx === idx)!;
const statuses = (job_id: string) => tasks(job_id).map((t) => t.status);
const job = (job_id: string) =>
  db.prepare(`SELECT * FROM jobs WHERE job_id = ?`).get(job_id) as {
    status: string;
    stage: number;
    plan: string | null;
    total: number;
    pending: number;
    running: number;
    completed: number;
    failed: number;
  };
const plan = (job_id: string) => JSON.parse(job(job_id).plan!) as JobPlan;

/** The job's counters agree with its tasks ('waiting' tasks count as pending until the job ends). */
function expectCountersMatchTasks(job_id: string) {
  const j = job(job_id) as ReturnType<typeof job> | undefined;
  if (!j) return; // not submitted yet
  const count = (...s: string[]) => tasks(job_id).filter((t) => s.includes(t.status)).length;
  const open = j.status === 'pending' || j.status === 'running';
  expect({ pending: j.pending, running: j.running, completed: j.completed, failed: j.failed }).toEqual({
    pending: open ? count('pending', 'waiting') : 0,
    running: open ? count('running') : 0,
    completed: count('completed'),
    failed: count('failed'),
  });
}

/** wordcount over 3 splits into 2 reduce partitions: tasks 0-2 map, 3-4 reduce. */
const wordcount = (extra: Record<string, unknown> = {}) => ({
  operation: 'wordcount',
  data: ['a b', 'b c', 'c d a'],
  task_count: 3,
  reduce_tasks: 2,
  ...extra,
});

/** Runs the three map tasks of a wordcount job, on the given workers. */
const runMaps = (job_id: string, workers: [string, string, string]) =>
  workers.forEach((w, idx) => run(job_id, idx, w, 1, [{ records: 2, bytes: 10 }]));

const fetchFailed = (idx: number, attempt: number): TaskError => ({
  name: 'FetchFailedError',
  message: `fetch failed: map task ${idx} attempt ${attempt}: w1:7000 answered 404`,
  fetch_failed: { idx, attempt },
});

describe('a staged job at submission', () => {
  it('makes its map tasks pending and its reduce tasks waiting', () => {
    submit('j', wordcount());
    expect(statuses('j')).toEqual(['pending', 'pending', 'pending', 'waiting', 'waiting']);
    expect(plan('j')).toEqual({
      stages: [
        { name: 'map', first: 0, count: 3 },
        { name: 'reduce', first: 3, count: 2 },
      ],
    });
    expect(job('j')).toMatchObject({ status: 'pending', stage: 0, total: 5, pending: 5, running: 0, completed: 0 });
    expect(tasks('j').every((t) => t.attempt === 1 && t.failures === 0)).toBe(true);
  });

  it('keeps a job without a reduce step single-stage: every task pending, no plan', () => {
    submit('j', { module: 'export function map(r, emit) { emit(r, 1) }', data: [1, 2, 3], task_count: 3 });
    expect(statuses('j')).toEqual(['pending', 'pending', 'pending']);
    expect(job('j').plan).toBeNull();
  });

  it('makes only the sample tasks of a sort job runnable', () => {
    submit('s', { operation: 'sort', data: ['d', 'b', 'a', 'c'], task_count: 2, reduce_tasks: 2 });
    expect(plan('s').stages.map((st) => st.name)).toEqual(['sample', 'map', 'reduce']);
    expect(statuses('s')).toEqual(['pending', 'pending', 'waiting', 'waiting', 'waiting', 'waiting']);
  });

  it('will not assign a waiting task', () => {
    register('w');
    submit('j', wordcount());
    expect(assign('j', 3, 'w')).toMatchObject({ assigned: [] });
    expect(task('j', 3).status).toBe('waiting');
  });
});

describe('moving from stage to stage', () => {
  beforeEach(() => {
    register('w1');
    register('w2');
  });

  it('makes the reduce tasks pending only when every map task completed', () => {
    submit('j', wordcount());
    run('j', 0, 'w1');
    run('j', 2, 'w2');
    expect(statuses('j')).toEqual(['completed', 'pending', 'completed', 'waiting', 'waiting']);
    expect(job('j').stage).toBe(0);
    run('j', 1, 'w1');
    expect(statuses('j')).toEqual(['completed', 'completed', 'completed', 'pending', 'pending']);
    expect(job('j')).toMatchObject({ status: 'running', stage: 1 });
    expectCountersMatchTasks('j');
  });

  it('completes the job with its last reduce task, and names it in finished_jobs', () => {
    submit('j', wordcount());
    runMaps('j', ['w1', 'w2', 'w1']);
    expect(run('j', 3, 'w1', 1, [{ key: 'a', value: 2 }])).toMatchObject({ finished_jobs: [] });
    expect(job('j').status).toBe('running');
    expect(run('j', 4, 'w2', 1, [{ key: 'b', value: 2 }])).toMatchObject({ ok: true, finished_jobs: ['j'] });
    expect(job('j')).toMatchObject({ status: 'completed', completed: 5, total: 5, pending: 0, running: 0 });
    expectCountersMatchTasks('j');
  });

  it("sets a sort job's range boundaries from its sample tasks' results, then runs its map tasks", () => {
    submit('s', { operation: 'sort', data: ['d', 'b', 'a', 'c'], task_count: 2, reduce_tasks: 2 });
    run('s', 0, 'w1', 1, ['d', 'b']);
    expect(plan('s').boundaries).toBeUndefined();
    expect(task('s', 2).status).toBe('waiting');
    run('s', 1, 'w2', 1, ['a', 'c']);
    // 2 reduce partitions: one split point, the median of the sorted sample [a, b, c, d].
    expect(plan('s').boundaries).toEqual(['c']);
    expect(statuses('s')).toEqual(['completed', 'completed', 'pending', 'pending', 'waiting', 'waiting']);
    expect(job('s').stage).toBe(1);
    run('s', 2, 'w1');
    run('s', 3, 'w2');
    expect(statuses('s').slice(4)).toEqual(['pending', 'pending']);
    expect(job('s').stage).toBe(2);
    expect(plan('s').boundaries).toEqual(['c']);
    expectCountersMatchTasks('s');
  });
});

describe('a dead worker takes its map outputs with it (lineage)', () => {
  beforeEach(() => {
    register('w1');
    register('w2');
  });

  it('re-runs its completed map tasks and sends the unfinished reduce tasks back to waiting', () => {
    submit('j', wordcount());
    runMaps('j', ['w1', 'w1', 'w2']);
    assign('j', 3, 'w2'); // reduce 3 running on the survivor; reduce 4 still pending
    const r = dead('w1');
    expect(r).toMatchObject({ ok: true, requeued: 0, to_stop: [{ job_id: 'j', idx: 3, attempt: 1, worker_id: 'w2' }] });
    expect(tasks('j')).toMatchObject([
      { idx: 0, status: 'pending', attempt: 2, failures: 0 },
      { idx: 1, status: 'pending', attempt: 2, failures: 0 },
      { idx: 2, status: 'completed', attempt: 1, worker_id: 'w2' },
      { idx: 3, status: 'waiting', attempt: 2, failures: 0 },
      { idx: 4, status: 'waiting', attempt: 2, failures: 0 },
    ]);
    expect(job('j')).toMatchObject({ status: 'running', stage: 0 });
    expectCountersMatchTasks('j');
    // The stopped reduce attempt's late report is stale.
    expect(complete('j', 3, 'w2', 1)).toMatchObject({ accepted: [] });

    // The lost map tasks run again elsewhere; then the reduce stage runs again, at the new attempts.
    run('j', 0, 'w2', 2);
    expect(task('j', 3).status).toBe('waiting');
    run('j', 1, 'w2', 2);
    expect(statuses('j').slice(3)).toEqual(['pending', 'pending']);
    expect(job('j').stage).toBe(1);
    run('j', 3, 'w2', 2);
    expect(run('j', 4, 'w2', 2)).toMatchObject({ finished_jobs: ['j'] });
    expect(job('j').status).toBe('completed');
    expectCountersMatchTasks('j');
  });

  it('counts a re-run map task’s results once against the results cap, not once per run', () => {
    submit('j', wordcount());
    runMaps('j', ['w1', 'w1', 'w2']);
    const bytesOf = () =>
      (db.prepare(`SELECT result_bytes FROM jobs WHERE job_id = 'j'`).get() as { result_bytes: number }).result_bytes;
    const one = Buffer.byteLength(JSON.stringify([{ records: 2, bytes: 10 }]));
    expect(bytesOf()).toBe(3 * one);
    dead('w1'); // maps 0 and 1 lost: their results are no longer stored
    expect(bytesOf()).toBe(one);
    run('j', 0, 'w2', 2, [{ records: 2, bytes: 10 }]);
    run('j', 1, 'w2', 2, [{ records: 2, bytes: 10 }]);
    expect(bytesOf()).toBe(3 * one);
  });

  it('hands back a reduce task the dead worker was running, as waiting once its map outputs are lost', () => {
    submit('j', wordcount());
    runMaps('j', ['w1', 'w2', 'w2']);
    assign('j', 3, 'w1');
    const r = dead('w1');
    expect(r).toMatchObject({ requeued: 1, to_stop: [] });
    expect(task('j', 0)).toMatchObject({ status: 'pending', attempt: 2 });
    expect(task('j', 3).status).toBe('waiting');
    expect(task('j', 3).attempt).toBeGreaterThan(1);
    expect(task('j', 3).failures).toBe(0);
    expectCountersMatchTasks('j');
  });

  it('keeps completed reduce tasks: their results are in the state database', () => {
    submit('j', wordcount());
    runMaps('j', ['w1', 'w2', 'w2']);
    run('j', 3, 'w2', 1, [{ key: 'a', value: 2 }]);
    dead('w1');
    expect(statuses('j')).toEqual(['pending', 'completed', 'completed', 'completed', 'waiting']);
    expectCountersMatchTasks('j');
  });

  it('changes nothing once every reduce task completed', () => {
    submit('j', wordcount());
    runMaps('j', ['w1', 'w1', 'w1']);
    run('j', 3, 'w2');
    run('j', 4, 'w2');
    const before = tasks('j');
    expect(dead('w1')).toMatchObject({ ok: true, requeued: 0, to_stop: [] });
    expect(tasks('j')).toEqual(before);
    expect(job('j')).toMatchObject({ status: 'completed', stage: 1 });
  });

  it('changes nothing for a worker that completed no map task of the job', () => {
    submit('j', wordcount());
    runMaps('j', ['w2', 'w2', 'w2']);
    assign('j', 3, 'w2');
    const before = tasks('j');
    expect(dead('w1')).toMatchObject({ requeued: 0, to_stop: [] });
    expect(tasks('j')).toEqual(before);
    expect(job('j').stage).toBe(1);
  });

  it("does not re-run a sort job's sample tasks: their keys are in the state database", () => {
    submit('s', { operation: 'sort', data: ['d', 'b', 'a', 'c'], task_count: 2, reduce_tasks: 2 });
    run('s', 0, 'w1', 1, ['d', 'b']);
    run('s', 1, 'w1', 1, ['a', 'c']);
    run('s', 2, 'w1');
    run('s', 3, 'w2');
    expect(job('s').stage).toBe(2);
    dead('w1');
    expect(statuses('s')).toEqual(['completed', 'completed', 'pending', 'completed', 'waiting', 'waiting']);
    expect(job('s').stage).toBe(1); // back to the map stage, not the sample stage
    expect(plan('s').boundaries).toEqual(['c']);
    run('s', 2, 'w2', 2);
    expect(statuses('s').slice(4)).toEqual(['pending', 'pending']);
    expectCountersMatchTasks('s');
  });
});

describe('a reduce task that cannot fetch a map output', () => {
  beforeEach(() => {
    register('w1');
    register('w2');
  });

  it('invalidates that map output without using up the reduce task’s retries', () => {
    submit('j', wordcount({ max_retries: 0 })); // any ordinary failure would fail the job
    runMaps('j', ['w1', 'w1', 'w2']);
    assign('j', 3, 'w2');
    assign('j', 4, 'w2');
    const r = fail('j', 3, 'w2', 1, fetchFailed(1, 1));
    expect(r).toMatchObject({ ok: true, failed_jobs: [], retried: [{ job_id: 'j', idx: 3, attempt: 1 }] });
    expect(r.ok && 'to_stop' in r && r.to_stop).toContainEqual({ job_id: 'j', idx: 4, attempt: 1, worker_id: 'w2' });
    expect(tasks('j')).toMatchObject([
      { idx: 0, status: 'completed', attempt: 1 },
      { idx: 1, status: 'pending', attempt: 2, failures: 0 },
      { idx: 2, status: 'completed', attempt: 1 },
      { idx: 3, status: 'waiting', attempt: 2, failures: 0 },
      { idx: 4, status: 'waiting', attempt: 2, failures: 0 },
    ]);
    expect(job('j')).toMatchObject({ status: 'running', stage: 0 });
    expectCountersMatchTasks('j');

    run('j', 1, 'w2', 2);
    expect(statuses('j').slice(3)).toEqual(['pending', 'pending']);
    run('j', 3, 'w2', 2);
    expect(run('j', 4, 'w2', 2)).toMatchObject({ finished_jobs: ['j'] });
  });

  it('just re-queues the reduce task when the output it names was already replaced', () => {
    submit('j', wordcount());
    run('j', 0, 'w1');
    assign('j', 1, 'w1');
    fail('j', 1, 'w1', 1, { message: 'boom' }); // map 1 runs again, as attempt 2
    run('j', 1, 'w2', 2);
    run('j', 2, 'w1');
    assign('j', 3, 'w2');
    assign('j', 4, 'w1');
    const r = fail('j', 3, 'w2', 1, fetchFailed(1, 1)); // a location from before the retry
    expect(r).toMatchObject({ ok: true, failed_jobs: [], retried: [{ idx: 3 }] });
    expect(task('j', 1)).toMatchObject({ status: 'completed', attempt: 2 });
    expect(task('j', 3)).toMatchObject({ status: 'pending', attempt: 2, failures: 0 });
    expect(task('j', 4)).toMatchObject({ status: 'running', attempt: 1 });
    expect(job('j').stage).toBe(1);
    expectCountersMatchTasks('j');
  });

  it('counts an ordinary reduce failure against its retries, as for any task', () => {
    submit('j', wordcount({ max_retries: 0 }));
    runMaps('j', ['w1', 'w1', 'w2']);
    assign('j', 3, 'w2');
    expect(fail('j', 3, 'w2', 1, { message: 'reduce threw' })).toMatchObject({ failed_jobs: ['j'] });
    expect(statuses('j')).toEqual(['completed', 'completed', 'completed', 'failed', 'cancelled']);
  });

  it('treats a fetch failure naming a task outside the map stage as an ordinary failure, never throwing', () => {
    submit('j', wordcount());
    runMaps('j', ['w1', 'w1', 'w1']);
    run('j', 3, 'w2');
    assign('j', 4, 'w2');
    expect(() => fail('j', 4, 'w2', 1, fetchFailed(3, 1))).not.toThrow();
  });

  it('never leaves a map task running after it reported a failure', () => {
    submit('j', wordcount());
    run('j', 0, 'w1');
    assign('j', 1, 'w1');
    fail('j', 1, 'w1', 1, fetchFailed(0, 1));
    expect(task('j', 1).status).not.toBe('running');
  });
});

describe('ending a staged job', () => {
  beforeEach(() => register('w'));

  it('cancelJob cancels waiting tasks too', () => {
    submit('j', wordcount());
    assign('j', 0, 'w');
    const r = cancel('j');
    expect(r).toMatchObject({ ok: true, to_stop: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w' }] });
    expect(statuses('j')).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(job('j')).toMatchObject({ status: 'cancelled', pending: 0, running: 0 });
  });

  it('a map task out of retries fails the job and cancels the waiting reduce tasks', () => {
    submit('j', wordcount({ max_retries: 0 }));
    assign('j', 0, 'w');
    expect(fail('j', 0, 'w', 1, { message: 'bad record' })).toMatchObject({ failed_jobs: ['j'] });
    expect(statuses('j')).toEqual(['failed', 'cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(job('j')).toMatchObject({ status: 'failed', failed: 1, pending: 0 });
  });
});

describe('determinism', () => {
  const script: Command[] = [
    { type: 'registerWorker', at: 1, worker_id: 'w1', address: 'w1:1', max_tasks: 4 },
    { type: 'registerWorker', at: 2, worker_id: 'w2', address: 'w2:1', max_tasks: 4 },
    {
      type: 'submitJob',
      at: 3,
      job_id: 'wc',
      name: 'wc',
      job_type: 'batch',
      config: normalizeBatchConfig(wordcount()),
    },
    {
      type: 'submitJob',
      at: 4,
      job_id: 'sort',
      name: 'sort',
      job_type: 'batch',
      config: normalizeBatchConfig({ operation: 'sort', data: [5, 3, 9, 1], task_count: 2, reduce_tasks: 2 }),
    },
    {
      type: 'assignTasks',
      at: 5,
      assignments: [
        { job_id: 'wc', idx: 0, attempt: 1, worker_id: 'w1' },
        { job_id: 'wc', idx: 1, attempt: 1, worker_id: 'w2' },
        { job_id: 'wc', idx: 2, attempt: 1, worker_id: 'w1' },
        { job_id: 'sort', idx: 0, attempt: 1, worker_id: 'w2' },
        { job_id: 'sort', idx: 1, attempt: 1, worker_id: 'w1' },
      ],
    },
    {
      type: 'completeTasks',
      at: 6,
      completions: [
        { job_id: 'wc', idx: 0, attempt: 1, worker_id: 'w1', result_json: JSON.stringify([{ records: 2, bytes: 9 }]) },
        { job_id: 'wc', idx: 1, attempt: 1, worker_id: 'w2', result_json: JSON.stringify([{ records: 2, bytes: 9 }]) },
        { job_id: 'wc', idx: 2, attempt: 1, worker_id: 'w1', result_json: JSON.stringify([{ records: 3, bytes: 12 }]) },
        { job_id: 'sort', idx: 0, attempt: 1, worker_id: 'w2', result_json: JSON.stringify([5, 3]) },
        { job_id: 'sort', idx: 1, attempt: 1, worker_id: 'w1', result_json: JSON.stringify([9, 1]) },
      ],
    },
    {
      type: 'assignTasks',
      at: 7,
      assignments: [
        { job_id: 'wc', idx: 3, attempt: 1, worker_id: 'w2' },
        { job_id: 'wc', idx: 4, attempt: 1, worker_id: 'w1' },
        { job_id: 'sort', idx: 2, attempt: 1, worker_id: 'w1' },
        { job_id: 'sort', idx: 3, attempt: 1, worker_id: 'w2' },
      ],
    },
    {
      type: 'failTasks',
      at: 8,
      failures: [
        {
          job_id: 'wc',
          idx: 3,
          attempt: 1,
          worker_id: 'w2',
          error: { message: 'fetch failed: map task 0 attempt 1: x', fetch_failed: { idx: 0, attempt: 1 } },
        },
      ],
    },
    {
      type: 'completeTasks',
      at: 9,
      completions: [
        {
          job_id: 'sort',
          idx: 2,
          attempt: 1,
          worker_id: 'w1',
          result_json: JSON.stringify([{ records: 2, bytes: 5 }]),
        },
      ],
    },
    { type: 'markWorkerDead', at: 10, worker_id: 'w1', reason: 'timeout' },
    { type: 'assignTasks', at: 11, assignments: [{ job_id: 'wc', idx: 0, attempt: 2, worker_id: 'w2' }] },
    { type: 'cancelJob', at: 12, job_id: 'sort' },
  ];

  it('gives identical tasks and jobs tables when the same commands are applied to two fresh databases', () => {
    const dump = () => {
      const a = fresh();
      const results = script.map((c) => a.apply(c));
      return {
        results,
        jobs: a.db.prepare(`SELECT * FROM jobs ORDER BY job_id`).all(),
        tasks: a.db
          .prepare(`SELECT j.job_id, t.* FROM tasks t JOIN jobs j ON j.seq = t.seq ORDER BY t.seq, t.idx`)
          .all(),
        meta: a.db.prepare(`SELECT * FROM meta ORDER BY key`).all(),
      };
    };
    const first = dump();
    const second = dump();
    expect(second).toEqual(first);
    // The script reached the interesting states, so the comparison means something.
    expect(first.tasks).toContainEqual(
      expect.objectContaining({ job_id: 'wc', idx: 0, status: 'running', attempt: 2 }),
    );
    expect(first.tasks).toContainEqual(expect.objectContaining({ job_id: 'sort', idx: 5, status: 'cancelled' }));
    expect(first.jobs).toContainEqual(expect.objectContaining({ job_id: 'sort', status: 'cancelled' }));
  });

  it('keeps the counters of every job equal to its tasks after every command', () => {
    ({ db, apply } = fresh());
    for (const c of script) {
      apply(c);
      expectCountersMatchTasks('wc');
      expectCountersMatchTasks('sort');
    }
  });
});

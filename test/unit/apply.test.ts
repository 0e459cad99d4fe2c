import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyResult, Command, JobConfig } from '../../src/state/commands.js';
import { Queries } from '../../src/state/queries.js';
import { migrate } from '../../src/state/schema.js';
import { StateMachine } from '../../src/state/state-machine.js';
import { LOSSES_NEED_A_START_FROM, MAX_WORKER_LOSSES } from '../../src/state/rules.js';
import { registerWorkerCommand, stateEachTest, submitJobCommand } from '../helpers/state.js';

const state = stateEachTest('weir-apply-');
let dir: string;
let sm: StateMachine;
let q: Queries;
let index: number;
beforeEach(() => {
  ({ dir, sm, q } = state);
  index = 0;
});
// A test may reopen the state (sm = new StateMachine(…)): that one is closed too.
afterEach(() => sm.close());

const apply = (command: Command) => sm.applyBatch([{ index: ++index, term: 1, kind: 'cmd', data: command }])[0]!;
const submit = (job_id: string, config: unknown, extra: Partial<Command> = {}) =>
  apply(submitJobCommand(job_id, config, extra));
const register = (worker_id: string, max_tasks = 10) => apply(registerWorkerCommand(worker_id, max_tasks));
const assign = (job_id: string, idx: number, worker_id: string, attempt = 1) =>
  apply({ type: 'assignTasks', at: 2000, assignments: [{ job_id, idx, attempt, worker_id }] });
const complete = (job_id: string, idx: number, worker_id: string, attempt = 1, result: unknown[] = [idx]) =>
  apply({
    type: 'completeTasks',
    at: 3000,
    completions: [{ job_id, idx, attempt, worker_id, result_json: JSON.stringify(result) }],
  });
const fail = (job_id: string, idx: number, worker_id: string, attempt = 1) =>
  apply({
    type: 'failTasks',
    at: 3000,
    failures: [{ job_id, idx, attempt, worker_id, error: { message: `boom ${attempt}` } }],
  });
const task = (job_id: string, idx: number) => q.tasksOfJob(job_id, 1000).find((t) => t.idx === idx)!;

describe('apply: jobs', () => {
  it('submitJob creates the job and one pending task per partition', () => {
    submit('j1', { operation: 'noop', task_count: 3 });
    const job = q.job('j1')!;
    expect(job).toMatchObject({ status: 'pending', total: 3, pending: 3, running: 0, completed: 0 });
    expect([...q.pending(10)].map((t) => t.idx)).toEqual([0, 1, 2]);
  });

  it('submitJob with a known idempotency key returns the first job and creates nothing', () => {
    // A retry: the same submit (name, type, config) under the same key.
    submit('j1', undefined, { idempotency_key: 'k', name: 'n' });
    const again = submit('j2', undefined, { idempotency_key: 'k', name: 'n' });
    expect(again).toMatchObject({ ok: true, job_id: 'j1', duplicate: true });
    expect(q.job('j2')).toBeUndefined();
  });

  it('submitJob with a known idempotency key and another job under it is a conflict, and creates nothing', () => {
    submit('j1', { operation: 'noop', task_count: 3 }, { idempotency_key: 'k', name: 'n' });
    const other = submit('j2', { operation: 'noop', task_count: 4 }, { idempotency_key: 'k', name: 'n' });
    expect(other).toEqual({
      ok: false,
      code: 'conflict',
      message: 'the Idempotency-Key was used for another submit (job j1); a new job needs a new key',
    });
    expect(q.job('j2')).toBeUndefined();
  });

  it('submitJob runs the first tasks its entry places, as an AssignTasks entry would', () => {
    register('w');
    const r = submit('j', { operation: 'noop', task_count: 3 }, { assignments: [{ idx: 0, worker_id: 'w' }] });
    expect(r).toMatchObject({ ok: true, job_id: 'j', assigned: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w' }] });
    expect(q.job('j')).toMatchObject({ status: 'running', pending: 2, running: 1 });
    expect(task('j', 0)).toMatchObject({ status: 'running', worker_id: 'w', attempt: 1 });
    expect([...q.pending(10)].map((t) => t.idx)).toEqual([1, 2]);
    complete('j', 0, 'w');
    expect(q.job('j')).toMatchObject({ completed: 1, running: 0 });
  });

  it("submitJob's placements on an unknown or dead worker, or outside the job, are dropped; the job stays", () => {
    register('w');
    apply({ type: 'markWorkerDead', at: 1500, worker_id: 'w', reason: 'test' });
    const r = submit(
      'j',
      { operation: 'noop', task_count: 2 },
      {
        assignments: [
          { idx: 0, worker_id: 'w' },
          { idx: 1, worker_id: 'ghost' },
          { idx: 2, worker_id: 'w' },
          { idx: -1, worker_id: 'w' },
          { idx: '0' as unknown as number, worker_id: 'w' },
        ],
      },
    );
    expect(r).toEqual({ ok: true, job_id: 'j', duplicate: false });
    expect(q.job('j')).toMatchObject({ status: 'pending', pending: 2, running: 0 });
    expect([...q.pending(10)].map((t) => t.idx)).toEqual([0, 1]);
  });

  it('a duplicate submit (same idempotency key) assigns nothing', () => {
    register('w');
    submit('j1', undefined, { idempotency_key: 'k', name: 'n' });
    const again = submit('j2', undefined, {
      idempotency_key: 'k',
      name: 'n',
      assignments: [{ idx: 0, worker_id: 'w' }],
    });
    expect(again).toEqual({ ok: true, job_id: 'j1', duplicate: true });
    expect(q.job('j1')).toMatchObject({ running: 0 });
  });

  it('the last completion completes the job; progress counts every step', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 2 });
    assign('j', 0, 'w');
    expect(q.job('j')).toMatchObject({ status: 'running', pending: 1, running: 1 });
    complete('j', 0, 'w');
    assign('j', 1, 'w');
    complete('j', 1, 'w');
    expect(q.job('j')).toMatchObject({ status: 'completed', pending: 0, running: 0, completed: 2 });
    expect(q.results('j', 0, 10)).toEqual([
      { idx: 0, result: [0] },
      { idx: 1, result: [1] },
    ]);
  });

  it('cancelJob cancels unfinished tasks and names those still running', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 2 });
    assign('j', 0, 'w');
    const r = apply({ type: 'cancelJob', at: 5000, job_id: 'j' });
    expect(r).toMatchObject({ ok: true, to_stop: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w' }] });
    expect(q.job('j')).toMatchObject({ status: 'cancelled', pending: 0, running: 0 });
    expect([...q.pending(10)]).toEqual([]);
  });

  it('cancelJob refuses unknown and finished jobs, changing nothing', () => {
    expect(apply({ type: 'cancelJob', at: 1, job_id: 'nope' })).toMatchObject({ ok: false, code: 'not_found' });
    register('w');
    submit('j', undefined);
    assign('j', 0, 'w');
    complete('j', 0, 'w');
    expect(apply({ type: 'cancelJob', at: 1, job_id: 'j' })).toMatchObject({ ok: false, code: 'conflict' });
    expect(q.job('j')!.status).toBe('completed');
  });
});

describe('apply: tasks', () => {
  it('records a result once: a repeated or stale report changes nothing', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 2 });
    assign('j', 0, 'w');
    complete('j', 0, 'w', 1, ['first']);
    expect(complete('j', 0, 'w', 1, ['second'])).toMatchObject({ accepted: [] });
    expect(complete('j', 1, 'w', 1)).toMatchObject({ accepted: [] }); // never assigned
    expect(q.results('j', 0, 10)).toEqual([{ idx: 0, result: ['first'] }]);
  });

  it('takes a result or a failure only from the worker the log names for that attempt', () => {
    register('w1');
    register('w2');
    submit('j', { operation: 'noop', task_count: 1 });
    assign('j', 0, 'w1');
    // w2 ran the task too (sent to it by a leader whose assignment never committed).
    expect(complete('j', 0, 'w2', 1, ['w2'])).toMatchObject({ accepted: [] });
    expect(fail('j', 0, 'w2', 1)).toMatchObject({ retried: [], failed_jobs: [] });
    expect(task('j', 0)).toMatchObject({ status: 'running', attempt: 1, failures: 0, worker_id: 'w1' });
    expect(complete('j', 0, 'w1', 1, ['w1'])).toMatchObject({ accepted: [{ idx: 0 }] });
    expect(q.results('j', 0, 10)).toEqual([{ idx: 0, result: ['w1'] }]);
  });

  it('assignment only takes a pending task at its current attempt, on a live worker', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 1 });
    expect(assign('j', 0, 'w', 2)).toMatchObject({ assigned: [] });
    expect(assign('j', 0, 'ghost')).toMatchObject({ assigned: [] });
    expect(assign('j', 0, 'w')).toMatchObject({ assigned: [{ idx: 0 }] });
    expect(assign('j', 0, 'w')).toMatchObject({ assigned: [] });
  });

  it('a failed task goes back to pending with attempt+1 and a backoff, until its retries run out', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 2, max_retries: 1 });
    assign('j', 0, 'w');
    fail('j', 0, 'w', 1);
    expect(task('j', 0)).toMatchObject({ status: 'pending', attempt: 2, failures: 1, worker_id: 'w' });
    expect([...q.pending(10)][0]!.not_before).toBe(3000 + 200);
    assign('j', 0, 'w', 2);
    assign('j', 1, 'w');
    const r = fail('j', 0, 'w', 2);
    expect(r).toMatchObject({ failed_jobs: ['j'], to_stop: [{ idx: 1, worker_id: 'w' }] });
    const job = q.job('j')!;
    expect(job.status).toBe('failed');
    expect(JSON.parse(job.error!)).toMatchObject({ task: 0, attempts: 2, message: 'boom 2' });
    expect(task('j', 1).status).toBe('cancelled');
  });

  it('a dead worker hands its running tasks back, at attempt+1, without using up retries', () => {
    register('w1');
    register('w2');
    submit('j', { operation: 'noop', task_count: 2 });
    assign('j', 0, 'w1');
    assign('j', 1, 'w2');
    expect(apply({ type: 'markWorkerDead', at: 4000, worker_id: 'w1', reason: 'test' })).toMatchObject({ requeued: 1 });
    expect(task('j', 0)).toMatchObject({ status: 'pending', attempt: 2, failures: 0 });
    expect(q.job('j')).toMatchObject({ pending: 1, running: 1 });
    // The dead worker's late report is stale.
    expect(complete('j', 0, 'w1', 1)).toMatchObject({ accepted: [] });
    expect(q.worker('w1')!.status).toBe('dead');
  });
});

describe("apply: a worker's loss, by the rules the state follows", () => {
  const dead = (worker_id: string, at = 4000, began?: unknown) =>
    apply({
      type: 'markWorkerDead',
      at,
      worker_id,
      reason: `${worker_id} stopped heartbeating`,
      ...(began !== undefined ? { began } : {}),
    } as Command) as ApplyResult<'markWorkerDead'>;
  const rules = (version: unknown) => apply({ type: 'setRules', at: 1000, version } as Command);
  const losses = (job_id: string, idx: number) =>
    sm.db.prepare(`SELECT losses FROM tasks WHERE seq = ? AND idx = ?`).pluck().get(q.job(job_id)!.seq, idx);
  /** Task 0 of job j runs on `w1`, `w2`, … in turn, each worker lost under it. */
  function loseWorkers(n: number, job = 'j') {
    const results = [];
    for (let i = 1; i <= n; i++) {
      register(`w${i}`);
      assign(job, 0, `w${i}`, i);
      results.push(dead(`w${i}`, 4000 + i));
    }
    return results;
  }

  it('a state that recorded no rules follows the first ones: losses never count', () => {
    expect(q.rulesVersion()).toBe(1);
    submit('j', { operation: 'noop', task_count: 1 });
    const lost = loseWorkers(MAX_WORKER_LOSSES + 2);
    expect(lost.every((r) => r.ok && r.requeued === 1 && r.failed_jobs.length === 0)).toBe(true);
    expect(task('j', 0)).toMatchObject({ status: 'pending', attempt: MAX_WORKER_LOSSES + 3, failures: 0 });
    expect(losses('j', 0)).toBe(0);
  });

  it(`from rules 2, a batch task whose workers were lost ${MAX_WORKER_LOSSES} times fails, with its job`, () => {
    expect(rules(2)).toEqual({ ok: true, version: 2 });
    submit('j', { operation: 'noop', task_count: 2 });
    register('other');
    assign('j', 1, 'other');
    const lost = loseWorkers(MAX_WORKER_LOSSES);
    expect(lost.slice(0, -1).every((r) => r.ok && r.requeued === 1)).toBe(true);
    expect(losses('j', 0)).toBe(MAX_WORKER_LOSSES);
    // The last loss: the task fails without using up a retry, and the job's other attempt stops.
    expect(lost.at(-1)).toMatchObject({
      requeued: 0,
      failed_jobs: ['j'],
      to_stop: [{ job_id: 'j', idx: 1, attempt: 1, worker_id: 'other' }],
    });
    expect(task('j', 0)).toMatchObject({ status: 'failed', failures: 0 });
    const job = q.job('j')!;
    expect(job.status).toBe('failed');
    const error = JSON.parse(job.error!);
    expect(error).toMatchObject({ task: 0, attempts: MAX_WORKER_LOSSES, name: 'worker_lost' });
    expect(error.message).toContain(`${MAX_WORKER_LOSSES} workers were lost while they ran this task`);
    expect(error.message).toContain(`w${MAX_WORKER_LOSSES}: w${MAX_WORKER_LOSSES} stopped heartbeating`);
  });

  it('losses counted before rules 2 stay uncounted: a task meets the limit only by losses from then on', () => {
    submit('j', { operation: 'noop', task_count: 1 });
    loseWorkers(2);
    rules(2);
    register('x1');
    assign('j', 0, 'x1', 3);
    expect(dead('x1')).toMatchObject({ requeued: 1, failed_jobs: [] });
    expect(losses('j', 0)).toBe(1);
  });

  it('a streaming instance is placed again however many workers were lost under it', () => {
    rules(2);
    const config = { operation: 'stream', task_count: 1, max_retries: 3 } as unknown as JobConfig;
    apply({ type: 'submitJob', at: 1000, job_id: 's', name: 's', job_type: 'streaming', config });
    const lost = loseWorkers(MAX_WORKER_LOSSES + 1, 's');
    expect(lost.every((r) => r.ok && r.requeued === 1 && r.failed_jobs.length === 0)).toBe(true);
    expect(losses('s', 0)).toBe(0);
  });

  it("the original's worker lost in a speculative race is no loss of the task: its copy runs on", () => {
    rules(2);
    submit('j', { operation: 'noop', task_count: 1 });
    register('w1');
    register('w2');
    assign('j', 0, 'w1');
    apply({ type: 'speculateTasks', at: 2500, copies: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w2' }] });
    expect(dead('w1')).toMatchObject({ requeued: 0, failed_jobs: [] });
    expect(task('j', 0)).toMatchObject({ status: 'running', worker_id: 'w2', attempt: 2 });
    expect(losses('j', 0)).toBe(0);
  });

  it('a job failed by one task leaves none of its tasks waiting, whatever order the lost worker held them in', () => {
    rules(2);
    submit('j', { operation: 'noop', task_count: 3 });
    loseWorkers(MAX_WORKER_LOSSES - 1);
    // Task 0 on its last chance, and tasks 1 and 2 beside it on a worker of several slots.
    register('big');
    assign('j', 0, 'big', MAX_WORKER_LOSSES);
    assign('j', 1, 'big');
    assign('j', 2, 'big');
    expect(dead('big')).toMatchObject({ requeued: 0, jobs: [], failed_jobs: ['j'] });
    expect(q.job('j')).toMatchObject({ status: 'failed', pending: 0, running: 0 });
    expect([1, 2].map((i) => task('j', i).status)).toEqual(['cancelled', 'cancelled']);
    expect([...q.pending(10)]).toEqual([]);
  });

  it('two tasks that reach the limit in one loss fail their job once, naming the first', () => {
    rules(2);
    submit('j', { operation: 'noop', task_count: 2 });
    let last;
    for (let i = 1; i <= MAX_WORKER_LOSSES; i++) {
      register(`w${i}`);
      assign('j', 1, `w${i}`, i);
      assign('j', 0, `w${i}`, i);
      last = dead(`w${i}`, 4000 + i);
    }
    expect(last).toMatchObject({ failed_jobs: ['j'] });
    expect(JSON.parse(q.job('j')!.error!)).toMatchObject({ task: 0, name: 'worker_lost' });
  });

  it('a worker stopped on purpose (draining) is no loss of the tasks it still ran', () => {
    rules(2);
    submit('j', { operation: 'noop', task_count: 1 });
    for (let i = 1; i <= MAX_WORKER_LOSSES; i++) {
      register(`w${i}`);
      assign('j', 0, `w${i}`, i);
      apply({ type: 'drainWorker', at: 4000, worker_id: `w${i}` });
      expect(dead(`w${i}`)).toMatchObject({ requeued: 1, failed_jobs: [] });
    }
    expect(losses('j', 0)).toBe(0);
  });

  it("a speculative copy's worker lost is no loss of the task: its original ran elsewhere", () => {
    rules(2);
    submit('j', { operation: 'noop', task_count: 1 });
    loseWorkers(MAX_WORKER_LOSSES - 1);
    register('healthy');
    register('copy');
    assign('j', 0, 'healthy', MAX_WORKER_LOSSES);
    apply({
      type: 'speculateTasks',
      at: 2500,
      copies: [{ job_id: 'j', idx: 0, attempt: MAX_WORKER_LOSSES, worker_id: 'copy' }],
    });
    expect(dead('copy')).toMatchObject({ failed_jobs: [] });
    expect(q.job('j')!.status).not.toBe('failed');
    expect(losses('j', 0)).toBe(MAX_WORKER_LOSSES - 1);
  });

  it(`from rules ${LOSSES_NEED_A_START_FROM}, a loss counts only against the attempts its worker said it had begun`, () => {
    rules(LOSSES_NEED_A_START_FROM);
    submit('j', { operation: 'noop', task_count: 2 });
    for (let i = 1; i <= MAX_WORKER_LOSSES + 1; i++) {
      register(`w${i}`);
      assign('j', 0, `w${i}`, i);
      assign('j', 1, `w${i}`, i);
      // Task 1 began on each; task 0 was assigned, and never taken up (or its worker dropped it).
      expect(dead(`w${i}`, 4000 + i, [{ job_id: 'j', idx: 1, attempt: i }])).toMatchObject(
        i < MAX_WORKER_LOSSES ? { requeued: 2, failed_jobs: [] } : { failed_jobs: ['j'] },
      );
      if (i === MAX_WORKER_LOSSES) break;
    }
    expect(losses('j', 0)).toBe(0);
    expect(losses('j', 1)).toBe(MAX_WORKER_LOSSES);
    expect(JSON.parse(q.job('j')!.error!)).toMatchObject({ task: 1, name: 'worker_lost' });
  });

  it(`from rules ${LOSSES_NEED_A_START_FROM}, an attempt named begun counts only if it is the one running there`, () => {
    rules(LOSSES_NEED_A_START_FROM);
    submit('j', { operation: 'noop', task_count: 1 });
    register('w1');
    assign('j', 0, 'w1');
    // Another attempt, another task, another job: none is what w1 ran.
    const named = [
      { job_id: 'j', idx: 0, attempt: 2 },
      { job_id: 'j', idx: 3, attempt: 1 },
      { job_id: 'k', idx: 0, attempt: 1 },
    ];
    expect(dead('w1', 4000, named)).toMatchObject({ requeued: 1, failed_jobs: [] });
    expect(losses('j', 0)).toBe(0);
  });

  it(`under rules ${LOSSES_NEED_A_START_FROM - 1} the begun attempts are not read: an older master counts them all alike`, () => {
    rules(LOSSES_NEED_A_START_FROM - 1);
    submit('j', { operation: 'noop', task_count: 1 });
    register('w1');
    assign('j', 0, 'w1');
    expect(dead('w1', 4000, [])).toMatchObject({ requeued: 1 });
    expect(losses('j', 0)).toBe(1);
  });

  it('a begun list that is no list of attempts is refused under the rules that read it, and the worker lives on', () => {
    rules(LOSSES_NEED_A_START_FROM);
    submit('j', { operation: 'noop', task_count: 1 });
    register('w1');
    assign('j', 0, 'w1');
    for (const bad of [null, 'all', [{ job_id: 'j', idx: '0', attempt: 1 }], [null], { length: 1 }]) {
      expect(dead('w1', 4000, bad)).toMatchObject({ ok: false, code: 'internal' });
    }
    expect(q.liveWorker('w1')).toBeTruthy();
    expect(task('j', 0)).toMatchObject({ status: 'running', worker_id: 'w1' });
    expect(dead('w1', 4000, [{ job_id: 'j', idx: 0, attempt: 1 }])).toMatchObject({ ok: true, requeued: 1 });
    expect(losses('j', 0)).toBe(1);
  });

  it('rules never go back, and a version that is no positive integer is refused and changes nothing', () => {
    expect(rules(2)).toEqual({ ok: true, version: 2 });
    expect(rules(1)).toEqual({ ok: true, version: 2 });
    for (const bad of [0, -1, 1.5, '3', null]) {
      expect(rules(bad)).toMatchObject({ ok: false, code: 'internal' });
    }
    expect(q.rulesVersion()).toBe(2);
  });
});

describe('apply: a speculative race', () => {
  /** Task 0 of job j runs as attempt 1 on w1, and its copy as attempt 2 on w2. */
  function race(config: Record<string, unknown> = {}): void {
    register('w1');
    register('w2');
    submit('j', { operation: 'noop', task_count: 1, ...config });
    assign('j', 0, 'w1');
    const r = apply({
      type: 'speculateTasks',
      at: 2500,
      copies: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w2' }],
    });
    expect(r).toMatchObject({ assigned: [{ job_id: 'j', idx: 0, attempt: 2, worker_id: 'w2' }] });
  }

  it('the first attempt to finish wins; the other is stopped', () => {
    race();
    expect(complete('j', 0, 'w2', 2, ['copy'])).toMatchObject({
      accepted: [{ idx: 0 }],
      to_stop: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w1' }],
    });
    expect(q.job('j')).toMatchObject({ status: 'completed', running: 0, completed: 1 });
    expect(complete('j', 0, 'w1', 1, ['original'])).toMatchObject({ accepted: [] });
    expect(q.results('j', 0, 10)).toEqual([{ idx: 0, result: ['copy'] }]);
  });

  // A worker whose disk is full fails what it runs: the race's healthy attempt elsewhere must
  // not be stopped for it, nor the task sent again (and back to the full worker).
  it('an original that fails is charged, and its copy carries on as the task’s attempt', () => {
    race();
    expect(fail('j', 0, 'w1', 1)).toMatchObject({ failed_jobs: [], to_stop: [] });
    expect(task('j', 0)).toMatchObject({ status: 'running', attempt: 2, worker_id: 'w2', failures: 1 });
    expect(q.job('j')).toMatchObject({ status: 'running', pending: 0, running: 1 });
    expect([...q.pending(10)]).toEqual([]);
    // Its lease counts from the race's end, not from the original's start.
    expect(q.runningAttempts()).toEqual([expect.objectContaining({ attempt: 2, worker_id: 'w2', started_at: 3000 })]);
    expect(complete('j', 0, 'w2', 2, ['copy'])).toMatchObject({ accepted: [{ idx: 0 }], to_stop: [] });
    expect(q.job('j')).toMatchObject({ status: 'completed', completed: 1 });
  });

  // The original carrying on would leave the task at attempt 1 and number its next attempt 2
  // again: a stale report of the failed copy would count for that one.
  it('a copy that fails ends the race: the task is charged and runs again, away from the copy’s worker', () => {
    race();
    expect(fail('j', 0, 'w2', 2)).toMatchObject({
      failed_jobs: [],
      to_stop: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w1' }],
    });
    expect(task('j', 0)).toMatchObject({ status: 'pending', attempt: 3, worker_id: 'w2', failures: 1 });
    expect(q.job('j')).toMatchObject({ status: 'running', pending: 1, running: 0 });
    // Neither old attempt's report counts any more.
    expect(fail('j', 0, 'w2', 2)).toMatchObject({ to_stop: [] });
    expect(complete('j', 0, 'w1', 1, ['original'])).toMatchObject({ accepted: [] });
    expect(task('j', 0)).toMatchObject({ failures: 1 });
  });

  it('a failure past max_retries ends the race: the task and job fail, the other attempt stops', () => {
    race({ max_retries: 0 });
    expect(fail('j', 0, 'w1', 1)).toMatchObject({
      failed_jobs: ['j'],
      to_stop: [{ job_id: 'j', idx: 0, attempt: 2, worker_id: 'w2' }],
    });
    expect(task('j', 0)).toMatchObject({ status: 'failed', failures: 1 });
    expect(q.job('j')).toMatchObject({ status: 'failed', running: 0, failed: 1 });
  });

  it('the original’s worker lost: the copy carries on, nothing charged', () => {
    race();
    expect(apply({ type: 'markWorkerDead', at: 2600, worker_id: 'w1', reason: 'test' })).toMatchObject({
      requeued: 0,
      to_stop: [],
    });
    expect(task('j', 0)).toMatchObject({ status: 'running', attempt: 2, worker_id: 'w2', failures: 0 });
    expect(q.job('j')).toMatchObject({ status: 'running', pending: 0, running: 1 });
    expect(complete('j', 0, 'w2', 2, ['copy'])).toMatchObject({ accepted: [{ idx: 0 }] });
  });

  it('the copy’s worker lost: the task starts over, nothing charged', () => {
    race();
    expect(apply({ type: 'markWorkerDead', at: 2600, worker_id: 'w2', reason: 'test' })).toMatchObject({
      requeued: 1,
      to_stop: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w1' }],
    });
    expect(task('j', 0)).toMatchObject({ status: 'pending', attempt: 3, failures: 0 });
    expect(q.job('j')).toMatchObject({ status: 'running', pending: 1, running: 0 });
  });
});

describe('apply: a task gets its row when first assigned', () => {
  const rows = (job_id: string) =>
    sm.db
      .prepare(`SELECT count(*) AS n FROM tasks WHERE seq = (SELECT seq FROM jobs WHERE job_id = ?)`)
      .get(job_id) as {
      n: number;
    };
  const pendingIdx = (limit = 100) => [...q.pending(limit)].map((t) => `${t.job_id}/${t.idx}@${t.attempt}`);

  it('a single-stage job is submitted without task rows, yet lists and schedules every task as pending', () => {
    submit('j', { operation: 'noop', task_count: 3 });
    expect(rows('j').n).toBe(0);
    expect(q.tasksOfJob('j', 10)).toEqual(
      [0, 1, 2].map((idx) => expect.objectContaining({ idx, status: 'pending', attempt: 1, worker_id: null })),
    );
    expect([...q.pending(10)][0]).toEqual({ job_id: 'j', idx: 0, attempt: 1, worker_id: null, not_before: 1000 });
    expect(q.anyPending()).toBe(true);
  });

  it('assigning a task past untouched ones gives them rows too, still pending, still first in line', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 5 });
    expect(assign('j', 2, 'w')).toMatchObject({ assigned: [{ idx: 2 }] });
    expect(rows('j').n).toBe(3);
    expect(q.tasksOfJob('j', 10).map((t) => t.status)).toEqual(['pending', 'pending', 'running', 'pending', 'pending']);
    expect(pendingIdx()).toEqual(['j/0@1', 'j/1@1', 'j/3@1', 'j/4@1']);
    expect(q.job('j')).toMatchObject({ pending: 4, running: 1, untouched_from: 3 });
  });

  it("pending tasks come oldest job first: a job's retried tasks, then its untouched ones, then the next job", () => {
    register('w');
    submit('a', { operation: 'noop', task_count: 3, max_retries: 2 });
    submit('b', { operation: 'noop', task_count: 2 });
    assign('a', 0, 'w');
    fail('a', 0, 'w');
    expect(pendingIdx()).toEqual(['a/0@2', 'a/1@1', 'a/2@1', 'b/0@1', 'b/1@1']);
    expect(pendingIdx(3)).toEqual(['a/0@2', 'a/1@1', 'a/2@1']);
  });

  it('counts a retried task as waiting when the job has no untouched task left, and none once all run', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 1, max_retries: 1 });
    assign('j', 0, 'w');
    expect(q.anyPending()).toBe(false);
    fail('j', 0, 'w');
    expect(q.job('j')).toMatchObject({ untouched_from: 1, pending: 1 });
    expect(q.anyPending()).toBe(true);
  });

  it("refuses to create a row for an index that is not one of the job's tasks, or an attempt it never had", () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 2 });
    for (const idx of [2, -1, 0.5]) expect(assign('j', idx, 'w')).toMatchObject({ assigned: [] });
    expect(assign('j', 0, 'w', 2)).toMatchObject({ assigned: [] });
    expect(rows('j').n).toBe(0);
    expect(q.job('j')).toMatchObject({ pending: 2, running: 0, untouched_from: 0 });
  });

  it('a cancelled job lists its untouched tasks as cancelled, and an assignment proposed before the cancel takes none', () => {
    register('w');
    submit('j', { operation: 'noop', task_count: 3 });
    assign('j', 0, 'w');
    apply({ type: 'cancelJob', at: 5000, job_id: 'j' });
    expect(assign('j', 1, 'w')).toMatchObject({ assigned: [] });
    expect(q.tasksOfJob('j', 10).map((t) => [t.status, t.finished_at])).toEqual([
      ['cancelled', 5000],
      ['cancelled', 5000],
      ['cancelled', 5000],
    ]);
    expect(q.anyPending()).toBe(false);
    expect(pendingIdx()).toEqual([]);
  });
});

describe('schema migrations', () => {
  it("re-keys tasks by their job's seq without losing a task, a result or a pending retry", () => {
    sm.close();
    const path = join(dir, 'old.db');
    const db = new Database(path);
    migrate(db, 5); // the layout before tasks were keyed by seq
    db.exec(`
      INSERT INTO jobs (job_id, seq, name, type, status, config, created_at, max_retries, total, pending, running, completed, failed)
        VALUES ('j', 7, 'j', 'batch', 'running', '{}', 1000, 3, 3, 1, 1, 1, 0);
      INSERT INTO tasks (job_id, idx, status, attempt, failures, worker_id, not_before, seq, result)
        VALUES ('j', 0, 'completed', 1, 0, 'w', 1000, 7, '[0]'),
               ('j', 1, 'running', 1, 0, 'w', 1000, 7, NULL),
               ('j', 2, 'pending', 2, 1, 'w', 1200, 7, NULL);
    `);
    migrate(db);
    db.close();
    sm = new StateMachine(path);
    q = new Queries(sm);
    expect(q.tasksOfJob('j', 10).map((t) => [t.idx, t.status, t.attempt])).toEqual([
      [0, 'completed', 1],
      [1, 'running', 1],
      [2, 'pending', 2],
    ]);
    expect(q.results('j', 0, 10)).toEqual([{ idx: 0, result: [0] }]);
    expect([...q.pending(10)]).toEqual([{ job_id: 'j', idx: 2, attempt: 2, worker_id: 'w', not_before: 1200 }]);
    expect(q.job('j')!.untouched_from).toBe(3);
  });
});

describe('the state machine', () => {
  it('re-applying an entry it already holds is a no-op', () => {
    const cmd: Command = { type: 'registerWorker', at: 1, worker_id: 'w', address: 'a', max_tasks: 1 };
    sm.applyBatch([{ index: 1, term: 1, kind: 'cmd', data: cmd }]);
    expect(sm.applyBatch([{ index: 1, term: 1, kind: 'cmd', data: cmd }])).toEqual([undefined]);
    expect(sm.lastApplied).toBe(1);
  });

  it('refuses to apply out of order', () => {
    expect(() =>
      sm.applyBatch([{ index: 5, term: 1, kind: 'cmd', data: { type: 'drainWorker', at: 1, worker_id: 'w' } }]),
    ).toThrow(/out of order/);
  });

  it('leaves nothing of a batch that fails part-way, and applies the next one', () => {
    const cmd = registerWorkerCommand('w');
    expect(() =>
      sm.applyBatch([
        { index: 1, term: 1, kind: 'cmd', data: cmd },
        { index: 3, term: 1, kind: 'cmd', data: registerWorkerCommand('v') },
      ]),
    ).toThrow(/out of order/);
    expect(sm.lastApplied).toBe(0);
    expect(q.liveWorkers()).toEqual([]);
    // The batch's transaction was rolled back, and the next one begins afresh.
    sm.applyBatch([{ index: 1, term: 1, kind: 'cmd', data: cmd }]);
    expect(sm.lastApplied).toBe(1);
    expect(q.liveWorkers().map((w) => w.worker_id)).toEqual(['w']);
  });

  it('keeps last_applied and its term across a reopen', () => {
    register('w');
    sm.close();
    sm = new StateMachine(join(dir, 'state.db'));
    expect([sm.lastApplied, sm.lastAppliedTerm]).toEqual([1, 1]);
  });

  it('applies membership changes, so a copy of the database is a whole snapshot', () => {
    sm.applyBatch([
      {
        index: 1,
        term: 1,
        kind: 'conf',
        data: { op: 'bootstrap', members: [{ id: 1, address: 'http://a:1', voter: true }] },
      },
      { index: 2, term: 2, kind: 'noop' },
      { index: 3, term: 2, kind: 'conf', data: { op: 'addLearner', id: 2, address: 'http://b:1' } },
    ]);
    const { meta, data } = sm.snapshot();
    expect(meta).toEqual({
      index: 3,
      term: 2,
      members: [
        { id: 1, address: 'http://a:1', voter: true },
        { id: 2, address: 'http://b:1', voter: false },
      ],
    });
    const other = new StateMachine(join(dir, 'other.db'));
    other.restore({ meta: other.applied(), data });
    expect([other.lastApplied, other.members().length]).toEqual([3, 2]);
    other.close();
  });
});

describe('a command apply cannot apply (ill-typed data that reached the log)', () => {
  const refusals = () => sm.db.prepare('SELECT log_index, type, message FROM refused_commands').all();

  it('is refused and recorded, its writes undone, and the next entry applies', () => {
    submit('j', { operation: 'noop', task_count: 2 });
    register('w1');
    assign('j', 0, 'w1');
    const before = JSON.stringify(q.tasksOfJob('j', 1000));
    // A good completion followed by one whose job_id is not a string: all or nothing.
    const r = apply({
      type: 'completeTasks',
      at: 3000,
      completions: [
        { job_id: 'j', idx: 0, attempt: 1, worker_id: 'w1', result_json: '[0]' },
        { job_id: true, idx: 1, attempt: 1, worker_id: 'w1', result_json: '[1]' },
      ],
    } as unknown as Command);
    expect(r).toMatchObject({ ok: false, code: 'internal' });
    expect(refusals()).toEqual([
      { log_index: index, type: 'completeTasks', message: expect.stringContaining('could not be applied') },
    ]);
    expect(JSON.stringify(q.tasksOfJob('j', 1000))).toBe(before);
    expect(sm.lastApplied).toBe(index);
    expect(complete('j', 0, 'w1')).toMatchObject({ ok: true, accepted: [{ job_id: 'j', idx: 0 }] });
  });

  it('an unknown command type, or no object at all, is refused the same way', () => {
    expect(apply({ type: 'formatDisk' } as unknown as Command)).toMatchObject({ ok: false, code: 'internal' });
    expect(apply(null as unknown as Command)).toMatchObject({ ok: false, code: 'internal' });
    expect(refusals()).toHaveLength(2);
    expect(register('w9')).toEqual({ ok: true, worker_id: 'w9' });
  });

  it('is refused identically on a second master applying the same entries', () => {
    const other = new StateMachine(join(dir, 'other.db'));
    const bad = { type: 'cancelJob', at: 1, job_id: { $gt: '' } } as unknown as Command;
    const entries = [{ index: 1, term: 1, kind: 'cmd' as const, data: bad }];
    expect(sm.applyBatch(entries)).toEqual(other.applyBatch(entries));
    expect(other.db.prepare('SELECT * FROM refused_commands').all()).toEqual(refusals());
    other.close();
  });
});

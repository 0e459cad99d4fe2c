// A task raced by a speculative copy counts as one running task whatever happens to the stages
// around it: the job's counters agree with its tasks' rows (found by an adversarial review).
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import type { TaskError } from '../../src/protocol/task-ref.js';
import { Applier } from '../../src/state/apply.js';
import type { ApplyResult, Command } from '../../src/state/commands.js';
import { Queries } from '../../src/state/queries.js';
import { migrate } from '../../src/state/schema.js';

let db: Db;
let apply: (command: Command) => ApplyResult;
let clock: number;

beforeEach(() => {
  db = new Database(':memory:');
  migrate(db);
  const applier = new Applier(db);
  // One transaction per command, as the state machine runs it.
  apply = (command) => db.transaction(() => applier.apply(command))();
  clock = 1000;
});

const at = () => (clock += 10);
const register = (worker_id: string) =>
  apply({ type: 'registerWorker', at: at(), worker_id, address: `${worker_id}:7000`, max_tasks: 8 });
const assign = (idx: number, worker_id: string, attempt = 1) =>
  apply({ type: 'assignTasks', at: at(), assignments: [{ job_id: 'j', idx, attempt, worker_id }] });
const run = (idx: number, worker_id: string) => {
  assign(idx, worker_id);
  apply({
    type: 'completeTasks',
    at: at(),
    completions: [{ job_id: 'j', idx, attempt: 1, worker_id, result_json: '[{"records":2,"bytes":10}]' }],
  });
};
const speculate = (idx: number, attempt: number, worker_id: string) =>
  apply({ type: 'speculateTasks', at: at(), copies: [{ job_id: 'j', idx, attempt, worker_id }] });
const fetchFailed = (idx: number, attempt: number): TaskError => ({
  name: 'FetchFailedError',
  message: `fetch failed: map task ${idx} attempt ${attempt}: w1:7000 answered 404`,
  fetch_failed: { idx, attempt },
});

/** The job's counters agree with its tasks ('waiting' tasks count as pending while it runs). */
function expectCountersMatchTasks(): void {
  const j = db.prepare(`SELECT * FROM jobs WHERE job_id = 'j'`).get() as Record<string, number | string>;
  const tasks = new Queries({ db, generation: 0 }).tasksOfJob('j', 1000);
  const count = (...s: string[]) => tasks.filter((t) => s.includes(t.status)).length;
  expect({ pending: j.pending, running: j.running, completed: j.completed, failed: j.failed }).toEqual({
    pending: count('pending', 'waiting'),
    running: count('running'),
    completed: count('completed'),
    failed: count('failed'),
  });
}

/** A wordcount of 3 maps (tasks 0–2) into 2 reduces (3–4); the maps ran, reduce 3 is raced. */
function racedReduce(): void {
  for (const w of ['w1', 'w2', 'w3']) register(w);
  apply({
    type: 'submitJob',
    at: at(),
    job_id: 'j',
    name: 'j',
    job_type: 'batch',
    config: normalizeBatchConfig({
      operation: 'wordcount',
      data: ['a b', 'b c', 'c d a'],
      task_count: 3,
      reduce_tasks: 2,
      speculation: true,
    }),
  });
  run(0, 'w1');
  run(1, 'w2');
  run(2, 'w2');
  assign(3, 'w2');
  assign(4, 'w3');
  expect(speculate(3, 1, 'w3')).toMatchObject({ assigned: [{ idx: 3 }] });
  expectCountersMatchTasks();
}

describe('counters with a raced task', () => {
  it('stay right when a worker holding map outputs is lost while a reduce is raced elsewhere', () => {
    racedReduce();
    apply({ type: 'markWorkerDead', at: at(), worker_id: 'w1', reason: 'lost' });
    expectCountersMatchTasks();
  });

  it('stay right when one attempt of a raced reduce fails to fetch a map output', () => {
    racedReduce();
    apply({
      type: 'failTasks',
      at: at(),
      failures: [{ job_id: 'j', idx: 3, attempt: 2, worker_id: 'w3', error: fetchFailed(0, 1) }],
    });
    expectCountersMatchTasks();
  });
});

// What the state database writes per job, and that what was taken out of it left no reader
// slower: every master writes each of these pages, on the path of every job.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { LifecycleQueries } from '../../src/state/lifecycle-queries.js';
import { Queries } from '../../src/state/queries.js';
import { migrate } from '../../src/state/schema.js';
import { stateEachTest } from '../helpers/state.js';

const state = stateEachTest('weir-writes-');
const { apply, submit, register } = state;

/** One-task job `id`, placed on `w` by its submit, then completed there. */
function oneTaskJob(id: string) {
  submit(id, { operation: 'noop', task_count: 1 }, { assignments: [{ idx: 0, worker_id: 'w' }] });
  apply({
    type: 'completeTasks',
    at: 3000,
    completions: [{ job_id: id, idx: 0, attempt: 1, worker_id: 'w', result_json: '[]' }],
  });
}

/**
 * Pages appended to the WAL while `fn` runs, or undefined when the count cannot be read. A
 * reader holding a snapshot keeps the WAL from starting over meanwhile. The checkpoint thread
 * may still be copying, and a count read beside it fails (-1); should the thread have copied
 * every frame just before the reader began, the WAL may start over and the count be short.
 */
function walPagesOf(fn: () => void): number | undefined {
  const reader = new Database(join(state.dir, 'state.db'), { readonly: true });
  try {
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM jobs').get();
    const frames = () => (state.sm.db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[])[0]!.log;
    const before = frames();
    fn();
    const after = frames();
    return before < 0 || after < 0 ? undefined : after - before;
  } finally {
    reader.exec('COMMIT');
    reader.close();
  }
}

describe('the state database, per job', () => {
  it('writes at most 15 pages for a one-task job placed by its submit (18 with jobs_running and a NULL-keyed jobs_expiring)', () => {
    register('w');
    for (let i = 0; i < 20; i++) oneTaskJob(`warm-${i}`);
    // The most of several: a count cut short by the checkpoint thread is only ever too low.
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const pages = walPagesOf(() => oneTaskJob(`measured-${i}`));
      if (pages !== undefined) counts.push(pages);
    }
    expect(counts.length).toBeGreaterThan(0);
    expect(Math.max(...counts)).toBeGreaterThan(0);
    expect(Math.max(...counts)).toBeLessThanOrEqual(15);
  });

  it('lists running jobs in submission order from an index, without sorting them', () => {
    const plan = (
      state.sm.db
        .prepare(`EXPLAIN QUERY PLAN SELECT job_id, plan, stage FROM jobs WHERE status = 'running' ORDER BY seq`)
        .all() as { detail: string }[]
    ).map((r) => r.detail);
    expect(plan.join('; ')).toMatch(/USING INDEX jobs_by_status/);
    expect(plan.join('; ')).not.toMatch(/TEMP B-TREE/);
  });

  it('lists running jobs oldest first, whatever order they started in', () => {
    register('w');
    submit('a', { operation: 'noop', task_count: 2 });
    submit('b', { operation: 'noop', task_count: 2 });
    submit('c', { operation: 'noop', task_count: 2 });
    apply({ type: 'assignTasks', at: 2000, assignments: [{ job_id: 'c', idx: 0, attempt: 1, worker_id: 'w' }] });
    apply({ type: 'assignTasks', at: 2000, assignments: [{ job_id: 'a', idx: 0, attempt: 1, worker_id: 'w' }] });
    expect(state.q.runningJobs().map((j) => j.job_id)).toEqual(['a', 'c']);
  });
});

describe('the state database, read between commands', () => {
  /** How many times `sql`-like statements ran while `fn` did (better-sqlite3's own counting hook). */
  function statementsRun(match: RegExp, fn: () => void): number {
    const proto = Object.getPrototypeOf(state.sm.db.prepare('SELECT 1')) as { get: (...a: unknown[]) => unknown };
    const get = proto.get;
    let n = 0;
    proto.get = function (this: { source: string }, ...a: unknown[]) {
      if (match.test(this.source)) n++;
      return get.apply(this, a);
    };
    try {
      fn();
    } finally {
      proto.get = get;
    }
    return n;
  }

  it('says whether a task waits afresh after every command, and asks the database once between two', () => {
    register('w');
    expect(state.q.anyPending()).toBe(false);
    submit('a', { operation: 'noop', task_count: 1 });
    const asked = statementsRun(/EXISTS/, () => {
      for (let i = 0; i < 5; i++) expect(state.q.anyPending()).toBe(true);
    });
    expect(asked).toBe(1);
    apply({ type: 'assignTasks', at: 2000, assignments: [{ job_id: 'a', idx: 0, attempt: 1, worker_id: 'w' }] });
    expect(state.q.anyPending()).toBe(false);
    // The worker is lost: its task waits again.
    apply({ type: 'markWorkerDead', at: 3000, worker_id: 'w', reason: 'test' });
    expect(state.q.anyPending()).toBe(true);
  });

  it('reads afresh inside a transaction, where a command is half applied', () => {
    register('w');
    expect(state.q.anyPending()).toBe(false);
    state.sm.db.transaction(() => {
      state.sm.db.prepare(`UPDATE jobs SET status = status`).run();
      const asked = statementsRun(/EXISTS/, () => state.q.anyPending());
      expect(asked).toBe(1);
    })();
  });
});

describe('the migration that narrowed the jobs indexes', () => {
  it('keeps finding the running jobs and the expired ones of a database made before it', () => {
    const old = new Database(':memory:');
    migrate(old, 11); // jobs_running, and jobs_expiring with every job in it
    const job = old.prepare(
      `INSERT INTO jobs (job_id, seq, name, type, status, config, created_at, finished_at, max_retries, total,
                         pending, running, completed, failed, untouched_from)
       VALUES (?, ?, ?, 'batch', ?, '{}', 1000, ?, 3, 1, 0, ?, ?, 0, 1)`,
    );
    job.run('done-long-ago', 1, 'a', 'completed', 2000, 0, 1);
    job.run('running-2', 2, 'b', 'running', null, 1, 0);
    job.run('done-just-now', 3, 'c', 'completed', 9000, 0, 1);
    job.run('running-4', 4, 'd', 'running', null, 1, 0);

    migrate(old);
    try {
      const source = { db: old, generation: 1 };
      expect(new Queries(source).runningJobs().map((j) => j.job_id)).toEqual(['running-2', 'running-4']);
      expect(new LifecycleQueries(source).expiredJobs(10_000, 5_000, 10)).toEqual(['done-long-ago']);
      const indexes = old.prepare(`SELECT name FROM sqlite_master WHERE type = 'index'`).pluck().all() as string[];
      expect(indexes).not.toContain('jobs_running');
      expect(indexes).toContain('jobs_expiring');
    } finally {
      old.close();
    }
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import type { TaskReport } from '../../src/protocol/worker-channel.js';
import { ReportBatcher } from '../../src/master/report-batcher.js';
import { MAX_TASKS_PER_ENTRY } from '../../src/master/entry-size.js';
import { WorkerRegistry } from '../../src/master/worker-registry.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import type { TaskRef } from '../../src/protocol/task-ref.js';
import { Queries } from '../../src/state/queries.js';
import { openSingleMaster } from '../helpers/single-master.js';

const log = createLogger('test');
log.level = 'silent';
const JOB = 'job-batcher';

let dir: string;

/** A real master's consensus and state (a cluster of one), with JOB's 10 tasks running: 0–4 on w1, 5–9 on w2 (the first half and the second of `tasks`). */
async function master(tasks = 10) {
  const { consensus, state, storage, leading, close } = openSingleMaster(dir, log);
  await leading;
  for (const w of ['w1', 'w2']) {
    await consensus.propose({ type: 'registerWorker', at: 1, worker_id: w, address: `${w}:1`, max_tasks: tasks });
  }
  const config = normalizeBatchConfig({ operation: 'noop', task_count: tasks });
  await consensus.propose({ type: 'submitJob', at: 2, job_id: JOB, name: JOB, job_type: 'batch', config });
  const assignments = Array.from({ length: tasks }, (_, idx) => ({
    job_id: JOB,
    idx,
    attempt: 1,
    worker_id: idx < tasks / 2 ? 'w1' : 'w2',
  }));
  await consensus.propose({ type: 'assignTasks', at: 3, assignments });
  return { consensus, storage, queries: new Queries(state), close };
}

const done = (idx: number): TaskReport => ({ job_id: JOB, idx, attempt: 1, ok: true, result_json: `[${idx}]` });
const ref = (idx: number): TaskRef => ({ job_id: JOB, idx, attempt: 1 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-batcher-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the leader turning task reports into log entries', () => {
  it('gathers the reports that arrive while one entry is in flight into the next one, and acknowledges each worker once committed', async () => {
    const m = await master();
    const acks: { worker: string; tasks: TaskRef[] }[] = [];
    const before = m.consensus.status().commit_index;
    await new Promise<void>((allAcked) => {
      const batcher = new ReportBatcher(
        m.consensus,
        (worker, tasks) => {
          acks.push({ worker, tasks });
          if (acks.flatMap((a) => a.tasks).length === 10) allAcked();
        },
        log,
      );
      batcher.add('w1', [done(0), done(1)]);
      // The first entry is proposed on the next turn; these come while it is in flight.
      setImmediate(() => {
        batcher.add('w1', [done(2), done(3), done(4)]);
        batcher.add('w2', [done(5), done(6)]);
        batcher.add('w2', [done(7), done(8), done(9)]);
      });
    });

    expect(m.consensus.status().commit_index - before).toBe(2);
    expect(acks).toEqual([
      { worker: 'w1', tasks: [ref(0), ref(1)] },
      { worker: 'w1', tasks: [ref(2), ref(3), ref(4)] },
      { worker: 'w2', tasks: [5, 6, 7, 8, 9].map(ref) },
    ]);
    expect(m.queries.job(JOB)).toMatchObject({ status: 'completed', completed: 10 });
    await m.close();
  });

  it('proposes a round of thousands of reports as entries of at most MAX_TASKS_PER_ENTRY, written to the log together', async () => {
    const m = await master(2_400);
    const propose = vi.spyOn(m.consensus, 'propose');
    const save = vi.spyOn(m.storage, 'save');
    const acked: TaskRef[] = [];
    await new Promise<void>((allAcked) => {
      const batcher = new ReportBatcher(
        m.consensus,
        (_, tasks) => {
          acked.push(...tasks);
          if (acked.length === 2_400) allAcked();
        },
        log,
      );
      // Every master applies an entry in one transaction: 2,400 outcomes in one held each loop.
      batcher.add(
        'w1',
        Array.from({ length: 1_200 }, (_, i) => done(i)),
      );
      batcher.add(
        'w2',
        Array.from({ length: 1_200 }, (_, i) => done(1_200 + i)),
      );
    });
    const sizes = propose.mock.calls.map(([c]) => (c.type === 'completeTasks' ? c.completions.length : -1));
    expect(sizes).toEqual([500, 500, 500, 500, 400]);
    expect(MAX_TASKS_PER_ENTRY).toBe(500);
    // Group commit all the same: the five entries reached the log in one write (one fsync).
    expect(save.mock.calls.filter(([, entries]) => entries.length > 0).map(([, e]) => e.length)).toEqual([5]);
    expect(m.queries.job(JOB)).toMatchObject({ status: 'completed', completed: 2_400 });
    await m.close();
  });

  it('records failures in the same round as completions, and acknowledges both', async () => {
    const m = await master();
    const acked = new Promise<TaskRef[]>((resolve) => {
      const batcher = new ReportBatcher(m.consensus, (_, tasks) => resolve(tasks), log);
      batcher.add('w1', [done(0), { ...ref(1), ok: false, error: { name: 'Error', message: 'boom' } }]);
    });
    expect(await acked).toEqual([ref(0), ref(1)]);
    expect(m.queries.job(JOB)).toMatchObject({ completed: 1, running: 8, pending: 1 });
    await m.close();
  });

  it('counts a reported task’s slot free from the moment the report arrives until its outcome is committed', async () => {
    const m = await master();
    const registry = new WorkerRegistry();
    const committed = new Promise<void>((resolve) => {
      const batcher = new ReportBatcher(m.consensus, (worker) => worker === 'w1' && resolve(), log, registry);
      batcher.add('w1', [done(0), done(1)]);
      batcher.add('w1', [done(1)]); // the same report twice counts once
      batcher.add('w2', [done(5)], { fresh: false }); // re-sent: it may be committed already
      // Reported: the log still says 0 and 1 run on w1, but w1 has finished them.
      expect(registry.finishingOn('w1')).toBe(2);
      expect(registry.finishingOn('w2')).toBe(0);
      expect(m.queries.runningOnWorker('w1')).toHaveLength(5);
    });
    await committed;
    // Committed: the log has caught up, and nothing is counted twice.
    await new Promise((r) => setImmediate(r));
    expect(m.queries.runningOnWorker('w1')).toHaveLength(3);
    expect(registry.finishingOn('w1')).toBe(0);
    await m.close();
  });

  it('stops counting reports it could not record as finishing: their worker reports them again', async () => {
    const m = await master();
    await m.consensus.close();
    const registry = new WorkerRegistry();
    const warned = new Promise<void>((resolve) => {
      const watching = { warn: () => resolve() } as unknown as typeof log;
      new ReportBatcher(m.consensus, () => {}, watching, registry).add('w1', [done(0)]);
      expect(registry.finishingOn('w1')).toBe(1);
    });
    await warned;
    await new Promise((r) => setImmediate(r));
    expect(registry.finishingOn('w1')).toBe(0);
    await m.close();
  });

  it('acknowledges nothing it could not record: the worker sends those reports again', async () => {
    const m = await master();
    await m.consensus.close();
    const acks: TaskRef[][] = [];
    const warned = new Promise<void>((resolve) => {
      const watching = { warn: () => resolve() } as unknown as typeof log;
      new ReportBatcher(m.consensus, (_, tasks) => acks.push(tasks), watching).add('w1', [done(0)]);
    });
    await warned;
    expect(acks).toEqual([]);
    await m.close();
  });
});

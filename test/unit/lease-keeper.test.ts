import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { LeaseKeeper } from '../../src/master/lease-keeper.js';
import { Scheduler } from '../../src/master/scheduler.js';
import { WorkerRegistry } from '../../src/master/worker-registry.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { Queries } from '../../src/state/queries.js';
import { openSingleMaster } from '../helpers/single-master.js';
import { waitFor } from '../helpers/wait.js';

// The keeper over a real master of one (its log, its apply): what it proposes, and what
// applying that does to the state and to a late report of the expired attempt.
const log = createLogger('test');
log.level = 'silent';
let dir: string;
let node: ReturnType<typeof openSingleMaster>;
let queries: Queries;
let keeper: LeaseKeeper;
const GRACE = 1_000;
const STARTED = 1_000_000;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weir-lease-'));
  node = openSingleMaster(dir, log);
  await node.leading;
  queries = new Queries(node.state);
  const registry = new WorkerRegistry();
  keeper = new LeaseKeeper(
    node.consensus,
    queries,
    registry,
    new Scheduler(node.consensus, queries, registry, log),
    log,
    GRACE,
  );
  const c = node.consensus;
  await c.propose({ type: 'registerWorker', at: 1, worker_id: 'w1', address: 'a:1', max_tasks: 1 });
  const config = normalizeBatchConfig({ operation: 'noop', task_count: 1, timeout_ms: 2_000, max_retries: 1 });
  await c.propose({ type: 'submitJob', at: 2, job_id: 'j', name: 'j', job_type: 'batch', config });
  await c.propose({
    type: 'assignTasks',
    at: STARTED,
    assignments: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w1' }],
  });
});
afterEach(async () => {
  vi.restoreAllMocks();
  keeper.stop();
  await node.close();
  rmSync(dir, { recursive: true, force: true });
});

const task = () => queries.tasksOfJob('j', 10)[0]!;

describe('the lease keeper of a leader', () => {
  it('fails an attempt past its lease through the log, charged, and ignores its late report', async () => {
    // It began leading long after the attempt started: the lease counts from then.
    const since = Date.now();
    keeper.start();
    keeper.check(since + 2_000 + GRACE);
    expect(task()).toMatchObject({ status: 'running', attempt: 1 });
    keeper.check(since + 2_000 + GRACE + 1_000);
    await waitFor('the expiry to be applied', () => task().status === 'pending');
    expect(task()).toMatchObject({ attempt: 2, failures: 1 });
    expect(JSON.parse(task().error!)).toMatchObject({
      name: 'lease_expired',
      message: expect.stringMatching(/^lease expired on worker w1 after \d+ ms/),
    });

    const late = await node.consensus.propose({
      type: 'completeTasks',
      at: Date.now(),
      completions: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w1', result_json: '["late"]' }],
    });
    expect(late).toMatchObject({ ok: true, accepted: [] });
    expect(task()).toMatchObject({ status: 'pending', attempt: 2 });
  });

  it('reads only the running attempts old enough to be past a lease, and none in its first grace as leader', async () => {
    const reads: number[] = [];
    const all = queries.runningAttempts.bind(queries);
    queries.runningAttempts = (before?: number) => {
      const found = all(before);
      reads.push(found.length);
      return found;
    };
    // Its leadership starts at `since` exactly (a millisecond later under load and the check
    // below would still be in its grace).
    const since = Date.now();
    vi.spyOn(Date, 'now').mockReturnValueOnce(since);
    keeper.start();
    keeper.check(since + GRACE - 1); // no lease can be over yet: nothing read
    expect(reads).toEqual([]);
    // An attempt started now, beside the one started long ago: only the old one is read.
    const c = node.consensus;
    await c.propose({ type: 'registerWorker', at: 3, worker_id: 'w2', address: 'a:2', max_tasks: 1 });
    const config = normalizeBatchConfig({ operation: 'noop', task_count: 1, timeout_ms: 2_000, max_retries: 1 });
    await c.propose({ type: 'submitJob', at: 4, job_id: 'k', name: 'k', job_type: 'batch', config });
    const now = since + GRACE;
    await c.propose({
      type: 'assignTasks',
      at: now,
      assignments: [{ job_id: 'k', idx: 0, attempt: 1, worker_id: 'w2' }],
    });
    keeper.check(now);
    expect(reads).toEqual([1]);
    expect(
      all()
        .map((a) => a.job_id)
        .sort(),
    ).toEqual(['j', 'k']);
  });

  it('does nothing while this master does not lead (stopped)', () => {
    keeper.check(STARTED + 1e9);
    expect(task()).toMatchObject({ status: 'running', attempt: 1 });
  });
});

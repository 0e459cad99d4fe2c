import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Scheduler } from '../../src/master/scheduler.js';
import { WorkerRegistry } from '../../src/master/worker-registry.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { decodeToWorker, type ToWorker } from '../../src/protocol/worker-channel.js';
import type { JobConfig, Results } from '../../src/state/commands.js';
import { Queries } from '../../src/state/queries.js';
import { openSingleMaster } from '../helpers/single-master.js';
import { waitFor } from '../helpers/wait.js';

// A submit that carries its job's first assignments (SubmitJob.assignments), over a real
// master of one (its log, its apply): the task leaves after one committed entry, not two.
const log = createLogger('test');
log.level = 'silent';
let dir: string;
let node: ReturnType<typeof openSingleMaster>;
let queries: Queries;
let scheduler: Scheduler;
let registry: WorkerRegistry;
/** What each worker's channel was sent, decoded. */
const sent = new Map<string, ToWorker[]>();

/** A worker channel that is open and keeps what it is sent. */
function channel(workerId: string): WebSocket {
  sent.set(workerId, []);
  const socket = {
    readyState: 1,
    send: (bytes: Buffer) => {
      const d = decodeToWorker(bytes);
      if (d.ok) sent.get(workerId)!.push(d.value);
    },
  };
  return socket as unknown as WebSocket;
}

const noop = (task_count: number) => normalizeBatchConfig({ operation: 'noop', task_count });

/**
 * Submits as the jobs route does: placements, then the entry appended, then its tasks sent,
 * then `submitted` once it is applied. `meanwhile` runs after the tasks left and before the
 * entry is applied (the leader writing its log).
 */
async function submit(
  job_id: string,
  config: JobConfig,
  placed = scheduler.placeOnSubmit(job_id, config),
  { idempotency_key, meanwhile }: { idempotency_key?: string; meanwhile?: () => void } = {},
) {
  let applied: Results['submitJob'] | undefined;
  const proposal = node.consensus.propose({
    type: 'submitJob',
    at: Date.now(),
    job_id,
    name: job_id,
    job_type: 'batch',
    config,
    ...(idempotency_key ? { idempotency_key } : {}),
    ...(placed.length ? { assignments: placed } : {}),
  });
  scheduler.sendOnSubmit(job_id, config, placed);
  meanwhile?.();
  try {
    applied = await proposal;
    return { placed, assigned: applied.ok ? applied.assigned : undefined };
  } finally {
    scheduler.submitted(job_id, placed, applied && (applied.ok ? applied : {}));
  }
}

const assignsSent = (workerId: string) =>
  sent.get(workerId)!.flatMap((m) => (m.t === 'assign' ? m.tasks.map((t) => `${t.job_id}/${t.idx}`) : []));

/** A worker's report that task 0 (attempt 1) of `job_id` completed. */
const done = (job_id: string, worker_id: string) => ({ job_id, idx: 0, attempt: 1, worker_id, result_json: 'null' });

const cancelsSent = (workerId: string) =>
  sent.get(workerId)!.flatMap((m) => (m.t === 'cancel' ? m.tasks.map((t) => `${t.job_id}/${t.idx}/${t.attempt}`) : []));

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weir-submit-place-'));
  node = openSingleMaster(dir, log);
  await node.leading;
  queries = new Queries(node.state);
  registry = new WorkerRegistry();
  for (const [w, slots] of [
    ['w1', 1],
    ['w2', 1],
  ] as const) {
    await node.consensus.propose({ type: 'registerWorker', at: 1, worker_id: w, address: `${w}:1`, max_tasks: slots });
    registry.attach(w, channel(w), Date.now());
  }
  scheduler = new Scheduler(node.consensus, queries, registry, log);
});
afterEach(async () => {
  scheduler.stop();
  await node.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a submit carrying its first assignments', () => {
  it('runs a one-task job on a free slot with one log entry, its task sent before the entry is written', async () => {
    scheduler.start();
    const before = node.consensus.status().commit_index;
    let sentEarly: string[] = [];
    const { placed, assigned } = await submit('j', noop(1), undefined, {
      meanwhile: () => (sentEarly = [...assignsSent('w1'), ...assignsSent('w2')]),
    });
    expect(sentEarly).toEqual(['j/0']);
    expect(placed).toHaveLength(1);
    expect(assigned).toEqual([{ job_id: 'j', idx: 0, attempt: 1, worker_id: placed[0]!.worker_id }]);
    expect(node.consensus.status().commit_index).toBe(before + 1);
    expect(queries.job('j')).toMatchObject({ status: 'running', running: 1, pending: 0 });
    // Sent once: not again when the entry is applied.
    expect(assignsSent(placed[0]!.worker_id)).toEqual(['j/0']);
  });

  it('a report that arrives before its submit is applied is applied after it: the job completes', async () => {
    scheduler.start();
    let report: Promise<Results['completeTasks']> | undefined;
    await submit('j', noop(1), undefined, {
      meanwhile: () => {
        const worker_id = (['w1', 'w2'] as const).find((w) => assignsSent(w).includes('j/0'))!;
        // The worker was quick: its report is proposed while the submit is still being written.
        report = node.consensus.propose({ type: 'completeTasks', at: Date.now(), completions: [done('j', worker_id)] });
      },
    });
    expect(await report).toMatchObject({ ok: true, accepted: [{ job_id: 'j', idx: 0, attempt: 1 }] });
    expect(queries.job('j')).toMatchObject({ status: 'completed', completed: 1, running: 0 });
  });

  it('the report of a task whose submit never committed changes nothing (its job does not exist)', async () => {
    scheduler.start();
    const placed = scheduler.placeOnSubmit('ghost', noop(1));
    scheduler.sendOnSubmit('ghost', noop(1), placed); // the leader died before writing the entry
    scheduler.submitted('ghost', placed, undefined);
    const r = await node.consensus.propose({
      type: 'completeTasks',
      at: Date.now(),
      completions: [done('ghost', placed[0]!.worker_id)],
    });
    expect(r).toMatchObject({ ok: true, accepted: [] });
    expect(queries.job('ghost')).toBeUndefined();
    expect(queries.runningByWorker().size).toBe(0);
  });

  it('a duplicate submit (same Idempotency-Key) stops the task it sent early, and nothing else changes', async () => {
    scheduler.start();
    await submit('first', noop(1), undefined, { idempotency_key: 'k' });
    const firstOn = (['w1', 'w2'] as const).find((w) => assignsSent(w).includes('first/0'))!;
    const other = firstOn === 'w1' ? 'w2' : 'w1';
    const { placed, assigned } = await submit('again', noop(1), undefined, { idempotency_key: 'k' });
    expect(placed).toEqual([{ idx: 0, worker_id: other }]);
    expect(assigned).toBeUndefined();
    expect(assignsSent(other)).toEqual(['again/0']);
    expect(cancelsSent(other)).toEqual(['again/0/1']);
    expect(queries.job('again')).toBeUndefined();
    expect(queries.job('first')).toMatchObject({ status: 'running', running: 1 });
  });

  it('places no more tasks than there are free slots; the scheduler places the rest as slots free', async () => {
    scheduler.start();
    const { placed } = await submit('j', noop(5));
    expect(placed.map((p) => p.idx)).toEqual([0, 1]);
    expect(new Set(placed.map((p) => p.worker_id))).toEqual(new Set(['w1', 'w2']));
    expect(queries.job('j')).toMatchObject({ running: 2, pending: 3 });
  });

  it('does not let a new job overtake tasks already waiting, nor take a slot another submit in flight holds', async () => {
    scheduler.start();
    await submit('first', noop(3)); // both slots taken, one task waits
    expect(scheduler.placeOnSubmit('second', noop(1))).toEqual([]);

    await node.consensus.propose({ type: 'cancelJob', at: Date.now(), job_id: 'first' });
    const a = scheduler.placeOnSubmit('a', noop(2));
    expect(a).toHaveLength(2);
    // Placed but not yet committed: those slots are spoken for.
    expect(scheduler.placeOnSubmit('b', noop(1))).toEqual([]);
    await submit('a', noop(2), a);
    expect(queries.job('a')).toMatchObject({ running: 2 });
  });

  it('leaves streaming and data jobs, and a scheduler that is not running, to the scheduler pass', async () => {
    expect(scheduler.placeOnSubmit('j', noop(1))).toEqual([]); // not started: not leading yet
    scheduler.start();
    const wordcount = normalizeBatchConfig({
      operation: 'wordcount',
      input: { url: 'http://127.0.0.1:1/in.txt' },
      task_count: 2,
    });
    expect(scheduler.placeOnSubmit('w', wordcount)).toEqual([]);
    const stream = { operation: 'stream', task_count: 1 } as unknown as JobConfig;
    expect(scheduler.placeOnSubmit('s', stream)).toEqual([]);
  });

  it('a submit whose entry is not committed by us frees what it placed and stops nothing (the next leader may commit it)', async () => {
    scheduler.start();
    const placed = scheduler.placeOnSubmit('j', noop(2));
    expect(placed).toHaveLength(2);
    scheduler.submitted('j', placed, undefined);
    expect(scheduler.placeOnSubmit('k', noop(2))).toHaveLength(2);
    expect(assignsSent('w1')).toEqual([]);
    expect(cancelsSent('w1')).toEqual([]);
    expect(cancelsSent('w2')).toEqual([]);
  });
});

describe('jobs over, named to the workers', () => {
  const forgets = (workerId: string) => sent.get(workerId)!.filter((m) => m.t === 'forget');

  it('together, shortly after, not from inside the apply that ended them (ahead of the answer to a waiting client)', async () => {
    scheduler.forgetJobs(['a']);
    scheduler.forgetJobs(['b', 'c']);
    expect(forgets('w1')).toEqual([]);
    await waitFor('the frames', () => forgets('w1').length > 0 && forgets('w2').length > 0, 5_000, 10);
    for (const w of ['w1', 'w2']) expect(forgets(w)).toEqual([{ t: 'forget', job_ids: ['a', 'b', 'c'] }]);
  });

  it('a burst in frames of at most 1,000 jobs', async () => {
    scheduler.forgetJobs(Array.from({ length: 2500 }, (_, i) => `j${i}`));
    await waitFor('the frames', () => forgets('w1').length === 3, 5_000, 10);
    expect(forgets('w1').map((m) => (m.t === 'forget' ? m.job_ids.length : 0))).toEqual([1000, 1000, 500]);
  });
});

describe('a scheduler pass of many tasks', () => {
  it('sends each worker one frame, however many entries the pass is cut into', async () => {
    // Two workers of 600 slots: a pass places 1,200 tasks, alternating, in entries of 500.
    for (const w of ['big1', 'big2']) {
      await node.consensus.propose({ type: 'registerWorker', at: 1, worker_id: w, address: `${w}:1`, max_tasks: 600 });
      registry.attach(w, channel(w), Date.now());
    }
    await submit('many', noop(1202), []);
    scheduler.start();
    await waitFor('every task assigned', () => queries.job('many')?.pending === 0, 10_000, 10);
    const frames = (w: string) => sent.get(w)!.filter((m) => m.t === 'assign').length;
    expect(assignsSent('big1').length + assignsSent('big2').length).toBe(1200);
    expect([frames('big1'), frames('big2')]).toEqual([1, 1]);
  });
});

describe('tasks sent ahead of the commit', () => {
  it('are not sent for entries the log refused to append (a hand-over under way)', async () => {
    let refused = 0;
    const refusing = {
      ...node.consensus,
      isLeader: () => true,
      voters: () => 1,
      propose: () => {
        refused++;
        return Promise.reject(new Error('a leadership hand-over is under way; retry'));
      },
    } as unknown as typeof node.consensus;
    await submit('queued', noop(2), []);
    const s = new Scheduler(refusing, queries, registry, log);
    s.start();
    await waitFor('a pass to propose', () => refused > 0, 2_000, 5);
    s.stop();
    expect([...assignsSent('w1'), ...assignsSent('w2')]).toEqual([]);
  });
});

describe('a retried task', () => {
  /** Job `a`'s task 0 failed on w1 a second ago (its backoff over), task 1 still running on w2. */
  async function failedOnW1() {
    scheduler.start();
    const { placed } = await submit('a', noop(2));
    const on = (idx: number) => placed.find((p) => p.idx === idx)!.worker_id;
    expect([on(0), on(1)].sort()).toEqual(['w1', 'w2']);
    const w = on(0);
    await node.consensus.propose({
      type: 'failTasks',
      at: Date.now() - 1_000,
      failures: [
        { job_id: 'a', idx: 0, attempt: 1, worker_id: w, error: { message: 'ENOSPC: no space left on device' } },
      ],
    });
    return { failedOn: w, other: on(1) };
  }

  it('waits for a slot on another worker rather than going back to the one it failed on; others take that slot', async () => {
    const { failedOn, other } = await failedOnW1();
    await submit('b', noop(1), []);
    scheduler.kick();
    await waitFor("b's task placed", () => queries.job('b')?.running === 1, 5_000, 5);
    // The slot the retry left went to the next job, not back to the retry.
    expect(assignsSent(failedOn)).toContain('b/0');
    expect(assignsSent(failedOn).filter((t) => t === 'a/0')).toHaveLength(1);
    expect(queries.job('a')).toMatchObject({ pending: 1 });
    // Room on the other worker: the retry goes there.
    await node.consensus.propose({
      type: 'completeTasks',
      at: Date.now(),
      completions: [{ job_id: 'a', idx: 1, attempt: 1, worker_id: other, result_json: 'null' }],
    });
    scheduler.kick();
    await waitFor('the retry placed', () => assignsSent(other).includes('a/0'), 5_000, 5);
  });
});

// The janitor: the leader keeps proposing slices of a deleted job until none is left (also
// those a former leader left unfinished), deletes jobs past their retention, forgets dead
// workers; every master removes its copy of an upload no job reads any more.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import type { Applied } from '../../src/consensus/consensus.js';
import { newUploadId, uploadMadeAt } from '../../src/common/ids.js';
import { Janitor, type LocalUploads } from '../../src/master/janitor.js';
import type { ClusterConsensus } from '../../src/master/cluster-log.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { PURGE_SLICE_ROWS } from '../../src/state/apply.js';
import type { Command, Results } from '../../src/state/commands.js';
import { LifecycleQueries } from '../../src/state/lifecycle-queries.js';
import { Queries } from '../../src/state/queries.js';
import type { StateMachine } from '../../src/state/state-machine.js';
import { registerWorkerCommand, stateEachTest, submitJobCommand } from '../helpers/state.js';

const UP = `up_${'b'.repeat(32)}`;
const log = createLogger('janitor-test');
log.level = 'silent';

const state = stateEachTest('weir-janitor-');
const { apply } = state;
let sm: StateMachine;
let leader: boolean;
let proposed: Command[];
let janitor: Janitor;
let held: Set<string>;

/** Consensus of one master, in memory: a proposal is applied at once, and its effects follow. */
const consensus = {
  isLeader: () => leader,
  propose: async (command: Command) => {
    proposed.push(command);
    const result = apply(command);
    janitor.onApplied([{ type: command.type, command, result } as Applied<Command, Results>]);
    return result;
  },
} as unknown as ClusterConsensus;

/** Copies held here, and when each began (an id's time, or a legacy copy's file time). */
const madeAt = new Map<string, number>();
const uploads: LocalUploads = {
  ids: () => [...held],
  madeAt: (id) => madeAt.get(id) ?? uploadMadeAt(id) ?? Date.now(),
  remove: async (id) => void held.delete(id),
};
let askedLeader: string[];

function completedJob(job_id: string, n: number, at: number, config: Record<string, unknown> = {}) {
  apply(submitJobCommand(job_id, { operation: 'noop', task_count: n, ...config }, {}, at));
  const idx = Array.from({ length: n }, (_, i) => i);
  apply({ type: 'assignTasks', at, assignments: idx.map((i) => ({ job_id, idx: i, attempt: 1, worker_id: 'w' })) });
  apply({
    type: 'completeTasks',
    at,
    completions: idx.map((i) => ({ job_id, idx: i, attempt: 1, worker_id: 'w', result_json: '[]' })),
  });
}

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!ok()) throw new Error(`never: ${what}`);
};

beforeEach(() => {
  sm = state.sm;
  leader = true;
  proposed = [];
  held = new Set();
  madeAt.clear();
  askedLeader = [];
  apply(registerWorkerCommand('w', 10, 0));
});
afterEach(() => {
  janitor.close();
});

const newJanitor = (retentionMs: number) =>
  (janitor = new Janitor(
    consensus,
    new LifecycleQueries(sm),
    new Queries(sm),
    uploads,
    retentionMs,
    log,
    async (id) => {
      askedLeader.push(id);
      await consensus.propose({ type: 'forgetUpload', at: Date.now(), upload_id: id });
    },
  ));

/** A job that reads upload `id`. */
const reader = (job_id: string, id: string) =>
  apply({
    type: 'submitJob',
    at: 0,
    job_id,
    name: job_id,
    job_type: 'batch',
    config: normalizeBatchConfig({
      operation: 'wordcount',
      input: { url: `http://m:1/uploads/${id}`, format: 'lines' },
      task_count: 1,
    }),
  });

describe('the janitor', () => {
  it('proposes purge slices one after the other until the deleted job has no row left', async () => {
    newJanitor(0);
    completedJob('big', 3 * PURGE_SLICE_ROWS + 1, 1000);
    await consensus.propose({ type: 'deleteJob', at: 2000, job_id: 'big' });
    await until('the job purged', () => proposed.filter((c) => c.type === 'purgeJob').length === 3);
    const count = (sm.db.prepare(`SELECT count(*) AS n FROM tasks`).get() as { n: number }).n;
    expect(count).toBe(0);
    expect(new LifecycleQueries(sm).purging()).toEqual([]);
  });

  it('finishes, as the new leader, a purge a former leader left half done', async () => {
    newJanitor(0);
    completedJob('big', 2 * PURGE_SLICE_ROWS, 1000);
    leader = false;
    await consensus.propose({ type: 'deleteJob', at: 2000, job_id: 'big' });
    expect(proposed.filter((c) => c.type === 'purgeJob')).toEqual([]);
    leader = true;
    await janitor.sweep();
    await until('the job purged', () => new LifecycleQueries(sm).purging().length === 0);
  });

  it('deletes jobs past the retention and forgets workers dead for longer, with the time in the command', async () => {
    newJanitor(1000);
    const now = Date.now();
    completedJob('old', 1, now - 5000);
    completedJob('new', 1, now);
    apply({ type: 'registerWorker', at: 0, worker_id: 'gone', address: 'g:1', max_tasks: 1 });
    apply({ type: 'markWorkerDead', at: now - 5000, worker_id: 'gone', reason: 'test' });
    await janitor.sweep();
    expect(
      proposed.map((c) => [c.type, 'job_id' in c ? c.job_id : 'worker_id' in c ? c.worker_id : '']).sort(),
    ).toEqual([
      ['deleteJob', 'old'],
      ['forgetWorker', 'gone'],
    ]);
    const forget = proposed.find((c) => c.type === 'forgetWorker') as Extract<Command, { type: 'forgetWorker' }>;
    expect(forget.dead_before).toBeLessThanOrEqual(forget.at - 1000);
  });

  it('keeps everything with retention 0, but honours a job’s own retention', async () => {
    newJanitor(0);
    completedJob('old', 1, Date.now() - 100_000);
    apply({
      type: 'submitJob',
      at: 0,
      job_id: 'own',
      name: 'own',
      job_type: 'batch',
      config: normalizeBatchConfig({ operation: 'noop' }),
      retention_ms: 10,
    });
    apply({ type: 'assignTasks', at: 0, assignments: [{ job_id: 'own', idx: 0, attempt: 1, worker_id: 'w' }] });
    apply({
      type: 'completeTasks',
      at: 0,
      completions: [{ job_id: 'own', idx: 0, attempt: 1, worker_id: 'w', result_json: '[]' }],
    });
    await janitor.sweep();
    expect(proposed).toEqual([expect.objectContaining({ type: 'deleteJob', job_id: 'own' })]);
  });

  it('removes, on any master, its copy of an upload whose jobs are all deleted — also one that missed the delete', async () => {
    newJanitor(0);
    leader = false;
    const input = { url: `http://m:1/uploads/${UP}`, format: 'lines' };
    apply({
      type: 'submitJob',
      at: 0,
      job_id: 'reads',
      name: 'reads',
      job_type: 'batch',
      config: normalizeBatchConfig({ operation: 'wordcount', input, task_count: 1 }),
    });
    held.add(UP);
    held.add(`up_${'c'.repeat(32)}`);
    await janitor.sweep();
    expect(held.has(UP)).toBe(true);
    // Applied without this janitor hearing of it (a snapshot installed, a master that was down).
    apply({ type: 'deleteJob', at: 1, job_id: 'reads' });
    await janitor.sweep();
    expect([...held]).toEqual([`up_${'c'.repeat(32)}`]);
  });

  it('has an upload no job read within the retention deleted through the log; a read or young one stays', async () => {
    newJanitor(60_000);
    const now = Date.now();
    const [stale, young, read] = [newUploadId(now - 61_000), newUploadId(now - 1000), newUploadId(now - 61_000)];
    const legacy = `up_${'e'.repeat(32)}`;
    madeAt.set(legacy, now - 61_000); // its copy's file time
    for (const id of [stale, young, read, legacy]) held.add(id);
    reader('reads', read);
    await janitor.sweep();
    expect(proposed.filter((c) => c.type === 'forgetUpload').map((c) => 'upload_id' in c && c.upload_id)).toEqual([
      stale,
      legacy,
    ]);
    expect([...held].sort()).toEqual([young, read].sort());
    expect(askedLeader).toEqual([]);
    // A submit naming a deleted one is refused in the log.
    expect(reader('late', stale)).toMatchObject({ ok: false, code: 'not_found' });
  });

  it('on a follower, asks the leader to delete its unclaimed copy (one the leader may not hold)', async () => {
    newJanitor(60_000);
    leader = false;
    const stale = newUploadId(Date.now() - 61_000);
    held.add(stale);
    await janitor.sweep();
    expect(askedLeader).toEqual([stale]);
    expect(held.has(stale)).toBe(false);
  });

  it('keeps unclaimed uploads for ever with retention 0', async () => {
    newJanitor(0);
    held.add(newUploadId(Date.now() - 365 * 86_400_000));
    await janitor.sweep();
    expect(proposed).toEqual([]);
    expect(held.size).toBe(1);
  });

  describe('the record of deleted uploads', () => {
    const DAY = 86_400_000;
    const deletedAt = (at: number) => {
      const id = newUploadId(at);
      expect(apply({ type: 'forgetUpload', at, upload_id: id })).toEqual({ ok: true });
      return id;
    };
    const recorded = () =>
      (sm.db.prepare(`SELECT upload_id FROM deleted_uploads ORDER BY at`).pluck().all() as string[]).sort();

    it('is pruned from rules 3 on, once older than a week (or twice the retention), in slices', async () => {
      apply({ type: 'setRules', at: 0, version: 3 });
      newJanitor(5 * DAY);
      const now = Date.now();
      const old = Array.from({ length: PURGE_SLICE_ROWS + 2 }, (_, i) => deletedAt(now - 11 * DAY - i));
      const kept = [deletedAt(now - 9 * DAY), deletedAt(now)];
      await janitor.sweep();
      const prunes = proposed.filter((c) => c.type === 'pruneDeletedUploads');
      expect(prunes).toHaveLength(2);
      // Twice the 5-day retention: 10 days.
      for (const p of prunes) expect('before' in p && p.before).toBeLessThanOrEqual(Date.now() - 10 * DAY);
      expect(recorded()).toEqual(kept.sort());
      expect(old.some((id) => recorded().includes(id))).toBe(false);
      // Nothing old left: the next sweep writes nothing to the log.
      proposed = [];
      await janitor.sweep();
      expect(proposed).toEqual([]);
    });

    it('is kept under older rules: a master that did not know the pruning would keep what others forgot', async () => {
      apply({ type: 'setRules', at: 0, version: 2 });
      newJanitor(DAY);
      const old = deletedAt(Date.now() - 30 * DAY);
      await janitor.sweep();
      expect(proposed.filter((c) => c.type === 'pruneDeletedUploads')).toEqual([]);
      // A prune in the log all the same changes nothing, alike on every master.
      expect(apply({ type: 'pruneDeletedUploads', at: Date.now(), before: Date.now() })).toMatchObject({
        ok: false,
        code: 'conflict',
        message: 'pruning deleted uploads needs rules 3; this state follows rules 2',
      });
      expect(recorded()).toEqual([old]);
    });

    it('once pruned, lets a job name the upload: it is taken as one that never was', () => {
      apply({ type: 'setRules', at: 0, version: 3 });
      const id = deletedAt(Date.now() - 30 * DAY);
      expect(reader('before', id)).toMatchObject({ ok: false, code: 'not_found' });
      expect(apply({ type: 'pruneDeletedUploads', at: Date.now(), before: Date.now() })).toEqual({
        ok: true,
        removed: 1,
        more: false,
      });
      expect(reader('after', id)).toMatchObject({ ok: true });
    });
  });
});

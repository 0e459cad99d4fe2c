// The unluckiest moments, with real processes and kill -9 (addresses 127.0.0.173–180 belong to
// this file): a master dead while the dashboard asks for every master's figures, the leader
// killed in the middle of a purge and in the middle of `weir backup`, a worker killed while it
// holds map outputs of a job being deleted, 2,000 long polls woken at once. Whatever happens,
// nothing acknowledged is lost, nothing is left half-done for good, and no process dies of it.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  freePorts,
  http,
  untilAgreedLeader,
  untilConverged,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { bearer, signedToken } from '../helpers/tokens.js';

const SECRET = 'adversary-spec-secret-of-32-bytes-or-more';
const env = { JWT_SECRET: SECRET };
const c = new Cluster('adversary');
const hosts = ['127.0.0.173', '127.0.0.174', '127.0.0.175'];
let ports: number[];
let peers: string;
let masters: MasterProc[];
let clientToken: string;
let client: Record<string, string>;

/** Starts (or restarts, on its old port and data dir) the master on `hosts[i]`. */
const startMaster = (i: number, dataDir?: string) =>
  c.master(hosts[i]!, { port: ports[i]!, env, args: ['--peers', peers], ...(dataDir ? { dataDir } : {}) });

/** The master all three name as leader now. */
async function leader(): Promise<MasterProc> {
  const agreed = await untilAgreedLeader(
    masters.map((m) => m.url),
    { procs: masters, headers: client },
  );
  return masters.find((m) => m.url === agreed.leaderUrl)!;
}

/** Starts killed master `m` again on its port and data dir, in its place in `masters`. */
async function restart(m: MasterProc): Promise<MasterProc> {
  const again = await startMaster(hosts.indexOf(m.host), m.dataDir);
  masters[masters.indexOf(m)] = again;
  return again;
}

/**
 * A job in two stages, 50,000 maps and a reduce, pending (no worker runs it): a job in stages
 * has its tasks' rows from submission, some megabytes of state.
 */
const BIG_TASKS = 50_000;
const bigJob = {
  module:
    'export function map(r, emit) { emit(String(r % 5), 1); }\nexport function reduce(k, vs) { return vs.length; }',
  data: Array.from({ length: BIG_TASKS }, (_, i) => i),
  task_count: BIG_TASKS,
  reduce_tasks: 1,
};
let big: string | undefined;

/** Opens a master's state.db read-only beside the running master, for `read`. */
function onState<T>(m: MasterProc, read: (db: Database.Database) => T): T {
  const db = new Database(join(m.dataDir, 'state.db'), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

const countOf = (db: Database.Database, sql: string, arg: unknown) => (db.prepare(sql).get(arg) as { n: number }).n;

/** What a master holds of the job of `seq`: its tasks, result rows and stream rows, and its purge mark. */
const leftOf = (m: MasterProc, seq: number, jobId: string) =>
  onState(m, (db) => ({
    jobs: countOf(db, `SELECT count(*) AS n FROM jobs WHERE job_id = ?`, jobId),
    tasks: countOf(db, `SELECT count(*) AS n FROM tasks WHERE seq = ?`, seq),
    results: countOf(db, `SELECT count(*) AS n FROM result_rows WHERE seq = ?`, seq),
    rows: countOf(db, `SELECT count(*) AS n FROM stream_rows WHERE job_id = ?`, jobId),
    purging: countOf(db, `SELECT count(*) AS n FROM purging WHERE seq = ?`, seq),
  }));

/** A digest of everything a master's state.db holds through the log (every table but meta). */
const stateDigest = (m: MasterProc) =>
  onState(m, (db) => {
    const h = createHash('sha256');
    const tables = db
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'meta'`)
      .all() as { name: string }[];
    for (const { name } of tables.sort((a, b) => a.name.localeCompare(b.name))) {
      const rows = (db.prepare(`SELECT * FROM "${name}"`).all() as Json[]).map((r) => JSON.stringify(r)).sort();
      h.update(`${name}:${rows.length}\n${rows.join('\n')}\n`);
    }
    return h.digest('hex');
  });

const seqOf = (m: MasterProc, jobId: string): Promise<number> =>
  waitFor(`${m.url} to hold job ${jobId}`, () =>
    onState(
      m,
      (db) => (db.prepare(`SELECT seq FROM jobs WHERE job_id = ?`).get(jobId) as { seq: number } | undefined)?.seq,
    ),
  );

async function submit(via: MasterProc, config: Json, name = 'adversary'): Promise<string> {
  const r = await http('POST', `${via.url}/api/jobs`, { name, type: 'batch', config }, client, 60_000);
  expect(r.status, r.text).toBe(201);
  return r.json.job_id as string;
}

beforeAll(async () => {
  clientToken = await signedToken(SECRET, { role: 'client' });
  client = bearer(clientToken);
  ports = await freePorts(hosts);
  peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
  masters = await Promise.all(hosts.map((_, i) => startMaster(i)));
  // The highest id leads once all are up: a lower one that won the first election hands the
  // lead over, and a request meeting the hand-over is refused no_leader (503).
  await untilAgreedLeader(
    masters.map((m) => m.url),
    { procs: masters, headers: client, leaderId: 175 },
  );
}, 90_000);
afterAll(() => c.cleanup());

describe('the dashboard’s view of the masters, one of three killed', () => {
  it('answers at once with the dead master marked down; 401 without a token, 403 to a worker', async () => {
    const lead = await leader();
    const dead = masters.find((m) => m !== lead)!;
    await c.stop(dead, 'SIGKILL');
    for (const asked of masters.filter((m) => m !== dead)) {
      // Asked twice: once with the dead master's answer pending, once from the reused view.
      for (let i = 0; i < 2; i++) {
        const r = await http('GET', `${asked.url}/api/cluster/masters`, undefined, client, 5000);
        expect(r.status, r.text).toBe(200);
        const view = r.json.masters as Json[];
        expect(view).toHaveLength(3);
        expect(view.find((x) => x.address === dead.url)).toMatchObject({ healthy: false });
        for (const alive of masters.filter((m) => m !== dead)) {
          expect(view.find((x) => x.address === alive.url)?.error).toBeUndefined();
        }
      }
    }
    const none = await http('GET', `${lead.url}/api/cluster/masters`);
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('unauthorized');
    const asWorker = await http(
      'GET',
      `${lead.url}/api/cluster/masters`,
      undefined,
      bearer(await signedToken(SECRET, { role: 'worker', worker_id: 'w-1' })),
    );
    expect(asWorker.status).toBe(403);
    expect(asWorker.json.error.code).toBe('forbidden');

    await restart(dead);
    await leader();
  }, 60_000);
});

describe('the leader killed in the middle of `weir backup`', () => {
  it('leaves no FILE, says what to do, and the master removes its half-made copy when it is back', async () => {
    const lead = await leader();
    big = await submit(lead, bigJob, 'big');
    await untilConverged(
      masters.map((m) => m.url),
      0,
      30_000,
      client,
    );
    const file = join(c.tmp, 'cut-short.backup');
    // Told to give up 2 s after its master is gone, not the 30 s a CLI waits out an election.
    const out = c.cli(['--master', lead.url, '--retry-for', '2s', 'backup', file], { env });
    const partial = (name: string) => name.startsWith('backup-') && name.endsWith('.db.partial');
    await waitFor('the leader to be making the backup', () => readdirSync(lead.dataDir).some(partial), 60_000, 1);
    await c.stop(lead, 'SIGKILL');
    const r = await out;
    expect(r.code, r.stdout).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`${lead.host.replace(/\./g, '\\.')}|master|leader`));
    expect(r.stderr).not.toMatch(/\n\s+at /); // a line a person reads, not a stack
    expect(existsSync(file)).toBe(false);
    expect(existsSync(`${file}.partial`)).toBe(false);
    expect(readdirSync(lead.dataDir).some(partial)).toBe(true); // what the kill left

    const back = await restart(lead);
    expect(readdirSync(back.dataDir).some(partial)).toBe(false);
    await leader();
    // The job the backup would have held is still there on every master.
    for (const m of masters) {
      const g = await http('GET', `${m.url}/api/jobs/${big}?consistency=stale`, undefined, client);
      expect(g.status, g.text).toBe(200);
    }
  }, 180_000);
});

describe('the leader killed in the middle of purging a deleted job', () => {
  it('completes the purge after the failover: the job 404, no rows left anywhere, others untouched, all alike', async () => {
    let lead = await leader();
    const other = await submit(lead, { operation: 'noop', task_count: 7 }, 'bystander');
    // 50,001 tasks' rows: the delete and ten purge slices after it.
    const doomed = big ?? (await submit(lead, bigJob, 'big'));
    await untilConverged(
      masters.map((m) => m.url),
      0,
      30_000,
      client,
    );
    const seq = await seqOf(lead, doomed);
    const otherSeq = await seqOf(lead, other);
    const otherBefore = masters.map((m) => leftOf(m, otherSeq, other));

    // The delete removes the job and the first slice of its tasks, and marks it as purging;
    // the leader then proposes the other slices one by one. It is killed as soon as it has
    // applied the delete, whether or not the DELETE's answer got out.
    const deleting = http('DELETE', `${lead.url}/api/jobs/${doomed}`, undefined, client, 60_000);
    const watch = new Database(join(lead.dataDir, 'state.db'), { readonly: true, fileMustExist: true });
    try {
      const purgeMark = watch.prepare(`SELECT count(*) AS n FROM purging WHERE seq = ?`);
      await waitFor('the leader to apply the delete', () => (purgeMark.get(seq) as { n: number }).n === 1, 30_000, 1);
    } finally {
      watch.close();
    }
    c.kill(lead, 'SIGKILL');
    await c.stop(lead, 'SIGKILL');
    const cut = leftOf(lead, seq, doomed);
    expect(cut).toMatchObject({ jobs: 0, purging: 1 });
    expect(cut.tasks).toBeGreaterThan(0);
    expect(cut.tasks).toBeLessThan(BIG_TASKS);
    expect([0, 204]).toContain((await deleting).status);

    const survivors = masters.filter((m) => m !== lead);
    await untilAgreedLeader(
      survivors.map((m) => m.url),
      { procs: survivors, timeoutMs: 30_000, headers: client },
    );
    await restart(lead);
    lead = await leader();

    for (const m of masters) {
      const g = await waitFor(`${m.url} to answer 404 for the deleted job`, async () => {
        const a = await http('GET', `${m.url}/api/jobs/${doomed}?consistency=stale`, undefined, client);
        return a.status === 404 ? a : undefined;
      });
      expect(g.json.error.code).toBe('not_found');
    }
    await waitFor(
      'every master to hold nothing of the deleted job',
      () =>
        masters.every((m) => {
          const left = leftOf(m, seq, doomed);
          return left.jobs + left.tasks + left.results + left.rows + left.purging === 0;
        }),
      60_000,
    );
    expect(masters.map((m) => leftOf(m, otherSeq, other))).toEqual(otherBefore);
    expect((await http('GET', `${lead.url}/api/jobs/${other}`, undefined, client)).json).toMatchObject({
      name: 'bystander',
      progress: { total: 7 },
    });
    await waitFor(
      'every master to hold the same state',
      async () => {
        await untilConverged(
          masters.map((m) => m.url),
          0,
          30_000,
          client,
        );
        const digests = masters.map(stateDigest);
        return digests.every((d) => d === digests[0]) ? digests : undefined;
      },
      30_000,
    );
  }, 180_000);
});

describe('two thousand long polls parked on one job, with results asked for', () => {
  it('answers every one when the job ends, and the leader keeps its term meanwhile', async () => {
    const lead = await leader();
    const term = (await http('GET', `${lead.url}/cluster/status`, undefined, client)).json.term as number;
    // No worker runs it yet: it waits until it is cancelled.
    const id = await submit(lead, { operation: 'noop', task_count: 1 });
    const parked = (m: MasterProc) =>
      http('GET', `${m.url}/metrics`).then((r) => Number(/^weir_long_polls_waiting (\d+)/m.exec(r.text)?.[1] ?? 0));
    const polls = Array.from({ length: 2000 }, () =>
      http('GET', `${lead.url}/api/jobs/${id}?wait_ms=60000&results_limit=1000`, undefined, client, 90_000),
    );
    await waitFor('the 2,000 polls to be parked on the leader', async () => (await parked(lead)) >= 2000, 60_000);
    const cancel = await http('POST', `${lead.url}/api/jobs/${id}/cancel`, undefined, client);
    expect(cancel.status, cancel.text).toBe(200);
    const answers = await Promise.all(polls);
    expect(answers.filter((a) => a.status === 200 && a.json.status === 'cancelled')).toHaveLength(2000);
    // A cancelled job has no results to bring.
    expect(answers.some((a) => 'results_page' in (a.json as object))).toBe(false);
    expect(await parked(lead)).toBe(0);
    const after = await untilAgreedLeader(
      masters.map((m) => m.url),
      { procs: masters, headers: client },
    );
    expect(after.leaderUrl).toBe(lead.url);
    expect(after.term).toBe(term);
  });
});

describe('a worker killed while it holds map outputs of a job being deleted', () => {
  let worker: WorkerProc;

  it('deletes the job all the same, and the worker comes back without crashing and drops the outputs', async () => {
    const lead = await leader();
    worker = await c.worker('127.0.0.176', lead, {
      env,
      token: clientToken,
      masters: masters.map((m) => m.url),
      maxTasks: 4,
    });
    const shuffleDir = join(worker.dataDir, 'shuffle');
    // Maps finish and leave their outputs; the reduce never ends.
    const module = 'export function map(r, emit) { emit(String(r % 5), 1); }\nexport function reduce() { for (;;) {} }';
    const id = await submit(lead, {
      module,
      data: Array.from({ length: 40 }, (_, i) => i),
      task_count: 4,
      reduce_tasks: 1,
    });
    await waitFor('the map outputs to be on the worker and the reduce to run', async () => {
      const s = await http('GET', `${worker.url}/api/status`, undefined, client);
      return (
        existsSync(join(shuffleDir, id)) && readdirSync(join(shuffleDir, id)).length === 4 && s.json?.active_tasks === 1
      );
    });
    const args = worker.child.spawnargs.slice(2);
    await c.stop(worker, 'SIGKILL');

    const del = await http('DELETE', `${lead.url}/api/jobs/${id}`, undefined, client, 30_000);
    expect(del.status, del.text).toBe(204);
    expect((await http('GET', `${lead.url}/api/jobs/${id}`, undefined, client)).status).toBe(404);

    // Back on the same address and data dir, outputs of the deleted job still on its disk.
    const back = c.spawn('worker', 'worker-again', args, env);
    await waitFor(
      'the worker back to drop the deleted job’s map outputs',
      async () => {
        if (back.exitCode !== undefined) throw new Error(`the worker exited with ${back.exitCode}:\n${c.tail(back)}`);
        const s = await http('GET', `${worker.url}/api/status`, undefined, client);
        return s.json?.connected === true && !existsSync(join(shuffleDir, id));
      },
      60_000,
    );
    for (const m of masters) expect(m.exitCode, c.tail(m)).toBeUndefined();
    // The worker works: the next job runs on it.
    const next = await submit(lead, { operation: 'multiply', factor: 2, task_count: 2 });
    const done = await waitFor(
      'the next job to complete',
      async () => {
        const g = await http('GET', `${lead.url}/api/jobs/${next}`, undefined, client);
        return g.json?.status === 'completed' ? g.json : undefined;
      },
      60_000,
    );
    expect(done.progress).toMatchObject({ total: 2, completed: 2 });
    expect(back.exitCode).toBeUndefined();
  }, 120_000);
});

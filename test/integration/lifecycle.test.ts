// Deleting jobs and retention, with real masters and workers: everything a job left goes
// (rows in every master's state.db, its upload on every master, map outputs on workers), a
// deleted job is 404 everywhere and never a 500, and --retention / config.retention delete
// finished jobs and forget dead workers by themselves (addresses 127.0.0.201–209).
import Database from 'better-sqlite3';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUploadId } from '../../src/common/ids.js';
import {
  Cluster,
  cliSync,
  freePorts,
  http,
  sleep,
  untilAgreedLeader,
  untilJobStatus,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('lifecycle');
afterAll(() => c.cleanup());

/** What a master's state.db holds of a job (read-only, beside the running master). */
function rowsOf(
  m: MasterProc,
  jobId: string,
  seq: number,
): { jobs: number; tasks: number; rows: number; results: number } {
  const db = new Database(join(m.dataDir, 'state.db'), { readonly: true, fileMustExist: true });
  try {
    const n = (sql: string, arg: unknown) => (db.prepare(sql).get(arg) as { n: number }).n;
    return {
      jobs: n(`SELECT count(*) AS n FROM jobs WHERE job_id = ?`, jobId),
      tasks: n(`SELECT count(*) AS n FROM tasks WHERE seq = ?`, seq),
      rows: n(`SELECT count(*) AS n FROM stream_rows WHERE job_id = ?`, jobId),
      results: n(`SELECT count(*) AS n FROM result_rows WHERE seq = ?`, seq),
    };
  } finally {
    db.close();
  }
}

/** The job's seq in a master's state.db, once that master has applied its submit. */
const seqOf = (m: MasterProc, jobId: string): Promise<number> =>
  waitFor(`${m.url} to hold job ${jobId}`, () => {
    const db = new Database(join(m.dataDir, 'state.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare(`SELECT seq FROM jobs WHERE job_id = ?`).get(jobId) as { seq: number } | undefined)?.seq;
    } finally {
      db.close();
    }
  });

describe('three masters, one worker, the default retention', () => {
  const hosts = ['127.0.0.201', '127.0.0.202', '127.0.0.203'];
  let masters: MasterProc[];
  let leader: MasterProc;
  let worker: WorkerProc;

  async function submit(config: unknown, name = 'job'): Promise<string> {
    const r = await http('POST', `${leader.url}/api/jobs`, { name, type: 'batch', config });
    expect(r.status, r.text).toBe(201);
    return r.json.job_id as string;
  }
  const del = (id: string, via = leader) => http('DELETE', `${via.url}/api/jobs/${id}`);
  /**
   * A delete as a client makes it through an election: a 503 (no leader yet, or leadership
   * lost before the entry was known committed) is asked again, at the next master. A 404 after
   * such a 503 is the earlier attempt having taken effect after all.
   */
  async function delThroughElections(id: string): Promise<{ status: number; refusals: string[] }> {
    const refusals: string[] = [];
    for (let turn = 0; ; turn++) {
      const via = masters[(masters.indexOf(leader) + turn) % masters.length]!;
      const r = await del(id, via);
      if (r.status !== 503 || refusals.length >= 30) return { status: r.status, refusals };
      refusals.push(`${via.host}: ${r.text}`);
      await sleep(200); // a client's backoff between attempts, not a wait for a condition
    }
  }
  const shuffleDirOf = (id: string) => join(worker.dataDir, 'shuffle', id);

  /** Until a job's 4 maps left their outputs on the worker and its one reduce runs there. */
  const untilMapsDoneAndReduceRuns = (id: string) =>
    waitFor('the map outputs to be on the worker and the reduce to run', async () => {
      const s = await http('GET', `${worker.url}/api/status`);
      const outputs = existsSync(shuffleDirOf(id)) ? readdirSync(shuffleDirOf(id)).length : 0;
      if (outputs === 4 && s.json?.active_tasks === 1) return true;
      // What a failure shows: the worker's view, the job's, the leader's view of the worker,
      // and the last lines of both (CI runs gave up here after the 100,001-task delete: the
      // worker had died of a late task of that job, fixed since).
      const job = (await http('GET', `${leader.url}/api/jobs/${id}`)).json;
      const seen = ((await http('GET', `${leader.url}/api/workers`)).json?.workers as Json[] | undefined)?.map((w) => ({
        status: w.status,
        active_tasks: w.active_tasks,
        max_tasks: w.max_tasks,
      }));
      throw new Error(
        `${outputs} outputs; worker active_tasks ${s.json?.active_tasks}, connected ${s.json?.connected}; job ${JSON.stringify(job?.progress)}; the leader sees ${JSON.stringify(seen)}\nworker:\n${c.tail(worker)}\nleader:\n${c.tail(leader, 20)}`,
      );
    });

  beforeAll(async () => {
    const ports = await freePorts(hosts);
    const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
    masters = await Promise.all(hosts.map((h, i) => c.master(h, { port: ports[i]!, args: ['--peers', peers] })));
    const agreed = await untilAgreedLeader(masters.map((m) => m.url));
    leader = masters.find((m) => m.url === agreed.leaderUrl)!;
    worker = await c.worker('127.0.0.204', leader, { masters: masters.map((m) => m.url), maxTasks: 4 });
  });

  it('deletes a completed job: 204, then 404 on every master; rows, results and its upload gone everywhere', async () => {
    const text = Array.from({ length: 200 }, (_, i) => `weir river ${i % 7}`).join('\n');
    const up = await http('POST', `${leader.url}/api/uploads`, text, { 'content-type': 'application/octet-stream' });
    expect(up.status, up.text).toBe(201);
    const uploadId = up.json.upload_id as string;
    const input = { url: up.json.url, format: 'lines' };
    const id = await submit({ operation: 'wordcount', input, task_count: 2, reduce_tasks: 2 });
    await untilJobStatus(leader.url, id, 'completed');
    expect((await http('GET', `${leader.url}/api/jobs/${id}/results`)).status).toBe(200);
    const seq = await seqOf(leader, id);
    await waitFor('every master to hold the upload and the job', () =>
      masters.every((m) => {
        const held = rowsOf(m, id, seq);
        return existsSync(join(m.dataDir, 'uploads', uploadId)) && held.tasks > 0 && held.results > 0;
      }),
    );

    const r = await del(id);
    expect(r.status, r.text).toBe(204);
    expect(r.text).toBe('');
    for (const m of masters) {
      for (const path of [`/api/jobs/${id}`, `/api/jobs/${id}/results`, `/api/jobs/${id}/tasks`]) {
        const g = await waitFor(`${m.url}${path} to be 404`, async () => {
          const a = await http('GET', `${m.url}${path}`);
          return a.status === 404 ? a : undefined;
        });
        expect(g.json.error).toMatchObject({ code: 'not_found', message: expect.stringContaining(id) });
      }
    }
    await waitFor('the job’s rows and its upload to be gone on every master', () =>
      masters.every((m) => {
        const left = rowsOf(m, id, seq);
        return (
          left.jobs + left.tasks + left.rows + left.results === 0 && !existsSync(join(m.dataDir, 'uploads', uploadId))
        );
      }),
    );
    // The worker is told by a frame of its channel, once the delete is applied: not at once.
    await waitFor('the worker to drop the job’s map outputs', () => !existsSync(shuffleDirOf(id)));
    expect((await del(id)).status).toBe(404);
  });

  it('refuses a job reading an upload deleted with its last job, and a --retention that is no duration', async () => {
    const up = await http('POST', `${leader.url}/api/uploads`, 'x\n', { 'content-type': 'application/octet-stream' });
    const input = { url: up.json.url, format: 'lines' };
    const id = await submit({ operation: 'wordcount', input, task_count: 1, reduce_tasks: 1 });
    await untilJobStatus(leader.url, id, 'completed');
    expect((await del(id)).status).toBe(204);
    const again = await http('POST', `${leader.url}/api/jobs`, {
      name: 'again',
      type: 'batch',
      config: { operation: 'wordcount', input, task_count: 1, reduce_tasks: 1 },
    });
    expect(again.status).toBe(404);
    expect(again.json.error.message).toMatch(/upload the file again/);
    const bad = cliSync(['master', '--retention', 'soon', '--data-dir', join(c.tmp, 'never')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--retention: 'soon' is not a duration/);
  });

  it('keeps an upload another job still reads', async () => {
    const up = await http('POST', `${leader.url}/api/uploads`, 'a b\nc d\n', {
      'content-type': 'application/octet-stream',
    });
    const uploadId = up.json.upload_id as string;
    const input = { url: up.json.url, format: 'lines' };
    const a = await submit({ operation: 'wordcount', input, task_count: 1, reduce_tasks: 1 });
    const b = await submit({ operation: 'wordcount', input, task_count: 1, reduce_tasks: 1 });
    await untilJobStatus(leader.url, a, 'completed');
    await untilJobStatus(leader.url, b, 'completed');
    expect((await del(a)).status).toBe(204);
    await waitFor('the delete to reach every master', async () =>
      (await Promise.all(masters.map((m) => http('GET', `${m.url}/api/jobs/${a}?consistency=stale`)))).every(
        (g) => g.status === 404,
      ),
    );
    for (const m of masters) expect(existsSync(join(m.dataDir, 'uploads', uploadId))).toBe(true);
    expect((await del(b)).status).toBe(204);
    await waitFor('the upload to be gone on every master', () =>
      masters.every((m) => !existsSync(join(m.dataDir, 'uploads', uploadId))),
    );
  });

  it('deletes an upload no job reads on DELETE /api/uploads/ID, asked of any master; refuses one a job reads', async () => {
    const follower = masters.find((m) => m !== leader)!;
    const upload = async () => {
      const up = await http('POST', `${follower.url}/api/uploads`, 'x y\n', {
        'content-type': 'application/octet-stream',
      });
      expect(up.status, up.text).toBe(201);
      return { id: up.json.upload_id as string, input: { url: up.json.url, format: 'lines' } };
    };
    const [unread, read] = [await upload(), await upload()];
    // Its URL written with escapes would hide the upload from the deletions: refused.
    const escaped = await http('POST', `${leader.url}/api/jobs`, {
      name: 'escaped',
      type: 'batch',
      config: { operation: 'wordcount', input: { url: unread.input.url.replace('/uploads/', '/%75ploads/') } },
    });
    expect(escaped.status, escaped.text).toBe(400);
    expect(escaped.json.error.message).toContain(`names upload ${unread.id} with escapes`);
    const job = await submit({ operation: 'wordcount', input: read.input, task_count: 1, reduce_tasks: 1 });
    const refused = await http('DELETE', `${follower.url}/api/uploads/${read.id}`);
    expect(refused.status, refused.text).toBe(409);
    expect(refused.json.error).toMatchObject({ code: 'conflict', message: expect.stringContaining(job) });

    // A master's sweep asks for it only once it is older than --retention by the leader's clock.
    const young = await http('DELETE', `${follower.url}/api/uploads/${unread.id}?unclaimed=true`);
    expect(young.status, young.text).toBe(409);
    expect(young.json.error.message).toMatch(/kept for --retention/);
    const r = await http('DELETE', `${follower.url}/api/uploads/${unread.id}`);
    expect(r.status, r.text).toBe(204);
    await waitFor('the deleted upload to be gone on every master', () =>
      masters.every((m) => !existsSync(join(m.dataDir, 'uploads', unread.id))),
    );
    const late = await http('POST', `${leader.url}/api/jobs`, {
      name: 'late',
      type: 'batch',
      config: { operation: 'wordcount', input: unread.input, task_count: 1 },
    });
    expect(late.status, late.text).toBe(404);
    expect(late.json.error.message).toMatch(/upload the file again/);
    for (const bad of ['up_xyz', '..%2Fstate.db', `up_${'a'.repeat(31)}`]) {
      expect((await http('DELETE', `${leader.url}/api/uploads/${bad}`)).status, bad).toBe(400);
    }
    for (const m of masters) expect(existsSync(join(m.dataDir, 'uploads', read.id))).toBe(true);
    // The CLI: a line each, and a non-zero exit for the one a job still reads.
    const another = await upload();
    const cli = await c.cli(['delete', another.id, read.id, '--master', follower.url]);
    expect(cli.code, cli.stderr).toBe(1);
    expect(cli.stdout.trim()).toBe(`deleted upload ${another.id}`);
    expect(cli.stderr).toMatch(new RegExp(`could not delete upload ${read.id}: job ${job} reads`));
  });

  it('a copy no job read within the retention, on a follower alone, is deleted through the leader', async () => {
    const follower = masters.find((m) => m !== leader)!;
    // A copy eight days old (the retention is 7 days) that only this follower holds: as an
    // upload refused after some masters took it, or acknowledged without the leader, leaves.
    const id = newUploadId(Date.now() - 8 * 86_400_000);
    const put = await http('PUT', `${follower.url}/api/uploads/${id}`, 'old\n', {
      'content-type': 'application/octet-stream',
    });
    expect(put.status, put.text).toBe(201);
    await waitFor(
      'the follower’s sweep to have the copy deleted',
      () => !existsSync(join(follower.dataDir, 'uploads', id)),
      30_000,
    );
    await c.waitForLog(follower, 'asked the leader to delete an upload no job read within the retention');
    const late = await http('POST', `${leader.url}/api/jobs`, {
      name: 'late',
      type: 'batch',
      config: {
        operation: 'wordcount',
        input: { url: `${follower.url}/uploads/${id}`, format: 'lines' },
        task_count: 1,
      },
    });
    expect(late.status, late.text).toBe(404);
  });

  it('deletes a running job: its tasks stop on the worker and its map outputs go', async () => {
    // Maps finish and leave their outputs; the reduce never ends.
    const module = 'export function map(r, emit) { emit(String(r % 5), 1); }\nexport function reduce() { for (;;) {} }';
    const id = await submit({ module, data: Array.from({ length: 40 }, (_, i) => i), task_count: 4, reduce_tasks: 1 });
    await untilMapsDoneAndReduceRuns(id);
    const via = masters.find((m) => m !== leader)!; // a follower forwards it to the leader
    expect((await del(id, via)).status).toBe(204);
    expect((await http('GET', `${leader.url}/api/jobs/${id}`)).status).toBe(404);
    await waitFor('the worker to stop the reduce and drop the map outputs', async () => {
      const s = await http('GET', `${worker.url}/api/status`);
      return s.json?.active_tasks === 0 && !existsSync(shuffleDirOf(id));
    });
    // The slot is free: the next job runs.
    const next = await submit({ operation: 'noop', task_count: 2 });
    await untilJobStatus(leader.url, next, 'completed');
  });

  it('answers 404 {error} for an unknown job, and 400 for an id that cannot be one', async () => {
    const r = await del('job-never-was');
    expect(r.status).toBe(404);
    expect(r.json.error).toMatchObject({ code: 'not_found', message: expect.stringContaining('job-never-was') });
    const bad = await http('DELETE', `${leader.url}/api/jobs/${'x'.repeat(65)}`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('validation_failed');
  });

  it('never answers 500 to GETs of a job being deleted under them', async () => {
    const id = await submit({ operation: 'noop', task_count: 2000 });
    await untilJobStatus(leader.url, id, 'completed', 120_000);
    let stop = false;
    const seen = new Map<number, number>();
    const readers = masters.flatMap((m) =>
      ['', '/results?limit=50', '/tasks?limit=50'].map(async (path) => {
        while (!stop) {
          const g = await http('GET', `${m.url}/api/jobs/${id}${path}`);
          seen.set(g.status, (seen.get(g.status) ?? 0) + 1);
          if (g.status === 404) expect(g.json.error.code).toBe('not_found');
        }
      }),
    );
    await waitFor('the readers to get going', () => (seen.get(200) ?? 0) >= 9);
    expect((await del(id)).status).toBe(204);
    await waitFor('every reader to see the job gone', () => (seen.get(404) ?? 0) >= 30);
    stop = true;
    await Promise.all(readers);
    expect([...seen.keys()].sort()).toEqual([200, 404]);
  });

  it('`weir delete` prints a line per job and exits non-zero when one could not be deleted', async () => {
    const a = await submit({ operation: 'noop' });
    const b = await submit({ operation: 'noop' });
    await untilJobStatus(leader.url, b, 'completed');
    const r = await c.cli(['delete', a, 'job-unknown', b, '--master', masters.map((m) => m.url).join(',')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual([`deleted job ${a}`, `deleted job ${b}`]);
    expect(r.stderr).toMatch(/could not delete job job-unknown: .*job-unknown/);
    expect((await http('GET', `${leader.url}/api/jobs/${a}`)).status).toBe(404);
    const ok = await c.cli(['delete', '--master', leader.url, await submit({ operation: 'noop' })]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('deletes a finished job by itself once its own config.retention has passed', async () => {
    const short = await submit({ operation: 'noop', retention: '1s' });
    const kept = await submit({ operation: 'noop' });
    await untilJobStatus(leader.url, kept, 'completed');
    await waitFor(
      'the job with retention 1s to be deleted',
      async () => (await http('GET', `${leader.url}/api/jobs/${short}`)).status === 404,
      20_000,
    );
    expect((await http('GET', `${leader.url}/api/jobs/${kept}`)).status).toBe(200);
    const bad = await http('POST', `${leader.url}/api/jobs`, {
      name: 'x',
      type: 'batch',
      config: { retention: 'soon' },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/config.retention/);
  });

  it('deletes a running job of 100,001 tasks in slices; measured, not timed', async () => {
    const data = Array.from({ length: 100_000 }, (_, i) => `w${i % 100}`);
    const id = await submit({ operation: 'wordcount', data, task_count: 100_000, reduce_tasks: 1 });
    const seq = await seqOf(leader, id);
    await waitFor(
      'every master to hold the job’s rows',
      () => masters.every((m) => rowsOf(m, id, seq).tasks === 100_001),
      60_000,
    );
    const termBefore = (await http('GET', `${leader.url}/cluster/status`)).json.term;
    const t0 = Date.now();
    const deleted = await delThroughElections(id);
    const acked = Date.now() - t0;
    if (deleted.refusals.length > 0) console.log(`the delete was refused first:\n${deleted.refusals.join('\n')}`);
    expect([204, ...(deleted.refusals.length > 0 ? [404] : [])], deleted.refusals.join('\n')).toContain(deleted.status);
    await waitFor(
      'the job’s rows to be gone on every master',
      () => masters.every((m) => rowsOf(m, id, seq).tasks === 0),
      120_000,
    );
    const gone = Date.now() - t0;
    const termAfter = (await http('GET', `${leader.url}/cluster/status`)).json.term;
    // The line follows the last slice, and a log's writes are asynchronous: polled for, not read once.
    const purged = await waitFor(`a master to log the purge of seq ${seq}`, () =>
      masters
        .flatMap((m) => c.log(m).split('\n'))
        .find((l) => l.includes("purged a deleted job's rows") && l.includes(`"seq":${seq},`)),
    ).catch(() => undefined);
    console.log(
      `delete of a 100,001-task job on 3 masters: 204 after ${acked} ms, rows gone everywhere after ${gone} ms; term ${termBefore} → ${termAfter}; leader: ${purged ?? '(no purge line)'}`,
    );
    expect(purged).toBeDefined();
    // A change of term is shown with its cause (a planned hand-over to the highest id, or an election).
    if (termAfter !== termBefore) {
      const why = masters.flatMap((m) =>
        c
          .log(m)
          .split('\n')
          .filter((l) => /handing leadership|"msg":"leading"|no longer leading/.test(l))
          .map((l) => `${m.host}: ${l.slice(0, 200)}`),
      );
      console.log(`terms changed:\n${why.join('\n')}`);
    }
  });

  it('a worker away when its job was deleted drops the job’s map outputs and stops its tasks when it is back', async () => {
    const module = 'export function map(r, emit) { emit(String(r % 5), 1); }\nexport function reduce() { for (;;) {} }';
    const id = await submit({ module, data: Array.from({ length: 40 }, (_, i) => i), task_count: 4, reduce_tasks: 1 });
    await untilMapsDoneAndReduceRuns(id);
    const workerId = (await http('GET', `${worker.url}/api/status`)).json.worker_id as string;
    c.kill(worker, 'SIGSTOP');
    try {
      await waitFor(
        'the stopped worker to be declared dead',
        async () =>
          ((await http('GET', `${leader.url}/api/workers`)).json.workers as Json[]).some(
            (w) => w.worker_id === workerId && w.status === 'dead',
          ),
        20_000,
      );
      expect((await del(id)).status).toBe(204);
      expect(existsSync(shuffleDirOf(id))).toBe(true);
    } finally {
      c.kill(worker, 'SIGCONT');
    }
    await waitFor(
      'the worker, back, to stop the deleted job’s reduce and drop its map outputs',
      async () => {
        const s = await http('GET', `${worker.url}/api/status`);
        return s.json?.connected === true && s.json?.active_tasks === 0 && !existsSync(shuffleDirOf(id));
      },
      30_000,
    );
  });

  // Last in this block: it kills the leader. A job that ends is named to its workers 100 ms
  // after its apply (Scheduler.forgetJobs); a leader that dies within those 100 ms never says
  // it. The worker names the jobs whose map outputs it keeps in its hello to the next leader,
  // which tells it which are over.
  it('a leader killed before it named a finished job to its worker: the next leader has the worker drop the job’s map outputs', async (ctx) => {
    const module =
      'export function map(r, emit) { emit(String(r % 5), 1); }\nexport function reduce(k, vs) { return vs.length; }';
    const config = { module, data: Array.from({ length: 40 }, (_, i) => i), task_count: 4, reduce_tasks: 1 };
    // Answered once the job's end is applied on the leader: its forget is then 100 ms away.
    // The leader the cluster settles on: the highest id, once its hand-over is done.
    const settled = await untilAgreedLeader(
      masters.map((m) => m.url),
      { leaderId: 203 },
    );
    leader = masters.find((m) => m.url === settled.leaderUrl)!;
    const term = settled.term;
    const r = await http(
      'POST',
      `${leader.url}/api/jobs?wait_ms=30000`,
      { name: 'forget', type: 'batch', config },
      {},
      40_000,
    );
    const answeredAt = performance.now();
    c.kill(leader, 'SIGKILL');
    const killedWithinMs = performance.now() - answeredAt;
    expect(r.status, r.text).toBe(201);
    expect(r.json.status, `${JSON.stringify(r.json.progress)}\nleader:\n${c.tail(leader, 20)}`).toBe('completed');
    const id = r.json.job_id as string;
    // The map outputs the reduce read are still there: nothing told the worker the job is over.
    // Unless the answer reached this process more than the forget's 100 ms after the apply (a
    // loaded CI run): then the leader named the job before it died, and the case is not met.
    if (!existsSync(shuffleDirOf(id))) {
      console.log(
        `the worker had dropped the outputs before the kill (${killedWithinMs.toFixed(0)} ms after the answer): the forget went out first; not met this run`,
      );
      ctx.skip();
    }
    if (killedWithinMs > 50)
      console.log(`the kill came ${killedWithinMs.toFixed(0)} ms after the answer: the forget may have gone out`);

    const rest = masters.filter((m) => m !== leader);
    const agreed = await untilAgreedLeader(
      rest.map((m) => m.url),
      { minTerm: term + 1 },
    );
    leader = rest.find((m) => m.url === agreed.leaderUrl)!;
    await waitFor(
      'the worker, connected to the next leader, to drop the finished job’s map outputs',
      async () => {
        const s = await http('GET', `${worker.url}/api/status`);
        return s.json?.connected === true && !existsSync(shuffleDirOf(id));
      },
      30_000,
    );
    expect((await http('GET', `${leader.url}/api/jobs/${id}`)).json.status).toBe('completed');
  });
});

describe('one master with --retention 2s', () => {
  let m: MasterProc;
  let worker: WorkerProc;

  async function submit(config: unknown): Promise<string> {
    const r = await http('POST', `${m.url}/api/jobs`, { name: 'r', type: 'batch', config });
    expect(r.status, r.text).toBe(201);
    return r.json.job_id as string;
  }
  const status = async (id: string) => (await http('GET', `${m.url}/api/jobs/${id}`)).status;

  beforeAll(async () => {
    m = await c.master('127.0.0.205', { args: ['--retention', '2s'] });
    worker = await c.worker('127.0.0.206', m, { maxTasks: 2 });
  });

  it('deletes a finished job by itself, leaves a running one and one whose config.retention is longer', async () => {
    const running = await submit({ operation: 'sleep', ms: 600_000, task_count: 1 });
    const done = await submit({ operation: 'noop' });
    const kept = await submit({ operation: 'noop', retention: '1h' });
    const forever = await submit({ operation: 'noop', retention: '0' });
    await untilJobStatus(m.url, kept, 'completed');
    await untilJobStatus(m.url, forever, 'completed');
    await waitFor(
      'the finished job to be deleted by the retention sweep',
      async () => (await status(done)) === 404,
      20_000,
    );
    expect(await status(running)).toBe(200);
    expect(await status(kept)).toBe(200);
    expect(await status(forever)).toBe(200);
    // A cancelled job has finished too.
    expect((await http('POST', `${m.url}/api/jobs/${running}/cancel`)).status).toBe(200);
    await waitFor('the cancelled job to be deleted', async () => (await status(running)) === 404, 20_000);
    expect(await status(kept)).toBe(200);
  });

  it('deletes an upload no job read within the retention', async () => {
    const up = await http('POST', `${m.url}/api/uploads`, 'never read\n', {
      'content-type': 'application/octet-stream',
    });
    expect(up.status, up.text).toBe(201);
    const id = up.json.upload_id as string;
    await waitFor('the unclaimed upload to be deleted', () => !existsSync(join(m.dataDir, 'uploads', id)), 20_000);
    await c.waitForLog(m, 'deleted an upload no job read within the retention');
    const late = await http('POST', `${m.url}/api/jobs`, {
      name: 'late',
      type: 'batch',
      config: { operation: 'wordcount', input: { url: up.json.url, format: 'lines' }, task_count: 1 },
    });
    expect(late.status, late.text).toBe(404);
  });

  it('forgets a worker killed and declared dead, once the retention has passed', async () => {
    const doomed = await c.worker('127.0.0.207', m);
    const idOf = async () =>
      ((await http('GET', `${m.url}/api/workers`)).json.workers as Json[]).find((w) => w.address === doomed.address);
    await c.stop(doomed, 'SIGKILL');
    await waitFor('the killed worker to be declared dead', async () => (await idOf())?.status === 'dead', 20_000);
    await waitFor('the dead worker to be forgotten', async () => (await idOf()) === undefined, 20_000);
    // The live one stays.
    const all = (await http('GET', `${m.url}/api/workers`)).json.workers as Json[];
    expect(all.map((w) => w.address)).toEqual([worker.address]);
  });
});

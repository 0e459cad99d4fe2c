// Faults with real processes: a worker SIGKILLed mid-job, the master SIGKILLed mid-job and
// restarted on its data dir, a worker drained by SIGTERM, and retried submits (addresses
// 127.0.0.41–49 belong to this file).
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  tasksBegun,
  allJobs,
  http,
  submitJob,
  untilJobStatus,
  waitFor,
  type CliResult,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('faults');
afterAll(() => c.cleanup());

const range = (n: number) => [...Array(n).keys()];

const submit = submitJob;

/** /proc/PID/stat's fields after the command's closing parenthesis: state, ppid, pgrp, … */
function statOf(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

const childrenOf = (ppid: number): number[] =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => statOf(pid)?.[1] === String(ppid));

/** Running, not gone nor a zombie waiting to be reaped. */
const alive = (pid: number): boolean => {
  const state = statOf(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
};

async function workerRow(m: MasterProc, w: WorkerProc) {
  const r = await http('GET', `${m.url}/api/workers`);
  return r.json?.workers?.find((x: { address: string }) => x.address === w.address);
}

describe('a worker SIGKILLed while a sleep job runs', () => {
  let m: MasterProc;
  let doomed: WorkerProc;

  beforeAll(async () => {
    m = await c.master('127.0.0.41');
    [doomed] = await Promise.all([
      c.worker('127.0.0.42', m, { maxTasks: 2 }),
      c.worker('127.0.0.43', m, { maxTasks: 2 }),
    ]);
  });

  it('does not stop the job: it completes with every result, [0..11]', async () => {
    // 12 tasks of 1 s on 2 + 2 slots take about 3 s: the kill lands while tasks run.
    const id = await submit(m.url, {
      name: 'slow',
      type: 'batch',
      config: { operation: 'sleep', ms: 1000, task_count: 12 },
    });
    await waitFor(
      'the doomed worker to run tasks of the job',
      async () => {
        const j = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
        if (j?.status === 'completed') throw new Error('the job completed before the worker could be killed');
        return (await workerRow(m, doomed))?.active_tasks > 0;
      },
      20_000,
      50,
    );
    await c.stop(doomed, 'SIGKILL');

    const job = await untilJobStatus(m.url, id, 'completed', 60_000);
    expect(job.progress).toMatchObject({ total: 12, completed: 12, failed: 0, running: 0, pending: 0 });
    const r = await http('GET', `${m.url}/api/jobs/${id}/results`);
    expect(r.json.results).toEqual(range(12));
  });

  it('shows the dead worker with status dead in GET /api/workers, the other still active', async () => {
    const row = await waitFor(
      'the killed worker to be dead',
      async () => {
        const w = await workerRow(m, doomed);
        return w?.status === 'dead' ? w : undefined;
      },
      10_000,
    );
    expect(row.active_tasks).toBe(0);
    const all = (await http('GET', `${m.url}/api/workers`)).json.workers;
    expect(all.filter((w: { status: string }) => w.status === 'active')).toHaveLength(1);
  });

  it("takes its tasks' processes with it, one in a loop too: killed alone, not with its process group", async () => {
    // A task's process ignores stop signals (those to the worker's group are the worker's to
    // act on): nothing but its worker's death ends one stuck in a loop. Three tasks fill the
    // three slots left, one of them this worker's.
    const w = await c.worker('127.0.0.42', m, { maxTasks: 1 });
    const id = await submit(m.url, {
      name: 'loop',
      type: 'batch',
      config: { module: 'export function map() { for (;;) {} }', data: [1, 2, 3], task_count: 3 },
    });
    await waitFor('the loop to run on the worker', async () => (await workerRow(m, w))?.active_tasks === 1, 20_000, 50);
    const executors = childrenOf(w.pid);
    expect(executors.length).toBeGreaterThan(0);
    for (const pid of executors) process.kill(pid, 'SIGTERM');
    process.kill(w.pid, 'SIGKILL');
    await waitFor(
      'every process of its tasks to end',
      () => executors.every((pid) => !alive(pid)) || undefined,
      10_000,
    );
    expect((await http('POST', `${m.url}/api/jobs/${id}/cancel`)).json.status).toBe('cancelled');
  });

  describe('an Idempotency-Key on submit', () => {
    it('makes a repeated submit return the first job instead of creating a second', async () => {
      const before = (await allJobs(m.url)).length;
      const key = `retry-${Date.now()}`;
      const job = { name: 'once', type: 'batch', config: { operation: 'noop', task_count: 3 } };
      const first = await http('POST', `${m.url}/api/jobs`, job, { 'Idempotency-Key': key });
      const second = await http('POST', `${m.url}/api/jobs`, job, { 'Idempotency-Key': key });
      expect(first.status, first.text).toBe(201);
      expect([200, 201]).toContain(second.status);
      expect(second.json.job_id).toBe(first.json.job_id);
      expect((await allJobs(m.url)).length).toBe(before + 1);

      // Even once that job has completed, the key still names it.
      await untilJobStatus(m.url, first.json.job_id, 'completed');
      const third = await http('POST', `${m.url}/api/jobs`, job, { 'Idempotency-Key': key });
      expect(third.json.job_id).toBe(first.json.job_id);
      expect((await allJobs(m.url)).length).toBe(before + 1);
    });

    it('two concurrent submits with one key make one job', async () => {
      const before = (await allJobs(m.url)).length;
      const key = `race-${Date.now()}`;
      const job = { name: 'race', type: 'batch' };
      const answers = await Promise.all(
        range(5).map(() => http('POST', `${m.url}/api/jobs`, job, { 'Idempotency-Key': key })),
      );
      for (const a of answers) expect([200, 201]).toContain(a.status);
      expect(new Set(answers.map((a) => a.json.job_id)).size).toBe(1);
      expect((await allJobs(m.url)).length).toBe(before + 1);
    });

    it('a different key makes a different job', async () => {
      const job = { name: 'twice', type: 'batch' };
      const a = await http('POST', `${m.url}/api/jobs`, job, { 'Idempotency-Key': `a-${Date.now()}` });
      const b = await http('POST', `${m.url}/api/jobs`, job, { 'Idempotency-Key': `b-${Date.now()}` });
      expect(a.status).toBe(201);
      expect(b.status).toBe(201);
      expect(a.json.job_id).not.toBe(b.json.job_id);
    });
  });
});

describe('the master SIGKILLed while a job runs, then restarted on the same data dir and port', () => {
  let m: MasterProc;
  let doneBefore: string;
  let running: string;
  let lastMoment: string[];
  let acknowledged: string[];
  let following: Promise<CliResult>;
  let atKill: { status: string; progress: { completed: number } };

  beforeAll(async () => {
    m = await c.master('127.0.0.44');
    await Promise.all([c.worker('127.0.0.45', m, { maxTasks: 2 }), c.worker('127.0.0.46', m, { maxTasks: 2 })]);

    doneBefore = await submit(m.url, {
      name: 'before',
      type: 'batch',
      config: { operation: 'multiply', factor: 2, task_count: 4, data: [1, 2, 3, 4, 5, 6, 7, 8] },
    });
    await untilJobStatus(m.url, doneBefore, 'completed');

    // 8 tasks of 2.5 s on 4 slots: about 5 s of work, so the kill lands mid-job.
    running = await submit(m.url, {
      name: 'through-the-crash',
      type: 'batch',
      config: { operation: 'sleep', ms: 2500, task_count: 8 },
    });
    await waitFor(
      'the job to have running tasks',
      async () => (await http('GET', `${m.url}/api/jobs/${running}`)).json?.progress?.running > 0,
      20_000,
      50,
    );
    // Acknowledged in the last moment before the crash.
    lastMoment = await Promise.all(
      range(6).map((i) =>
        submit(m.url, { name: `last-${i}`, type: 'batch', config: { operation: 'noop', task_count: 2 } }),
      ),
    );
    acknowledged = [doneBefore, running, ...lastMoment];
    // A client already following the job rides through the crash (it retries for up to 30 s).
    let followed = '';
    following = c.cli(['--master', m.url, 'wait', running], { timeoutMs: 90_000, onStderr: (e) => (followed = e) });
    await waitFor('the wait to report progress', () => /running: /.test(followed), 10_000, 20);

    atKill = (await http('GET', `${m.url}/api/jobs/${running}`)).json;
    await c.stop(m, 'SIGKILL');
    m = await c.master('127.0.0.44', { port: m.port, dataDir: m.dataDir });
  });

  it('(the kill landed while the job ran)', () => {
    expect(atKill.status).toBe('running');
    expect(atKill.progress.completed).toBeLessThan(8);
  });

  it('keeps every job acknowledged before the kill', async () => {
    const listed = new Set((await allJobs(m.url)).map((j) => j.job_id));
    for (const id of acknowledged) {
      expect(listed.has(id), `job ${id} missing from GET /api/jobs`).toBe(true);
      expect((await http('GET', `${m.url}/api/jobs/${id}`)).status).toBe(200);
    }
  });

  it('completes the job that was running, with whole results', async () => {
    const job = await untilJobStatus(m.url, running, 'completed', 60_000);
    expect(job.progress).toMatchObject({ total: 8, completed: 8, failed: 0 });
    expect((await http('GET', `${m.url}/api/jobs/${running}/results`)).json.results).toEqual(range(8));
  });

  it('lets a `weir wait` started before the crash finish with exit 0', async () => {
    const r = await following;
    expect(r.code, r.stderr).toBe(0);
  });

  it('runs the jobs submitted just before the kill', async () => {
    for (const id of lastMoment) {
      await untilJobStatus(m.url, id, 'completed', 30_000);
      expect((await http('GET', `${m.url}/api/jobs/${id}/results`)).json.results).toEqual([0, 1]);
    }
  });

  it('keeps the results of jobs completed before the kill', async () => {
    const j = await http('GET', `${m.url}/api/jobs/${doneBefore}`);
    expect(j.json.status).toBe('completed');
    const r = await http('GET', `${m.url}/api/jobs/${doneBefore}/results`);
    expect(r.json.results).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
  });

  it('refuses a second master on the same data dir while the first one lives', async () => {
    const second = await c.master('127.0.0.44', { dataDir: m.dataDir, wait: false });
    const code = await Promise.race([second.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))]);
    expect(code).not.toBe('still running');
    expect(code).not.toBe(0);
    expect(c.tail(second)).toMatch(/in use/);
    expect((await http('GET', `${m.url}/health`)).status).toBe(200);
  });

  it('takes the workers back without declaring them dead', async () => {
    const workers = (await http('GET', `${m.url}/api/workers`)).json.workers;
    expect(workers).toHaveLength(2);
    for (const w of workers) expect(w.status).toBe('active');
  });
});

describe('a worker sent SIGTERM while it runs tasks', () => {
  let m: MasterProc;
  let leaving: WorkerProc;

  beforeAll(async () => {
    m = await c.master('127.0.0.47');
    [leaving] = await Promise.all([
      c.worker('127.0.0.48', m, { maxTasks: 2 }),
      c.worker('127.0.0.49', m, { maxTasks: 2 }),
    ]);
  });

  it('finishes its running tasks, exits 0, and the job completes whole with no task failed', async () => {
    const id = await submit(m.url, {
      name: 'drain',
      type: 'batch',
      config: { operation: 'sleep', ms: 1500, task_count: 8 },
    });
    await waitFor(
      'the leaving worker to run tasks',
      async () => (await workerRow(m, leaving))?.active_tasks === 2,
      20_000,
      50,
    );
    // Once the first four run in their processes, on both workers (the leader is told 50 ms
    // on): a process still starting dies of the signal, and its task is retried.
    await waitFor('the tasks to have begun', async () => (await tasksBegun(m)) >= 4 || undefined, 20_000, 50);
    c.kill(leaving, 'SIGTERM');
    const code = await Promise.race([leaving.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    expect(code, c.tail(leaving)).toBe(0);

    const job = await untilJobStatus(m.url, id, 'completed', 60_000);
    expect(job.progress).toMatchObject({ total: 8, completed: 8, failed: 0 });
    expect((await http('GET', `${m.url}/api/jobs/${id}/results`)).json.results).toEqual(range(8));
    // The signal went to the worker's whole process group, its tasks' processes too (as systemd
    // and Ctrl-C send it): they ran to their end all the same, and spent no retry.
    const tasks = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json.tasks as { failures: number }[];
    expect(tasks.map((t) => t.failures)).toEqual(range(8).map(() => 0));
    const row = await workerRow(m, leaving);
    expect(['draining', 'dead']).toContain(row?.status);
  });
});

// The seed's client flow, end to end through the `weir` CLI against one real master and two
// real workers (addresses 127.0.0.31–39 belong to this file).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeirClient } from '../../src/client/sdk.js';
import {
  Cluster,
  allJobs,
  freePort,
  http,
  jobIdFrom,
  untilJobStatus,
  waitFor,
  type CliResult,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('seed-flow');
let m: MasterProc;
let workers: WorkerProc[];
let addr: string; // the seed's address-first form, HOST:PORT
let deadUrl: string; // a port nothing listens on
let unreachableWait: Promise<CliResult>;

beforeAll(async () => {
  // Started first and awaited last: a client keeps retrying an unreachable cluster for 30 s.
  deadUrl = `http://127.0.0.39:${await freePort('127.0.0.39')}`;
  unreachableWait = c.cli(['wait', 'job-nobody-has'], { env: { WEIR_MASTER: deadUrl }, timeoutMs: 90_000 });

  m = await c.master('127.0.0.31');
  addr = `${m.host}:${m.port}`;
  workers = [await c.worker('127.0.0.32', m, { maxTasks: 4 }), await c.worker('127.0.0.33', m, { maxTasks: 4 })];
});

afterAll(() => c.cleanup());

describe('the seed multiply job through the CLI (address first)', () => {
  let id: string;

  it('submit prints the job id alone on stdout', async () => {
    const r = await c.cli([
      addr,
      'submit',
      'batch',
      'Multiplicar',
      '{"operation":"multiply","factor":3,"task_count":5}',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    id = jobIdFrom(r.stdout);
  });

  it('wait exits 0 once the job has completed', async () => {
    const r = await c.cli([addr, 'wait', id]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('status says completed', async () => {
    const r = await c.cli([addr, 'status', id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed/i);
    expect(r.stdout).toContain(id);
  });

  it('results prints [3,6,9,12,15]', async () => {
    const r = await c.cli([addr, 'results', id]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([3, 6, 9, 12, 15]);
  });

  it('results -o FILE writes them to the file', async () => {
    const file = join(c.tmp, 'multiply-results.json');
    const r = await c.cli([addr, 'results', id, '-o', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([3, 6, 9, 12, 15]);
  });

  it('the REST view agrees: 5 tasks, all completed, results in input order', async () => {
    const j = await http('GET', `${m.url}/api/jobs/${id}`);
    expect(j.status).toBe(200);
    expect(j.json).toMatchObject({ job_id: id, name: 'Multiplicar', type: 'batch', status: 'completed' });
    expect(j.json.progress).toMatchObject({ total: 5, completed: 5, failed: 0, running: 0, pending: 0 });
    const r = await http('GET', `${m.url}/api/jobs/${id}/results`);
    expect(r.json).toEqual({ results: [3, 6, 9, 12, 15], next_cursor: null });
  });
});

describe('weir run: submit, wait and results in one command', () => {
  it('prints the results of a completed job and exits 0', async () => {
    const r = await c.cli([addr, 'run', 'batch', 'Multiplicar', '{"operation":"multiply","factor":2,"task_count":3}']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([2, 4, 6]);
    expect(r.stderr).toMatch(/job job-/);
  });

  it('exits 1 for a job that failed, with its error and no results on stdout', async () => {
    const r = await c.cli([
      addr,
      'run',
      'batch',
      'Falla',
      JSON.stringify({ module: 'export function map() { throw new Error("on purpose") }', data: [1], max_retries: 0 }),
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('on purpose');
  });

  it('lists the failed jobs alone with jobs --status failed, and says of their results where to read why', async () => {
    const listed = await c.cli([addr, '--json', 'jobs', '--status', 'failed']);
    expect(listed.code, listed.stderr).toBe(0);
    const failed = JSON.parse(listed.stdout).jobs as { job_id: string; status: string }[];
    expect(failed.map((j) => j.status)).toEqual(failed.map(() => 'failed'));
    expect(failed.length).toBeGreaterThan(0);
    const r = await c.cli([addr, 'results', failed[0]!.job_id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/is failed; .*it will have none: 'weir status job-\S+' says why/);
  });

  it('refuses a status no job has, naming those there are', async () => {
    const r = await c.cli([addr, 'jobs', '--status', 'done']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--status takes one of pending, running, completed, failed, cancelled; got 'done'/);
  });

  it('refuses a streaming job with a line saying what to do instead', async () => {
    const r = await c.cli([addr, 'run', 'streaming', 'S', '{}']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/weir run takes batch jobs.*results --follow/);
  });

  it('run() in the SDK gives the finished job and its results', async () => {
    const sdk = new WeirClient({ masters: [m.url] });
    try {
      const { job, results } = await sdk.run({
        name: 'sdk',
        config: { operation: 'multiply', factor: 5, task_count: 2 },
      });
      expect(job.status).toBe('completed');
      expect(results).toEqual([5, 10]);
    } finally {
      await sdk.close();
    }
  });
});

describe('--json prints the REST body as parseable JSON', () => {
  let id: string;
  beforeAll(async () => {
    const r = await c.cli(['--master', m.url, 'submit', 'batch', 'json-check', '{"operation":"noop","task_count":2}']);
    expect(r.code, r.stderr).toBe(0);
    id = jobIdFrom(r.stdout);
    await untilJobStatus(m.url, id, 'completed');
  });

  it('on status', async () => {
    const r = await c.cli([addr, 'status', id, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      job_id: id,
      status: 'completed',
      progress: { total: 2, completed: 2 },
    });
  });

  it('on jobs', async () => {
    const r = await c.cli([addr, '--json', 'jobs']);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(Array.isArray(body.jobs)).toBe(true);
    expect(body.jobs.map((j: { job_id: string }) => j.job_id)).toContain(id);
  });

  it('on workers', async () => {
    const r = await c.cli(['workers', '--json', '--master', m.url]);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout);
    const addresses = body.workers.map((w: { address: string }) => w.address);
    for (const w of workers) expect(addresses).toContain(w.address);
    for (const w of body.workers) expect(w).toHaveProperty('status', 'active');
  });

  it('on cluster', async () => {
    const r = await c.cli([addr, 'cluster', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body).toMatchObject({ current_node_id: 31, current_role: 'leader', leader_id: 31, total_nodes: 1 });
    expect(body.nodes).toEqual([expect.objectContaining({ id: 31, is_leader: true, healthy: true })]);
  });
});

describe('choosing the master', () => {
  let id: string;
  beforeAll(async () => {
    id = (await http('POST', `${m.url}/api/jobs`, { name: 'env-check', type: 'batch' })).json.job_id;
  });

  it('WEIR_MASTER is the default master', async () => {
    const r = await c.cli(['status', id], { env: { WEIR_MASTER: addr } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(id);
  });

  it('a --master flag beats WEIR_MASTER', async () => {
    const r = await c.cli(['status', id, '--master', m.url], { env: { WEIR_MASTER: deadUrl }, timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(id);
  });
});

describe('submit with no config', () => {
  it('makes a job of one noop task, which completes', async () => {
    const r = await c.cli([addr, 'submit', 'batch', 'Mi Trabajo']);
    expect(r.code, r.stderr).toBe(0);
    const id = jobIdFrom(r.stdout);
    const job = await untilJobStatus(m.url, id, 'completed');
    expect(job).toMatchObject({ name: 'Mi Trabajo', operation: 'noop', progress: { total: 1, completed: 1 } });
    expect((await http('GET', `${m.url}/api/jobs/${id}/results`)).json.results).toEqual([0]);
  });
});

describe('cancel', () => {
  it('of a long sleep job makes wait exit 2, and the workers stop its tasks', async () => {
    const sub = await c.cli([
      addr,
      'submit',
      'batch',
      'long-sleep',
      '{"operation":"sleep","ms":120000,"task_count":2}',
    ]);
    expect(sub.code, sub.stderr).toBe(0);
    const id = jobIdFrom(sub.stdout);
    await waitFor(
      'the sleep job to run',
      async () => (await http('GET', `${m.url}/api/jobs/${id}`)).json?.progress?.running === 2,
    );

    const waiting = c.cli([addr, 'wait', id], { timeoutMs: 60_000 });
    const cancel = await c.cli([addr, 'cancel', id]);
    expect(cancel.code, cancel.stderr).toBe(0);

    const w = await waiting;
    expect(w.code, w.stderr).toBe(2);
    const st = await http('GET', `${m.url}/api/jobs/${id}`);
    expect(st.json.status).toBe('cancelled');
    // Its tasks no longer occupy the workers.
    await waitFor(
      'the workers to have no active tasks',
      async () =>
        (await http('GET', `${m.url}/api/workers`)).json?.workers?.every(
          (x: { active_tasks: number }) => x.active_tasks === 0,
        ),
      15_000,
    );
    await waitFor(
      "the workers' own count to drop to 0",
      async () => {
        const all = await Promise.all(workers.map((x) => http('GET', `${x.url}/api/status`)));
        return all.every((s) => s.json?.active_tasks === 0);
      },
      15_000,
    );
  });
});

describe('GET /api/jobs', () => {
  it('refuses a submit with a field its job would not read (400, naming it), and makes no job', async () => {
    const before = (await http('GET', `${m.url}/api/jobs?limit=1000`)).json.jobs.length;
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'typo',
      type: 'batch',
      config: { operation: 'multiply', factr: 3, task_count: 2 },
    });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/config\.factr .*did you mean 'factor'/);
    expect((await http('GET', `${m.url}/api/jobs?limit=1000`)).json.jobs.length).toBe(before);
  });

  it('pages with ?limit=2 and next_cursor, newest first, each job once', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await http('POST', `${m.url}/api/jobs`, { name: `page-${i}`, type: 'batch' })).status).toBe(201);
    }
    const everything = (await allJobs(m.url)).map((j) => j.job_id);
    expect(everything.length).toBeGreaterThanOrEqual(5);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const r = await http('GET', `${m.url}/api/jobs?limit=2${q}`);
      expect(r.status).toBe(200);
      expect(r.json.jobs.length).toBeGreaterThan(0);
      expect(r.json.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...r.json.jobs.map((j: { job_id: string }) => j.job_id));
      cursor = r.json.next_cursor;
      expect(cursor === null || typeof cursor === 'string').toBe(true);
      pages++;
    } while (cursor && pages < 100);
    expect(cursor).toBeNull();
    expect(pages).toBe(Math.ceil(everything.length / 2));
    expect(seen).toEqual(everything);
    expect(new Set(seen).size).toBe(seen.length);
    // Newest first.
    const newest = (await http('GET', `${m.url}/api/jobs?limit=1`)).json.jobs[0];
    expect(newest.name).toBe('page-2');
  });
});

describe('an unreachable cluster', () => {
  it('makes wait exit 3 after the client has retried (WEIR_MASTER pointing at a port nobody listens on)', async () => {
    const r = await unreachableWait;
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/cannot reach/i);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

// A submit that waits for its job (`POST /api/jobs?wait_ms=N`): one round trip for a short job
// instead of a submit and a long poll — on the leader, forwarded from a follower, replayed by
// its Idempotency-Key; and what the SDK's run() and `weir run` make of it. Three real masters
// and a worker (addresses 127.0.0.160, .164, .167, .168 belong to this file; executors.test.ts
// uses the others of 161–169).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeirClient } from '../../src/client/sdk.js';
import {
  Cluster,
  allJobs,
  cliSync,
  freePorts,
  http,
  untilAgreedLeader,
  untilConverged,
  waitFor,
  type MasterProc,
} from '../helpers/cluster.js';

const c = new Cluster('submit-wait');
const hosts = ['127.0.0.160', '127.0.0.164', '127.0.0.167'];
let masters: MasterProc[];
let leader: MasterProc;
let follower: MasterProc;

beforeAll(async () => {
  const ports = await freePorts(hosts);
  const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
  masters = await Promise.all(
    hosts.map((h, i) => c.master(h, { port: ports[i]!, args: ['--peers', peers], wait: false })),
  );
  // Settled once the highest id leads (the hand-over after the first election).
  const agreed = await untilAgreedLeader(
    masters.map((m) => m.url),
    { leaderId: 167, procs: masters },
  );
  leader = masters.find((m) => m.url === agreed.leaderUrl)!;
  follower = masters.find((m) => m !== leader)!;
  await c.untilReady(leader);
  await c.worker('127.0.0.168', leader, { maxTasks: 2, masters: masters.map((m) => m.url) });
}, 90_000);
afterAll(() => c.cleanup());

const job = (config: unknown) => ({ name: 'waited', type: 'batch', config });

describe('POST /api/jobs?wait_ms=N', () => {
  it('answers 201 with the finished job, as GET gives it, when it finishes within the wait', async () => {
    const r = await http(
      'POST',
      `${leader.url}/api/jobs?wait_ms=30000`,
      job({ operation: 'multiply', factor: 2, task_count: 2, data: [1, 2, 3, 4] }),
      {},
      40_000,
    );
    expect(r.status).toBe(201);
    expect(r.json.status).toBe('completed');
    expect(r.json.progress).toMatchObject({ total: 2, completed: 2, failed: 0, running: 0, pending: 0 });
    const got = await http('GET', `${leader.url}/api/jobs/${r.json.job_id}`);
    expect(r.json).toEqual(got.json);
  });

  it.each([
    ['when the wait runs out first', 200],
    ['without waiting when wait_ms is 0', 0],
  ])('answers 201 with the job still pending or running %s', async (_when, waitMs) => {
    const r = await http(
      'POST',
      `${leader.url}/api/jobs?wait_ms=${waitMs}`,
      job({ operation: 'sleep', ms: 3000, task_count: 1 }),
    );
    expect(r.status).toBe(201);
    expect(['pending', 'running']).toContain(r.json.status);
    await http('POST', `${leader.url}/api/jobs/${r.json.job_id}/cancel`);
  });

  it('waits the same way when forwarded from a follower, results_limit included', async () => {
    const r = await http(
      'POST',
      `${follower.url}/api/jobs?wait_ms=30000&results_limit=5`,
      job({ operation: 'multiply', factor: 7, task_count: 1, data: [1, 2] }),
      {},
      40_000,
    );
    expect(r.status).toBe(201);
    expect(r.json.status).toBe('completed');
    expect(r.json.results_page).toEqual({ results: [7, 14], next_cursor: null });
  });

  it('with results_limit=N, a batch job answered completed brings its first N results; their next_cursor goes on from there', async () => {
    const data = [1, 2, 3, 4, 5, 6, 7];
    const r = await http(
      'POST',
      `${leader.url}/api/jobs?wait_ms=30000&results_limit=3`,
      job({ operation: 'multiply', factor: 2, task_count: 2, data }),
      {},
      40_000,
    );
    expect(r.status, r.text).toBe(201);
    const { results_page: page, ...view } = r.json;
    expect(view.status).toBe('completed');
    // The job itself as GET gives it, and the page as the results route gives it.
    expect(view).toEqual((await http('GET', `${leader.url}/api/jobs/${view.job_id}`)).json);
    expect(page).toEqual((await http('GET', `${leader.url}/api/jobs/${view.job_id}/results?limit=3`)).json);
    expect(page.results).toEqual([2, 4, 6]);
    const rest = await http(
      'GET',
      `${leader.url}/api/jobs/${view.job_id}/results?cursor=${encodeURIComponent(page.next_cursor)}`,
    );
    expect([...page.results, ...rest.json.results]).toEqual(data.map((x) => x * 2));
    // A long poll of the job takes it too, on a follower as on the leader.
    const polled = await http('GET', `${follower.url}/api/jobs/${view.job_id}?wait_ms=30000&results_limit=100`);
    expect(polled.json.results_page).toEqual({ results: data.map((x) => x * 2), next_cursor: null });
  });

  it('brings no results with a job that has not completed', async () => {
    const r = await http(
      'POST',
      `${leader.url}/api/jobs?wait_ms=200&results_limit=10`,
      job({ operation: 'sleep', ms: 3000, task_count: 1 }),
    );
    expect(r.status).toBe(201);
    expect(['pending', 'running']).toContain(r.json.status);
    expect(r.json).not.toHaveProperty('results_page');
    const cancelled = await http('POST', `${leader.url}/api/jobs/${r.json.job_id}/cancel`);
    expect(cancelled.json.status).toBe('cancelled');
    const got = await http('GET', `${leader.url}/api/jobs/${r.json.job_id}?results_limit=10`);
    expect(got.json.status).toBe('cancelled');
    expect(got.json).not.toHaveProperty('results_page');
  });

  it('refuses a results_limit out of range or not a number with validation_failed, and makes no job', async () => {
    const before = (await allJobs(leader.url)).length;
    for (const q of ['0', '1001', 'all', '2.5', '-3']) {
      const r = await http(
        'POST',
        `${leader.url}/api/jobs?wait_ms=1000&results_limit=${q}`,
        job({ operation: 'noop', task_count: 1 }),
      );
      expect(r.status, `results_limit=${q}`).toBe(400);
      expect(r.json.error.code).toBe('validation_failed');
    }
    await untilConverged(masters.map((m) => m.url));
    expect((await allJobs(leader.url)).length).toBe(before);
  });

  it('a submit replayed by its Idempotency-Key answers 200 with the same job, waited for the same way', async () => {
    const key = `replay-${Date.now()}`;
    const first = await http('POST', `${leader.url}/api/jobs`, job({ operation: 'sleep', ms: 300, task_count: 1 }), {
      'Idempotency-Key': key,
    });
    expect(first.status).toBe(201);
    expect(['pending', 'running']).toContain(first.json.status);
    const again = await http(
      'POST',
      `${leader.url}/api/jobs?wait_ms=30000`,
      job({ operation: 'sleep', ms: 300, task_count: 1 }),
      { 'Idempotency-Key': key },
      40_000,
    );
    expect(again.status).toBe(200);
    expect(again.json.job_id).toBe(first.json.job_id);
    expect(again.json.status).toBe('completed');
  });

  it('refuses a wait_ms out of range or not a number with validation_failed, and makes no job', async () => {
    const before = (await allJobs(leader.url)).length;
    for (const q of ['-1', '60001', 'soon', '1.5']) {
      const r = await http('POST', `${leader.url}/api/jobs?wait_ms=${q}`, job({ operation: 'noop', task_count: 1 }));
      expect(r.status, `wait_ms=${q}`).toBe(400);
      expect(r.json.error.code).toBe('validation_failed');
    }
    await untilConverged(masters.map((m) => m.url));
    expect((await allJobs(leader.url)).length).toBe(before);
  });
});

describe('long polls whose clients disconnect', () => {
  const parked = async (m: MasterProc) =>
    Number(/^weir_long_polls_waiting (\d+)/m.exec((await http('GET', `${m.url}/metrics`)).text)?.[1]);
  /** `n` polls of `jobId` on `m`, each abortable by its client; their answers (0: aborted). */
  const poll = (m: MasterProc, jobId: string, n: number) =>
    Array.from({ length: n }, () => {
      const client = new AbortController();
      const answer = fetch(`${m.url}/api/jobs/${jobId}?wait_ms=60000&results_limit=1000`, {
        signal: client.signal,
      }).then(
        (r) => r.status,
        () => 0,
      );
      return { client, answer };
    });

  it('are let go at once on the leader, and through the follower that forwarded them, not held for their wait_ms', async () => {
    const r = await http('POST', `${leader.url}/api/jobs`, job({ operation: 'sleep', ms: 60_000, task_count: 1 }));
    expect(r.status, r.text).toBe(201);
    const id = r.json.job_id as string;
    const exactly = (n: number) => async () => {
      const now = await parked(leader);
      if (now !== n) throw new Error(`${now} parked on the leader`);
      return true;
    };
    try {
      const direct = poll(leader, id, 50);
      // More than the follower's pool of 64 connections to the leader holds.
      const forwarded = poll(follower, id, 100);
      const [kept] = poll(leader, id, 1);
      await waitFor('151 polls parked on the leader', exactly(151), 15_000);
      // Other requests through the follower are not queued behind the polls it forwarded.
      expect((await http('GET', `${follower.url}/api/jobs/${id}`)).status).toBe(200);
      for (const p of [...direct, ...forwarded]) p.client.abort();
      expect(await Promise.all([...direct, ...forwarded].map((p) => p.answer))).toEqual(Array(150).fill(0));
      // Only the poll whose client is still there waits; the others went with their clients.
      await waitFor('the abandoned polls let go', exactly(1), 10_000);
      expect((await http('POST', `${leader.url}/api/jobs/${id}/cancel`)).status).toBe(200);
      expect(await kept!.answer).toBe(200);
    } finally {
      await http('POST', `${leader.url}/api/jobs/${id}/cancel`);
    }
  }, 60_000);
});

describe('the round trip users time', () => {
  it("the SDK's run() gives a short job's results", async () => {
    const sdk = new WeirClient({ masters: [follower.url, leader.url] });
    try {
      const r = await sdk.run({ name: 'sdk-run', config: { operation: 'multiply', factor: 3, task_count: 2 } });
      expect(r.job.status).toBe('completed');
      expect(r.results).toEqual([3, 6]);
    } finally {
      await sdk.close();
    }
  });

  it("the SDK's run() gives every result of a job with more than the first page of them", async () => {
    const sdk = new WeirClient({ masters: [leader.url] });
    const data = Array.from({ length: 10_007 }, (_, i) => i);
    try {
      const r = await sdk.run({
        name: 'sdk-run-pages',
        config: { operation: 'multiply', factor: 1, task_count: 3, data },
      });
      expect(r.job.status).toBe('completed');
      expect(r.job).not.toHaveProperty('results_page');
      expect(r.results).toEqual(data);
    } finally {
      await sdk.close();
    }
  });

  it("the SDK's run() follows a job longer than its submit's wait to the end", async () => {
    const sdk = new WeirClient({ masters: [leader.url] });
    const seen: string[] = [];
    try {
      const r = await sdk.run(
        { name: 'sdk-run-long', config: { operation: 'sleep', ms: 1500, task_count: 1 } },
        { onProgress: (j) => seen.push(j.status) },
      );
      expect(r.job.status).toBe('completed');
      expect(seen[0]).not.toBe('completed');
      expect(seen.at(-1)).toBe('completed');
    } finally {
      await sdk.close();
    }
  });

  it('weir run prints the results and exits 0', () => {
    const r = cliSync([
      '--master',
      leader.url,
      'run',
      'batch',
      'cli-run',
      '{"operation":"multiply","factor":5,"task_count":1}',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([5]);
  });
});

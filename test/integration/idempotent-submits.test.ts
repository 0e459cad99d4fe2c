// Submits retried with their Idempotency-Key — at once, and while the leader is killed again and
// again — with tasks sent ahead of their submit's commit (Scheduler.sendOnSubmit): every key
// ends as exactly one job, answered to every retry, completed with exact results, and no task or
// slot stays taken. Real processes (addresses 127.0.0.14–19 belong to this file); from the
// session-9 review's reproducer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  GiveUp,
  allJobs,
  freePorts,
  http,
  sleep,
  untilAgreedLeader,
  untilConverged,
  untilJobStatus,
  waitFor,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('idempotent-submits');
afterAll(() => c.cleanup());

const multiply = (name: string) => ({
  name,
  type: 'batch',
  config: { operation: 'multiply', factor: 3, task_count: 4, data: [1, 2, 3, 4, 5, 6, 7, 8] },
});
const EXPECTED = [3, 6, 9, 12, 15, 18, 21, 24];

describe('a lone master sent 30 submits with one Idempotency-Key at once', () => {
  let m: MasterProc;
  let w: WorkerProc;
  beforeAll(async () => {
    m = await c.master('127.0.0.14');
    w = await c.worker('127.0.0.14', m, { maxTasks: 2 });
  }, 60_000);

  it('makes one job, answered to all, whose tasks ran once each with exact results, and leaves no slot taken', async () => {
    const key = `dup-${Date.now()}`;
    const answers = await Promise.all(
      Array.from({ length: 30 }, () =>
        http(
          'POST',
          `${m.url}/api/jobs?wait_ms=20000&results_limit=100`,
          multiply('dup'),
          { 'Idempotency-Key': key },
          30_000,
        ),
      ),
    );
    const ids = new Set(answers.map((a) => a.json?.job_id));
    expect(ids.size, answers.map((a) => `${a.status} ${a.text.slice(0, 120)}`).join('\n')).toBe(1);
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(answers.every((a) => a.status === 201 || a.status === 200)).toBe(true);
    const [id] = [...ids];
    const done = await untilJobStatus(m.url, id, 'completed', 30_000);
    expect(done.progress).toMatchObject({ total: 4, completed: 4, failed: 0, running: 0, pending: 0 });
    expect((await http('GET', `${m.url}/api/jobs/${id}/results`)).json.results).toEqual(EXPECTED);
    expect((await allJobs(m.url)).filter((j) => j.name === 'dup')).toHaveLength(1);
    const tasks = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json.tasks as {
      attempt: number;
      failures: number;
    }[];
    expect(tasks.map((t) => [t.attempt, t.failures])).toEqual(Array(4).fill([1, 0]));
    // The duplicates' tasks, sent ahead of their refused entries, were stopped: the slots are free.
    await waitFor('the worker idle', async () => (await http('GET', `${w.url}/api/status`)).json?.active_tasks === 0);
    expect((await http('POST', `${m.url}/api/jobs?wait_ms=10000`, multiply('next'), {}, 20_000)).json.status).toBe(
      'completed',
    );
  });
});

describe('three masters sent retried submits while the leader is killed three times', () => {
  const hosts = ['127.0.0.15', '127.0.0.16', '127.0.0.17'];
  let ports: number[];
  let peers: string;
  const masters: MasterProc[] = [];
  const urls = () => hosts.map((h, i) => `http://${h}:${ports[i]}`);
  const start = (i: number, dataDir?: string) =>
    c.master(hosts[i]!, {
      port: ports[i]!,
      ...(dataDir ? { dataDir } : {}),
      args: ['--id', String(i + 1), '--peers', peers],
      wait: false,
    });

  beforeAll(async () => {
    ports = await freePorts(hosts);
    peers = hosts.map((h, i) => `${i + 1}=http://${h}:${ports[i]}`).join(',');
    for (let i = 0; i < 3; i++) masters[i] = await start(i);
    const agreed = await untilAgreedLeader(urls(), { leaderId: 3, procs: masters });
    await c.untilReady(masters.find((p) => p.url === agreed.leaderUrl)!);
    await c.worker('127.0.0.18', masters[2]!, { maxTasks: 2, masters: urls() });
    await c.worker('127.0.0.19', masters[2]!, { maxTasks: 2, masters: urls() });
  }, 120_000);

  it('ends every key as exactly one completed job with exact results, the same on every master; nothing stays running', async () => {
    const keys: string[] = [];
    const acked = new Map<string, string>();
    let stop = false;

    /** A client that retries on any master until answered, and half the time once more after (its answer lost). */
    const submitter = async (key: string) => {
      const deadline = Date.now() + 90_000;
      let n = Math.floor(Math.random() * 3);
      while (Date.now() < deadline) {
        const a = await http(
          'POST',
          `${urls()[n++ % 3]}/api/jobs?wait_ms=2000`,
          multiply(key),
          { 'Idempotency-Key': key },
          8_000,
        );
        if (a.status === 200 || a.status === 201) {
          const prev = acked.get(key);
          if (prev !== undefined) expect(a.json.job_id, `key ${key} answered two job ids`).toBe(prev);
          acked.set(key, a.json.job_id);
          if (prev === undefined && Math.random() < 0.5) continue;
          return;
        }
        await sleep(50); // a client's back-off before its retry
      }
      throw new Error(`key ${key} never acknowledged`);
    };

    const killer = (async () => {
      for (let round = 0; round < 3; round++) {
        // Killed while submits go on: a few keys acknowledged since the last kill.
        const before = acked.size;
        await waitFor('keys acknowledged since the last kill', () => acked.size >= before + 3 + round, 60_000);
        const { leaderUrl } = await untilAgreedLeader(urls(), { timeoutMs: 30_000 });
        const i = urls().indexOf(leaderUrl);
        const killed = masters[i]!;
        await c.stop(killed, 'SIGKILL');
        // Back once the other two agree on a leader, its data dir as it was.
        await untilAgreedLeader(
          urls().filter((_, j) => j !== i),
          { timeoutMs: 30_000 },
        );
        masters[i] = await start(i, killed.dataDir);
      }
      stop = true;
    })();

    // Four clients at a time, each with fresh keys until the killer is done.
    let next = 0;
    await Promise.all([
      killer,
      ...Array.from({ length: 4 }, async () => {
        while (!stop) {
          const key = `k${next++}`;
          keys.push(key);
          await submitter(key);
        }
      }),
    ]);

    const lead = (await untilAgreedLeader(urls(), { timeoutMs: 60_000 })).leaderUrl;
    for (const key of keys) {
      const id = acked.get(key)!;
      const done = await untilJobStatus(lead, id, 'completed', 60_000);
      expect(done.progress, key).toMatchObject({ total: 4, completed: 4, failed: 0, running: 0, pending: 0 });
      // A read during the hand-over back to the highest id is answered 503: retried.
      const res = await waitFor(`results of ${id}`, async () => {
        const r = await http('GET', `${lead}/api/jobs/${id}/results`);
        if (r.status === 503 || r.status === 0) throw new Error(`${r.status} ${r.text}`);
        return r;
      });
      expect(res.json?.results, `${key} ${id}`).toEqual(EXPECTED);
    }
    await untilConverged(urls(), 0, 60_000);
    for (const u of urls()) {
      // The hand-over back to the highest id may come now: reads answer 503 meanwhile, retried.
      const jobs = await waitFor(`every job as ${u} lists them`, async () => {
        try {
          return await allJobs(u);
        } catch (err) {
          if (/-> 503 /.test((err as Error).message)) throw err;
          throw new GiveUp((err as Error).message);
        }
      });
      expect(jobs.map((j) => j.name).sort(), u).toEqual([...keys].sort());
      expect(
        jobs.filter((j) => j.status !== 'completed').map((j) => `${j.name}:${j.status}`),
        u,
      ).toEqual([]);
    }
    await waitFor('both workers idle, as the leader shows them', async () => {
      const ws = ((await http('GET', `${lead}/api/workers`)).json?.workers ?? []) as {
        status: string;
        active_tasks: number;
      }[];
      const live = ws.filter((x) => x.status === 'active');
      return live.length === 2 && live.every((x) => x.active_tasks === 0);
    });
  }, 300_000);
});

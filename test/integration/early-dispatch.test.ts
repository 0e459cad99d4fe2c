// A one-task job's first task leaves for its worker as soon as its submit entry is appended
// (Scheduler.sendOnSubmit), while the entry is still being written on a majority. What that
// must never cost, with real processes: a leader that dies after sending the task and before
// the entry commits has acknowledged nothing and leaves no job behind, and the task's report,
// sent again to the next leader, changes nothing there. Three masters and a worker, all on
// 127.0.0.163 (the one address of 160–169 no other file uses), told apart by port and --id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  allJobs,
  freePort,
  http,
  type HttpAnswer,
  untilAgreedLeader,
  untilConverged,
  waitFor,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('early-dispatch');
const host = '127.0.0.163';
let ports: number[];
let peers: string;
let masters: MasterProc[];
let worker: WorkerProc;

/** Master `id` (1–3) on its port; a restart reuses its port and data dir. */
const startMaster = (id: number, dataDir?: string) =>
  c.master(host, {
    port: ports[id - 1]!,
    ...(dataDir ? { dataDir } : {}),
    args: ['--id', String(id), '--peers', peers],
    wait: false,
  });

beforeAll(async () => {
  ports = [];
  while (ports.length < 3) {
    const p = await freePort(host);
    if (!ports.includes(p)) ports.push(p);
  }
  peers = ports.map((p, i) => `${i + 1}=http://${host}:${p}`).join(',');
  masters = await Promise.all([1, 2, 3].map((id) => startMaster(id)));
  // The highest id leads once the hand-over is done (DESIGN §3): no move after this.
  await untilAgreedLeader(
    masters.map((m) => m.url),
    { leaderId: 3, procs: masters },
  );
  await c.untilReady(masters[2]!);
  worker = await c.worker(host, masters[2]!, { maxTasks: 1, masters: masters.map((m) => m.url) });
}, 90_000);
afterAll(() => c.cleanup());

const tasksDone = async () =>
  ((await http('GET', `${worker.url}/api/status`)).json?.metrics?.tasks_done as number) ?? 0;
const noop = (name: string) => ({ name, type: 'batch', config: { operation: 'noop', task_count: 1 } });

describe('a task sent before its submit entry commits', () => {
  it('runs, but a leader killed before the commit acknowledged nothing and the next leader has no such job', async () => {
    const [m1, m2, leader] = masters as [MasterProc, MasterProc, MasterProc];
    await untilConverged(masters.map((m) => m.url));
    let answer: Promise<HttpAnswer>;
    let attempt = 1;
    for (; ; attempt++) {
      // Counted afresh: a refused attempt's task may have run too.
      const before = await tasksDone();
      // The followers hear nothing more: the entry can be appended and fsynced by the leader alone.
      c.kill(m1, 'SIGSTOP');
      c.kill(m2, 'SIGSTOP');
      answer = http('POST', `${leader.url}/api/jobs?wait_ms=30000`, noop(`never-committed-${attempt}`), {}, 40_000);
      let early: HttpAnswer | undefined;
      void answer.then((a) => (early = a));
      // The task ran on the worker though its entry is on no majority — unless the leader, hearing
      // from no majority for an election timeout (0.5–1 s), stepped down before the submit came
      // (a loaded machine once took that long): then it is tried again. A refused attempt's outcome
      // is unknown, as the 503 says: the leader may have appended it before stepping down, and
      // then commits it once it leads again.
      const ran = await waitFor('the worker to run the task of the uncommitted submit', async () => {
        if ((await tasksDone()) > before) return 'ran';
        return early?.status === 503 ? 'refused' : undefined;
      });
      if (ran === 'ran') break;
      expect(attempt, 'the leader stepped down before the submit every time').toBeLessThan(3);
      c.kill(m1, 'SIGCONT');
      c.kill(m2, 'SIGCONT');
      await untilAgreedLeader(
        masters.map((m) => m.url),
        { leaderId: 3, procs: masters },
      );
      await c.untilReady(leader);
      await waitFor('the worker’s channel open on the leader again', async () => {
        const ws = (await http('GET', `${leader.url}/api/workers`)).json?.workers as { status: string }[] | undefined;
        return ws?.[0]?.status === 'active' && (await http('GET', `${worker.url}/api/status`)).json?.connected === true;
      });
      await untilConverged(masters.map((m) => m.url));
      // A refused attempt that did commit runs its task now: done before the next attempt counts.
      await waitFor('every job committed so far to end', async () =>
        (await allJobs(leader.url)).every((j: { status: string }) => j.status !== 'pending' && j.status !== 'running'),
      );
    }

    // The leader dies; so do the stopped followers, which never read the entry from their sockets.
    await c.stop(leader);
    await c.stop(m1);
    await c.stop(m2);
    const a = await answer!;
    expect(a.status, a.text).not.toBe(201);
    expect(a.status, a.text).not.toBe(200);

    const back = [await startMaster(1, m1.dataDir), await startMaster(2, m2.dataDir)];
    const agreed = await untilAgreedLeader(
      back.map((m) => m.url),
      { procs: back },
    );
    // The worker reconnects to the new leader and sends its report of that task again (re-sent
    // until acknowledged): it changes nothing there — no job, no task, a free slot for the next.
    const next = await http('POST', `${agreed.leaderUrl}/api/jobs?wait_ms=30000`, noop('after'), {}, 40_000);
    expect(next.status, next.text).toBe(201);
    expect(next.json.status).toBe('completed');
    await untilConverged(back.map((m) => m.url));
    const earlier = Array.from({ length: attempt - 1 }, (_, i) => `never-committed-${i + 1}`);
    for (const m of back) {
      // Read through a hand-over to the higher id, should it come now (answered 503 meanwhile).
      const names = await waitFor(`the jobs as ${m.url} shows them`, async () => {
        const r = await http('GET', `${m.url}/api/jobs?limit=1000`);
        return r.status === 200 ? (r.json.jobs as { name: string }[]).map((j) => j.name) : undefined;
      });
      expect(names).toContain('after');
      expect(names).not.toContain(`never-committed-${attempt}`);
      expect(names.filter((n: string) => n !== 'after' && !earlier.includes(n))).toEqual([]);
    }
    // Read again through a hand-over to the higher id (answered 503 meanwhile).
    const workers = await waitFor('the workers as the leader shows them', async () => {
      const r = await http('GET', `${agreed.leaderUrl}/api/workers`);
      return r.status === 200 ? (r.json.workers as { active_tasks: number }[]) : undefined;
    });
    expect(workers.map((w) => w.active_tasks)).toEqual([0]);
  });
});

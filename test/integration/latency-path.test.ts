// A one-task job's critical path with real processes: its submit entry carries its assignment,
// so the job takes two log entries (submit, completion), not three; and a worker SIGKILLed
// while running a task so assigned loses nothing (addresses 127.0.0.235–239 belong to this file).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  clusterStatus,
  http,
  submitJob,
  untilJobStatus,
  waitFor,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('latency-path');
let m: MasterProc;
let workers: WorkerProc[];

beforeAll(async () => {
  m = await c.master('127.0.0.235');
  workers = [await c.worker('127.0.0.236', m, { maxTasks: 1 }), await c.worker('127.0.0.237', m, { maxTasks: 1 })];
});
afterAll(() => c.cleanup());

const submit = (config: unknown) => submitJob(m.url, { name: 'one', type: 'batch', config });

const commitIndex = async () => (await clusterStatus(m.url))!.commit_index as number;

/** The worker the log says runs the job's task 0. */
async function runnerOf(jobId: string): Promise<WorkerProc | undefined> {
  const task = (await http('GET', `${m.url}/api/jobs/${jobId}/tasks`)).json.tasks?.[0];
  if (task?.status !== 'running') return undefined;
  const rows = (await http('GET', `${m.url}/api/workers`)).json.workers as { worker_id: string; address: string }[];
  const address = rows.find((r) => r.worker_id === task.worker_id)?.address;
  return workers.find((w) => w.address === address);
}

describe('a one-task job on an idle cluster', () => {
  it('completes with two log entries: its submit (carrying the assignment) and its completion', async () => {
    // Warm: both workers connected and known to the scheduler.
    await untilJobStatus(m.url, await submit({ operation: 'noop', task_count: 2 }), 'completed');
    const before = await commitIndex();
    const id = await submit({ operation: 'multiply', factor: 2, task_count: 1 });
    const job = await untilJobStatus(m.url, id, 'completed');
    expect(job.progress).toMatchObject({ total: 1, completed: 1, failed: 0 });
    expect((await http('GET', `${m.url}/api/jobs/${id}/results`)).json.results).toEqual([2]);
    expect(await commitIndex()).toBe(before + 2);
  });

  it('answers a long poll as soon as the job is done', async () => {
    const id = await submit({ operation: 'noop', task_count: 1 });
    const r = await http('GET', `${m.url}/api/jobs/${id}?wait_ms=30000`, undefined, {}, 40_000);
    expect(r.json.status).toBe('completed');
  });

  it('runs the task again elsewhere when its worker is SIGKILLed while running it', async () => {
    const id = await submit({ operation: 'sleep', ms: 3000, task_count: 1 });
    const doomed = await waitFor('the task to run on a worker', () => runnerOf(id), 10_000, 20);
    await c.stop(doomed, 'SIGKILL');
    const job = await untilJobStatus(m.url, id, 'completed', 60_000);
    expect(job.progress).toMatchObject({ total: 1, completed: 1, failed: 0, running: 0, pending: 0 });
    const task = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json.tasks[0];
    expect(task.attempt).toBe(2);
  });
});

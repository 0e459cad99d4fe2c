// The lease on running attempts (addresses 127.0.0.221–223 belong to this file): a worker
// that heartbeats but never reports loses its attempts once their lease is over, and they run
// on a real worker. The stuck worker is this file's own client of the worker protocol — real
// HTTP registration and heartbeats, the real channel and codec — that accepts tasks and then
// sits on them, as a worker whose executor hung where it cannot see would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { decodeToWorker, encode, type ToWorker } from '../../src/protocol/worker-channel.js';
import {
  Cluster,
  http,
  submitJob,
  untilJobStatus,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('lease');
let m: MasterProc;

/**
 * A worker that registers, heartbeats and takes assignments, and never reports on its own.
 * Its channel reconnects when it drops (a master restarting), saying it runs what it was given.
 */
class StuckWorker {
  readonly received: ToWorker[] = [];
  private socket: WebSocket | undefined;
  private heartbeats: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly workerId: string,
    private readonly master: string,
  ) {}

  static async start(master: string, address: string, maxTasks: number): Promise<StuckWorker> {
    const r = await http('POST', `${master}/api/workers/register`, { address, max_tasks: maxTasks });
    expect(r.status, r.text).toBe(201);
    const w = new StuckWorker(r.json.worker_id as string, master);
    w.heartbeats = setInterval(() => void w.heartbeat(), 300);
    await w.heartbeat();
    w.connect();
    await waitFor("the stuck worker's channel to open", () => w.open);
    return w;
  }

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  private connect(): void {
    if (this.closed) return;
    const socket = new WebSocket(`${this.master.replace(/^http/, 'ws')}/api/workers/${this.workerId}/channel`);
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      const d = decodeToWorker(data);
      if (d.ok) this.received.push(d.value);
    });
    socket.on('open', () => {
      const stopped = new Set(this.refs('cancel').map((t) => JSON.stringify(t)));
      const running = this.refs('assign').filter((t) => !stopped.has(JSON.stringify(t)));
      socket.send(encode({ t: 'hello', running, unacked: [] }));
    });
    socket.on('error', () => undefined);
    socket.on('close', () => setTimeout(() => this.connect(), 200));
  }

  private async heartbeat(): Promise<void> {
    await http('POST', `${this.master}/api/workers/heartbeat`, {
      worker_id: this.workerId,
      status: 'active',
      active_tasks: 0,
      // One executor per slot, as a worker started without --threads says.
      metrics: { executors: 2 },
      timestamp: new Date().toISOString(),
    });
  }

  /** The attempts it was told to run, or to stop, so far. */
  refs(t: 'assign' | 'cancel'): { job_id: string; idx: number; attempt: number }[] {
    return this.received.flatMap((msg) =>
      msg.t === t ? msg.tasks.map(({ job_id, idx, attempt }) => ({ job_id, idx, attempt })) : [],
    );
  }

  send(msg: Parameters<typeof encode>[0]): void {
    this.socket!.send(encode(msg));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeats);
    this.socket?.close();
  }
}

let stuck: StuckWorker;
let real: WorkerProc;

beforeAll(async () => {
  m = await c.master('127.0.0.221');
  stuck = await StuckWorker.start(m.url, '127.0.0.222:1', 2);
}, 60_000);
afterAll(async () => {
  stuck?.close();
  await c.cleanup();
});

const submit = (name: string, config: Json) => submitJob(m.url, { name, type: 'batch', config });

describe('a worker that heartbeats but never reports', () => {
  it('loses its attempts once their lease is over; they run again on a real worker, and its late report changes nothing', async () => {
    // Both jobs' tasks go to the stuck worker, the only one there is.
    const retried = await submit('stuck-then-retried', { operation: 'noop', task_count: 1, timeout_ms: 1000 });
    const final = await submit('stuck-no-retries', {
      operation: 'noop',
      task_count: 1,
      timeout_ms: 1000,
      max_retries: 0,
    });
    await waitFor('the stuck worker to be assigned both tasks', () => stuck.refs('assign').length === 2);
    expect(stuck.refs('assign').map((a) => a.attempt)).toEqual([1, 1]);

    real = await c.worker('127.0.0.223', m, { maxTasks: 2 });
    const workers = (await http('GET', `${m.url}/api/workers`)).json.workers as Json[];
    const realId = workers.find((w) => w.address === real.address).worker_id as string;

    // The job without retries fails, and says why: its lease, on which worker, after how long.
    const failed = await untilJobStatus(m.url, final, 'failed', 60_000);
    expect(failed.error.message).toMatch(
      new RegExp(`^lease expired on worker ${stuck.workerId} after \\d+ ms: attempt 1 of task 0`),
    );

    // The other runs again on the real worker, charged one failure, as a timeout would be.
    await untilJobStatus(m.url, retried, 'completed', 60_000);
    const [task] = (await http('GET', `${m.url}/api/jobs/${retried}/tasks`)).json.tasks as Json[];
    expect(task).toMatchObject({ idx: 0, status: 'completed', attempt: 2, failures: 1, worker_id: realId });

    // The stuck worker was told to stop both expired attempts, and is still alive: a lease is
    // not a heartbeat, and its worker is not declared dead for it.
    await waitFor('cancellations of both expired attempts', () => stuck.refs('cancel').length >= 2);
    expect(stuck.refs('cancel')).toEqual(
      expect.arrayContaining([
        { job_id: retried, idx: 0, attempt: 1 },
        { job_id: final, idx: 0, attempt: 1 },
      ]),
    );
    const after = (await http('GET', `${m.url}/api/workers`)).json.workers as Json[];
    expect(after.find((w) => w.worker_id === stuck.workerId)?.status).toBe('active');

    // Its late reports of the expired attempts are acknowledged and change nothing.
    stuck.send({
      t: 'report',
      reports: [
        { job_id: retried, idx: 0, attempt: 1, ok: true, result_json: '["from the stuck worker"]' },
        { job_id: final, idx: 0, attempt: 1, ok: true, result_json: '["from the stuck worker"]' },
      ],
    });
    await waitFor('the late reports to be acknowledged', () =>
      stuck.received.some((msg) => msg.t === 'ack' && msg.tasks.some((t) => t.job_id === final)),
    );
    expect((await http('GET', `${m.url}/api/jobs/${retried}/results`)).json.results).toEqual([0]);
    expect((await http('GET', `${m.url}/api/jobs/${retried}`)).json.status).toBe('completed');
    expect((await http('GET', `${m.url}/api/jobs/${final}`)).json.status).toBe('failed');
  }, 120_000);

  it('loses them after a leader change too: the new leader holds the lease from its state, counted from its election', async () => {
    // The stuck worker alone again, so the next task goes to it.
    await c.stop(real);
    await waitFor('the real worker to be declared dead', async () => {
      const ws = (await http('GET', `${m.url}/api/workers`)).json?.workers as Json[] | undefined;
      return ws?.find((w) => w.address === real.address)?.status === 'dead';
    });
    const job = await submit('stuck-across-restart', { operation: 'noop', task_count: 1, timeout_ms: 1000 });
    await waitFor('the stuck worker to be assigned the task', () => stuck.refs('assign').some((a) => a.job_id === job));

    // The leader goes (kill -9) and comes back on its data dir: a new term, a new leader, which
    // knows the attempt only from its state.
    await c.stop(m);
    m = await c.master('127.0.0.221', { port: m.port, dataDir: m.dataDir });
    await waitFor('the stuck worker to reconnect to the new leader', () => stuck.open);
    const replacement = await c.worker('127.0.0.223', m, { maxTasks: 2 });
    const workers = (await http('GET', `${m.url}/api/workers`)).json.workers as Json[];
    const replacementId = workers.find((w) => w.address === replacement.address).worker_id as string;

    await untilJobStatus(m.url, job, 'completed', 60_000);
    const [task] = (await http('GET', `${m.url}/api/jobs/${job}/tasks`)).json.tasks as Json[];
    expect(task).toMatchObject({ status: 'completed', attempt: 2, failures: 1, worker_id: replacementId });
    await c.waitForLog(m, /lease expired: failing the attempt/);
    const metrics = (await http('GET', `${m.url}/metrics`)).text;
    expect(metrics).toMatch(/^weir_leases_expired_total 1$/m);
  }, 120_000);
});

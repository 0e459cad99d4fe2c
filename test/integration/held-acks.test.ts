// A worker's report is acknowledged behind the next frame the leader sends that worker, or on
// its own within 20 ms (addresses 127.0.0.57–58 belong to this file). A worker keeps a report
// until it is acknowledged and sends it again to whoever leads next, so a master killed -9
// while it holds an acknowledgement loses nothing: the report comes again and changes nothing.
// The worker here is this file's own client of the worker protocol — real registration and
// heartbeats, the real channel and codec — that reports each task it is given at once and
// keeps its reports until acknowledged, as a worker does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { taskKey } from '../../src/protocol/task-ref.js';
import { decodeToWorker, encode, type TaskReport, type ToMaster } from '../../src/protocol/worker-channel.js';
import { Cluster, http, waitFor, type MasterProc } from '../helpers/cluster.js';

const c = new Cluster('held-acks');
let m: MasterProc;

class ReportingWorker {
  /** Reports sent and not acknowledged yet, by task key. */
  readonly unacked = new Map<string, TaskReport>();
  /** Jobs whose report was acknowledged. */
  readonly acked = new Set<string>();
  private socket: WebSocket | undefined;
  private heartbeats: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly workerId: string,
    private readonly master: () => string,
  ) {}

  static async start(master: () => string, address: string): Promise<ReportingWorker> {
    const r = await http('POST', `${master()}/api/workers/register`, { address, max_tasks: 2 });
    expect(r.status, r.text).toBe(201);
    const w = new ReportingWorker(r.json.worker_id as string, master);
    w.heartbeats = setInterval(() => void w.heartbeat().catch(() => undefined), 300);
    await w.heartbeat();
    w.connect();
    await waitFor("the worker's channel to open", () => w.socket?.readyState === WebSocket.OPEN);
    return w;
  }

  private connect(): void {
    if (this.closed) return;
    const socket = new WebSocket(`${this.master().replace(/^http/, 'ws')}/api/workers/${this.workerId}/channel`);
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      const d = decodeToWorker(data);
      if (!d.ok) return;
      const msg = d.value;
      if (msg.t === 'ack') {
        for (const ref of msg.tasks) {
          this.unacked.delete(taskKey(ref));
          this.acked.add(ref.job_id);
        }
      }
      if (msg.t !== 'assign') return;
      const reports: TaskReport[] = msg.tasks.map(({ job_id, idx, attempt }) => ({
        job_id,
        idx,
        attempt,
        ok: true,
        result_json: JSON.stringify([`${job_id}/${idx}`]),
      }));
      for (const r of reports) this.unacked.set(taskKey(r), r);
      this.send({ t: 'report', reports });
    });
    socket.on('open', () => {
      const pending = [...this.unacked.values()];
      this.send({
        t: 'hello',
        running: [],
        unacked: pending.map(({ job_id, idx, attempt }) => ({ job_id, idx, attempt })),
      });
      if (pending.length) this.send({ t: 'report', reports: pending, resent: true });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => setTimeout(() => this.connect(), 100));
  }

  private send(msg: ToMaster): void {
    this.socket?.send(encode(msg));
  }

  private async heartbeat(): Promise<void> {
    await http('POST', `${this.master()}/api/workers/heartbeat`, {
      worker_id: this.workerId,
      status: 'active',
      active_tasks: 0,
      metrics: { executors: 2 },
      timestamp: new Date().toISOString(),
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeats);
    this.socket?.close();
  }
}

let worker: ReportingWorker;

beforeAll(async () => {
  m = await c.master('127.0.0.57');
  worker = await ReportingWorker.start(() => m.url, '127.0.0.58:1');
}, 60_000);
afterAll(async () => {
  worker?.close();
  await c.cleanup();
});

/** Submits a one-task job and waits for it to complete; its id. */
async function completedJob(name: string): Promise<string> {
  const r = await http('POST', `${m.url}/api/jobs?wait_ms=20000`, {
    name,
    type: 'batch',
    config: { operation: 'noop', task_count: 1 },
  });
  expect(r.status, r.text).toBe(201);
  expect(r.json.status).toBe('completed');
  return r.json.job_id as string;
}

describe('acknowledgements held for the next frame', () => {
  it('reach the worker on their own when no frame follows', async () => {
    const id = await completedJob('alone');
    await waitFor('the report to be acknowledged', () => worker.acked.has(id), 5_000, 5);
    expect(worker.unacked.size).toBe(0);
  });

  it('a master killed -9 while it holds one loses nothing: the worker reports again to the master back on its data dir, and the job keeps its one result', async () => {
    // The answer comes before the acknowledgement is due: a kill right after it lands while
    // it is held, unless the machine stalled this process for 20 ms (then another job).
    let id = '';
    let ackedBeforeKill = true;
    for (let i = 0; i < 5 && ackedBeforeKill; i++) {
      id = await completedJob(`killed-${i}`);
      ackedBeforeKill = worker.acked.has(id);
      await c.stop(m, 'SIGKILL');
      m = await c.master('127.0.0.57', { port: m.port, dataDir: m.dataDir });
    }
    expect(ackedBeforeKill, 'no kill landed while an acknowledgement was held').toBe(false);
    await waitFor('the report sent again to be acknowledged', () => worker.acked.has(id), 15_000, 20);
    expect(worker.unacked.size).toBe(0);
    const job = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
    expect(job.status).toBe('completed');
    expect(job.progress).toMatchObject({ total: 1, completed: 1, failed: 0 });
    expect((await http('GET', `${m.url}/api/jobs/${id}/results`)).json.results).toEqual([`${id}/0`]);
  }, 120_000);
});

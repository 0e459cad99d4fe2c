// The Weir side of the benchmark: a real cluster of child processes (1 master, 2 workers)
// driven over its REST API, as a user would drive it.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { freePortBlock, makeTempDir, startChild, stopChild, waitUntil, type Child } from './procs.js';
import { mapLimit, sampleLatency } from './stats.js';

const WEIR_BIN = new URL('../../bin/weir.js', import.meta.url).pathname;

interface JobView {
  job_id: string;
  status: string;
  progress: { total: number; completed: number };
  error?: { message: string };
}

/**
 * A keep-alive JSON client for one origin. Enough connections that 100 parked long polls
 * never queue the submits behind them.
 */
export class Api {
  private readonly pool: Pool;

  constructor(readonly origin: string) {
    this.pool = new Pool(origin, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
  }

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await this.pool.request({
      method,
      path,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${path} → ${res.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

export interface WeirCluster {
  api: Api;
  master: Child;
  workers: Child[];
  maxTasks: number;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  maxTasks: number;
  /** Extra node flags per process ('master', 'w1', 'w2'), e.g. `--cpu-prof`. */
  nodeArgs?: (name: string) => string[];
}

/** Starts a master and two workers on consecutive free ports; resolves once tasks can run. */
export async function startWeirCluster(o: ClusterOptions): Promise<WeirCluster> {
  const dir = makeTempDir('weir-bench-');
  const port = await freePortBlock(3);
  const masterUrl = `http://127.0.0.1:${port}`;
  // An open cluster (no JWT_SECRET) so that auth is not part of the measurement.
  const env = { ...process.env, JWT_SECRET: undefined, WEIR_TOKEN: undefined, WEIR_MASTER: undefined };
  const node = (name: string, args: string[]) => {
    mkdirSync(join(dir, name), { recursive: true });
    const nodeArgs = o.nodeArgs?.(name) ?? [];
    return startChild(name, process.execPath, [...nodeArgs, WEIR_BIN, ...args, '--data-dir', join(dir, name)], {
      logFile: join(dir, `${name}.log`),
      env,
    });
  };
  const master = node('master', ['master', '--host', '127.0.0.1', '--port', String(port)]);
  const api = new Api(masterUrl);
  const stop = async () => {
    await api.close();
    // Generous grace: a profiled process writes its profile on the way out.
    await Promise.all(workers.map((w) => stopChild(w, 10_000)));
    await stopChild(master, 10_000);
  };
  const workers: Child[] = [];
  try {
    await waitUntil('the master to be ready', async () => (await fetch(`${masterUrl}/ready`)).ok, 20_000, [master]);
    for (const i of [1, 2]) {
      const flags = ['--host', '127.0.0.1', '--port', String(port + i), '--master', masterUrl];
      workers.push(node(`w${i}`, ['worker', ...flags, '--max-tasks', String(o.maxTasks)]));
    }
    await waitUntil('both workers to connect', () => workersConnected(port, 2), 20_000, [master, ...workers]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { api, master, workers, maxTasks: o.maxTasks, stop };
}

/** A worker can take tasks once its channel to the master is open (its /api/status says so). */
async function workersConnected(masterPort: number, n: number): Promise<boolean> {
  for (let i = 1; i <= n; i++) {
    const res = await fetch(`http://127.0.0.1:${masterPort + i}/api/status`);
    if (!res.ok || !((await res.json()) as { connected: boolean }).connected) return false;
  }
  return true;
}

const noopJob = (name: string, taskCount: number) => ({
  name,
  type: 'batch',
  config: { operation: 'noop', task_count: taskCount },
});

/** A job not finished by then is stuck (a worker died, a task was lost), not slow. */
const JOB_TIMEOUT_MS = 60_000;

/** Long-polls until the job is finished; anything but `completed` is a failed run. */
async function waitCompleted(api: Api, jobId: string): Promise<void> {
  for (const t0 = performance.now(); performance.now() - t0 < JOB_TIMEOUT_MS;) {
    const job = await api.call<JobView>('GET', `/api/jobs/${jobId}?wait_ms=5000`);
    if (job.status === 'completed') {
      if (job.progress.completed !== job.progress.total) throw new Error(`job ${jobId} completed with missing tasks`);
      return;
    }
    if (job.status === 'failed' || job.status === 'cancelled') {
      throw new Error(`job ${jobId} ${job.status}: ${job.error?.message ?? 'no error given'}`);
    }
  }
  throw new Error(`job ${jobId} did not finish within ${JOB_TIMEOUT_MS} ms`);
}

export interface ThroughputShape {
  jobs: number;
  tasksPerJob: number;
  inFlight: number;
}

/**
 * One throughput round: `jobs` jobs submitted with at most `inFlight` submits outstanding;
 * each job is followed by a long poll as soon as it is accepted. Returns tasks per second
 * from the first submit to the last completion seen.
 */
export async function weirThroughputRound(api: Api, shape: ThroughputShape, label: string): Promise<number> {
  const waits: Promise<void>[] = [];
  // Kept until every wait is collected, so an early failure is never an unhandled rejection.
  let failure: unknown;
  const t0 = performance.now();
  await mapLimit(
    Array.from({ length: shape.jobs }, (_, i) => i),
    shape.inFlight,
    async (i) => {
      const job = await api.call<JobView>('POST', '/api/jobs', noopJob(`${label}-${i}`, shape.tasksPerJob));
      waits.push(waitCompleted(api, job.job_id).catch((err: unknown) => void (failure ??= err)));
    },
  );
  await Promise.all(waits);
  if (failure) throw failure;
  const seconds = (performance.now() - t0) / 1000;
  return (shape.jobs * shape.tasksPerJob) / seconds;
}

/** Submit-to-completed latency of 1-task jobs, one at a time; milliseconds per sample. */
export function weirLatency(api: Api, samples: number, warmup: number): Promise<number[]> {
  let n = 0;
  return sampleLatency(
    async () => {
      const job = await api.call<JobView>('POST', '/api/jobs', noopJob(`lat-${n++}`, 1));
      await waitCompleted(api, job.job_id);
    },
    samples,
    warmup,
  );
}

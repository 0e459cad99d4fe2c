// The peer: BullMQ on a private, non-persistent redis-server, with two worker processes.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { freePortBlock, makeTempDir, run, startChild, stopChild, tailLog, waitUntil, type Child } from './procs.js';
import { log, mapLimit } from './stats.js';

const WORKER_JS = new URL('./bullmq-worker.js', import.meta.url).pathname;
/** No RDB snapshots, no AOF: Redis as a pure in-memory queue, its fastest setting. */
export const REDIS_FLAGS = ['--save', '', '--appendonly', 'no'];
/**
 * Every write in the append-only file and fsynced before Redis answers: durable as Weir's
 * acknowledged writes are (one fsync'd log entry before a submit or an outcome is acknowledged).
 */
export const REDIS_DURABLE_FLAGS = ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];

const hasRedisServer = () => spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

/**
 * Makes sure `redis-server` is on PATH: as root, installs Debian's package; otherwise says
 * how and returns a reason to skip the BullMQ rows.
 */
export async function ensureRedisServer(): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (hasRedisServer()) return { ok: true };
  const howTo = 'install it with: sudo apt-get install -y redis-server (Debian package redis-server)';
  if (process.getuid?.() !== 0) return { ok: false, reason: `redis-server is not on PATH; ${howTo}` };
  log('redis-server is not on PATH; installing the Debian package redis-server (apt-get, as root)…');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if ((await run('apt-get', ['update'], 180_000, env)) !== 0) {
    return { ok: false, reason: `apt-get update failed; ${howTo}` };
  }
  const installed =
    (await run('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server'], 240_000, env)) === 0;
  if (!installed || !hasRedisServer()) return { ok: false, reason: `apt-get install redis-server failed; ${howTo}` };
  return { ok: true };
}

export interface BullSetup {
  queue: Queue;
  connection: { host: string; port: number };
  redis: Child;
  workers: Child[];
  version: string;
  stop(): Promise<void>;
}

/**
 * Starts redis-server in a temp dir on a free loopback port (in memory, or with `durable`
 * fsyncing every write), and the worker processes.
 */
export async function startBull(o: { workers: number; concurrency: number; durable?: boolean }): Promise<BullSetup> {
  const dir = makeTempDir('weir-bench-redis-');
  const port = await freePortBlock(1);
  const connection = { host: '127.0.0.1', port };
  const redis = startChild(
    'redis-server',
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--daemonize',
      'no',
      ...(o.durable ? REDIS_DURABLE_FLAGS : REDIS_FLAGS),
    ],
    { logFile: join(dir, 'redis.log') },
  );
  const workers: Child[] = [];
  let queue: Queue | undefined;
  const stop = async () => {
    await queue?.close();
    await Promise.all(workers.map((w) => stopChild(w)));
    await stopChild(redis);
  };
  try {
    await waitUntil('redis-server to answer PING', () => ping(port), 10_000, [redis]);
    const queueName = 'bench';
    queue = new Queue(queueName, { connection });
    await queue.waitUntilReady();
    for (let i = 1; i <= o.workers; i++) {
      workers.push(
        await startBullWorker(i, dir, {
          REDIS_PORT: String(port),
          QUEUE: queueName,
          CONCURRENCY: String(o.concurrency),
        }),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { queue, connection, redis, workers, version: redisVersion(), stop };
}

async function ping(port: number): Promise<boolean> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => {}); // refused connections are expected until the server listens
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } finally {
    r.disconnect();
  }
}

function redisVersion(): string {
  const out = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  return /v=(\S+)/.exec(out)?.[1] ?? 'unknown';
}

async function startBullWorker(i: number, dir: string, env: Record<string, string>): Promise<Child> {
  const child = startChild(`bullmq-worker-${i}`, process.execPath, [WORKER_JS], {
    logFile: join(dir, `bullmq-worker-${i}.log`),
    env: { ...process.env, ...env },
    ipc: true,
  });
  const ready = new Promise<boolean>((resolve) => child.proc.once('message', () => resolve(true)));
  const outcome = await Promise.race([ready, child.exited.then(() => false)]);
  if (!outcome) throw new Error(`${child.name} exited before it was ready; its log:\n${tailLog(child)}`);
  return child;
}

/** A round that has not finished by then is stuck (a worker died), not slow. */
const ROUND_TIMEOUT_MS = 60_000;

/**
 * One throughput round: `jobs × tasksPerJob` no-op jobs added with addBulk, one chunk per
 * Weir job, at most `inFlight` chunks outstanding (as Weir's submits). Completions are
 * counted by polling every 5 ms, not from QueueEvents, whose capped event stream can drop
 * events at this rate. Returns jobs per second from the first add to the last completion.
 */
export async function bullThroughputRound(
  queue: Queue,
  shape: { jobs: number; tasksPerJob: number; inFlight: number },
): Promise<number> {
  const total = shape.jobs * shape.tasksPerJob;
  const before = await finishedCounts(queue);
  const t0 = performance.now();
  await mapLimit(
    Array.from({ length: shape.jobs }, (_, i) => i),
    shape.inFlight,
    async (c) => {
      await queue.addBulk(Array.from({ length: shape.tasksPerJob }, (_, j) => ({ name: 'noop', data: { c, j } })));
    },
  );
  for (;;) {
    const now = await finishedCounts(queue);
    if (now.failed > before.failed) throw new Error(`${now.failed - before.failed} BullMQ job(s) failed`);
    if (now.completed - before.completed >= total) break;
    if (performance.now() - t0 > ROUND_TIMEOUT_MS) {
      throw new Error(
        `BullMQ completed ${now.completed - before.completed} of ${total} jobs in ${ROUND_TIMEOUT_MS} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return total / ((performance.now() - t0) / 1000);
}

async function finishedCounts(queue: Queue): Promise<{ completed: number; failed: number }> {
  const c = await queue.getJobCounts('completed', 'failed');
  return { completed: c.completed ?? 0, failed: c.failed ?? 0 };
}

/**
 * One single job, add → completed, observed through QueueEvents: a call for sampleLatencyInTurn; `close` ends the QueueEvents connection.
 */
export async function bullLatencyCall(
  setup: BullSetup,
): Promise<{ once: () => Promise<void>; close: () => Promise<void> }> {
  const events = new QueueEvents(setup.queue.name, { connection: setup.connection });
  await events.waitUntilReady();
  return {
    once: async () => {
      const job = await setup.queue.add('noop', {});
      await job.waitUntilFinished(events, 10_000);
    },
    close: () => events.close(),
  };
}

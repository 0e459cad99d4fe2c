import { mkdirSync, rmSync } from 'node:fs';
import { registerOpenApi } from '../common/openapi.js';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import { nodeMetrics } from '../common/node-metrics.js';
import { installAuth } from '../common/auth-hook.js';
import { checkRepliesIfAsked } from '../common/reply-check.js';
import { secretWarning, TokenSource } from '../common/auth.js';
import { refusedFramesCounter } from '../common/refused-frames-metric.js';
import { WORKER_ACCESS } from './access-table.js';
import { TaskTokens } from './task-tokens.js';
import { lockDataDir } from '../common/data-dir.js';
import {
  BODY_LIMIT,
  clientErrors,
  frameworkErrors,
  installErrorHandlers,
  socketErrors,
} from '../common/http-errors.js';
import { installJsonBodies } from '../common/json-bodies.js';
import { schemaCompilers, validatorCompiler } from '../common/http-validation.js';
import { StreamRuntime, type InstanceMetrics } from './stream/runtime.js';
import { linkTokens } from './stream/links.js';
import { HttpClient } from '../common/http-client.js';
import { createLogger, type Logger } from '../common/logger.js';
import { refuseUnverifiedClients, type NodeTls } from '../common/tls.js';
import { WorkerAgent } from './agent.js';
import { codeRoots, defaultRights, EXECUTOR_ENTRY, ExecutorPool } from './executor-pool.js';
import { prepareForExecutorUser, type ExecutorUser } from './executor-user.js';
import type { TaskRights } from './executor-rules.js';
import { DEFAULT_LIMITS } from '../ops/batch-config.js';
import { workerRoutes } from './routes.js';
import { WorkerStats } from './worker-stats.js';

export interface WorkerOptions {
  host: string;
  port: number;
  masters: string[];
  maxTasks: number;
  /** Executor processes running tasks (default: one per slot); fewer suits tiny or CPU-bound tasks. */
  threads?: number;
  /** What tasks may read, write and fetch (--allow-read, --allow-write, --allow-net). */
  rights?: TaskRights;
  dataDir: string;
  /** Executors run as this user (`--executor-user`; the worker runs as root). */
  executorUser?: ExecutorUser;
  jwtSecret?: string;
  /** How long the tokens it mints for itself are valid (`WEIR_TOKEN_TTL`; default 1 h). */
  tokenTtlMs?: number;
  token?: string;
  /** Serve https/wss, and connect to the other nodes with it (`--tls-cert`, `--tls-key`, `--tls-ca`). */
  tls?: NodeTls;
  heartbeatIntervalMs?: number;
  logger?: Logger;
}

/** A worker process: its agent, its executor pool and its own small HTTP server. */
export class WorkerNode {
  private closed = false;

  private constructor(
    readonly agent: WorkerAgent,
    private readonly pool: ExecutorPool,
    private readonly app: FastifyInstance,
    private readonly client: HttpClient,
    private readonly release: () => void,
    readonly log: Logger,
  ) {}

  static async start(o: WorkerOptions): Promise<WorkerNode> {
    const log = o.logger ?? createLogger('weir-worker', { port: o.port });
    const release = lockDataDir(o.dataDir);
    const tokens = new TokenSource(
      o.jwtSecret,
      o.token,
      `worker:${o.host}:${o.port}`,
      { role: 'worker' },
      o.tokenTtlMs,
    );
    const client = new HttpClient({
      urls: o.masters,
      tokens,
      retryForMs: 5000,
      ...(o.tls ? { tls: o.tls.connect } : {}),
    });
    const stats = new WorkerStats();
    const address = `${o.host}:${o.port}`;
    // Map outputs of an earlier run belong to attempts the masters have written off.
    const shuffleDir = join(o.dataDir, 'shuffle');
    rmSync(shuffleDir, { recursive: true, force: true });
    mkdirSync(shuffleDir, { recursive: true });
    const rights = o.rights ?? defaultRights(o.dataDir);
    const executors = o.threads ?? o.maxTasks;
    // Of the data dir, tasks reach only where map outputs go (user code: its own job's).
    if (o.executorUser) prepareForExecutorUser(o.executorUser, o.dataDir, shuffleDir, [EXECUTOR_ENTRY, ...codeRoots()]);
    const pool = new ExecutorPool(executors, {
      rights,
      shuffleDir,
      ...(o.executorUser ? { user: o.executorUser } : {}),
      warm: { count: Math.min(executors, availableParallelism()), memoryMb: DEFAULT_LIMITS.memory_mb },
    });
    warnOfCostlyRoots(pool.permissionEntries, o.dataDir, log);
    const streams = new StreamRuntime({
      address,
      maxTasks: o.maxTasks,
      executors: pool,
      tokens,
      client,
      tls: o.tls,
      rights,
      log: log.child({ component: 'stream' }),
    });
    const agent = new WorkerAgent({
      shuffleDir,
      ...(rights.net ? { allowNet: rights.net } : {}),
      streams,
      client,
      tokens,
      taskTokens: new TaskTokens(tokens),
      pool,
      stats,
      address,
      maxTasks: o.maxTasks,
      tls: o.tls,
      log,
      ...(o.heartbeatIntervalMs ? { heartbeatIntervalMs: o.heartbeatIntervalMs } : {}),
    });

    const metrics = new Registry();
    refusedFramesCounter([metrics]);
    nodeMetrics(metrics, 'weir_worker_');
    new Gauge({
      name: 'weir_worker_active_tasks',
      help: 'Tasks running now',
      registers: [metrics],
      collect() {
        this.set(agent.activeTasks);
      },
    });
    // Per-operator figures of the streaming instances here (as `weir status` shows them).
    const perInstance = (name: string, help: string, pick: (m: InstanceMetrics) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['job_id', 'component', 'index'],
        registers: [metrics],
        collect() {
          this.reset();
          for (const m of streamFigures())
            this.set({ job_id: m.job_id, component: m.component, index: m.index }, pick(m));
        },
      });
    let figures: { at: number; list: InstanceMetrics[] } = { at: 0, list: [] };
    const streamFigures = () => {
      if (Date.now() - figures.at > 500) figures = { at: Date.now(), list: streams.metrics() };
      return figures.list;
    };
    perInstance('weir_stream_events_in_total', 'Events an operator instance took in', (m) => m.events_in);
    perInstance('weir_stream_events_out_total', 'Events an operator instance sent on', (m) => m.events_out);
    perInstance('weir_stream_queue_fill', 'Share of the instance input buffer in use (0–1)', (m) => m.queue_fill);
    perInstance('weir_stream_backpressure', '1 when the instance waits for room downstream', (m) =>
      m.backpressure ? 1 : 0,
    );
    perInstance('weir_stream_pending_events', 'Source events not yet fully processed', (m) => m.pending);
    new Counter({
      name: 'weir_worker_tasks_total',
      help: 'Tasks finished, by outcome',
      labelNames: ['outcome'],
      registers: [metrics],
      collect() {
        this.reset();
        this.inc({ outcome: 'completed' }, stats.tasksDone);
        this.inc({ outcome: 'failed' }, stats.tasksFailed);
      },
    });
    new Counter({
      name: 'weir_stream_link_tokens_total',
      help: 'Fresh tokens other workers sent on their stream links here (renewed, refused) and links closed as their token expired',
      labelNames: ['outcome'],
      registers: [metrics],
      collect() {
        this.reset();
        for (const [outcome, n] of Object.entries(linkTokens)) this.inc({ outcome }, n);
      },
    });
    // Tasks per executor message is what a quick task's cost hangs on (task-chunks.ts).
    const executorCounter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [metrics],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    executorCounter('weir_executor_tasks_sent_total', 'Tasks sent to executor processes', () => pool.sent.tasks);
    executorCounter(
      'weir_executor_messages_total',
      'Messages (chunks of tasks) sent to executor processes',
      () => pool.sent.chunks,
    );
    executorCounter(
      'weir_executor_late_writes_dropped_total',
      'Lines user code printed after its task had reported, dropped',
      () => pool.lateWritesDropped,
    );

    const app = Fastify({
      ...schemaCompilers,
      bodyLimit: BODY_LIMIT,
      clientErrorHandler: clientErrors,
      loggerInstance: log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
      frameworkErrors: frameworkErrors('worker'),
      ...(o.tls ? { https: o.tls.server } : {}),
    }).withTypeProvider<TypeBoxTypeProvider>();
    if (o.tls?.server.requestCert) {
      refuseUnverifiedClients(app.server, (why, remote, count) =>
        log.warn({ why, remote, count }, 'refused a TLS client: its certificate is not signed by --tls-ca'),
      );
    }
    app.setValidatorCompiler(validatorCompiler);
    installErrorHandlers(app, 'worker');
    installJsonBodies(app);
    checkRepliesIfAsked(app);
    installAuth(app, WORKER_ACCESS, o.jwtSecret);
    await app.register(websocket, { errorHandler: socketErrors, options: { maxPayload: 256 * 1024 * 1024 } });
    await registerOpenApi(app, 'worker');
    await app.register(
      workerRoutes({
        streams,
        jwtSecret: o.jwtSecret,
        shuffleDir,
        metrics,
        status: () => ({
          worker_id: agent.workerId ?? null,
          address,
          status: agent.status,
          connected: agent.connected,
          master: client.baseUrl,
          max_tasks: o.maxTasks,
          active_tasks: agent.activeTasks,
          threads: pool.threads,
          executor_pids: pool.pids,
          metrics: stats.totals(),
        }),
      }),
    );
    try {
      await app.listen({ host: o.host, port: o.port });
      await agent.start();
    } catch (err) {
      await app.close();
      await pool.close();
      release();
      throw err;
    }
    const weak = secretWarning(o.jwtSecret);
    if (weak) log.warn(weak);
    log.info({ address, masters: o.masters, max_tasks: o.maxTasks }, 'worker started');
    return new WorkerNode(agent, pool, app, client, release, log);
  }

  /** Graceful: finish and report running tasks first (SIGTERM). */
  async drainAndClose(graceMs = 30_000): Promise<void> {
    await this.agent.drain(graceMs);
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agent.stop();
    await Promise.allSettled([this.app.close(), this.pool.close(), this.client.close()]);
    this.release();
  }
}

/** Entries past which keeping the data dir from tasks costs each executor more than ~3 MiB. */
const COSTLY_ENTRIES = 2000;

/**
 * A data dir in the temp or working dir is kept from tasks by listing every name beside it
 * (Node's permission model has no "deny"), which every executor holds in memory — counted in
 * its memory_mb. Said once at start, with the way out.
 */
function warnOfCostlyRoots(entries: number, dataDir: string, log: Logger): void {
  if (entries < COSTLY_ENTRIES) return;
  const mb = Math.round((entries * 1.6) / 1024);
  log.warn(
    { data_dir: dataDir, permission_entries: entries, executor_mb: mb },
    `the data dir lies in the temp or working dir: keeping tasks out of it costs every executor ~${mb} MiB of its memory_mb; give --data-dir a short path outside them (or name --allow-read/--allow-write)`,
  );
}

import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { lockDataDir } from '../common/data-dir.js';
import { createLogger, type Logger } from '../common/logger.js';
import { LogStore } from '../consensus/log-store.js';
import { SingleNodeConsensus } from '../consensus/single-node.js';
import type { RunningTask } from '../state/apply.js';
import { Queries } from '../state/queries.js';
import { StateMachine } from '../state/state-machine.js';
import { buildApp } from './app.js';
import type { MasterContext } from './context.js';
import { FailureDetector } from './failure-detector.js';
import { JobWatch } from './job-watch.js';
import { MasterMetrics } from './metrics.js';
import { Scheduler } from './scheduler.js';
import { WorkerChannels } from './worker-channels.js';
import { WorkerRegistry } from './worker-registry.js';

export interface MasterOptions {
  id: number;
  host: string;
  port: number;
  dataDir: string;
  /** Every master's URL, this one's included. Only a cluster of one is supported yet. */
  peers: string[];
  jwtSecret?: string;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  logger?: Logger;
}

/**
 * A master: the state machine behind consensus, and — while it leads — the scheduler and
 * the failure detector, with the REST API in front.
 */
export class MasterNode {
  private app: FastifyInstance | undefined;
  private closed = false;
  readonly log: Logger;

  private constructor(
    readonly options: MasterOptions,
    private readonly parts: {
      release: () => void;
      logStore: LogStore;
      state: StateMachine;
      consensus: SingleNodeConsensus;
      scheduler: Scheduler;
      detector: FailureDetector;
      channels: WorkerChannels;
      jobWatch: JobWatch;
      metrics: MasterMetrics;
    },
    log: Logger,
  ) {
    this.log = log;
  }

  get url(): string {
    return `http://${this.options.host}:${this.options.port}`;
  }

  static async start(options: MasterOptions): Promise<MasterNode> {
    const log = options.logger ?? createLogger('weir-master', { node_id: options.id });
    const self = `http://${options.host}:${options.port}`;
    const others = options.peers.filter((p) => p !== self);
    if (others.length > 0) {
      throw new Error(
        `--peers names other masters (${others.join(', ')}), but this version of Weir runs a cluster of one master; start it with --peers ${self} or without --peers`,
      );
    }
    const release = lockDataDir(options.dataDir);
    try {
      const logStore = new LogStore(join(options.dataDir, 'raft.db'));
      const state = new StateMachine(join(options.dataDir, 'state.db'));
      const consensus = new SingleNodeConsensus(logStore, state, { id: options.id, address: self });
      const queries = new Queries(state.db);
      const registry = new WorkerRegistry();
      const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
      const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3000;
      const scheduler = new Scheduler(consensus, queries, registry, log.child({ component: 'scheduler' }));
      const detector = new FailureDetector(consensus, queries, registry, heartbeatTimeoutMs, log);
      const channels = new WorkerChannels(consensus, queries, registry, scheduler, detector, log);
      const jobWatch = new JobWatch();
      const metrics = new MasterMetrics(queries, consensus);

      consensus.onApplied((batch) => {
        let kick = false;
        for (const { command, result } of batch) {
          if (!result.ok) continue;
          switch (command.type) {
            case 'completeTasks': {
              const accepted = result.accepted as { job_id: string; started_at: number }[];
              for (const a of accepted) {
                metrics.taskDuration.observe((command.at - a.started_at) / 1000);
                if (jobWatch.has(a.job_id)) jobWatch.notify(a.job_id);
              }
              metrics.tasksReported.inc({ outcome: 'completed' }, accepted.length);
              kick = true;
              break;
            }
            case 'failTasks':
              scheduler.stopTasks(result.to_stop as RunningTask[]);
              for (const f of command.failures) jobWatch.notify(f.job_id);
              metrics.tasksReported.inc({ outcome: 'failed' }, command.failures.length);
              kick = true;
              break;
            case 'cancelJob':
              scheduler.stopTasks(result.to_stop as RunningTask[]);
              jobWatch.notify(command.job_id);
              kick = true;
              break;
            case 'submitJob':
            case 'markWorkerDead':
            case 'registerWorker':
              kick = true;
              break;
            case 'assignTasks':
            case 'drainWorker':
              break;
          }
        }
        if (kick) scheduler.kick();
      });
      consensus.onLeadershipChange((leader) => {
        if (leader) {
          log.info({ term: consensus.status().term }, 'leading');
          detector.start();
          scheduler.start();
        } else {
          scheduler.stop();
          detector.stop();
        }
      });

      const node = new MasterNode(
        options,
        { release, logStore, state, consensus, scheduler, detector, channels, jobWatch, metrics },
        log,
      );
      const ctx: MasterContext = {
        consensus,
        queries,
        registry,
        channels,
        jobWatch,
        metrics,
        log,
        heartbeatIntervalMs,
        heartbeatTimeoutMs,
      };
      node.app = await buildApp(ctx, options.jwtSecret ? { jwtSecret: options.jwtSecret } : {});
      await node.app.listen({ host: options.host, port: options.port });
      if (!options.jwtSecret) log.warn('JWT_SECRET is not set: the cluster is open to anyone who can reach it');
      log.info({ url: self, data_dir: options.dataDir, last_applied: state.lastApplied }, 'master started');
      return node;
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Stops serving, then closes storage; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const p = this.parts;
    p.scheduler.stop();
    p.detector.stop();
    p.channels.close();
    p.jobWatch.close();
    try {
      await this.app?.close();
    } catch (err) {
      this.log.warn({ err }, 'closing the HTTP server failed');
    }
    await p.consensus.close();
    p.metrics.close();
    p.state.close();
    p.logStore.close();
    p.release();
  }
}

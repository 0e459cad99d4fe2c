import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { eventLoopDelaySummary, nodeMetrics } from '../common/node-metrics.js';
import { refusedFramesCounter } from '../common/refused-frames-metric.js';
import type { Queries } from '../state/queries.js';
import type { ClusterConsensus } from './cluster-log.js';
import type { JobWatch } from './job-watch.js';
import { channelTokens, tasksBegun } from './worker-channels.js';
import { peerLinkTokens } from '../consensus/peer-transport.js';

/** The master's Prometheus metrics; gauges are read from the state database at scrape time. */
export class MasterMetrics {
  readonly registry = new Registry();
  readonly taskDuration: Histogram;
  readonly tasksReported: Counter;
  /** Attempts the leader took back from their workers (lease-keeper.ts): a stuck worker shows here. */
  readonly leasesExpired: Counter;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor(queries: Queries, consensus: ClusterConsensus, jobWatch: JobWatch) {
    const registers = [this.registry];
    nodeMetrics(this.registry, 'weir_master_');
    this.loopDelay.enable();
    refusedFramesCounter(registers);
    new Counter({
      name: 'weir_worker_channel_tokens_total',
      help: 'Fresh tokens workers sent on their channels (renewed, refused) and channels closed as their token expired',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        for (const [outcome, n] of Object.entries(channelTokens)) this.inc({ outcome }, n);
      },
    });
    new Counter({
      name: 'weir_worker_tasks_begun_total',
      help: 'Attempts workers said were still running a moment after they began: a lost worker counts against these',
      registers,
      collect() {
        this.reset();
        this.inc(tasksBegun.count);
      },
    });
    new Counter({
      name: 'weir_peer_link_tokens_total',
      help: 'Fresh tokens other masters sent on their Raft links (renewed, refused) and links closed as their token expired',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        for (const [outcome, n] of Object.entries(peerLinkTokens)) this.inc({ outcome }, n);
      },
    });
    new Gauge({
      name: 'weir_jobs',
      help: 'Jobs by status',
      labelNames: ['status'],
      registers,
      collect() {
        const counts = queries.jobCountsByStatus();
        for (const s of ['pending', 'running', 'completed', 'failed', 'cancelled']) {
          this.set({ status: s }, counts.get(s) ?? 0);
        }
      },
    });
    new Gauge({
      name: 'weir_tasks',
      help: 'Tasks by status',
      labelNames: ['status'],
      registers,
      collect() {
        for (const [s, n] of queries.taskCountsByStatus()) this.set({ status: s }, n);
      },
    });
    new Gauge({
      name: 'weir_queue_depth',
      help: 'Tasks waiting for a worker',
      registers,
      collect() {
        this.set(queries.taskCountsByStatus().get('pending') ?? 0);
      },
    });
    new Gauge({
      name: 'weir_workers_alive',
      help: 'Workers not declared dead',
      registers,
      collect() {
        this.set(queries.workers().filter((w) => w.status !== 'dead').length);
      },
    });
    new Gauge({
      name: 'weir_long_polls_waiting',
      help: 'Requests waiting on this master for a job to end (?wait_ms)',
      registers,
      collect() {
        this.set(jobWatch.waiting);
      },
    });
    eventLoopDelaySummary(this.registry, 'weir_event_loop_delay_seconds', this.loopDelay);
    new Gauge({
      name: 'weir_consensus_index',
      help: 'Commit index and last applied index of this master',
      labelNames: ['kind'],
      registers,
      collect() {
        const s = consensus.status();
        this.set({ kind: 'commit' }, s.commit_index);
        this.set({ kind: 'applied' }, s.last_applied);
        this.set({ kind: 'term' }, s.term);
      },
    });
    this.taskDuration = new Histogram({
      name: 'weir_task_duration_seconds',
      help: 'Time tasks took on their workers, from assignment received to result',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300],
      registers,
    });
    this.tasksReported = new Counter({
      name: 'weir_task_reports_total',
      help: 'Task outcomes recorded, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.leasesExpired = new Counter({
      name: 'weir_leases_expired_total',
      help: 'Running attempts failed by this master because their lease expired unreported',
      registers,
    });
  }

  close(): void {
    this.loopDelay.disable();
  }
}

import type { TokenSource } from '../common/auth.js';
import type { Logger } from '../common/logger.js';
import type { NodeTls } from '../common/tls.js';
import type { Queries } from '../state/queries.js';
import type { BackupMaker } from './backup-maker.js';
import type { JobWatch } from './job-watch.js';
import type { LiveFeed } from './live-feed.js';
import type { MasterMetrics } from './metrics.js';
import type { WorkerChannels } from './worker-channels.js';
import type { WorkerRegistry } from './worker-registry.js';
import type { Scheduler } from './scheduler.js';
import type { ClusterConsensus } from './cluster-log.js';

/** What the HTTP routes of a master reach for. */
export interface MasterContext {
  consensus: ClusterConsensus;
  queries: Queries;
  registry: WorkerRegistry;
  channels: WorkerChannels;
  jobWatch: JobWatch;
  metrics: MasterMetrics;
  log: Logger;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** `--retention` in ms (0: kept): finished jobs, dead workers and unclaimed uploads. */
  retentionMs?: number;
  /** This master's own tokens, for calls it makes to workers. */
  tokens: TokenSource;
  /** With TLS, workers are reached over https too, with this master's certificate. */
  tls: NodeTls | undefined;
  /** Consistent copies of this master's state, for `GET /api/cluster/backup`. */
  backups?: BackupMaker;
  /** The `no_space` alarm as this master acts on it. */
  space: AlarmView;
  /** Places a submitted job's first tasks in its submit entry (absent: the scheduler's pass does). */
  scheduler?: Pick<Scheduler, 'placeOnSubmit' | 'sendOnSubmit' | 'submitted'>;
  /** The dashboard's change stream (GET /api/live); absent: the route is not served. */
  live?: LiveFeed;
}

/** The `no_space` alarm: this master's own (its disk, measured every second) and, on the leader, its voters'. */
export interface AlarmView {
  /** Why writes that add data are refused here now; undefined while they are taken. */
  readonly reason: string | undefined;
  /** The alarms this master acts on: `["no_space"]` or none. */
  alarms(): string[];
  /** This master's own alarms (what `/health` tells the leader). */
  ownAlarms(): string[];
  /** The bytes an upload may add to this master's disk: what is free above `--min-free-bytes`. */
  uploadRoom(): number;
}

import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { isDiskError, isDiskFull } from '../common/disk-errors.js';
import { DiskReserve, RESERVE_BYTES } from './disk-reserve.js';
import { forgetAtLeader } from './unclaimed-uploads.js';
import { UploadStore } from './uploads.js';
import type { FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import { secretWarning, TokenSource } from '../common/auth.js';
import { lockDataDir } from '../common/data-dir.js';
import { createLogger, type Logger } from '../common/logger.js';
import { schemeOf, type NodeTls } from '../common/tls.js';
import { PeerTransport } from '../consensus/peer-transport.js';
import { DEFAULT_TIMING, RaftConsensus, type RaftTiming } from '../consensus/raft-consensus.js';
import { RaftStorage } from '../consensus/raft-storage.js';
import { Queries } from '../state/queries.js';
import { commandCodec } from '../state/command-codec.js';
import type { Command, Results } from '../state/commands.js';
import { receivingPath, StateMachine } from '../state/state-machine.js';
import { schemaVersion } from '../state/schema.js';
import { RULES_VERSION } from '../state/rules.js';
import { buildApp } from './app.js';
import { findRunningCluster, requestJoin } from './cluster-join.js';
import {
  DnsDiscovery,
  StaticDiscovery,
  checkUniqueIds,
  type Discovery,
  type Peer,
  type PeerEntry,
} from './discovery.js';
import { FailureDetector } from './failure-detector.js';
import { Janitor } from './janitor.js';
import { RulesGate, type AnnouncedRules } from './rules-gate.js';
import { LifecycleQueries } from '../state/lifecycle-queries.js';
import { JobWatch } from './job-watch.js';
import { LeaseKeeper } from './lease-keeper.js';
import { assertEmptyDataDir, assertNoRestoreCutShort, restoreDataDir } from './restore.js';
import { BackupMaker } from './backup-maker.js';
import { checkBackup } from '../state/backup-file.js';
import { MasterMetrics } from './metrics.js';
import { watchLoopStalls } from './loop-stalls.js';
import { Scheduler } from './scheduler.js';
import { appliedEffects } from './applied-effects.js';
import { LiveFeed } from './live-feed.js';
import { WorkerChannels } from './worker-channels.js';
import { WorkerRegistry } from './worker-registry.js';
import { sqlitePageBytes } from '../common/sqlite-size.js';
import { DEFAULT_SPACE_LIMITS } from './space-alarm.js';
import { NO_SPACE, SpaceMonitor } from './space-monitor.js';
import { PeerAlarms } from './peer-alarms.js';
import type { AlarmView } from './context.js';
import { spaceMetrics } from './space-metrics.js';

export interface MasterOptions {
  id: number;
  /** The host other masters, workers and clients reach this one at. */
  host: string;
  /** Where to listen (default: `host`). */
  listenHost?: string;
  port: number;
  dataDir: string;
  /** Every master, its own included (`--peers`); bootstraps an empty data dir only. */
  peers?: PeerEntry[];
  /** `dns:NAME`: the peers are the A records of NAME, on this master's port. */
  discover?: string;
  /** With DNS discovery: how many masters must resolve before a new cluster is founded. */
  bootstrapExpect?: number;
  jwtSecret?: string;
  /** How long the tokens it mints for itself are valid (`WEIR_TOKEN_TTL`; default 1 h). */
  tokenTtlMs?: number;
  /** Serve https/wss, and connect to the other nodes with it (`--tls-cert`, `--tls-key`, `--tls-ca`). */
  tls?: NodeTls;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  timing?: Partial<RaftTiming>;
  /** How long past its `timeout_ms` a running attempt may go unreported (default 10 s). */
  leaseGraceMs?: number;
  logger?: Logger;
  /** `--min-free-bytes` (default 64 MiB): under this free on the data dir's disk, the no_space alarm is on. */
  minFreeBytes?: number;
  /** `--max-db-bytes` (default 8 GiB): over this in state, log and uploads, the no_space alarm is on. */
  maxDbBytes?: number;
  /** `--snapshot-entries` (default 25,000): the log is compacted once this many applied entries sit in it. */
  snapshotEntries?: number;
  /** `--snapshot-bytes` (default 64 MiB): …or once the log since the last compaction holds this many bytes. */
  snapshotBytes?: number;
  /** `--retention` in ms: finished jobs and dead workers are deleted once it has passed (0: kept). */
  retentionMs?: number;
  /**
   * A backup (`weir backup`) to found a new single-master cluster from, in an empty `dataDir`
   * (`--restore FILE`).
   */
  restoreFrom?: string;
  /** A failure after start-up that leaves this master useless (the cluster refused it). */
  onFatal?: (err: Error) => void;
}

/** This master's own alarm, and — while it leads — its voters'. */
function alarmView(own: SpaceMonitor, peers: PeerAlarms): AlarmView {
  return {
    get reason() {
      return own.reason ?? peers.reason();
    },
    alarms() {
      return this.reason ? [NO_SPACE] : [];
    },
    ownAlarms: () => own.alarms(),
    uploadRoom: () => own.freeBytes - own.limits.minFreeBytes,
  };
}

/** How often a master that cannot start for a full disk tries again. */
const START_RETRY_MS = 1_000;

/** Whether `err`, met while opening `dataDir`, is that disk being full (SQLite may say so in other words then). */
async function diskFullAt(dataDir: string, err: unknown): Promise<boolean> {
  if (isDiskFull(err) || isDiskFull((err as { cause?: unknown })?.cause)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  const sqlite = typeof code === 'string' && (isDiskError(err) || code.startsWith('SQLITE_CANTOPEN'));
  if (!sqlite) return false;
  const fs = await statfs(dataDir).catch(() => undefined);
  return fs !== undefined && fs.bavail * fs.bsize < RESERVE_BYTES;
}

/** `--retention` when none is given: a week. */
export const DEFAULT_RETENTION_MS = 7 * 86_400_000;

/** How often DNS is asked again, so masters started later are found (the seed: 10 s). */
const REDISCOVER_MS = 10_000;

/**
 * A master: the state machine behind consensus, and — while it leads — the scheduler and
 * the failure detector, with the REST API in front.
 */
export class MasterNode {
  private app: FastifyInstance | undefined;
  closed = false;
  readonly log: Logger;

  private constructor(
    readonly options: MasterOptions,
    private readonly parts: {
      release: () => void;
      storage: RaftStorage;
      state: StateMachine;
      consensus: RaftConsensus<Command, Results>;
      rediscover?: NodeJS.Timeout;
      stopStallWatch?: () => void;
      scheduler: Scheduler;
      detector: FailureDetector;
      leases: LeaseKeeper;
      channels: WorkerChannels;
      janitor: Janitor;
      rules: RulesGate;
      jobWatch: JobWatch;
      metrics: MasterMetrics;
      space: SpaceMonitor;
      peerAlarms: PeerAlarms;
      /** Calls to other masters beside the forwarding and stream agents: only with TLS. */
      peerAgent: Agent | undefined;
    },
    log: Logger,
  ) {
    this.log = log;
  }

  /**
   * Starts a master. On a disk too full to open its data dir (the lock's pid, SQLite's WAL
   * and shared-memory files), it gives its disk reserve up and tries again, and without one
   * it waits for space, trying again every second: a full disk never makes it exit (a crash
   * loop under a supervisor).
   */
  static async start(options: MasterOptions): Promise<MasterNode> {
    const log = options.logger ?? createLogger('weir-master', { node_id: options.id });
    let gaveReserveUp = false;
    for (let tries = 0; ; tries++) {
      try {
        return await MasterNode.open(options, log, gaveReserveUp);
      } catch (err) {
        if (!(await diskFullAt(options.dataDir, err))) throw err;
        if (await new DiskReserve(options.dataDir).release()) {
          gaveReserveUp = true;
          log.warn({ err: (err as Error).message }, 'the disk is too full to start: gave the disk reserve up');
          continue;
        }
        if (tries % 30 === 0) {
          log.error(
            { err: (err as Error).message, data_dir: options.dataDir },
            'the disk of the data dir is too full to start; waiting for space (free some on it)',
          );
        }
        await new Promise((r) => setTimeout(r, START_RETRY_MS));
      }
    }
  }

  private static async open(options: MasterOptions, log: Logger, fullAtStart: boolean): Promise<MasterNode> {
    const scheme = schemeOf(options.tls);
    const selfUrl = `${scheme}://${options.host}:${options.port}`;
    const self: Peer = { id: options.id, url: selfUrl };
    const stranger = options.peers?.find((p) => !p.url.startsWith(`${scheme}://`));
    if (stranger) {
      throw new Error(
        options.tls
          ? `a master serving TLS has https:// peers; --peers names ${stranger.url}`
          : `--peers names ${stranger.url}: serving https needs --tls-cert and --tls-key`,
      );
    }
    const tokens = new TokenSource(
      options.jwtSecret,
      undefined,
      `master:${options.id}`,
      { role: 'peer', node_id: options.id },
      options.tokenTtlMs,
    );
    const discovery: Discovery = options.discover
      ? new DnsDiscovery(options.discover.replace(/^dns:/, ''), scheme, options.port, log)
      : new StaticDiscovery(options.peers ?? [self], self);
    if (options.restoreFrom !== undefined) {
      if (options.peers?.some((p) => p.url !== selfUrl) || options.discover) {
        throw new Error(
          '--restore founds a cluster of this master alone: start it without --peers and --discover, then start new masters with --peers naming it, to join it',
        );
      }
      assertEmptyDataDir(options.dataDir);
      checkBackup(options.restoreFrom);
    }
    const release = lockDataDir(options.dataDir);
    const peerAgent = options.tls ? new Agent({ connect: options.tls.connect }) : undefined;
    const opened: { close(): void }[] = [];
    try {
      if (options.restoreFrom !== undefined) {
        const info = restoreDataDir(options.restoreFrom, options.dataDir, {
          id: self.id,
          address: selfUrl,
          voter: true,
        });
        log.info(
          { from: options.restoreFrom, index: info.index, term: info.term, was: info.members.map((m) => m.address) },
          'founded a new cluster from a backup',
        );
      } else assertNoRestoreCutShort(options.dataDir);
      const storage = new RaftStorage(join(options.dataDir, 'raft.db'), {
        onCheckpointFailure: checkpointFailureLog(log, 'raft.db'),
      });
      opened.push(storage);
      const state = new StateMachine(join(options.dataDir, 'state.db'), {
        onCheckpointFailure: checkpointFailureLog(log, 'state.db'),
      });
      opened.push(state);
      if (state.movedAside) {
        log.warn(
          { moved_to: state.movedAside.to, why: state.movedAside.why },
          'state.db could not be read: moved it aside and starting with an empty state, to be fetched from the leader',
        );
      }
      if (!storage.initialized && state.lastApplied > 0) {
        // Its log would start from that state as if it were this cluster's: refuse instead.
        throw new Error(
          `${join(options.dataDir, 'state.db')} holds state up to entry ${state.lastApplied} but raft.db is new: it is another cluster's, or raft.db was lost; move state.db away to join or found a cluster afresh`,
        );
      }
      const joining = storage.initialized
        ? undefined
        : await MasterNode.foundOrJoin(storage, discovery, self, tokens, options, log, peerAgent);
      const { consensus, transport } = MasterNode.openConsensus(self, storage, state, tokens, options, log);
      if (joining) transport.expectJoinFrom(joining.ids);
      const uploads = new UploadStore(options.dataDir);
      const askLeader = forgetAtLeader(consensus, tokens, peerAgent);
      const duties = MasterNode.leaderDuties(consensus, transport, state, uploads, askLeader, options, log);
      const backups = new BackupMaker(state, options.dataDir);
      const space = MasterNode.watchSpace(options, storage, state, consensus, log, fullAtStart);
      spaceMetrics(duties.parts.metrics.registry, space);
      await space.start();
      const peerAlarms = new PeerAlarms(consensus, selfUrl, log.child({ component: 'space' }), peerAgent);
      const parts = { release, storage, state, consensus, ...duties.parts, space, peerAlarms, peerAgent };
      const alarm = alarmView(space, peerAlarms);
      duties.parts.channels.noSpace = () => alarm.reason;
      const node = new MasterNode(options, parts, log);
      node.app = await buildApp(
        { ...duties.context, consensus, log, tokens, tls: options.tls, backups, space: alarm },
        {
          transport,
          uploads,
          selfUrl,
          ...(options.jwtSecret ? { jwtSecret: options.jwtSecret } : {}),
          ...(peerAgent ? { peerAgent } : {}),
        },
      );
      await node.app.listen({ host: options.listenHost ?? options.host, port: options.port });
      consensus.start();
      peerAlarms.start();
      duties.parts.janitor.start();
      const weak = secretWarning(options.jwtSecret);
      if (weak) log.warn(weak);
      log.info(
        { url: selfUrl, id: self.id, data_dir: options.dataDir, last_applied: state.lastApplied },
        'master started',
      );
      if (joining) {
        void requestJoin(joining.urls, self, tokens, log, () => node.closed, peerAgent).catch((err: Error) => {
          log.error({ err: err.message }, 'could not join the cluster');
          options.onFatal?.(err);
        });
      }
      if (options.discover) node.parts.rediscover = node.watchDns(discovery);
      node.parts.stopStallWatch = watchLoopStalls(log);
      return node;
    } catch (err) {
      for (const db of opened.reverse()) db.close();
      release();
      await peerAgent?.close();
      throw err;
    }
  }

  /** Raft over this master's log and state database, talking to its peers over WebSockets. */
  private static openConsensus(
    self: Peer,
    storage: RaftStorage,
    state: StateMachine,
    tokens: TokenSource,
    options: MasterOptions,
    log: Logger,
  ): { consensus: RaftConsensus<Command, Results>; transport: PeerTransport } {
    const snapshotEntries = options.snapshotEntries ?? 25_000;
    // The transport delivers to consensus, which sends through the transport.
    const inbox: { consensus?: RaftConsensus<Command, Results> } = {};
    const transport = new PeerTransport(
      self.id,
      self.url,
      tokens,
      options.tls?.connect,
      {
        onFrame: (f) => inbox.consensus?.onFrame(f),
        onSnapshotFailed: (to) => inbox.consensus?.onSnapshotFailed(to),
        onSnapshotSent: (to) => inbox.consensus?.onSnapshotSent(to),
        receivingFile: (from, transfer) => receivingPath(join(options.dataDir, 'state.db'), `${from}-${transfer}`),
      },
      log.child({ component: 'peers' }),
      { state: schemaVersion(), rules: RULES_VERSION },
    );
    const consensus = (inbox.consensus = new RaftConsensus<Command, Results>({
      self: { id: self.id, address: self.url },
      storage,
      state,
      transport,
      codec: commandCodec,
      timing: { ...DEFAULT_TIMING, ...options.timing },
      log,
      snapshotEntries,
      // The newest fifth stays for followers slightly behind (5,000 of the default 25,000).
      keepEntries: Math.min(5_000, Math.floor(snapshotEntries / 5)),
      ...(options.snapshotBytes !== undefined ? { snapshotBytes: options.snapshotBytes } : {}),
    }));
    return { consensus, transport };
  }

  /** The no_space alarm over this master's data dir; the alarm compacts the log (see SpaceMonitor). */
  private static watchSpace(
    options: MasterOptions,
    storage: RaftStorage,
    state: StateMachine,
    consensus: RaftConsensus<Command, Results>,
    log: Logger,
    fullAtStart: boolean,
  ): SpaceMonitor {
    const limits = {
      minFreeBytes: options.minFreeBytes ?? DEFAULT_SPACE_LIMITS.minFreeBytes,
      maxDbBytes: options.maxDbBytes ?? DEFAULT_SPACE_LIMITS.maxDbBytes,
    };
    const sources = {
      dataDir: options.dataDir,
      dbPageBytes: () => {
        const a = sqlitePageBytes(state.db);
        const b = storage.pageBytes();
        return { usedBytes: a.usedBytes + b.usedBytes, freeBytes: a.freeBytes + b.freeBytes };
      },
      diskFullFailures: () => consensus.diskFullFailures,
      compact: () => {
        // Gives the state database's WAL back to the disk even when the log has nothing to
        // drop, and first: with no reader in the way, all that was applied is then durable
        // and compaction may drop it.
        state.checkpoint();
        consensus.compact();
      },
    };
    const monitor = new SpaceMonitor(sources, limits, log.child({ component: 'space' }), fullAtStart);
    consensus.onDiskFull(() => monitor.diskFull());
    return monitor;
  }

  /**
   * What a master does beyond replicating: the scheduler and failure detector (running while
   * it leads), the worker channels, long polls and metrics, and the effects of applied commands.
   */
  private static leaderDuties(
    consensus: RaftConsensus<Command, Results>,
    peers: AnnouncedRules,
    state: StateMachine,
    uploads: UploadStore,
    forgetUploadAtLeader: (id: string) => Promise<void>,
    options: MasterOptions,
    log: Logger,
  ) {
    const queries = new Queries(state);
    const registry = new WorkerRegistry();
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
    const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3000;
    const scheduler = new Scheduler(consensus, queries, registry, log.child({ component: 'scheduler' }));
    const detector = new FailureDetector(consensus, queries, registry, heartbeatTimeoutMs, log);
    const channels = new WorkerChannels(consensus, queries, registry, scheduler, detector, log);
    const jobWatch = new JobWatch();
    const metrics = new MasterMetrics(queries, consensus, jobWatch);
    const leases = new LeaseKeeper(
      consensus,
      queries,
      registry,
      scheduler,
      log.child({ component: 'leases' }),
      options.leaseGraceMs,
      (n) => metrics.leasesExpired.inc(n),
    );
    consensus.onApplied(appliedEffects(scheduler, jobWatch, metrics));
    const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    const lifecycle = new LifecycleQueries(state);
    const janitor = new Janitor(consensus, lifecycle, queries, uploads, retentionMs, log, forgetUploadAtLeader);
    consensus.onApplied(janitor.onApplied);
    const live = new LiveFeed(queries, consensus, registry);
    consensus.onApplied(live.changes.onApplied);
    const rules = new RulesGate(consensus, queries, peers, log.child({ component: 'rules' }));
    rules.start();
    consensus.onLeadershipChange((leader) => {
      if (leader) {
        detector.start();
        scheduler.start();
        leases.start();
        void rules.check();
      } else {
        leases.stop();
        scheduler.stop();
        detector.stop();
        channels.dropAll();
      }
    });
    return {
      parts: { scheduler, detector, leases, channels, janitor, jobWatch, metrics, rules },
      context: {
        queries,
        registry,
        channels,
        jobWatch,
        metrics,
        heartbeatIntervalMs,
        heartbeatTimeoutMs,
        retentionMs,
        scheduler,
        live,
      },
    };
  }

  /**
   * An empty data dir either founds a new cluster with its peers, or — when they already run
   * one without this master — is to join it: returns where to ask, and which masters may link
   * to this one before it learns the configuration.
   */
  private static async foundOrJoin(
    storage: RaftStorage,
    discovery: Discovery,
    self: Peer,
    tokens: TokenSource,
    options: MasterOptions,
    log: Logger,
    peerAgent: Agent | undefined,
  ): Promise<{ urls: string[]; ids: number[] } | undefined> {
    const peers = await MasterNode.firstPeers(discovery, self, options, log);
    const running = await findRunningCluster(peers, self, tokens, peerAgent);
    if (running && !running.nodes.some((n) => n.id === self.id)) {
      log.info({ leader: running.leader_address }, 'a cluster is already running here: joining it');
      return {
        urls: [running.leader_address!, ...peers.map((p) => p.url).filter((u) => u !== self.url)],
        ids: running.nodes.map((n) => n.id),
      };
    }
    const members = peers.map((p) => ({ id: p.id, address: p.url, voter: true }));
    storage.bootstrap(members);
    log.info({ members: members.map((m) => `${m.id}=${m.address}`) }, 'founded a new cluster');
    return undefined;
  }

  /** The founding peers: the static list, or as many DNS records as `bootstrapExpect` asks. */
  private static async firstPeers(discovery: Discovery, self: Peer, o: MasterOptions, log: Logger): Promise<Peer[]> {
    const expect = o.bootstrapExpect ?? 1;
    for (let waited = 0; ; waited++) {
      let peers = await discovery.peers();
      if (!peers.some((p) => p.url === self.url)) {
        if (!o.discover) throw new Error(`--peers must include this master's own URL (${self.url})`);
        peers = [...peers.filter((p) => p.id !== self.id), self];
      }
      checkUniqueIds(peers);
      if (peers.length >= expect) return peers.sort((a, b) => a.id - b.id);
      if (waited % 10 === 0) log.info({ found: peers.length, expect }, 'waiting for more masters to appear in DNS');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** The leader adds masters that appear in DNS (a new or restarted node joins on its own). */
  private watchDns(discovery: Discovery): NodeJS.Timeout {
    const timer = setInterval(() => {
      const c = this.parts.consensus;
      if (!c.isLeader()) return;
      void discovery.peers().then(async (peers) => {
        const known = new Set(c.status().members.map((m) => m.id));
        for (const p of peers) {
          if (known.has(p.id)) continue;
          this.log.info({ id: p.id, address: p.url }, 'a new master appeared in DNS: adding it as a learner');
          await c.addMember(p.id, p.url).catch((err: Error) => this.log.warn({ err: err.message }, 'adding failed'));
          return; // one membership change at a time
        }
      });
    }, REDISCOVER_MS);
    timer.unref();
    return timer;
  }

  /** Stops serving, then closes storage; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const p = this.parts;
    clearInterval(p.rediscover);
    p.stopStallWatch?.();
    // A leader that leaves on purpose hands over first, sparing the cluster an election.
    await p.consensus.stepDown().catch(() => undefined);
    p.leases.stop();
    p.scheduler.stop();
    p.detector.stop();
    p.janitor.close();
    p.rules.stop();
    p.channels.close();
    p.jobWatch.close();
    p.space.close();
    p.peerAlarms.close();
    try {
      await this.app?.close();
    } catch (err) {
      this.log.warn({ err }, 'closing the HTTP server failed');
    }
    await p.consensus.close();
    p.metrics.close();
    await p.peerAgent?.close();
    p.state.close();
    p.storage.close();
    p.release();
  }
}

/**
 * A database's checkpoint thread failing, and working again, as log lines: meanwhile its WAL
 * grows to SQLite's backstop, and state.db's applies are synced on the event loop.
 */
function checkpointFailureLog(log: Logger, file: string): (failure: string | undefined) => void {
  return (failure) => {
    if (failure === undefined) log.info({ file }, 'the checkpoint thread works again');
    else
      log.warn(
        { file, error: failure },
        'the checkpoint thread fails; checkpoints are made on the event loop until it works again',
      );
  };
}

import {
  compactionLimits,
  compactionPoint,
  DEFAULT_SNAPSHOT_BYTES,
  dueForCompaction,
  entryBytes,
  type CompactionLimits,
} from './compaction-policy.js';
import { trace, tracing } from '../common/trace.js';
import { randomInt } from 'node:crypto';
import { isDiskFull } from '../common/disk-errors.js';
import { WeirError, noSpace } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type {
  Applied,
  AppliedListener,
  Consensus,
  ConsensusStatus,
  MemberInfo,
  ResultMap,
  Tagged,
} from './consensus.js';
import { membersAfter } from './core/membership.js';
import { NotLeaderError, ProposalRefusedError, Raft } from './core/raft.js';
import type { ConfChange, Entry, Message, MessageType, NodeId, Ready, SnapshotMeta } from './core/types.js';
import { eventLoopClock } from './event-loop-clock.js';
import { AtMostEvery } from '../common/at-most-every.js';
import {
  StorageError,
  type Cancel,
  type Clock,
  type Codec,
  type Committed,
  type Inbound,
  type LogStore,
  snapshotSize,
  type Snapshot,
  type StateMachine,
  type Transport,
  type VoteFloor,
} from './ports.js';

export interface RaftTiming {
  /** One Raft tick; heartbeats and election timeouts are counted in ticks. */
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
}

export const DEFAULT_TIMING: RaftTiming = { tickMs: 50, electionTicks: 10, heartbeatTicks: 1 };

export interface RaftConsensusOptions<C extends Tagged, M extends ResultMap<C>> {
  self: { id: NodeId; address: string };
  storage: LogStore;
  state: StateMachine<C, M[C['type']]>;
  transport: Transport;
  codec: Codec<C>;
  timing: RaftTiming;
  log: Logger;
  clock?: Clock;
  /** Randomness in [0, 1) for election timeouts. */
  random?: () => number;
  /** Compact the log once this many applied entries sit in it (default 25,000)… */
  snapshotEntries?: number;
  /** …keeping the newest this many, for followers slightly behind (default 5,000)… */
  keepEntries?: number;
  /** …or once the log since the last compaction holds this many bytes (default 64 MiB), keeping a fifth. */
  snapshotBytes?: number;
  /** Limits of the core, for the simulation to vary; production keeps the core's defaults. */
  core?: { maxInflight?: number; maxEntriesPerMsg?: number; maxApplyBatch?: number };
}

/** What only a leader sends; none of it vouches for the sender's own durable state. */
const LEADER_MESSAGES: ReadonlySet<MessageType> = new Set(['app', 'heartbeat', 'snap', 'timeoutNow']);

/** A peer is shown healthy when heard from within this. */
const HEALTHY_MS = 2_000;
/**
 * A follower applies committed entries in batches of up to this many, or once the oldest
 * has waited APPLY_DELAY_MS: nobody waits on a follower's applies (proposals and
 * linearizable reads go to the leader), and one transaction of many entries writes each
 * hot page of the state database once instead of once per small batch. A follower's stale
 * reads lag the leader by at most APPLY_DELAY_MS more; one that stands for election applies
 * everything at once (only a follower defers).
 */
const APPLY_BATCH = 4096;
/**
 * Applying holds the event loop for this many bytes of entries at a time (at least one entry),
 * one transaction each; the rest follows on the next turn, after the I/O that waited (peers'
 * messages, heartbeats, answers). The scale bench applied ~0.15 ms per KiB of completions and
 * assignments on a quiet machine and 0.8 ms at load 10: whole batches of 0.4–1.8 MB held the
 * loop 60 ms on a quiet machine and up to 1.3 s under load, on every master at once (elections).
 * 64 KiB is ~10 ms quiet, ~50 ms at load 10 — well inside a 500 ms election timeout.
 */
const APPLY_TURN_BYTES = 64 * 1024;
/** Work on the event loop this long gets a log line (`noteSlow`). */
const SLOW_WORK_MS = 50;
const APPLY_DELAY_MS = 100;
/** Followers needing a snapshot within this long of another share its copy. */
const SHARE_SNAPSHOT_MS = 2_000;
/**
 * A follower sent a snapshot holds compaction back (see `compactionFloor`) until it has caught
 * up, or this long after the last snapshot message to it: a follower gone for good must not
 * keep the log from being compacted for ever.
 */
const SNAPSHOT_FLOOR_MS = 60_000;
/** A warning that would come with every heartbeat (a follower too old for a snapshot) is said once a minute. */
const REPEAT_WARNING_MS = 60_000;
/** A read that a quorum has not confirmed by then fails: the caller retries elsewhere. */
const READ_TIMEOUT_MS = 5_000;
/** How often a disk failure is logged while it lasts (every failed write is retried). */
const DISK_LOG_EVERY_MS = 5_000;
/** After the disk refused a write, the core is rebuilt from what is durable this long after. */
const REBUILD_EVERY_MS = 1_000;

/** Called once a proposal is applied here (with its result) or lost (with why). */
export type Done<R> = (err: Error | undefined, result?: R) => void;

interface Waiter {
  term: number;
  done: Done<unknown>;
}

const leadershipLost = () =>
  new WeirError(
    'no_leader',
    'leadership changed before the request was known to be committed: it may still take effect under the next leader; retry it (a submit with its Idempotency-Key answers the job it made)',
  );
const outcomeUnknown = () =>
  new WeirError(
    'unavailable',
    'the request was committed, but this master took the leader’s snapshot before applying it, so its result is unknown here; retry it (a submit with its Idempotency-Key answers the job it made)',
  );
const shuttingDown = () => new WeirError('unavailable', 'this master is shutting down');
/** A full disk is `no_space` (507), as the alarm's refusals are; any other disk failure is retried. */
const diskRefused = (full: boolean) =>
  full
    ? noSpace("this master's disk is full: a write to its data dir failed")
    : new WeirError('unavailable', "this master's disk refused a write; retry, or see the disk of its data dir");

/**
 * The driver around the pure Raft core: owns the clock, the durable log, the state machine
 * and the transport — each behind a port — and keeps the core's ordering rule — PERSIST,
 * THEN SEND, THEN APPLY. Ready is processed on a later turn after anything happens, so
 * whatever arrived meanwhile goes to disk together (group commit: one fsync per batch).
 *
 * A write the disk refuses is survived as a crash would be: the core is rebuilt from what is
 * durable, pending callers are told, and the node carries on once the disk takes writes again.
 */
export class RaftConsensus<C extends Tagged, M extends ResultMap<C>> implements Consensus<C, M> {
  private raft: Raft;
  private readonly self: { id: NodeId; address: string };
  private readonly storage: LogStore;
  private readonly state: StateMachine<C, M[C['type']]>;
  private readonly transport: Transport;
  private readonly codec: Codec<C>;
  private readonly timing: RaftTiming;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly snapshotEntries: number;
  private readonly keepEntries: number;
  private readonly limits: CompactionLimits;
  /** Bytes of the entries in the log since the last compaction (see compaction-policy.ts). */
  private logBytes = 0;
  /**
   * Where the last compaction meant to reach when what state.db held durably stopped it short:
   * it goes on there once the background sync catches up, rather than waiting until the log
   * is due again (a log of N entries compacted to its first fifth kept the rest until 2N).
   */
  private compactionOwed = 0;
  /**
   * Followers sent a snapshot: the compaction point when the first went out, and when the last
   * did. The leader keeps the entries after that point until the follower holds them, so that
   * a snapshot still travelling is not already stale on arrival.
   */
  private readonly snapshotFloors = new Map<NodeId, { index: number; at: number }>();
  private readonly coreLimits: RaftConsensusOptions<C, M>['core'];

  private readonly waiters = new Map<number, Waiter>();
  private readonly appliedListeners: AppliedListener<C, M>[] = [];
  private readonly leaderListeners: ((leader: boolean) => void)[] = [];
  private readonly addresses = new Map<NodeId, string>();
  private readWaiters: { ctx: number; done: (err?: Error) => void }[] = [];
  private readCtx = 0;
  /** The read-index round collecting reads, not yet handed to the core (0: none). */
  private unissuedRead = 0;
  private closed = false;
  private stopTicker: Cancel | undefined;
  /** Leading, and our first entry of this term is applied: leader duties may start. */
  private leading = false;
  private leaderStartIndex = 0;
  /** Snapshots received and not yet installed, by index (two may arrive in one turn). */
  private readonly incomingSnapshots = new Map<number, Snapshot>();
  /** Warnings that would otherwise come with every heartbeat, by what they are about. */
  private readonly warnings: AtMostEvery;
  /** Disk refusals: one line however many writes the disk refuses meanwhile. */
  private readonly diskLines: AtMostEvery;
  /** The term on disk: a leader's appends may leave before the disk write only within it. */
  private persistedTerm = 0;
  private persistedVote = 0;
  private outgoingSnapshot: { at: number; snap: Snapshot } | undefined;
  /** A snapshot being copied in the background, which followers asking meanwhile share. */
  private copying: Promise<Snapshot> | undefined;
  /** Committed entries a follower has not applied yet (see APPLY_BATCH). */
  private deferred: Entry[] = [];
  private cancelApplyTimer: Cancel | undefined;
  /** The deferred entries are being applied a turn at a time: `applyTurn` is due. */
  private applyingInTurns = false;
  private readonly applyTurn: () => void;
  /** The disk refused a write and the core could not be rebuilt yet: retried on each tick. */
  private broken = false;
  private brokenSince = 0;
  /** The last write failed for a full disk, and none has succeeded since (see `diskFull`). */
  private fullDisk = false;
  private fullDiskCount = 0;
  private readonly diskFullListeners: (() => void)[] = [];
  /** Set while this node's log is behind what it had before it started over (see VoteFloor). */
  private floor: VoteFloor | undefined;
  private readonly schedule: () => void;

  constructor(o: RaftConsensusOptions<C, M>) {
    this.self = o.self;
    this.storage = o.storage;
    this.state = o.state;
    this.transport = o.transport;
    this.codec = o.codec;
    this.timing = o.timing;
    this.log = o.log;
    this.clock = o.clock ?? eventLoopClock;
    const now = () => this.clock.now();
    this.warnings = new AtMostEvery(REPEAT_WARNING_MS, now);
    this.diskLines = new AtMostEvery(DISK_LOG_EVERY_MS, now);
    this.random = o.random ?? (() => randomInt(1 << 30) / (1 << 30));
    this.snapshotEntries = o.snapshotEntries ?? 25_000;
    this.keepEntries = o.keepEntries ?? 5_000;
    const bytes = o.snapshotBytes ?? DEFAULT_SNAPSHOT_BYTES;
    this.limits = {
      entries: this.snapshotEntries,
      bytes,
      keepEntries: this.keepEntries,
      keepBytes: compactionLimits(this.snapshotEntries, bytes).keepBytes,
    };
    this.coreLimits = o.core;
    this.schedule = this.clock.coalesce(() => this.process());
    this.applyTurn = this.clock.coalesce(() => this.nextApplyTurn());
    this.raft = this.boot();
    this.syncPeers();
  }

  /**
   * The core, as the durable state says it stands. The state machine may be ahead of the log:
   * a snapshot it installed just before a crash, before the log recorded it. Then the log
   * starts from that snapshot — its content is committed — and what the log held is dropped.
   *
   * It may also be behind the log's compaction point: its database was lost, corrupt (and
   * moved aside) or replaced by an older copy. The entries that would bring it forward are
   * gone, so the log starts over from the state (empty: index 0, knowing the members as of
   * the compaction point) and the leader, finding it needs entries it compacted, sends a
   * snapshot. Its term and vote are kept.
   */
  private boot(): Raft {
    let hardState = this.storage.hardState();
    let snapshot = this.storage.snapshot();
    let entries = this.storage.entries();
    const applied = this.state.applied();
    if (applied.index > snapshot.index) {
      const at = entries[applied.index - snapshot.index - 1];
      if (!at || at.term !== applied.term) {
        this.storage.save(undefined, [], applied);
        snapshot = applied;
        entries = [];
      }
    } else if (applied.index < snapshot.index) {
      // The configuration the log ended with: the one Raft would have used.
      const from: SnapshotMeta = { ...applied, members: membersAfter(snapshot.members, entries) };
      // Recorded before the log is dropped: a crash in between finds the same situation again.
      const last = entries.at(-1) ?? snapshot;
      const before = this.storage.voteFloor();
      const floor = before && upToDate(before, last) ? before : { index: last.index, term: last.term };
      this.storage.setVoteFloor(floor);
      this.log.warn(
        { state_at: applied.index, log_from: snapshot.index },
        'the state database is behind the compacted log: starting over from it and asking the leader for a snapshot',
      );
      hardState = { ...hardState, commit: applied.index };
      this.storage.save(hardState, [], from);
      snapshot = from;
      entries = [];
    }
    this.persistedTerm = hardState.term;
    this.persistedVote = hardState.vote;
    this.floor = this.storage.voteFloor();
    this.logBytes = entries.reduce((sum, e) => sum + entryBytes(e), 0);
    return new Raft({
      id: this.self.id,
      electionTicks: this.timing.electionTicks,
      heartbeatTicks: this.timing.heartbeatTicks,
      random: this.random,
      ...this.coreLimits,
      // Whatever the state machine applied was committed, whatever the saved commit says.
      hardState: { ...hardState, commit: Math.max(hardState.commit, applied.index) },
      applied: applied.index,
      snapshot,
      entries,
    });
  }

  start(): void {
    this.stopTicker = this.clock.every(this.timing.tickMs, () => this.tick());
    // A cluster of one need not wait out an election timeout to lead.
    if (this.raft.promotable && this.raft.voters.length === 1) this.raft.tick();
    this.schedule();
  }

  /** The core, read only: for status pages and the simulation's checks. Never step it. */
  get core(): Raft {
    return this.raft;
  }

  // ------------------------------------------------------------------ inputs

  onFrame(frame: Inbound): void {
    if (this.closed || this.broken) return;
    let msgs = frame.msgs ?? [];
    if (frame.snapshot) {
      const refused = this.state.refuses?.(frame.snapshot);
      if (refused) {
        // Installed, it would leave a state this software cannot open: the node keeps what it
        // has, and its leader (not told) offers the snapshot again later.
        this.state.discard(frame.snapshot);
        this.sayOnceAMinute('refused-snapshot', refused);
        msgs = msgs.filter((m) => m.type !== 'snap');
      } else {
        const replaced = this.incomingSnapshots.get(frame.snapshot.meta.index);
        if (replaced) this.state.discard(replaced);
        this.incomingSnapshots.set(frame.snapshot.meta.index, frame.snapshot);
      }
    }
    try {
      // The replication steps of the latency bench's table for several masters.
      if (tracing)
        for (const m of msgs) {
          if (m.type === 'app' && m.entries.length) trace('log', 'append received');
          else if (m.type === 'appResp') trace('log', 'ack received');
        }
      for (const m of msgs) if (!this.ignoredWhileFloored(m)) this.raft.step(m);
    } catch (err) {
      // A message no correct member sends (the transport checked its shape, not its sense):
      // what it did to the core is dropped with everything else not durable.
      this.startOver(`a message the core refused: ${(err as Error).message}`);
      return;
    }
    this.schedule();
  }

  onSnapshotFailed(to: NodeId): void {
    this.raft.reportSnapshotFailure(to);
  }

  onSnapshotSent(to: NodeId): void {
    this.raft.reportSnapshotSent(to);
  }

  private tick(): void {
    if (this.closed) return;
    if (this.broken) {
      // Once a second at most: each try reads the whole log back.
      if (this.clock.now() - this.brokenSince < REBUILD_EVERY_MS || !this.rebuild()) return;
    }
    const loneVoter = this.raft.promotable && this.raft.voters.length === 1 && this.raft.role !== 'leader';
    // A floored node never times out into a campaign: it waits for the leader's snapshot.
    if (!this.floored()) this.raft.tick();
    if (loneVoter) for (let i = 0; i < 2 * this.timing.electionTicks; i++) this.raft.tick();
    if (this.raft.role === 'leader') this.leaderHousekeeping();
    this.schedule();
  }

  /** Promotes caught-up learners, and prefers the highest id as leader (the seed's rule). */
  private leaderHousekeeping(): void {
    const r = this.raft;
    if (r.transferring) return;
    for (const m of r.members) {
      const pr = r.progressOf(m.id);
      if (!m.voter && pr && pr.match >= r.log.committed && pr.heardElapsed <= this.timing.electionTicks) {
        try {
          r.proposeConfChange({ op: 'promote', id: m.id });
          this.log.info({ node: m.id }, 'promoting a caught-up learner to voter');
        } catch {
          // another change is in flight; try again next tick
        }
        return;
      }
    }
    // Hand over to the highest-id voter that has been healthy and current for two
    // election timeouts: a planned transfer, never two leaders in one term.
    let best: NodeId = 0;
    for (const id of r.voters) {
      if (id > this.self.id && id > best && (r.progressOf(id)?.healthyTicks ?? 0) >= 2 * this.timing.electionTicks) {
        best = id;
      }
    }
    if (best) {
      this.log.info({ to: best }, 'handing leadership to the highest-id healthy voter');
      r.transferLeadership(best);
    }
  }

  /**
   * A command travels as the bytes it is encoded to here, once, on the leader that proposes
   * it: the same bytes go to its log, into every follower's frame and every follower's log,
   * and are decoded only to be applied — on the leader too, so that every node applies the
   * same value (see commandOf).
   */
  propose<T extends C>(command: T, onAppended?: () => void): Promise<M[T['type']]> {
    let appended = false;
    const applied = new Promise<M[T['type']]>((resolve, reject) => {
      try {
        this.submit(command, (err, result) => (err ? reject(err) : resolve(result as M[T['type']])));
        appended = true;
      } catch (err) {
        reject(err as Error);
      }
    });
    if (appended) onAppended?.();
    return applied;
  }

  /**
   * Appends `command` to the log now and returns its index; `done` is called once it is
   * applied here, or lost. Throws a WeirError when this node cannot take it.
   */
  submit(command: C, done: Done<M[C['type']]>): number {
    return this.track(() => {
      return this.raft.propose(this.codec.encode(command));
    }, done as Done<unknown>);
  }

  /** As `submit`, for a membership change. */
  submitConf(cc: ConfChange, done: Done<unknown>): number {
    return this.track(() => this.raft.proposeConfChange(cc), done);
  }

  private commandOf(e: Entry): C {
    // Entries written by a version that logged commands as objects still read.
    if (!Buffer.isBuffer(e.data)) return e.data as C;
    // The leader decodes its own entries too, rather than apply the object it proposed: a
    // value the encoding does not carry exactly (a lone UTF-16 surrogate in a string becomes
    // U+FFFD) would otherwise be stored one way on the leader and another on its followers,
    // and answered one way before a restart and another after it. Nothing decoded is kept:
    // the entry's bytes stay in the log until compaction, its value is gone once applied.
    return this.codec.decode(e.data);
  }

  private track(append: () => number, done: Done<unknown>): number {
    if (this.closed) throw shuttingDown();
    if (this.broken) throw diskRefused(this.fullDisk);
    let index: number;
    try {
      index = append();
    } catch (err) {
      throw this.translate(err);
    }
    this.waiters.set(index, { term: this.raft.term, done });
    this.schedule();
    return index;
  }

  readBarrier(): Promise<void> {
    return new Promise((resolve, reject) => this.requestRead((err) => (err ? reject(err) : resolve())));
  }

  /**
   * Calls `done` once this leader may serve a linearizable read (§6.4 read index): a quorum
   * confirmed it still leads, and it has applied what was committed when the read was asked.
   */
  requestRead(done: (err?: Error) => void): void {
    if (!this.leading) return done(new WeirError('no_leader', 'this master is not the leader'));
    // Reads arriving in one turn of the event loop share one read-index round (one
    // heartbeat to each follower), issued when the Ready loop next runs.
    if (!this.unissuedRead) this.unissuedRead = ++this.readCtx;
    const ctx = this.unissuedRead;
    this.schedule();
    let finished = false;
    const cancel = this.clock.after(READ_TIMEOUT_MS, () => {
      this.readWaiters = this.readWaiters.filter((w) => w.ctx !== ctx);
      finish(new WeirError('no_leader', 'could not confirm leadership with a quorum in time; retry'));
    });
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      cancel();
      done(err);
    };
    this.readWaiters.push({ ctx, done: finish });
  }

  private issueRead(): void {
    const ctx = this.unissuedRead;
    if (!ctx) return;
    this.unissuedRead = 0;
    try {
      this.raft.readIndex(ctx);
    } catch (err) {
      const e = this.translate(err);
      for (const w of this.readWaiters.filter((r) => r.ctx === ctx)) w.done(e);
      this.readWaiters = this.readWaiters.filter((r) => r.ctx !== ctx);
    }
  }

  async addMember(id: number, address: string): Promise<void> {
    const known = this.raft.members.find((m) => m.id === id);
    if (known) {
      if (known.address === address) return;
      throw new WeirError(
        'conflict',
        `node id ${id} is already taken by ${known.address}; give this master another --id`,
      );
    }
    await this.proposeConf({ op: 'addLearner', id, address });
  }

  async removeMember(id: number): Promise<void> {
    if (!this.raft.members.some((m) => m.id === id)) throw new WeirError('not_found', `node ${id} is not a member`);
    await this.proposeConf({ op: 'remove', id });
  }

  private proposeConf(cc: ConfChange): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.submitConf(cc, (err) => (err ? reject(err) : resolve()));
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  /** Asks the core to hand leadership to `to`; throws a WeirError when it cannot. */
  transferLeadership(to: NodeId): void {
    try {
      this.raft.transferLeadership(to);
    } catch (err) {
      throw this.translate(err);
    }
    this.schedule();
  }

  async stepDown(): Promise<void> {
    if (this.raft.role !== 'leader') return;
    const to = this.raft.voters
      .filter((id) => id !== this.self.id)
      .sort((a, b) => (this.raft.progressOf(b)?.match ?? 0) - (this.raft.progressOf(a)?.match ?? 0))[0];
    if (!to) return;
    this.transferLeadership(to);
    const deadline = this.clock.now() + this.timing.tickMs * this.timing.electionTicks * 2;
    while (this.raft.role === 'leader' && this.clock.now() < deadline) {
      await new Promise<void>((r) => this.clock.after(10, r));
    }
  }

  private translate(err: unknown): Error {
    if (err instanceof NotLeaderError) return new WeirError('no_leader', err.message);
    if (err instanceof ProposalRefusedError) return new WeirError('unavailable', err.message);
    return err as Error;
  }

  // ------------------------------------------------------------------ the Ready loop

  private process(): void {
    if (this.closed || this.broken) return;
    try {
      this.issueRead();
      for (let rounds = 0; this.raft.hasReady() && rounds < 8; rounds++) {
        const rd = this.raft.ready();
        rd.messages = this.withoutUnsendable(rd.messages);
        // A leader's appends promise nothing about its own disk (it counts itself toward a
        // quorum only once persisted), so they leave first and followers write in parallel
        // (thesis §10.2.1). Everything else — votes, acknowledgements — waits for the disk.
        // (Not in a Ready that also starts a new term: that term must be on disk first.)
        const sameTerm = !rd.hardState || rd.hardState.term === this.persistedTerm;
        const early = sameTerm ? rd.messages.filter((m) => LEADER_MESSAGES.has(m.type)) : [];
        const late = early.length ? rd.messages.filter((m) => !LEADER_MESSAGES.has(m.type)) : rd.messages;
        this.noteSnapshotsSent(rd.messages);
        if (tracing && rd.committed.length) trace('log', 'committed');
        if (early.length) this.transport.send(early, () => this.snapshotToSend());
        if (tracing && early.some((m) => m.type === 'app' && m.entries.length)) trace('log', 'append sent');
        this.persist(rd);
        // ONLY NOW may the rest leave: a vote or an acknowledgement must not outrun the disk.
        if (late.length) this.transport.send(late, () => this.snapshotToSend());
        if (tracing && late.some((m) => m.type === 'appResp')) trace('log', 'ack sent');
        this.apply(rd.committed);
        this.serveReads(rd);
        this.raft.advance(rd);
        if (rd.entries.some((e) => e.kind === 'conf') || rd.snapshot) this.syncPeers();
      }
      // A snapshot the core wanted was installed by the first Ready above; others were stale.
      this.dropIncomingSnapshots();
      this.liftFloor();
      this.updateLeadership();
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      this.diskRefused(err);
      return;
    }
    this.maybeCompact();
    if (this.raft.hasReady()) this.schedule();
  }

  private persist(rd: Ready): void {
    if (rd.snapshot) {
      const incoming = this.incomingSnapshots.get(rd.snapshot.index);
      if (!incoming) throw new Error(`snapshot ${rd.snapshot.index} to install but its data is missing`);
      // The state machine takes it first: should we crash before the log records it, boot()
      // finds the state ahead of the log and starts the log from there.
      this.state.restore(incoming);
      this.incomingSnapshots.delete(rd.snapshot.index);
      this.dropIncomingSnapshots();
      this.log.info(
        { index: rd.snapshot.index, bytes: snapshotSize(incoming.data) },
        'installed a snapshot from the leader',
      );
    }
    // The commit index is volatile in Raft (a restarted node relearns it from the leader),
    // so only a new term or vote is written: the commit it carries rides along then.
    const hs = rd.hardState;
    const newVote = hs !== undefined && (hs.term !== this.persistedTerm || hs.vote !== this.persistedVote);
    if (rd.entries.length > 0 || rd.snapshot || newVote) {
      const t0 = performance.now();
      this.storage.save(newVote ? hs : undefined, rd.entries, rd.snapshot);
      this.noteSlow('log write', t0, () => ({
        entries: rd.entries.length,
        bytes: rd.entries.reduce((n, e) => n + entryBytes(e), 0),
      }));
      if (rd.snapshot) this.logBytes = 0;
      for (const e of rd.entries) this.logBytes += entryBytes(e);
      this.fullDisk = false;
      if (rd.entries.length > 0) trace('log', 'persisted');
      if (newVote) {
        this.persistedTerm = hs.term;
        this.persistedVote = hs.vote;
      }
    }
  }

  /**
   * Applies committed entries — at once on a leader or candidate, in batches on a follower
   * (APPLY_BATCH). The core counts them applied when handed over; the state database may lag
   * behind it on a follower, never ahead, and compaction follows the database.
   */
  private apply(committed: readonly Entry[]): void {
    for (const e of committed) this.deferred.push(e);
    if (this.deferred.length === 0) return;
    // The next turn of applying is due already: it takes these after the others, in order.
    if (this.applyingInTurns) return;
    // Entries this node proposed are applied at once even if it follows now (a leader that
    // committed its own removal, or lost the lead in the Ready that committed them): their
    // callers get the result, not "leadership changed".
    if (this.raft.role === 'follower' && this.waiters.size === 0 && this.deferred.length < APPLY_BATCH) {
      this.cancelApplyTimer ??= this.clock.after(APPLY_DELAY_MS, () => {
        this.cancelApplyTimer = undefined;
        this.applyDeferredOrRefuse();
      });
      return;
    }
    this.applyDeferred();
  }

  private nextApplyTurn(): void {
    if (!this.applyingInTurns || this.closed) return;
    // What waits on the applied index (leading, compaction) is looked at again.
    if (this.applyDeferredOrRefuse()) this.schedule();
  }

  /** Applies from a timer or a later turn, where a write the disk refused is met as such: false then. */
  private applyDeferredOrRefuse(): boolean {
    try {
      this.applyDeferred();
      return true;
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      this.diskRefused(err);
      return false;
    }
  }

  /** Applies the deferred entries: APPLY_TURN_BYTES of them now and the rest on the turns after, or `all` now. */
  private applyDeferred(all = false): void {
    this.cancelApplyTimer?.();
    this.cancelApplyTimer = undefined;
    this.applyingInTurns = false;
    if (this.deferred.length === 0 || this.closed) return;
    const n = all ? this.deferred.length : entriesWithin(this.deferred, APPLY_TURN_BYTES);
    const entries = this.deferred.slice(0, n);
    this.deferred = this.deferred.slice(n);
    if (this.deferred.length) {
      this.applyingInTurns = true;
      // The check phase of a later turn: the loop polls for I/O before it (at most two turns
      // run back to back, when this one ran in the poll phase), and waits for no timer.
      this.applyTurn();
    }
    const decoded = entries.map((e) => this.committedOf(e));
    const t0 = performance.now();
    const results = this.state.applyBatch(decoded);
    this.noteSlow('apply', t0, () => ({
      entries: entries.length,
      bytes: entries.reduce((n, e) => n + entryBytes(e), 0),
    }));
    this.fullDisk = false;
    const applied: Applied<C, M>[] = [];
    for (const [i, e] of decoded.entries()) {
      const result = results[i];
      if (e.kind === 'cmd' && result !== undefined) {
        applied.push({ type: e.data.type, command: e.data, result } as Applied<C, M>);
      }
      const w = this.waiters.get(e.index);
      if (!w) continue;
      this.waiters.delete(e.index);
      // Another leader's entry took this index: ours was never committed.
      if (w.term !== e.term) w.done(leadershipLost());
      // Applied already, by a snapshot installed before its turn came: its result is unknown here.
      else if (e.kind === 'cmd' && result === undefined) w.done(outcomeUnknown());
      else w.done(undefined, result);
    }
    if (applied.length) for (const l of this.appliedListeners) l(applied);
  }

  private committedOf(e: Entry): Committed<C> {
    const { index, term } = e;
    if (e.kind === 'cmd') return { index, term, kind: 'cmd', data: this.commandOf(e) };
    if (e.kind === 'conf') return { index, term, kind: 'conf', data: e.data as ConfChange };
    return { index, term, kind: 'noop' };
  }

  private serveReads(rd: Ready): void {
    for (const rs of rd.readStates) {
      // A leader applies at once, so applied is at least the read's index by now: the core
      // hands reads out no earlier than the commits they wait for.
      const ready = this.readWaiters.filter((w) => w.ctx <= rs.ctx);
      this.readWaiters = this.readWaiters.filter((w) => w.ctx > rs.ctx);
      for (const w of ready) this.whenApplied(rs.index, w.done);
    }
  }

  private whenApplied(index: number, done: (err?: Error) => void): void {
    if (this.state.lastApplied >= index) done();
    else if (this.closed || this.raft.role !== 'leader') done(leadershipLost());
    else this.clock.after(1, () => this.whenApplied(index, done));
  }

  private updateLeadership(): void {
    const r = this.raft;
    if (r.role === 'leader' && !this.leading) {
      if (!this.leaderStartIndex) this.leaderStartIndex = r.log.lastIndex;
      // Lead only once our own first entry is applied: the state database is then current.
      if (this.state.lastApplied >= this.leaderStartIndex) {
        this.leading = true;
        this.log.info({ term: r.term }, 'leading');
        for (const l of this.leaderListeners) l(true);
      }
    } else if (r.role !== 'leader' && (this.leading || this.leaderStartIndex)) {
      this.stopLeading(leadershipLost());
    }
  }

  private stopLeading(why: Error, { keepCommitted = true } = {}): void {
    const was = this.leading;
    this.leading = false;
    this.leaderStartIndex = 0;
    // Proposals committed and waiting for their turn to apply keep their waiters: they get the
    // result once applied (in turns, not all at once: that held a loop 0.4–0.7 s), not
    // "leadership changed".
    const committed = keepCommitted ? (this.deferred.at(-1)?.index ?? 0) : 0;
    for (const [index, w] of this.waiters) {
      if (index <= committed) continue;
      w.done(why);
      this.waiters.delete(index);
    }
    for (const w of this.readWaiters.splice(0)) w.done(why);
    if (was) {
      this.log.info({ term: this.raft.term, leader: this.raft.leader }, 'no longer leading');
      for (const l of this.leaderListeners) l(false);
    }
  }

  /**
   * The disk refused a write: whatever this node had not made durable is gone, as in a crash.
   * Callers waiting on it are told to retry, and the core starts again from the durable state
   * (votes and acknowledgements it had not persisted were never sent).
   */
  private diskRefused(err: StorageError): void {
    this.fullDisk = isDiskFull(err.cause);
    if (this.fullDisk) this.countDiskFull();
    this.logDiskError(err, 'the disk refused a write: starting over from the durable state');
    this.startOver(diskRefused(this.fullDisk));
  }

  /** One more write failed for a full disk: told at once, while the disk is as it failed on. */
  private countDiskFull(): void {
    this.fullDiskCount++;
    for (const l of this.diskFullListeners) {
      try {
        l();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'a listener of a full disk failed');
      }
    }
  }

  private logDiskError(err: StorageError, what: string): void {
    this.diskLines.say((heldBack) => this.log.error({ err: err.message, refused_since_last: heldBack }, what));
  }

  /**
   * Drops what is not durable, as a crash would, and rebuilds the core from what is: at once,
   * or from the ticker while the disk still refuses.
   */
  private startOver(why: Error | string): void {
    if (typeof why === 'string') this.log.error({ why }, 'starting over from the durable state');
    this.stopLeading(typeof why === 'string' ? leadershipLost() : why, { keepCommitted: false });
    this.cancelApplyTimer?.();
    this.cancelApplyTimer = undefined;
    this.applyingInTurns = false;
    this.deferred = [];
    this.dropIncomingSnapshots();
    this.dropOutgoingSnapshot();
    this.unissuedRead = 0;
    this.broken = true;
    this.brokenSince = this.clock.now();
    if (typeof why === 'string') this.rebuild();
  }

  /** Rebuilds the core from the durable state; false while the disk still refuses. */
  private rebuild(): boolean {
    try {
      this.raft = this.boot();
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      return false;
    }
    this.broken = false;
    this.syncPeers();
    return true;
  }

  /**
   * Whether this node must not vote or campaign (see VoteFloor). A master alone in its
   * configuration has nobody to mislead, and nobody to fetch its state from: it goes on with
   * what it has.
   */
  private floored(): boolean {
    return this.floor !== undefined && this.raft.members.length > 1;
  }

  /**
   * Not answering is always safe in Raft; voting with a log that lost entries is not. A floored
   * node answers only candidates whose log is as up to date as the one it dropped (holding,
   * then, whatever it had acknowledged), and is never told to campaign.
   */
  private ignoredWhileFloored(m: Message): boolean {
    if (!this.floored()) return false;
    if (m.type === 'timeoutNow') return true;
    if (m.type !== 'vote' && m.type !== 'preVote') return false;
    // Of two voters, an entry commits only on both: the other one holds every committed entry,
    // whatever this node had appended beyond them. Refusing it would leave no one to lead.
    const voters = this.raft.voters;
    if (voters.length === 2 && voters.includes(m.from) && voters.includes(this.self.id)) return false;
    return !upToDate({ index: m.lastIndex, term: m.lastTerm }, this.floor!);
  }

  /** Once the durable log is as up to date as the one dropped, the node votes again. */
  private liftFloor(): void {
    const f = this.floor;
    if (!f) return;
    const log = this.raft.log;
    if (log.stable < log.lastIndex || !upToDate({ index: log.lastIndex, term: log.lastTerm }, f)) return;
    this.storage.setVoteFloor(undefined);
    this.floor = undefined;
    this.log.info({ index: log.lastIndex }, 'the log is as up to date as before the state was lost: voting again');
  }

  private dropIncomingSnapshots(): void {
    // Every Ready loop ends here, nearly always with none: clearing an empty Map still allocates.
    if (this.incomingSnapshots.size === 0) return;
    for (const snap of this.incomingSnapshots.values()) this.state.discard(snap);
    this.incomingSnapshots.clear();
  }

  /** The transport has opened what it sends already: the copy itself may go. */
  private dropOutgoingSnapshot(): void {
    if (this.outgoingSnapshot) this.state.discard(this.outgoingSnapshot.snap);
    this.outgoingSnapshot = undefined;
  }

  private snapshotToSend(): Snapshot | Promise<Snapshot> {
    // Several followers needing one at once share it — while the log still follows on from
    // it; a snapshot older than the compaction point would leave its receiver stuck behind.
    const now = this.clock.now();
    const cached = this.outgoingSnapshot;
    if (cached && now - cached.at <= SHARE_SNAPSHOT_MS && cached.snap.meta.index >= this.raft.log.snapshot.index) {
      return cached.snap;
    }
    if (!this.state.snapshotInBackground) {
      this.dropOutgoingSnapshot();
      return this.share(this.state.snapshot());
    }
    // Copied off the event loop, which must go on heartbeating; followers asking meanwhile
    // wait for the same copy.
    this.copying ??= this.state.snapshotInBackground().then(
      (snap) => {
        this.copying = undefined;
        if (this.closed) {
          this.state.discard(snap);
          throw new Error('the master is closing');
        }
        this.dropOutgoingSnapshot();
        return this.share(snap);
      },
      (err: unknown) => {
        this.copying = undefined;
        // A copy the disk had no room for is a full disk as a failed write is: the alarm goes
        // on (and stays on until space is given back), though no write of the log failed.
        if (err instanceof StorageError && isDiskFull(err.cause)) this.countDiskFull();
        throw err;
      },
    );
    return this.copying;
  }

  /** Keeps a copy to share for a while: as big as the state, it does not stay on disk longer. */
  private share(snap: Snapshot): Snapshot {
    this.outgoingSnapshot = { at: this.clock.now(), snap };
    this.clock.after(SHARE_SNAPSHOT_MS, () => {
      if (this.outgoingSnapshot?.snap === snap) this.dropOutgoingSnapshot();
    });
    this.log.info({ index: snap.meta.index, bytes: snapshotSize(snap.data) }, 'sending a snapshot to a follower');
    return snap;
  }

  /** A compaction the disk refuses changes nothing and is tried again later: it is what frees space. */
  private maybeCompact(): void {
    const log = this.raft.log;
    const owed = this.compactionOwed > log.snapshot.index && (this.state.durableIndex?.() ?? 0) > log.snapshot.index;
    if (!owed && !dueForCompaction(this.state.lastApplied - log.firstIndex, this.logBytes, this.limits)) return;
    try {
      this.compact();
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      this.logDiskError(err, 'the disk refused a compaction; trying again later');
    }
  }

  /** Drops applied entries but the newest `keepEntries`, once the state machine holds them durably. */
  compact(): void {
    const log = this.raft.log;
    const floor = this.compactionFloor();
    if (floor <= log.snapshot.index) return;
    const sizes = (from: number, to: number) =>
      log.slice(Math.max(from, log.firstIndex), Math.min(to, log.lastIndex)).map(entryBytes);
    // Only what the state machine holds durably may leave the log: what its background sync
    // has reached (no wait on the loop), or else all it applied, by a checkpoint now.
    const durable = this.state.durableIndex?.();
    const point = compactionPoint(this.state.lastApplied, this.limits, sizes, floor);
    const to = Math.min(point, durable ?? Infinity);
    this.compactionOwed = to < point ? point : 0;
    if (to <= log.snapshot.index) return;
    const t0 = performance.now();
    if (durable === undefined) this.state.checkpoint();
    const t1 = performance.now();
    const meta: SnapshotMeta = this.raft.snapshotMeta(to);
    this.storage.compact(meta);
    this.raft.compact(to);
    this.logBytes = log.slice(log.firstIndex, log.lastIndex).reduce((sum, e) => sum + entryBytes(e), 0);
    this.noteSlow('compaction', t0, () => ({ checkpoint_ms: Math.round(t1 - t0), to }));
  }

  /** A line for work that held the event loop at least SLOW_WORK_MS: stalls are named by it. */
  private noteSlow(what: string, since: number, details: () => Record<string, unknown>): void {
    const ms = performance.now() - since;
    if (ms >= SLOW_WORK_MS) this.log.info({ ms: Math.round(ms), ...details() }, `a slow ${what}`);
  }

  /**
   * The messages but those a peer must not be sent: a snapshot it could not install (its Weir is
   * too old for this state: reported undelivered, it holds back no compaction), and entries of
   * the log for a follower whose Weir applies them by older rules than the state's (it would
   * part from the others). Such a follower stays behind — it cannot win an election with that
   * log — until it is upgraded; heartbeats still reach it.
   */
  private withoutUnsendable(messages: Message[]): Message[] {
    const t = this.transport;
    if (!t.cannotInstall && !t.cannotFollow) return messages;
    if (!messages.some((m) => m.type === 'snap' || (m.type === 'app' && m.entries.length > 0))) return messages;
    return messages.filter((m) => {
      if (m.type === 'snap') {
        const why = t.cannotInstall?.(m.to);
        if (!why) return true;
        this.sayOnceAMinute(`too-old-${m.to}`, why);
        this.raft.reportSnapshotFailure(m.to);
        return false;
      }
      if (m.type !== 'app' || m.entries.length === 0) return true;
      // Said by whoever judges (the master's rules gate, once a minute), not here at each append.
      return t.cannotFollow?.(m.to) === undefined;
    });
  }

  /** A warning that would otherwise come with every heartbeat. */
  private sayOnceAMinute(key: string, what: string): void {
    this.warnings.say(() => this.log.warn(what), key);
  }

  /** Notes the followers a snapshot goes to now (see `snapshotFloors`). */
  private noteSnapshotsSent(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type !== 'snap') continue;
      const held = this.snapshotFloors.get(m.to);
      const index = held?.index ?? this.raft.log.snapshot.index;
      this.snapshotFloors.set(m.to, { index, at: this.clock.now() });
    }
  }

  /**
   * The highest index compaction may reach: any snapshot sent has an index at or above the
   * compaction point when it went out, so a follower receiving one needs the entries after
   * that point — and, once installed, those after what it holds, until it has caught up.
   */
  private compactionFloor(): number {
    let floor = Infinity;
    const now = this.clock.now();
    for (const [id, f] of this.snapshotFloors) {
      // Caught up, its match follows the commit closely and holds nothing back.
      const match = this.raft.progressOf(id)?.match;
      if (match === undefined || now - f.at > SNAPSHOT_FLOOR_MS || !this.leading) {
        this.snapshotFloors.delete(id);
        continue;
      }
      floor = Math.min(floor, Math.max(f.index, match));
    }
    return floor;
  }

  private syncPeers(): void {
    for (const m of this.raft.members) this.addresses.set(m.id, m.address);
    this.transport.setPeers(this.raft.members);
  }

  // ------------------------------------------------------------------ questions

  /**
   * How many writes failed for a full disk since start: the master raises its `no_space` alarm
   * on a new one (something other than Weir may have filled the disk between two of its looks).
   */
  get diskFullFailures(): number {
    return this.fullDiskCount;
  }

  isLeader(): boolean {
    return this.leading;
  }

  voters(): number {
    return this.raft.members.filter((m) => m.voter).length;
  }

  leaderUrl(): string | null {
    const id = this.raft.leader;
    if (!id) return null;
    return id === this.self.id ? this.self.address : (this.addresses.get(id) ?? null);
  }

  status(): ConsensusStatus {
    const r = this.raft;
    const now = this.clock.now();
    // Each master as this one sees it: the leader, its own campaign, and otherwise voters
    // follow while non-voters (and a master still joining, outside the configuration) learn.
    const roleOf = (id: NodeId): MemberInfo['role'] => {
      if (id === r.leader) return 'leader';
      if (id === this.self.id && r.role !== 'follower' && r.role !== 'leader') return 'candidate';
      return r.members.find((m) => m.id === id)?.voter ? 'follower' : 'learner';
    };
    const myRole = r.role === 'leader' ? 'leader' : roleOf(this.self.id);
    return {
      node_id: this.self.id,
      role: myRole,
      leader_id: r.leader || null,
      leader_address: this.leaderUrl(),
      term: r.term,
      commit_index: r.log.committed,
      last_applied: this.state.lastApplied,
      // Everything committed is applied, or only waits for a follower's next batch.
      caught_up: r.log.applied >= r.log.committed,
      members: r.members.map((m) => ({
        id: m.id,
        address: m.address,
        voter: m.voter,
        role: m.id === this.self.id ? myRole : roleOf(m.id),
        healthy: m.id === this.self.id || now - this.transport.lastHeard(m.id) <= HEALTHY_MS,
      })),
    };
  }

  onApplied(listener: AppliedListener<C, M>): void {
    this.appliedListeners.push(listener);
  }

  onLeadershipChange(listener: (leader: boolean) => void): void {
    this.leaderListeners.push(listener);
  }

  /** Hears each write that fails for a full disk, as it fails (see `diskFullFailures`). */
  onDiskFull(listener: () => void): void {
    this.diskFullListeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.applyDeferred(true);
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
    }
    this.closed = true;
    this.dropIncomingSnapshots();
    this.dropOutgoingSnapshot();
    this.stopTicker?.();
    this.cancelApplyTimer?.();
    for (const [, w] of this.waiters) w.done(shuttingDown());
    this.waiters.clear();
    for (const w of this.readWaiters.splice(0)) w.done(shuttingDown());
    this.transport.close();
  }
}

/** Whether a log ending at `a` is at least as up to date as one ending at `b` (§5.4.1). */
function upToDate(a: VoteFloor, b: VoteFloor): boolean {
  return a.term > b.term || (a.term === b.term && a.index >= b.index);
}

/** How many of `entries`, from the first, weigh at most `bytes` together (at least one). */
export function entriesWithin(entries: readonly Entry[], bytes: number): number {
  let n = 0;
  let sum = 0;
  while (n < entries.length) {
    sum += entryBytes(entries[n]!);
    if (n > 0 && sum > bytes) break;
    n++;
  }
  return n;
}

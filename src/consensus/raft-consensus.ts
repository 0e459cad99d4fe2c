import { randomInt } from 'node:crypto';
import { WeirError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ApplyResult, Command } from '../state/commands.js';
import type { StateMachine } from '../state/state-machine.js';
import type { AppliedListener, Consensus, ConsensusStatus, MemberInfo } from './consensus.js';
import { NotLeaderError, ProposalRefusedError, Raft } from './core/raft.js';
import type { Entry, MessageType, NodeId, Ready, SnapshotMeta } from './core/types.js';
import type { PeerFrame, PeerTransport } from './peer-transport.js';
import { logCodec, type RaftStorage } from './raft-storage.js';
import { onNextTurn } from '../common/next-turn.js';

export interface RaftTiming {
  /** One Raft tick; heartbeats and election timeouts are counted in ticks. */
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
}

export const DEFAULT_TIMING: RaftTiming = { tickMs: 50, electionTicks: 10, heartbeatTicks: 1 };

/** Compact the log once this many applied entries sit in it, keeping the newest `KEEP`. */
const COMPACT_AFTER = 25_000;
const KEEP = 5_000;
/** What only a leader sends; none of it vouches for the sender's own durable state. */
const LEADER_MESSAGES: ReadonlySet<MessageType> = new Set(['app', 'heartbeat', 'snap', 'timeoutNow']);

/** A peer is shown healthy when heard from within this (DESIGN.md: 2 s). */
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
const APPLY_DELAY_MS = 100;

interface Waiter {
  term: number;
  resolve: (r: ApplyResult) => void;
  reject: (e: Error) => void;
}

const leadershipLost = () =>
  new WeirError('no_leader', 'leadership changed before the request was committed; retry it');

/**
 * The driver around the pure Raft core: owns the timer, the durable storage, the state
 * machine and the peer transport, and keeps the core's ordering rule — PERSIST, THEN SEND,
 * THEN APPLY. Ready is processed on the next turn of the event loop after anything happens,
 * so whatever arrived meanwhile goes to disk together (group commit: one fsync per batch).
 */
export class RaftConsensus implements Consensus {
  private readonly raft: Raft;
  private readonly waiters = new Map<number, Waiter>();
  private readonly appliedListeners: AppliedListener[] = [];
  private readonly leaderListeners: ((leader: boolean) => void)[] = [];
  private readonly addresses = new Map<NodeId, string>();
  private readWaiters: { ctx: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private readCtx = 0;
  /** The read-index round collecting reads, not yet handed to the core (0: none). */
  private unissuedRead = 0;
  private closed = false;
  private ticker: NodeJS.Timeout | undefined;
  /** Leading, and our first entry of this term is applied: leader duties may start. */
  private leading = false;
  private leaderStartIndex = 0;
  /** Snapshots received and not yet installed, by index (two may arrive in one turn). */
  private readonly incomingSnapshots = new Map<number, { meta: SnapshotMeta; data: Buffer }>();
  /** The term on disk: a leader's appends may leave before the disk write only within it. */
  private persistedTerm: number;
  private persistedVote: number;
  private outgoingSnapshot: { at: number; snap: { meta: SnapshotMeta; data: Buffer } } | undefined;
  /** Committed entries a follower has not applied yet (see APPLY_BATCH). */
  private deferred: Entry[] = [];
  private applyTimer: NodeJS.Timeout | undefined;
  /** Commands this node proposed, by their encoding: applied without decoding them again. */
  private readonly proposed = new WeakMap<Buffer, Command>();

  constructor(
    private readonly self: { id: NodeId; address: string },
    private readonly storage: RaftStorage,
    private readonly state: StateMachine,
    private readonly transport: PeerTransport,
    private readonly timing: RaftTiming,
    private readonly log: Logger,
  ) {
    const snapshot = storage.snapshot();
    const hardState = storage.hardState();
    this.persistedTerm = hardState.term;
    this.persistedVote = hardState.vote;
    this.raft = new Raft({
      id: self.id,
      electionTicks: timing.electionTicks,
      heartbeatTicks: timing.heartbeatTicks,
      random: () => randomInt(1 << 30) / (1 << 30),
      // Whatever the state machine applied was committed, whatever the saved commit says.
      hardState: { ...hardState, commit: Math.max(hardState.commit, state.lastApplied) },
      snapshot,
      entries: storage.entries(),
    });
    this.syncPeers();
  }

  start(): void {
    this.ticker = setInterval(() => this.tick(), this.timing.tickMs);
    // A cluster of one need not wait out an election timeout to lead.
    if (this.raft.promotable && this.raft.voters.length === 1) this.raft.tick();
    this.schedule();
  }

  // ------------------------------------------------------------------ inputs

  onFrame(frame: PeerFrame): void {
    if (this.closed) return;
    if (frame.snapshot) this.incomingSnapshots.set(frame.snapshot.meta.index, frame.snapshot);
    for (const m of frame.msgs ?? []) this.raft.step(m);
    this.schedule();
  }

  onSnapshotFailed(to: NodeId): void {
    this.raft.reportSnapshotFailure(to);
  }

  private tick(): void {
    if (this.closed) return;
    const loneVoter = this.raft.promotable && this.raft.voters.length === 1 && this.raft.role !== 'leader';
    this.raft.tick();
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
   * and are decoded only to be applied.
   */
  propose(command: Command): Promise<ApplyResult> {
    return this.track(() => {
      const bytes = logCodec.pack(command);
      this.proposed.set(bytes, command);
      return this.raft.propose(bytes);
    });
  }

  private commandOf(e: Entry): Command {
    // A master of the previous version sends commands as objects: a mixed cluster still works.
    if (!Buffer.isBuffer(e.data)) return e.data as Command;
    return this.proposed.get(e.data) ?? (logCodec.unpack(e.data) as Command);
  }

  /** Appends through `append` and resolves with the entry's apply result once committed. */
  private track(append: () => number): Promise<ApplyResult> {
    if (this.closed) return Promise.reject(new WeirError('unavailable', 'this master is shutting down'));
    let index: number;
    try {
      index = append();
    } catch (err) {
      return Promise.reject(this.translate(err));
    }
    this.schedule();
    return new Promise((resolve, reject) => this.waiters.set(index, { term: this.raft.term, resolve, reject }));
  }

  readBarrier(): Promise<void> {
    if (!this.leading) return Promise.reject(new WeirError('no_leader', 'this master is not the leader'));
    // Reads arriving in one turn of the event loop share one read-index round (one
    // heartbeat to each follower), issued when the Ready loop next runs.
    if (!this.unissuedRead) this.unissuedRead = ++this.readCtx;
    const ctx = this.unissuedRead;
    this.schedule();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readWaiters = this.readWaiters.filter((w) => w.ctx !== ctx);
        reject(new WeirError('no_leader', 'could not confirm leadership with a quorum in time; retry'));
      }, 5_000);
      this.readWaiters.push({
        ctx,
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  private issueRead(): void {
    const ctx = this.unissuedRead;
    if (!ctx) return;
    this.unissuedRead = 0;
    try {
      this.raft.readIndex(ctx);
    } catch (err) {
      const e = this.translate(err);
      for (const w of this.readWaiters.filter((r) => r.ctx === ctx)) w.reject(e);
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

  private async proposeConf(cc: Parameters<Raft['proposeConfChange']>[0]): Promise<void> {
    await this.track(() => this.raft.proposeConfChange(cc));
  }

  async stepDown(): Promise<void> {
    if (this.raft.role !== 'leader') return;
    const to = this.raft.voters
      .filter((id) => id !== this.self.id)
      .sort((a, b) => (this.raft.progressOf(b)?.match ?? 0) - (this.raft.progressOf(a)?.match ?? 0))[0];
    if (!to) return;
    this.raft.transferLeadership(to);
    this.schedule();
    const deadline = Date.now() + this.timing.tickMs * this.timing.electionTicks * 2;
    while (this.raft.role === 'leader' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  private translate(err: unknown): Error {
    if (err instanceof NotLeaderError) return new WeirError('no_leader', err.message);
    if (err instanceof ProposalRefusedError) return new WeirError('unavailable', err.message);
    return err as Error;
  }

  // ------------------------------------------------------------------ the Ready loop

  private readonly schedule = onNextTurn(() => this.process());

  private process(): void {
    if (this.closed) return;
    this.issueRead();
    for (let rounds = 0; this.raft.hasReady() && rounds < 8; rounds++) {
      const rd = this.raft.ready();
      // A leader's appends promise nothing about its own disk (it counts itself toward a
      // quorum only once persisted), so they leave first and followers write in parallel
      // (thesis §10.2.1). Everything else — votes, acknowledgements — waits for the disk.
      // (Not in a Ready that also starts a new term: that term must be on disk first.)
      const sameTerm = !rd.hardState || rd.hardState.term === this.persistedTerm;
      const early = sameTerm ? rd.messages.filter((m) => LEADER_MESSAGES.has(m.type)) : [];
      const late = early.length ? rd.messages.filter((m) => !LEADER_MESSAGES.has(m.type)) : rd.messages;
      if (early.length) this.transport.send(early, () => this.snapshotToSend());
      this.persist(rd);
      // ONLY NOW may the rest leave: a vote or an acknowledgement must not outrun the disk.
      if (late.length) this.transport.send(late, () => this.snapshotToSend());
      this.apply(rd.committed);
      this.serveReads(rd);
      this.raft.advance(rd);
      if (rd.entries.some((e) => e.kind === 'conf') || rd.snapshot) this.syncPeers();
    }
    // A snapshot the core wanted was installed by the first Ready above; others were stale.
    this.incomingSnapshots.clear();
    this.updateLeadership();
    this.maybeCompact();
    if (this.raft.hasReady()) this.schedule();
  }

  private persist(rd: Ready): void {
    if (rd.snapshot) {
      const incoming = this.incomingSnapshots.get(rd.snapshot.index);
      if (!incoming) throw new Error(`snapshot ${rd.snapshot.index} to install but its data is missing`);
      this.state.install(incoming.data);
      this.incomingSnapshots.clear();
      this.log.info({ index: rd.snapshot.index, bytes: incoming.data.length }, 'installed a snapshot from the leader');
    }
    // The commit index is volatile in Raft (a restarted node relearns it from the leader),
    // so only a new term or vote is written: the commit it carries rides along then.
    const hs = rd.hardState;
    const newVote = hs !== undefined && (hs.term !== this.persistedTerm || hs.vote !== this.persistedVote);
    if (rd.entries.length > 0 || rd.snapshot || newVote) {
      this.storage.save(newVote ? hs : undefined, rd.entries, rd.snapshot);
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
    // Entries this node proposed are applied at once even if it follows now (a leader that
    // committed its own removal, or lost the lead in the Ready that committed them): their
    // callers get the result, not "leadership changed".
    if (this.raft.role === 'follower' && this.waiters.size === 0 && this.deferred.length < APPLY_BATCH) {
      this.applyTimer ??= setTimeout(() => {
        this.applyTimer = undefined;
        this.applyDeferred();
      }, APPLY_DELAY_MS);
      return;
    }
    this.applyDeferred();
  }

  private applyDeferred(): void {
    clearTimeout(this.applyTimer);
    this.applyTimer = undefined;
    const entries = this.deferred;
    if (entries.length === 0 || this.closed) return;
    this.deferred = [];
    const decoded = entries.map((e) => (e.kind === 'cmd' ? { ...e, data: this.commandOf(e) } : e));
    const results = this.state.applyBatch(decoded);
    const applied: { command: Command; result: ApplyResult }[] = [];
    for (const [i, e] of decoded.entries()) {
      const result = results[i]!;
      if (e.kind === 'cmd' && !(result as { replayed?: boolean }).replayed) {
        applied.push({ command: e.data as Command, result });
      }
      const w = this.waiters.get(e.index);
      if (!w) continue;
      this.waiters.delete(e.index);
      // Another leader's entry took this index: ours was never committed.
      if (w.term === e.term) w.resolve(result);
      else w.reject(leadershipLost());
    }
    if (applied.length) for (const l of this.appliedListeners) l(applied);
  }

  private serveReads(rd: Ready): void {
    for (const rs of rd.readStates) {
      // A leader applies at once, so applied is at least the read's index by now: the core
      // hands reads out no earlier than the commits they wait for.
      const ready = this.readWaiters.filter((w) => w.ctx <= rs.ctx);
      this.readWaiters = this.readWaiters.filter((w) => w.ctx > rs.ctx);
      if (this.state.lastApplied >= rs.index) for (const w of ready) w.resolve();
      else for (const w of ready) this.waitApplied(rs.index, w);
    }
  }

  private waitApplied(index: number, w: { resolve: () => void; reject: (e: Error) => void }): void {
    const check = () => {
      if (this.state.lastApplied >= index) w.resolve();
      else if (this.closed || this.raft.role !== 'leader') w.reject(leadershipLost());
      else setTimeout(check, 1);
    };
    check();
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
      const was = this.leading;
      this.leading = false;
      this.leaderStartIndex = 0;
      for (const [, w] of this.waiters) w.reject(leadershipLost());
      this.waiters.clear();
      for (const w of this.readWaiters.splice(0)) w.reject(leadershipLost());
      if (was) {
        this.log.info({ term: r.term, leader: r.leader }, 'no longer leading');
        for (const l of this.leaderListeners) l(false);
      }
    }
  }

  private snapshotToSend(): { meta: SnapshotMeta; data: Buffer } {
    // Several followers needing one at once share it — while the log still follows on from
    // it; a snapshot older than the compaction point would leave its receiver stuck behind.
    const now = Date.now();
    const cached = this.outgoingSnapshot;
    if (cached && now - cached.at <= 2_000 && cached.snap.meta.index >= this.raft.log.snapshot.index) {
      return cached.snap;
    }
    const snap = this.state.snapshot();
    this.outgoingSnapshot = { at: now, snap };
    this.log.info({ index: snap.meta.index, bytes: snap.data.length }, 'sending a snapshot to a follower');
    return snap;
  }

  private maybeCompact(): void {
    const applied = this.state.lastApplied;
    if (applied - this.raft.log.firstIndex < COMPACT_AFTER) return;
    const to = applied - KEEP;
    // The entries go only once the state database holds them on disk.
    this.state.checkpoint();
    const meta = this.raft.snapshotMeta(to);
    this.raft.compact(to);
    this.storage.compact(meta);
  }

  private syncPeers(): void {
    for (const m of this.raft.members) this.addresses.set(m.id, m.address);
    this.transport.setPeers(this.raft.members);
  }

  // ------------------------------------------------------------------ questions

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
    const now = Date.now();
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

  onApplied(listener: AppliedListener): void {
    this.appliedListeners.push(listener);
  }

  onLeadershipChange(listener: (leader: boolean) => void): void {
    this.leaderListeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.applyDeferred();
    this.closed = true;
    clearInterval(this.ticker);
    for (const [, w] of this.waiters) w.reject(new WeirError('unavailable', 'this master is shutting down'));
    this.waiters.clear();
    for (const w of this.readWaiters.splice(0)) w.reject(new WeirError('unavailable', 'this master is shutting down'));
    this.transport.close();
  }
}

import { applyConfChange, membersAfter, votersOf } from './membership.js';
import { Progress } from './progress.js';
import { committedIndex, majority, voteResult } from './quorum.js';
import { RaftLog } from './raft-log.js';
import type {
  ConfChange,
  Entry,
  EntryKind,
  HardState,
  Member,
  Message,
  NodeId,
  Outgoing,
  ReadState,
  Ready,
  Role,
  SnapshotMeta,
} from './types.js';

export interface RaftOptions {
  id: NodeId;
  /** Base election timeout, in ticks; the actual one is randomized in [base, 2·base). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Injected randomness in [0, 1): the core never reads the clock or Math.random. */
  random: () => number;
  maxEntriesPerMsg?: number;
  maxInflight?: number;
  maxApplyBatch?: number;
  /** Durable state to resume from (all zero / empty for a new node). */
  hardState: HardState;
  /**
   * Entries up to here are applied already (the state machine kept them across a restart):
   * they are not handed out to apply again.
   */
  applied?: number;
  snapshot: SnapshotMeta;
  entries: Entry[];
}

export class NotLeaderError extends Error {
  constructor(readonly leader: NodeId) {
    super(leader ? `not the leader; node ${leader} is` : 'not the leader, and no leader is known');
    this.name = 'NotLeaderError';
  }
}

export class ProposalRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProposalRefusedError';
  }
}

interface PendingRead {
  ctx: number;
  index: number;
  acks: Set<NodeId>;
}

/**
 * The Raft consensus algorithm (Ongaro & Ousterhout, 2014) as a pure, deterministic state
 * machine in the style of etcd's raft: messages, ticks and proposals go in; entries to
 * persist, messages to send and entries to apply come out through `ready()`. No I/O, no
 * timers, no clock, no randomness but the injected one. Adds pre-vote and check-quorum
 * (thesis §9.6, §6.2), leader transfer (§3.10), one-at-a-time membership changes (§4.1),
 * log compaction with snapshots (§5) and read-index reads (§6.4).
 */
export class Raft {
  readonly id: NodeId;
  term: number;
  vote: NodeId;
  role: Role = 'follower';
  leader: NodeId = 0;
  readonly log: RaftLog;
  members: Member[];

  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: () => number;
  private readonly maxEntriesPerMsg: number;
  private readonly maxInflight: number;
  private readonly maxApplyBatch: number;

  private progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private msgs: Message[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Leader transfer in progress to this node (0: none), and for how many ticks. */
  private transferee: NodeId = 0;
  private transferElapsed = 0;
  /** Index of the latest membership change; a new one waits until this one commits. */
  private pendingConfIndex = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads asked for before this leader committed an entry of its own term. */
  private readsAwaitingCommit: number[] = [];
  private readStates: ReadState[] = [];
  private needBroadcast = false;
  /** The commit index at the leader's previous tick (how current a follower must be). */
  private commitAtLastTick = 0;
  private prevHard: HardState;
  private snapshotToInstall: SnapshotMeta | undefined;

  constructor(o: RaftOptions) {
    this.id = o.id;
    this.electionTicks = o.electionTicks;
    this.heartbeatTicks = o.heartbeatTicks;
    this.random = o.random;
    this.maxEntriesPerMsg = o.maxEntriesPerMsg ?? 512;
    this.maxInflight = o.maxInflight ?? 64;
    this.maxApplyBatch = o.maxApplyBatch ?? 2048;
    this.term = o.hardState.term;
    this.vote = o.hardState.vote;
    this.log = new RaftLog(o.snapshot, o.entries, o.hardState.commit, o.applied);
    this.members = membersAfter(
      o.snapshot.members,
      o.entries.filter((e) => e.index > o.snapshot.index),
    );
    this.pendingConfIndex = this.log.lastIndex;
    this.prevHard = { ...o.hardState };
    this.resetElectionTimeout();
  }

  // ---------------------------------------------------------------- questions

  get voters(): NodeId[] {
    return votersOf(this.members);
  }

  /** Whether this node may stand for election: it is a voter in the current configuration. */
  get promotable(): boolean {
    return this.members.some((m) => m.id === this.id && m.voter);
  }

  /**
   * Thesis §4.2.2: "a server that is not part of its own latest configuration should still
   * start new elections, as it might still be needed until the Cnew entry is committed" (Figure
   * 4.6: a leader removing itself from {S1, S2} steps down before S2 has the entry; only S1 can
   * lead, since S2 needs S1's vote and S1 refuses it for S2's shorter log). Its own vote counts
   * only where it is a voter: voteResult counts `voters` alone.
   *
   * This node's commit index may be behind the cluster's (it is relearned after a restart), so
   * it counts as needed while it is a voter in any configuration its log holds from its commit
   * on: a promotion it still thinks uncommitted may have committed already.
   */
  private mayCampaign(): boolean {
    if (this.promotable) return true;
    if (this.log.committed >= this.log.lastIndex) return false;
    let members = this.membersAt(this.log.committed);
    if (votersOf(members).includes(this.id)) return true;
    for (const e of this.log.slice(this.log.committed + 1, this.log.lastIndex)) {
      if (e.kind !== 'conf') continue;
      members = applyConfChange(members, e.data as ConfChange);
      if (votersOf(members).includes(this.id)) return true;
    }
    return false;
  }

  get isLearner(): boolean {
    return this.members.some((m) => m.id === this.id && !m.voter);
  }

  progressOf(id: NodeId): Readonly<Progress> | undefined {
    return this.progress.get(id);
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    if (this.role === 'leader') return this.tickLeader();
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.mayCampaign()) {
      this.electionElapsed = 0;
      this.campaign('preVote');
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const [id, pr] of this.progress) {
      pr.heardElapsed++;
      // Current means holding what was committed a tick ago: under a steady stream of writes
      // a healthy follower is always about one batch behind the latest commit.
      const healthy = pr.heardElapsed <= this.electionTicks && pr.match >= this.commitAtLastTick && id !== this.id;
      pr.healthyTicks = healthy ? pr.healthyTicks + 1 : 0;
      // §5.1: an unanswered RPC is retried. The snapshot or its answer may have been lost (the
      // driver cannot always tell): after an election timeout, probe again (and resend if needed).
      if (pr.state === 'snapshot' && ++pr.snapshotElapsed >= this.electionTicks) pr.becomeProbe();
    }
    this.commitAtLastTick = this.log.committed;
    if (this.transferee) {
      this.transferElapsed++;
      if (this.transferElapsed >= this.electionTicks) this.transferee = 0; // gave up
    }
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      // Check quorum: a leader that has not heard from a majority in an election timeout
      // steps down, so a partitioned minority never keeps a leader.
      if (!this.quorumActive()) {
        this.becomeFollower(this.term, 0);
        return;
      }
      for (const pr of this.progress.values()) pr.recentActive = false;
    }
    if (this.role === 'leader' && this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.voters) if (v === this.id || this.progress.get(v)?.recentActive) active++;
    return active >= majority(this.voters.length);
  }

  /** Appends a command; returns its index. Only a leader takes proposals. */
  propose(data: unknown, kind: EntryKind = 'cmd'): number {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader);
    if (this.transferee) throw new ProposalRefusedError(`leadership is moving to node ${this.transferee}`);
    return this.appendEntry(kind, data);
  }

  proposeConfChange(cc: ConfChange): number {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader);
    if (this.pendingConfIndex > this.log.committed) {
      throw new ProposalRefusedError('another membership change is still in progress; retry when it has committed');
    }
    if (cc.op === 'bootstrap') throw new ProposalRefusedError('a running cluster cannot be bootstrapped again');
    const member = this.members.find((m) => m.id === cc.id);
    if (cc.op === 'addLearner' && member) throw new ProposalRefusedError(`node ${cc.id} is already a member`);
    if (cc.op === 'promote' && !member) throw new ProposalRefusedError(`node ${cc.id} is not a member`);
    if (cc.op === 'remove' && !member) throw new ProposalRefusedError(`node ${cc.id} is not a member`);
    if (cc.op === 'remove' && votersOf(applyConfChange(this.members, cc)).length === 0) {
      throw new ProposalRefusedError('cannot remove the last voter');
    }
    const index = this.propose(cc, 'conf');
    this.pendingConfIndex = index;
    return index;
  }

  /**
   * Asks for a linearizable read (§6.4): once a quorum confirms this node still leads, a
   * ReadState carries the commit index the read must wait to have applied. `ctx` must grow.
   */
  readIndex(ctx: number): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader);
    if (this.log.term(this.log.committed) !== this.term) {
      this.readsAwaitingCommit.push(ctx);
      return;
    }
    this.startRead(ctx);
  }

  private startRead(ctx: number): void {
    const read = { ctx, index: this.log.committed, acks: new Set([this.id]) };
    // Answer at once only when this leader alone is a quorum; a leader removing itself is no
    // voter, and the remaining voter may already follow a newer leader.
    if (voteResult(this.voters, new Map([[this.id, true]])) === 'won') {
      this.readStates.push({ ctx, index: read.index });
      return;
    }
    this.pendingReads.push(read);
    for (const id of this.voters) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  /** Hands leadership to `to` (§3.10): bring it up to date, then tell it to campaign now. */
  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader);
    if (to === this.id) return;
    if (!this.voters.includes(to)) throw new ProposalRefusedError(`node ${to} is not a voter`);
    this.transferee = to;
    this.transferElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex) this.send({ type: 'timeoutNow', to, term: this.term });
    else this.sendAppend(to);
  }

  get transferring(): NodeId {
    return this.transferee;
  }

  /** The driver could not deliver a snapshot to `to`: probe again later. */
  reportSnapshotFailure(to: NodeId): void {
    const pr = this.progress.get(to);
    if (pr?.state === 'snapshot') pr.becomeProbe();
  }

  /**
   * The driver has delivered a snapshot to `to` (a large one travels for longer than an
   * election timeout): the follower gets a whole election timeout from now to install it and
   * answer before another is sent — counted from when it went out, a slow install drew a second
   * copy it would only have to skip.
   */
  reportSnapshotSent(to: NodeId): void {
    const pr = this.progress.get(to);
    if (!pr || this.role !== 'leader' || pr.state === 'replicate') return;
    if (pr.state === 'probe') pr.becomeSnapshot();
    pr.snapshotElapsed = 0;
  }

  /** The state machine holds everything up to `index` durably: drop those entries. */
  compact(index: number): void {
    const upTo = Math.min(index, this.log.applied);
    this.log.compact(upTo, this.membersAt(upTo));
  }

  /**
   * What a snapshot of the state machine taken at `index` (between the last compaction and
   * `applied`) must say about itself; the driver sends it in place of the core's own.
   */
  snapshotMeta(index: number): SnapshotMeta {
    if (index < this.log.snapshot.index || index > this.log.applied) {
      throw new Error(`no snapshot at ${index}: the log covers ${this.log.snapshot.index}..${this.log.applied}`);
    }
    return { index, term: this.log.term(index)!, members: this.membersAt(index) };
  }

  /** The configuration in effect at `index` (≤ lastIndex, ≥ the snapshot's). */
  private membersAt(index: number): Member[] {
    const entries = this.log.slice(this.log.firstIndex, index);
    return membersAfter(this.log.snapshot.members, entries);
  }

  step(m: Message): void {
    if (m.term > this.term) {
      if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
        // Pre-votes never change terms: that is what keeps a rejoining node from disrupting.
      } else if (m.type === 'vote' && !m.transfer && this.inLease()) {
        // §4.2.3: we heard from a live leader within the election timeout; ignore the disruptor.
        return;
      } else {
        const leader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' ? m.from : 0;
        this.becomeFollower(m.term, leader);
      }
    } else if (m.term < this.term) {
      if (m.type === 'app' || m.type === 'heartbeat') {
        // A stale leader (a healed partition): our higher term makes it step down.
        this.send({ type: 'appResp', to: m.from, term: this.term, index: 0, reject: true, hint: 0 });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', to: m.from, term: this.term, reject: true });
      }
      return;
    }

    if (m.type === 'preVote' || m.type === 'vote') return this.handleVoteRequest(m);
    switch (this.role) {
      case 'leader':
        return this.stepLeader(m);
      case 'precandidate':
      case 'candidate':
        return this.stepCandidate(m);
      case 'follower':
        return this.stepFollower(m);
    }
  }

  private inLease(): boolean {
    return this.leader !== 0 && this.electionElapsed < this.electionTicks;
  }

  private handleVoteRequest(m: Extract<Message, { type: 'preVote' | 'vote' }>): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === 0 && this.leader === 0) ||
      (m.type === 'preVote' && m.term > this.term && (m.transfer || !this.inLease()));
    const respType = m.type === 'preVote' ? 'preVoteResp' : 'voteResp';
    // §5.4.1: only a candidate whose log is at least as up to date as ours gets our vote.
    if (canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm)) {
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.leader = m.from;
        return this.handleAppend(m);
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex));
        this.send({ type: 'heartbeatResp', to: m.from, term: this.term, ctx: m.ctx });
        // The leader believes we hold what we no longer do (our state was lost and we started
        // over): say so as a rejected append, or a quiet cluster would never send the snapshot.
        if (m.commit > this.log.lastIndex) {
          this.send({
            type: 'appResp',
            to: m.from,
            term: this.term,
            index: m.commit,
            reject: true,
            hint: this.log.lastIndex,
          });
        }
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.leader = m.from;
        return this.handleSnapshot(m);
      case 'timeoutNow':
        if (this.promotable) this.campaign('vote', true);
        return;
      default:
        return;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        // A leader of our term exists (§5.2): follow it.
        this.becomeFollower(this.term, m.from);
        return this.stepFollower(m);
      case 'preVoteResp':
      case 'voteResp': {
        if ((m.type === 'preVoteResp') !== (this.role === 'precandidate')) return;
        this.votes.set(m.from, !m.reject);
        const result = voteResult(this.voters, this.votes);
        if (result === 'won') {
          if (this.role === 'precandidate') this.campaign('vote');
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, 0);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.heardElapsed = 0;
    switch (m.type) {
      case 'appResp':
        if (m.reject) {
          if (pr.maybeDecrease(m.index, m.hint, this.log.firstIndex)) this.sendAppend(m.from);
          return;
        }
        if (pr.maybeUpdate(m.index)) {
          if (pr.state === 'probe' || pr.state === 'snapshot') pr.becomeReplicate();
          // Followers learn a new commit index with their next append or heartbeat: no
          // message of its own (they apply in batches, and a read goes to the leader).
          this.maybeCommit();
          if (m.from === this.transferee && pr.match === this.log.lastIndex) {
            this.send({ type: 'timeoutNow', to: m.from, term: this.term });
          }
        } else if (pr.state === 'snapshot' && m.index >= pr.match) {
          pr.becomeReplicate();
        }
        // Keep the pipeline full.
        while (pr.match < this.log.lastIndex && this.sendAppend(m.from, false)) {
          /* sent one more */
        }
        return;
      case 'heartbeatResp':
        if (pr.state === 'probe') pr.paused = false;
        // Every append filling the window may have been lost (nothing would ever answer them):
        // free one slot, so the next append goes out and its answer resynchronises us.
        else if (pr.state === 'replicate' && pr.isPaused(this.maxInflight)) pr.inflight.shift();
        if (pr.match < this.log.lastIndex) this.sendAppend(m.from);
        if (m.ctx) this.ackRead(m.from, m.ctx);
        return;
      default:
        return;
    }
  }

  private ackRead(from: NodeId, ctx: number): void {
    let released = -1;
    for (const [i, r] of this.pendingReads.entries()) {
      if (r.ctx > ctx) break;
      r.acks.add(from);
      if (this.voters.filter((v) => r.acks.has(v)).length >= majority(this.voters.length)) released = i;
    }
    // A confirmed read also confirms every read asked for before it.
    for (const r of this.pendingReads.splice(0, released + 1)) this.readStates.push({ ctx: r.ctx, index: r.index });
  }

  // ---------------------------------------------------------------- follower side

  private handleAppend(m: Extract<Message, { type: 'app' }>): void {
    if (m.prevIndex < this.log.committed) {
      this.send({ type: 'appResp', to: m.from, term: this.term, index: this.log.committed, reject: false, hint: 0 });
      return;
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const before = this.log.lastIndex;
      const last = this.log.appendFromLeader(m.prevIndex, m.entries);
      if (m.entries.some((e) => e.kind === 'conf') || this.log.lastIndex < before) this.recomputeMembers();
      else if (m.entries.length && m.entries[0]!.index <= before) this.recomputeMembers();
      this.log.commitTo(Math.min(m.commit, last));
      this.send({ type: 'appResp', to: m.from, term: this.term, index: last, reject: false, hint: 0 });
      return;
    }
    // §5.3 with the conflicting-term optimisation: skip the whole term that does not match.
    let hint = Math.min(this.log.lastIndex, m.prevIndex - 1);
    const conflictTerm = this.log.term(m.prevIndex);
    if (conflictTerm !== undefined) {
      let i = m.prevIndex;
      while (i - 1 > this.log.committed && this.log.term(i - 1) === conflictTerm) i--;
      hint = i - 1;
    }
    this.send({ type: 'appResp', to: m.from, term: this.term, index: m.prevIndex, reject: true, hint });
  }

  private handleSnapshot(m: Extract<Message, { type: 'snap' }>): void {
    const s = m.snapshot;
    if (s.index <= this.log.committed) {
      this.send({ type: 'appResp', to: m.from, term: this.term, index: this.log.committed, reject: false, hint: 0 });
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      // We already hold that entry: just learn that it is committed.
      this.log.commitTo(s.index);
      this.send({ type: 'appResp', to: m.from, term: this.term, index: this.log.committed, reject: false, hint: 0 });
      return;
    }
    this.log.restore(s);
    this.members = [...s.members];
    this.snapshotToInstall = s;
    this.send({ type: 'appResp', to: m.from, term: this.term, index: s.index, reject: false, hint: 0 });
  }

  private recomputeMembers(): void {
    this.setMembers(membersAfter(this.log.snapshot.members, this.log.slice(this.log.firstIndex, this.log.lastIndex)));
  }

  private setMembers(members: Member[]): void {
    this.members = members;
    if (this.role !== 'leader') return;
    const ids = new Set(members.map((m) => m.id));
    for (const id of this.progress.keys()) if (!ids.has(id)) this.progress.delete(id);
    for (const m of members) {
      if (m.id !== this.id && !this.progress.has(m.id)) this.progress.set(m.id, new Progress(this.log.lastIndex + 1));
    }
  }

  // ---------------------------------------------------------------- leader side

  private appendEntry(kind: EntryKind, data: unknown): number {
    const entry: Entry = {
      index: this.log.lastIndex + 1,
      term: this.term,
      kind,
      ...(data !== undefined ? { data } : {}),
    };
    this.log.append([entry]);
    if (kind === 'conf') this.setMembers(applyConfChange(this.members, data as ConfChange));
    this.needBroadcast = true;
    return entry.index;
  }

  /** Commits what a majority of voters holds durably — only entries of this term (§5.4.2). */
  private maybeCommit(): boolean {
    const matchOf = (id: NodeId) => (id === this.id ? this.log.stable : (this.progress.get(id)?.match ?? 0));
    const index = committedIndex(this.voters, matchOf);
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    this.log.commitTo(index);
    this.onLeaderCommit();
    return true;
  }

  private onLeaderCommit(): void {
    if (this.readsAwaitingCommit.length && this.log.term(this.log.committed) === this.term) {
      for (const ctx of this.readsAwaitingCommit.splice(0)) this.startRead(ctx);
    }
    // A leader removed from the configuration leaves once its removal is committed.
    if (!this.members.some((m) => m.id === this.id) && this.pendingConfIndex <= this.log.committed) {
      this.becomeFollower(this.term, 0);
    }
  }

  /** Sends `to` what it lacks; false when nothing was sent. */
  private sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused(this.maxInflight)) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // What it needs is compacted away (§7): send a snapshot instead.
      pr.becomeSnapshot();
      this.send({ type: 'snap', to, term: this.term, snapshot: this.log.snapshot });
      return true;
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex, this.maxEntriesPerMsg);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'app', to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed });
    if (entries.length) pr.sent(entries[entries.length - 1]!.index);
    else if (pr.state === 'probe') pr.paused = true;
    return true;
  }

  private broadcastAppend(): void {
    for (const id of this.progress.keys()) this.sendAppend(id);
  }

  private sendHeartbeat(to: NodeId, ctx: number): void {
    const pr = this.progress.get(to);
    // Never tell a follower to commit past what it is known to hold.
    const commit = Math.min(pr?.match ?? 0, this.log.committed);
    this.send({ type: 'heartbeat', to, term: this.term, commit, ctx });
  }

  private broadcastHeartbeat(): void {
    const ctx = this.pendingReads.length ? this.pendingReads[this.pendingReads.length - 1]!.ctx : 0;
    for (const id of this.progress.keys()) this.sendHeartbeat(id, ctx);
  }

  // ---------------------------------------------------------------- role changes

  private campaign(kind: 'preVote' | 'vote', transfer = false): void {
    if (kind === 'preVote') {
      this.role = 'precandidate';
      this.leader = 0;
    } else {
      this.role = 'candidate';
      this.term++;
      this.vote = this.id;
      this.leader = 0;
    }
    this.votes = new Map([[this.id, true]]);
    this.resetElectionTimeout();
    if (voteResult(this.voters, this.votes) === 'won') {
      if (kind === 'preVote') return this.campaign('vote', transfer);
      return this.becomeLeader();
    }
    const term = kind === 'preVote' ? this.term + 1 : this.term;
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send({
        type: kind,
        to: id,
        term,
        lastIndex: this.log.lastIndex,
        lastTerm: this.log.lastTerm,
        ...(transfer ? { transfer: true } : {}),
      });
    }
  }

  private becomeFollower(term: number, leader: NodeId): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = 0;
    }
    this.role = 'follower';
    this.leader = leader;
    this.electionElapsed = 0;
    this.transferee = 0;
    this.progress.clear();
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    this.votes.clear();
    this.resetElectionTimeout();
  }

  private becomeLeader(): void {
    if (this.role === 'follower') throw new Error('a follower cannot become leader without an election');
    this.role = 'leader';
    this.leader = this.id;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.transferee = 0;
    this.progress.clear();
    for (const m of this.members) {
      if (m.id !== this.id) this.progress.set(m.id, new Progress(this.log.lastIndex + 1));
    }
    // Any membership change in the log may be uncommitted: allow no new one until ours commits.
    this.pendingConfIndex = this.log.lastIndex + 1;
    // An entry of the new term commits the previous terms' entries (§5.4.2) and opens reads.
    this.appendEntry('noop', undefined);
  }

  private resetElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTicks + Math.floor(this.random() * this.electionTicks);
  }

  /**
   * Stamps our id on a message and queues it. Every caller passes a literal of its own, so it
   * is stamped in place: a copy (`{ ...m, from }`) of messages of eight shapes was a slow,
   * megamorphic one for every message sent, for the same object (`from` last either way).
   */
  private send(m: Outgoing): void {
    const msg = m as Message;
    msg.from = this.id;
    this.msgs.push(msg);
  }

  // ---------------------------------------------------------------- output

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.needBroadcast ||
      this.log.stable < this.log.lastIndex ||
      this.log.applied < this.log.committed ||
      this.snapshotToInstall !== undefined ||
      this.readStates.length > 0 ||
      this.hardStateChanged()
    );
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardStateChanged(): boolean {
    const h = this.prevHard;
    return h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.committed;
  }

  ready(): Ready {
    if (this.needBroadcast && this.role === 'leader') this.broadcastAppend();
    this.needBroadcast = false;
    const committed =
      this.log.applied < this.log.committed
        ? this.log.slice(Math.max(this.log.applied + 1, this.log.firstIndex), this.log.committed, this.maxApplyBatch)
        : [];
    const rd: Ready = {
      entries: this.log.unstableEntries(),
      messages: this.msgs,
      committed,
      readStates: this.readStates,
    };
    if (this.hardStateChanged()) rd.hardState = this.hardState();
    if (this.snapshotToInstall) rd.snapshot = this.snapshotToInstall;
    this.msgs = [];
    this.readStates = [];
    return rd;
  }

  /** The driver has done everything `rd` asked (persisted, sent, applied). */
  advance(rd: Ready): void {
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.snapshot && this.snapshotToInstall === rd.snapshot) this.snapshotToInstall = undefined;
    if (rd.entries.length) {
      const last = rd.entries[rd.entries.length - 1]!;
      if (this.log.term(last.index) === last.term) this.log.stable = Math.max(this.log.stable, last.index);
    }
    if (rd.committed.length) this.log.applied = rd.committed[rd.committed.length - 1]!.index;
    // The leader's own durable entries count toward its quorum only once persisted.
    if (this.role === 'leader' && rd.entries.length) this.maybeCommit();
  }

  status() {
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex,
      firstIndex: this.log.firstIndex,
      members: this.members,
      transferee: this.transferee,
    };
  }
}

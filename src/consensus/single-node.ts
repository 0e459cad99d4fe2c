import type { ApplyResult, Command } from '../state/commands.js';
import type { LogEntry, StateMachine } from '../state/state-machine.js';
import type { AppliedListener, Consensus, ConsensusStatus } from './consensus.js';
import type { LogStore } from './log-store.js';

interface Proposal {
  command: Command;
  resolve: (r: ApplyResult) => void;
  reject: (e: Error) => void;
}

/** Most commands one flush takes, so one batch never holds the event loop for long. */
const MAX_BATCH = 2_000;
/** Applied entries kept in the log before older ones are compacted away. */
const KEEP_ENTRIES = 10_000;
const COMPACT_EVERY = 50_000;

/**
 * A cluster of one: every proposal is appended to the durable log, then applied. Group
 * commit: proposals that arrive while a batch is being written wait in the queue and go
 * together as the next batch, on the next turn of the event loop — no timer, one fsync per
 * batch.
 */
export class SingleNodeConsensus implements Consensus {
  private queue: Proposal[] = [];
  private scheduled = false;
  private closed = false;
  private readonly appliedListeners: AppliedListener[] = [];
  private readonly leaderListeners: ((leader: boolean) => void)[] = [];
  private readonly term: number;
  private sinceCompaction = 0;

  constructor(
    private readonly log: LogStore,
    private readonly state: StateMachine,
    private readonly self: { id: number; address: string },
  ) {
    // Each start is a new term, as an election would make it.
    this.term = (log.hard('term') ?? 0) + 1;
    log.setHard('term', this.term);
    this.replay();
  }

  /** Applies what the log holds beyond the state database (a crash between the two). */
  private replay(): void {
    let next = this.state.lastApplied + 1;
    if (next < this.log.firstIndex) {
      throw new Error(
        `the state database is at entry ${next - 1} but the log starts at ${this.log.firstIndex}; the data dir is damaged`,
      );
    }
    while (next <= this.log.lastIndex) {
      const batch = this.log.entries(next, this.log.lastIndex, MAX_BATCH);
      this.state.applyBatch(batch);
      next = this.state.lastApplied + 1;
    }
  }

  propose(command: Command): Promise<ApplyResult> {
    if (this.closed) return Promise.reject(new Error('consensus is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ command, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue.splice(0, MAX_BATCH);
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    let first = this.log.lastIndex + 1;
    const entries: LogEntry[] = batch.map((p) => ({ index: first++, term: this.term, command: p.command }));
    let results: ApplyResult[];
    try {
      // DURABLE FIRST: nothing is applied, and so nothing acknowledged, before the fsync.
      this.log.append(entries);
      results = this.state.applyBatch(entries);
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    const applied = batch.map((p, i) => ({ command: p.command, result: results[i]! }));
    for (const l of this.appliedListeners) l(applied);
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
    this.maybeCompact(entries.length);
  }

  private maybeCompact(n: number): void {
    this.sinceCompaction += n;
    if (this.sinceCompaction < COMPACT_EVERY) return;
    this.sinceCompaction = 0;
    const upTo = this.state.lastApplied - KEEP_ENTRIES;
    if (upTo <= 0) return;
    this.state.checkpoint();
    this.log.compact(upTo);
  }

  isLeader(): boolean {
    return !this.closed;
  }

  status(): ConsensusStatus {
    return {
      node_id: this.self.id,
      role: 'leader',
      leader_id: this.self.id,
      leader_address: this.self.address,
      term: this.term,
      commit_index: this.log.lastIndex,
      last_applied: this.state.lastApplied,
      members: [{ id: this.self.id, address: this.self.address, role: 'leader', healthy: true }],
    };
  }

  onApplied(listener: AppliedListener): void {
    this.appliedListeners.push(listener);
  }

  onLeadershipChange(listener: (leader: boolean) => void): void {
    this.leaderListeners.push(listener);
    // A cluster of one leads from the start.
    queueMicrotask(() => listener(true));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = this.queue.splice(0);
    for (const p of pending) p.reject(new Error('master is shutting down'));
  }
}

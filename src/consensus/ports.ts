import type { ConfChange, Entry, HardState, Member, Message, NodeId, SnapshotMeta } from './core/types.js';

// The driver's four kinds of I/O, each a small interface owned here: the master implements
// them over SQLite, WebSockets and the event loop, the deterministic simulation in memory.

/** A committed entry as the state machine gets it: the command decoded, or a membership change. */
export type Committed<C> =
  | { index: number; term: number; kind: 'cmd'; data: C }
  | { index: number; term: number; kind: 'conf'; data: ConfChange }
  | { index: number; term: number; kind: 'noop' };

/**
 * A snapshot's bytes: in memory (the simulation), or in a file of this node's data directory
 * (a master: a state of any size is copied, sent and received in chunks, never held whole).
 */
export type SnapshotData = Buffer | { file: string; size: number };

export interface Snapshot {
  meta: SnapshotMeta;
  data: SnapshotData;
}

export const snapshotSize = (data: SnapshotData): number => (Buffer.isBuffer(data) ? data.length : data.size);

/**
 * The replicated state machine. `applyBatch` must be deterministic (same entries in the same
 * order, same state on every node) and must never throw on a command's content: a command it
 * cannot apply is a result that says so. Membership changes are applied too, so a snapshot is
 * complete.
 */
export interface StateMachine<C, R> {
  /** The last index applied (read often: keep it cheap). */
  readonly lastApplied: number;
  /** The last index applied with its term and configuration: what a snapshot taken now holds. */
  applied(): SnapshotMeta;
  /**
   * Applies consecutive committed entries; those at or below `applied().index` are skipped.
   * One result per entry: `undefined` for a skipped entry or one that is not a command.
   */
  applyBatch(entries: readonly Committed<C>[]): (R | undefined)[];
  snapshot(): Snapshot;
  /**
   * A snapshot made without blocking the caller, where the state can be copied aside (a
   * large state takes seconds): at some applied index at or after the call, as its meta says.
   */
  snapshotInBackground?(): Promise<Snapshot>;
  /** Replaces the whole state with a snapshot's data, durably, before returning. */
  restore(snapshot: Snapshot): void;
  /**
   * Why this node cannot install `snapshot` (its state's format is newer than this software
   * reads), or undefined. Such a snapshot is dropped before it reaches the core: the node keeps
   * the state it has.
   */
  refuses?(snapshot: Snapshot): string | undefined;
  /** A snapshot taken or received that will not be used: its file (if any) can go. */
  discard(snapshot: Snapshot): void;
  /**
   * Copies what was applied into the durable state and frees what held it meanwhile. Without
   * `durableIndex`, everything applied must be durable when it returns: the log entries behind
   * it are then dropped. With it, compaction trusts only `durableIndex`.
   */
  checkpoint(): void;
  /**
   * The highest applied index already durable, for a state machine that makes its applies
   * durable in the background: compaction then stops there instead of calling `checkpoint`.
   */
  durableIndex?(): number;
}

/**
 * The durable log and hard state. When `save` returns, everything it was given is on disk.
 * A write the disk refused throws `StorageError` and changed nothing; the driver then starts
 * over from what is durable, as after a crash.
 */
export interface LogStore {
  hardState(): HardState;
  /** The last compaction point (or installed snapshot). */
  snapshot(): SnapshotMeta;
  /** Every entry after the compaction point; commands as the bytes they were proposed as. */
  entries(): Entry[];
  /** `entries[0].index` and after replace whatever the log held from there. */
  save(hardState: HardState | undefined, entries: readonly Entry[], snapshot?: SnapshotMeta): void;
  /** Drops entries up to `meta.index`, which the state machine holds durably. */
  compact(meta: SnapshotMeta): void;
  /** See `VoteFloor`: undefined when there is none. */
  voteFloor(): VoteFloor | undefined;
  setVoteFloor(floor: VoteFloor | undefined): void;
}

/**
 * The last entry of the log a node dropped when it had to start over from an empty state (its
 * state database lost or corrupt after compaction). Entries it acknowledged may be committed:
 * until its log is as up to date again it neither votes nor campaigns, as if it were down, so
 * that no leader lacking them can be elected with its help.
 */
export interface VoteFloor {
  index: number;
  term: number;
}

/** What reaches the driver from a peer: Raft messages, maybe with a snapshot's data. */
export interface Inbound {
  msgs?: readonly Message[];
  snapshot?: Snapshot;
}

/** Messages to the other members. Delivery is best effort: Raft re-sends what matters. */
export interface Transport {
  /** `snapshot` is asked for only when a message needs one; it may take a while to come. */
  send(messages: readonly Message[], snapshot: () => Snapshot | Promise<Snapshot>): void;
  setPeers(members: readonly Member[]): void;
  /** When a frame from `id` last arrived, on the clock's time line (0: never). */
  lastHeard(id: NodeId): number;
  /**
   * Why `to` could not install a snapshot of this node's state (its software is older than the
   * state's format), or undefined: such a snapshot is not sent at all.
   */
  cannotInstall?(to: NodeId): string | undefined;
  /**
   * Why `to` may not be sent entries of the log (its software applies them by older rules than
   * the state's, and would part from the others), or undefined ('' while it has not said).
   */
  cannotFollow?(to: NodeId): string | undefined;
  close(): void;
}

export type Cancel = () => void;

/** Time, as the driver sees it: the event loop in a master, a stepped clock in the simulation. */
export interface Clock {
  now(): number;
  after(ms: number, fn: () => void): Cancel;
  every(ms: number, fn: () => void): Cancel;
  /** Runs `fn` on a later turn, once however often it is asked before then (group commit). */
  coalesce(fn: () => void): () => void;
}

/** How commands become log bytes and back; the same bytes go to every log and every follower. */
export interface Codec<C> {
  encode(command: C): Buffer;
  decode(bytes: Buffer): C;
}

/** The disk refused a write (full, read-only, failing): nothing of that write happened. */
export class StorageError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

export type Role = 'leader' | 'follower' | 'candidate' | 'learner';

export interface MemberInfo {
  id: number;
  address: string;
  role: Role;
  voter: boolean;
  healthy: boolean;
}

export interface ConsensusStatus {
  node_id: number;
  role: Role;
  leader_id: number | null;
  leader_address: string | null;
  term: number;
  commit_index: number;
  last_applied: number;
  /** Every committed entry is applied or queued to be (a follower applies in batches). */
  caught_up: boolean;
  members: MemberInfo[];
}

/** Commands are a tagged union; `Results` maps each tag to what applying it returns. */
export type Tagged = { type: string };
export type ResultMap<C extends Tagged> = { [K in C['type']]: unknown };

/** One applied command with its result, correlated by `type` (a switch on it narrows both). */
export type Applied<C extends Tagged, M extends ResultMap<C>> = {
  [K in C['type']]: { type: K; command: Extract<C, { type: K }>; result: M[K] };
}[C['type']];

/** Called on every master, in log order, after each committed batch has been applied. */
export type AppliedListener<C extends Tagged, M extends ResultMap<C>> = (entries: readonly Applied<C, M>[]) => void;

/**
 * What the master asks of consensus. `propose` resolves with the command's apply result on
 * this node once the command is committed and applied — the only acknowledgement a client
 * ever gets. A master that is not the leader forwards requests to `leaderUrl()`.
 */
export interface Consensus<C extends Tagged, M extends ResultMap<C>> {
  /**
   * `onAppended` runs before `propose` returns, and only if the command went into this
   * leader's log (not when it was refused: not leading, a hand-over under way, a disk that
   * refused a write): what may leave ahead of the commit leaves then, never for a command
   * that was not even appended.
   */
  propose<T extends C>(command: T, onAppended?: () => void): Promise<M[T['type']]>;
  isLeader(): boolean;
  /** How many voters the configuration has (1: this node commits on its own disk alone). */
  voters(): number;
  /** The leader's URL as this node knows it (null: no leader known). */
  leaderUrl(): string | null;
  /** Resolves when this leader may serve a linearizable read (§6.4 read index). */
  readBarrier(): Promise<void>;
  status(): ConsensusStatus;
  addMember(id: number, address: string): Promise<void>;
  removeMember(id: number): Promise<void>;
  /** Hands leadership to another voter before this node stops (graceful shutdown). */
  stepDown(): Promise<void>;
  onApplied(listener: AppliedListener<C, M>): void;
  /** Called when this node gains (true) or loses (false) leadership. */
  onLeadershipChange(listener: (leader: boolean) => void): void;
  close(): Promise<void>;
}

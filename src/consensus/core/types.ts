/** Node ids are positive integers; 0 means "none". */
export type NodeId = number;

/** What an entry carries: a state-machine command, a membership change, or nothing. */
export type EntryKind = 'cmd' | 'conf' | 'noop';

export interface Entry {
  index: number;
  term: number;
  kind: EntryKind;
  /** `cmd`: the command; `conf`: a ConfChange; `noop`: nothing. Opaque to the core. */
  data?: unknown;
}

export interface Member {
  id: NodeId;
  address: string;
  /** Voters elect and make quorums; learners only receive the log. */
  voter: boolean;
}

export type ConfChange =
  /** Entry 1 of a new cluster's log, identical on every founding master. */
  | { op: 'bootstrap'; members: Member[] }
  | { op: 'addLearner'; id: NodeId; address: string }
  | { op: 'promote'; id: NodeId }
  | { op: 'remove'; id: NodeId };

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface SnapshotMeta {
  index: number;
  term: number;
  members: Member[];
}

export type Message =
  | {
      type: 'preVote' | 'vote';
      from: NodeId;
      to: NodeId;
      term: number;
      lastIndex: number;
      lastTerm: number;
      transfer?: boolean;
    }
  | { type: 'preVoteResp' | 'voteResp'; from: NodeId; to: NodeId; term: number; reject: boolean }
  | {
      type: 'app';
      from: NodeId;
      to: NodeId;
      term: number;
      prevIndex: number;
      prevTerm: number;
      entries: Entry[];
      commit: number;
    }
  | { type: 'appResp'; from: NodeId; to: NodeId; term: number; index: number; reject: boolean; hint: number }
  | { type: 'heartbeat'; from: NodeId; to: NodeId; term: number; commit: number; ctx: number }
  | { type: 'heartbeatResp'; from: NodeId; to: NodeId; term: number; ctx: number }
  | { type: 'snap'; from: NodeId; to: NodeId; term: number; snapshot: SnapshotMeta }
  | { type: 'timeoutNow'; from: NodeId; to: NodeId; term: number };

export type MessageType = Message['type'];

/** A message before the sender stamps its id on it. */
export type Outgoing = Message extends infer M ? (M extends Message ? Omit<M, 'from'> : never) : never;

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

/** A linearizable read may be served once this node has applied up to `index`. */
export interface ReadState {
  ctx: number;
  index: number;
}

/**
 * What the driver must do, in this order:
 * 1. persist `hardState`, `snapshot` (install it) and `entries` (entries[0].index and after
 *    replace whatever the log held from there) — durably;
 * 2. only THEN send `messages` (a vote or an acknowledgement must never outrun the disk) —
 *    except a leader's own appends and heartbeats within an already durable term, which may
 *    leave before its disk write (thesis §10.2.1: the leader counts itself only once stable);
 * 3. apply `committed` in order, serve `readStates` once applied;
 * 4. call `advance(ready)`.
 */
export interface Ready {
  hardState?: HardState;
  snapshot?: SnapshotMeta;
  entries: Entry[];
  messages: Message[];
  committed: Entry[];
  readStates: ReadState[];
}

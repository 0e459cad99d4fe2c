// A deterministic simulated cluster running the real consensus driver (RaftConsensus).
//
// Each node is a `RaftConsensus` over in-memory versions of its ports: a log store that
// survives crashes (and can refuse writes, as a full disk does), a state machine whose durable
// part survives crashes (the list of applied commands), a transport onto a simulated network,
// and a stepped clock. Everything random comes from one seeded PRNG (mulberry32), so a seed
// replays exactly. The network drops, delays, duplicates and reorders messages, and can be
// partitioned or cut in one direction; nodes crash — also between any two writes of a Ready
// or of a snapshot install — losing everything not durable and every message on its way to
// them, and restart from what is durable.
//
// After every step, and after every input to a node, the cluster checks the Raft safety
// properties (§5.2 election safety, §5.3 log matching, §5.4 leader completeness and state
// machine safety) and throws a SimFailure naming the seed when one breaks.
import { createLogger } from '../../src/common/logger.js';
import { mulberry32 } from '../../src/common/mulberry32.js';
import { applyConfChange, bootstrapState, membersAfter } from '../../src/consensus/core/membership.js';
import type { Raft } from '../../src/consensus/core/raft.js';
import type {
  ConfChange,
  Entry,
  HardState,
  Member,
  Message,
  NodeId,
  SnapshotMeta,
} from '../../src/consensus/core/types.js';
import {
  StorageError,
  type Clock,
  type Codec,
  type Committed,
  type LogStore,
  type Snapshot,
  type StateMachine,
  type Transport,
} from '../../src/consensus/ports.js';
import { RaftConsensus } from '../../src/consensus/raft-consensus.js';

// ------------------------------------------------------------------ randomness

export class Rng {
  readonly float: () => number;
  constructor(seed: number) {
    this.float = mulberry32(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

// ------------------------------------------------------------------ configuration

export interface Faults {
  /** Per-message probability that it is lost. */
  drop: number;
  /** Per-message probability that it is delivered twice. */
  duplicate: number;
  /** A message is delivered 1..maxDelay steps after it is sent (so messages overtake each other). */
  maxDelay: number;
  /** Per-message probability of a long delay (up to 50 more steps): arrives from another era. */
  straggle: number;
  /**
   * Per-write probability that the node crashes at that write (a Ready's log write, or either
   * side of a snapshot install): before it or just after it.
   */
  crashInReady: number;
  /** Per-step probability that a live node's disk starts refusing writes for a while. */
  diskRefuses: number;
}

export const NO_FAULTS: Faults = {
  drop: 0,
  duplicate: 0,
  maxDelay: 1,
  straggle: 0,
  crashInReady: 0,
  diskRefuses: 0,
};

export interface SimOptions {
  seed: number;
  /** Initial voters, ids 1..nodes. */
  nodes: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  maxInflight?: number;
  maxEntriesPerMsg?: number;
  maxApplyBatch?: number;
  /** The driver compacts its log past this many applied entries, keeping `keepEntries`. */
  snapshotEntries?: number;
  keepEntries?: number;
  faults?: Faults;
  /** Probability that a live node's clock ticks in a step (below 1: clocks drift apart). */
  tickChance?: number;
  /** Probability that a node runs its pending turn (its Ready loop) right after each message. */
  eagerReady?: number;
  /** Keep a readable log of what happened (for replaying one seed). */
  trace?: boolean;
}

export class SimFailure extends Error {
  constructor(
    readonly seed: number,
    readonly at: number,
    what: string,
    trace: readonly string[],
  ) {
    super(
      `seed ${seed}, step ${at}: ${what}\nreplay: SEED=${seed} npx vitest run test/simulation` +
        (trace.length ? `\n--- last events ---\n${trace.join('\n')}` : ''),
    );
    this.name = 'SimFailure';
  }
}

/** Thrown by an in-memory port to end its node at that point, as a power cut would. */
class SimCrash extends Error {}

/** A simulated tick of every node's clock, in its own milliseconds. */
const TICK_MS = 10;

// ------------------------------------------------------------------ commands

/** `poison` is a command the state machine cannot apply: it is refused, the same everywhere. */
export type SimCommand = { type: 'put'; value: string } | { type: 'poison'; value: string };
export interface SimResults {
  put: { ok: true };
  poison: { ok: false; message: string };
}
type SimResult = SimResults[keyof SimResults];

const codec: Codec<SimCommand> = {
  encode: (c) => Buffer.from(JSON.stringify(c)),
  decode: (b) => JSON.parse(b.toString()) as SimCommand,
};

/** How a command reads in a state machine and in the history. */
const describeCommand = (c: SimCommand): string => (c.type === 'put' ? c.value : `refused:${c.value}`);

const silent = createLogger('sim');
silent.level = 'silent';

// ------------------------------------------------------------------ the ports, in memory

const cloneEntry = (e: Entry): Entry => (e.kind === 'conf' ? { ...e, data: { ...(e.data as ConfChange) } } : { ...e });

const cloneMeta = (s: SnapshotMeta): SnapshotMeta => ({ ...s, members: s.members.map((m) => ({ ...m })) });

/** What the log store of a node holds durably: it survives crashes. */
interface DurableLog {
  hardState: HardState;
  snapshot: SnapshotMeta;
  /** The log after the snapshot: entries[k].index === snapshot.index + 1 + k. */
  entries: Entry[];
  /** See VoteFloor in ports.ts. */
  floor?: { index: number; term: number };
}

/** What the state machine of a node holds durably (as of its last checkpoint or restore). */
interface DurableState {
  meta: SnapshotMeta;
  cmds: string[];
}

/**
 * Messages cross a wire: the receiver never shares objects with the sender. Each type is
 * copied by a spread of its own: one spread for every type would see eight shapes and go
 * megamorphic (a slow copy); these make the same copy, each site seeing one or two shapes.
 */
function cloneMessage(m: Message): Message {
  switch (m.type) {
    case 'app':
      return { ...m, entries: m.entries.map(cloneEntry) };
    case 'snap':
      return { ...m, snapshot: cloneMeta(m.snapshot) };
    case 'appResp':
      return { ...m };
    case 'heartbeat':
      return { ...m };
    case 'heartbeatResp':
      return { ...m };
    case 'preVote':
    case 'vote':
      return { ...m };
    case 'preVoteResp':
    case 'voteResp':
      return { ...m };
    default:
      return { ...m };
  }
}

/** What an entry says, for comparing entries (commands are JSON; conf changes are small). */
const entryKey = (e: Entry): string =>
  e.kind === 'cmd'
    ? Buffer.isBuffer(e.data)
      ? e.data.toString()
      : JSON.stringify(e.data)
    : e.kind === 'noop'
      ? 'noop'
      : `conf:${JSON.stringify(e.data)}`;

/**
 * What an applied entry says, as entryKey says it of the entry encoded back: for a command,
 * entryKey of `codec.encode(c)` is `Buffer.from(JSON.stringify(c)).toString()`, which is
 * `JSON.stringify(c)` itself (its output is well-formed UTF-16, lone surrogates escaped, so
 * the UTF-8 round trip gives it back unchanged): made here without encoding and decoding.
 */
const committedKey = (e: Committed<SimCommand>): string =>
  e.kind === 'cmd' ? JSON.stringify(e.data) : e.kind === 'noop' ? 'noop' : `conf:${JSON.stringify(e.data)}`;

/**
 * entryKey(a) === entryKey(b), computed only when needed: entryKey reads nothing but `kind`
 * and `data`, so two entries of one kind carrying the same data object (a command's bytes are
 * shared by every log that copied the entry) have the same key.
 */
const sameKey = (a: Entry, b: Entry): boolean =>
  (a.kind === b.kind && a.data === b.data) || entryKey(a) === entryKey(b);

const describeMessage = (m: Message): string => {
  const base = `${m.type} ${m.from}→${m.to} t${m.term}`;
  switch (m.type) {
    case 'app':
      return `${base} prev=${m.prevIndex}/${m.prevTerm} n=${m.entries.length} commit=${m.commit}`;
    case 'appResp':
      return `${base} idx=${m.index}${m.reject ? ` REJECT hint=${m.hint}` : ''}`;
    case 'preVote':
    case 'vote':
      return `${base} last=${m.lastIndex}/${m.lastTerm}${m.transfer ? ' transfer' : ''}`;
    case 'preVoteResp':
    case 'voteResp':
      return `${base}${m.reject ? ' REJECT' : ' grant'}`;
    case 'heartbeat':
      return `${base} commit=${m.commit} ctx=${m.ctx}`;
    case 'snap':
      return `${base} snap=${m.snapshot.index}/${m.snapshot.term}`;
    default:
      return base;
  }
};

interface Timer {
  at: number;
  /** Timers set earlier fire first among those due at the same time. */
  seq: number;
  /** 0: fires once. */
  every: number;
  fn: () => void;
}

/** A node's clock: time moves only when the simulation ticks it; turns run when it says. */
class SimClock implements Clock {
  time = 0;
  private timers: Timer[] = [];
  private seq = 0;
  private turns: (() => void)[] = [];

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): () => void {
    return this.add(ms, 0, fn);
  }

  every(ms: number, fn: () => void): () => void {
    return this.add(ms, ms, fn);
  }

  private add(ms: number, every: number, fn: () => void): () => void {
    const t = { at: this.time + ms, seq: this.seq++, every, fn };
    this.timers.push(t);
    return () => {
      const i = this.timers.indexOf(t);
      if (i >= 0) this.timers.splice(i, 1);
    };
  }

  coalesce(fn: () => void): () => void {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      this.turns.push(() => {
        queued = false;
        fn();
      });
    };
  }

  /**
   * Moves time on by `ms`, firing what fell due in order: the earliest `at` first, the one
   * set first (lowest `seq`, unique) among equals — a scan for that minimum, which is the
   * timer a sort of the due ones would put first, without building and sorting a list per timer fired.
   */
  advance(ms: number): void {
    this.time += ms;
    for (;;) {
      let due: Timer | undefined;
      let at = 0;
      for (let i = 0; i < this.timers.length; i++) {
        const t = this.timers[i]!;
        if (t.at <= this.time && (!due || t.at < due.at || (t.at === due.at && t.seq < due.seq))) {
          due = t;
          at = i;
        }
      }
      if (!due) return;
      if (due.every) due.at += due.every;
      else this.timers.splice(at, 1);
      due.fn();
    }
  }

  /** Runs pending turns (and the turns they ask for) until none is left. */
  runTurns(): boolean {
    let ran = false;
    for (let guard = 0; this.turns.length; guard++) {
      if (guard > 1000) throw new Error('a node keeps asking for turns');
      this.turns.shift()!();
      ran = true;
    }
    return ran;
  }
}

export interface SimNode {
  readonly id: NodeId;
  /** Undefined while crashed. */
  driver: RaftConsensus<SimCommand, SimResults> | undefined;
  /** The driver's core (undefined while crashed): what the checks look at. */
  readonly raft: Raft | undefined;
  clock: SimClock;
  log: DurableLog;
  durableState: DurableState;
  /** The live state machine: every command applied, in order. */
  sm: string[];
  /** The last log index applied to `sm`. */
  smIndex: number;
  /** Bumped on every restart: a report meant for an earlier life is not delivered. */
  incarnation: number;
  /** The disk refuses writes until this step. */
  refusingUntil: number;
  /** Highest commit index already checked against the committed registry. */
  seenCommit: number;
  /** Highest term this life has had; a restart goes back to the durable one, never below. */
  maxTerm: number;
  /** The core the checks last saw: the driver replaces it when it starts over. */
  core: Raft | undefined;
  /**
   * Snapshots being received, by sender: the chunks so far (the temp file of a master, which
   * a crash leaves behind and the next boot removes — so a crash forgets them).
   */
  receiving: Map<NodeId, { transfer: number; parts: Buffer[] }>;
}

/** One chunk of a snapshot on its way; the last carries the `snap` message. */
interface SimChunk {
  transfer: number;
  seq: number;
  count: number;
  data: Buffer;
}

interface Packet {
  at: number;
  from: NodeId;
  to: NodeId;
  fromIncarnation: number;
  msg: Message;
  chunk?: SimChunk;
}

interface ReadRequest {
  node: NodeId;
  /** The highest index any node knew to be committed when the read was asked for. */
  minIndex: number;
}

// ------------------------------------------------------------------ the cluster

export class SimCluster {
  readonly seed: number;
  readonly rng: Rng;
  faults: Faults;
  now = 0;
  readonly nodes = new Map<NodeId, SimNode>();

  private readonly opts: Required<Omit<SimOptions, 'faults' | 'trace' | 'seed' | 'nodes'>>;
  private queue: Packet[] = [];
  /** Partition: node → group; nodes in different groups cannot talk. Empty: no partition. */
  private groups = new Map<NodeId, number>();
  /** One-way cuts, `from>to`. */
  private cuts = new Set<string>();
  private readonly traceOn: boolean;
  private readonly traceLog: string[] = [];
  /** Set while a node boots: its ports take no faults then. */
  private booting = false;
  /** Crashes scenarios ask for: node → at its next write of this kind, before or after it. */
  private readonly plannedCrashes = new Map<NodeId, { what: string; when: 'crash-before' | 'crash-after' }>();

  // What the checks remember.
  /** term → the one node that led it (§5.2 election safety). */
  readonly termLeader = new Map<number, NodeId>();
  /** index → the entry known committed there (term and content); never changes (§5.4). */
  private readonly committed: { term: number; key: string }[] = [];
  /** Highest index known committed anywhere. */
  maxCommitted = 0;
  /** `${index}:${term}` → the term before it and the content: log matching (§5.3). */
  private readonly logFacts = new Map<string, { prevTerm: number; key: string }>();
  /** The one history of applied commands that every state machine is a prefix of. */
  readonly history: string[] = [];
  /** `${node}:${term}` → whom the node voted for (one vote per term, even across crashes). */
  private readonly votes = new Map<string, NodeId>();
  private readonly reads = new Map<number, ReadRequest>();
  private nextRead = 1;
  /** Counters for the report. */
  readonly stats = {
    applied: 0,
    refused: 0,
    confChanges: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    reads: 0,
    crashes: 0,
    statesLost: 0,
    elections: 0,
    diskRefusals: 0,
  };

  constructor(o: SimOptions) {
    this.seed = o.seed;
    this.rng = new Rng(o.seed);
    this.faults = o.faults ?? NO_FAULTS;
    this.traceOn = o.trace ?? false;
    this.opts = {
      electionTicks: o.electionTicks ?? 10,
      heartbeatTicks: o.heartbeatTicks ?? 2,
      maxInflight: o.maxInflight ?? 64,
      maxEntriesPerMsg: o.maxEntriesPerMsg ?? 512,
      maxApplyBatch: o.maxApplyBatch ?? 2048,
      snapshotEntries: o.snapshotEntries ?? 1_000_000,
      keepEntries: o.keepEntries ?? 0,
      tickChance: o.tickChance ?? 1,
      eagerReady: o.eagerReady ?? 0.5,
    };
    // Founders start as a real master founds a cluster (RaftStorage.bootstrap): from one
    // committed entry holding the first configuration. A node that joins later starts empty.
    const members = Array.from({ length: o.nodes }, (_, i) => ({ id: i + 1, address: `n${i + 1}`, voter: true }));
    const founding = bootstrapState(members);
    for (const m of members) this.addNode(m.id, { ...founding.hardState }, founding.entries.map(cloneEntry));
  }

  // ---------------------------------------------------------------- nodes

  /** Starts a node; by default with an empty durable store (a node about to join). */
  addNode(id: NodeId, hardState: HardState = { term: 0, vote: 0, commit: 0 }, entries: Entry[] = []): SimNode {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists`);
    const node: SimNode = {
      id,
      driver: undefined,
      get raft() {
        return this.driver?.core;
      },
      clock: new SimClock(),
      log: { hardState, snapshot: { index: 0, term: 0, members: [] }, entries },
      durableState: { meta: { index: 0, term: 0, members: [] }, cmds: [] },
      sm: [],
      smIndex: 0,
      incarnation: 0,
      refusingUntil: 0,
      seenCommit: 0,
      maxTerm: 0,
      core: undefined,
      receiving: new Map(),
    };
    this.nodes.set(id, node);
    this.boot(node);
    return node;
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId): Raft {
    const r = this.node(id).raft;
    if (!r) throw new Error(`node ${id} is down`);
    return r;
  }

  /** The nodes up, in the order they were added. */
  live(): SimNode[] {
    const up: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.driver) up.push(n);
    return up;
  }

  /** Live nodes that believe they lead; there may briefly be two (of different terms). */
  leaders(): Raft[] {
    const found: Raft[] = [];
    for (const n of this.nodes.values()) {
      if (!n.driver) continue;
      const r = n.raft!;
      if (r.role === 'leader') found.push(r);
    }
    return found;
  }

  /** The leader of the highest term among live nodes, if any. */
  leader(): Raft | undefined {
    let best: Raft | undefined;
    for (const r of this.leaders()) if (!best || r.term > best.term) best = r;
    return best;
  }

  /** Starts a node's driver from its durable state, as a restarted process would. */
  private boot(node: SimNode): void {
    node.incarnation++;
    node.clock = new SimClock();
    const d = node.durableState;
    node.sm = [...d.cmds];
    node.smIndex = d.meta.index;
    node.seenCommit = Math.max(node.log.snapshot.index, d.meta.index);
    node.maxTerm = node.log.hardState.term; // a term never persisted (and never sent) may be lost
    this.booting = true;
    try {
      node.driver = new RaftConsensus<SimCommand, SimResults>({
        self: { id: node.id, address: `n${node.id}` },
        storage: this.logStore(node),
        state: this.stateMachine(node, { ...d.meta, members: d.meta.members.map((m) => ({ ...m })) }),
        transport: this.transport(node),
        codec,
        timing: { tickMs: TICK_MS, electionTicks: this.opts.electionTicks, heartbeatTicks: this.opts.heartbeatTicks },
        log: silent,
        clock: node.clock,
        random: mulberry32(this.rng.int(2 ** 32)),
        snapshotEntries: this.opts.snapshotEntries,
        keepEntries: this.opts.keepEntries,
        core: {
          maxInflight: this.opts.maxInflight,
          maxEntriesPerMsg: this.opts.maxEntriesPerMsg,
          maxApplyBatch: this.opts.maxApplyBatch,
        },
      });
      node.driver.start();
    } finally {
      this.booting = false;
    }
    this.observe(node);
  }

  crash(id: NodeId): void {
    const node = this.node(id);
    if (!node.driver) return;
    this.trace(`CRASH ${id}`);
    this.stats.crashes++;
    node.driver = undefined;
    node.sm = [];
    node.receiving.clear();
    // Whatever was on its way to the node is lost with it.
    this.queue = this.queue.filter((p) => p.to !== id);
  }

  restart(id: NodeId): void {
    const node = this.node(id);
    if (node.driver) return;
    this.trace(
      `RESTART ${id} from term ${node.log.hardState.term}, log snapshot ${node.log.snapshot.index}, ${node.log.entries.length} entries, state at ${node.durableState.meta.index}`,
    );
    this.boot(node);
  }

  // ---------------------------------------------------------------- the ports

  /** A write about to happen on `node`'s disk: refused, crashed at (before or after), or done. */
  private diskFault(node: SimNode, what: string): 'refuse' | 'crash-before' | 'crash-after' | undefined {
    if (this.booting) return undefined;
    const planned = this.plannedCrashes.get(node.id);
    if (planned && planned.what === what) {
      this.plannedCrashes.delete(node.id);
      return planned.when;
    }
    if (this.now < node.refusingUntil) {
      this.stats.diskRefusals++;
      if (this.traceOn) this.trace(`disk of ${node.id} refuses ${what}`);
      return 'refuse';
    }
    if (this.rng.chance(this.faults.crashInReady)) return this.rng.chance(0.5) ? 'crash-after' : 'crash-before';
    return undefined;
  }

  /** Runs a write with the fault the disk has for it; `write` makes it durable. */
  private write(node: SimNode, what: string, write: () => void): void {
    const fault = this.diskFault(node, what);
    if (fault === 'refuse') throw new StorageError(`simulated: the disk of node ${node.id} refuses ${what}`);
    if (fault !== 'crash-before') write();
    if (fault) {
      this.trace(`crash of ${node.id} at ${what} (${fault === 'crash-after' ? 'after' : 'before'} it)`);
      throw new SimCrash();
    }
  }

  private logStore(node: SimNode): LogStore {
    const s = node.log;
    return {
      hardState: () => ({ ...s.hardState }),
      snapshot: () => cloneMeta(s.snapshot),
      entries: () => s.entries.map(cloneEntry),
      save: (hardState, entries, snapshot) =>
        this.write(node, snapshot ? 'a snapshot record' : 'a log write', () =>
          this.persist(node, hardState, entries, snapshot),
        ),
      voteFloor: () => (s.floor ? { ...s.floor } : undefined),
      setVoteFloor: (floor) =>
        this.write(node, 'a vote floor', () => {
          if (floor) s.floor = { ...floor };
          else delete s.floor;
        }),
      compact: (meta) =>
        this.write(node, 'a compaction', () => {
          if (node.durableState.meta.index < meta.index) {
            this.fail(
              `node ${node.id} compacts its log to ${meta.index}; its state is durable only to ${node.durableState.meta.index}`,
            );
          }
          s.snapshot = cloneMeta(meta);
          s.entries = s.entries.filter((e) => e.index > meta.index);
          this.trace(`node ${node.id} compacts to ${meta.index}`);
        }),
    };
  }

  private persist(
    node: SimNode,
    hardState: HardState | undefined,
    entries: readonly Entry[],
    snapshot?: SnapshotMeta,
  ): void {
    const s = node.log;
    if (hardState) {
      const h = hardState;
      if (h.term < s.hardState.term) this.fail(`node ${node.id} persisted term ${h.term} after ${s.hardState.term}`);
      if (h.vote) {
        const key = `${node.id}:${h.term}`;
        const before = this.votes.get(key);
        if (before !== undefined && before !== h.vote) {
          this.fail(`node ${node.id} voted for ${before} and then ${h.vote} in term ${h.term}`);
        }
        this.votes.set(key, h.vote);
      }
      s.hardState = { ...h };
    }
    if (snapshot) {
      if (node.durableState.meta.index < snapshot.index) {
        this.fail(
          `node ${node.id} records snapshot ${snapshot.index} in its log; its state is durable only to ${node.durableState.meta.index}`,
        );
      }
      s.snapshot = cloneMeta(snapshot);
      s.entries = []; // a snapshot replaces the whole log
    }
    if (entries.length) {
      const first = entries[0]!.index;
      const durableLast = s.snapshot.index + s.entries.length;
      if (first <= s.snapshot.index || first > durableLast + 1) {
        this.fail(
          `node ${node.id}: Ready entries start at ${first}; durable log covers ${s.snapshot.index}..${durableLast}`,
        );
      }
      s.entries.length = first - s.snapshot.index - 1; // entries[0].index and after replace what was there
      for (const e of entries) {
        if (e.index !== s.snapshot.index + s.entries.length + 1)
          this.fail(`node ${node.id}: Ready entries are not contiguous`);
        const prevTerm = s.entries.length ? s.entries[s.entries.length - 1]!.term : s.snapshot.term;
        this.checkLogFact(node, e, prevTerm);
        s.entries.push(cloneEntry(e));
      }
    }
  }

  /** The state machine: a list of commands; `poison` ones are refused (recorded as such). */
  private stateMachine(node: SimNode, start: SnapshotMeta): StateMachine<SimCommand, SimResult> {
    let meta = start;
    return {
      get lastApplied() {
        return meta.index;
      },
      applied: () => cloneMeta(meta),
      applyBatch: (entries: readonly Committed<SimCommand>[]) => {
        if (this.now < node.refusingUntil && !this.booting) {
          this.stats.diskRefusals++;
          throw new StorageError(`simulated: the disk of node ${node.id} refuses an apply`);
        }
        return entries.map((e): SimResult | undefined => {
          if (e.index <= meta.index) return undefined;
          if (e.index !== meta.index + 1) this.fail(`node ${node.id} applies ${e.index} after ${meta.index}`);
          this.checkCommitted(node, e.index, e.term, e.kind, committedKey(e), 'applied');
          let result: SimResult | undefined;
          if (e.kind === 'cmd') {
            this.record(node, describeCommand(e.data));
            result = e.data.type === 'put' ? { ok: true } : { ok: false, message: 'poison' };
          }
          const members: Member[] = e.kind === 'conf' ? applyConfChange(meta.members, e.data) : meta.members;
          meta = { index: e.index, term: e.term, members };
          node.smIndex = e.index;
          return result;
        });
      },
      snapshot: (): Snapshot => ({ meta: cloneMeta(meta), data: Buffer.from(JSON.stringify(node.sm)) }),
      restore: (snap: Snapshot) =>
        this.write(node, 'a snapshot install', () => {
          if (!Buffer.isBuffer(snap.data)) this.fail('the simulation sends snapshots as buffers');
          const cmds = JSON.parse(snap.data.toString()) as string[];
          if (!this.isHistoryPrefix(cmds)) this.fail(`snapshot for node ${node.id} is not a prefix of the history`);
          meta = cloneMeta(snap.meta);
          node.sm = [...cmds];
          node.smIndex = meta.index;
          node.durableState = { meta: cloneMeta(meta), cmds: [...cmds] };
          this.stats.snapshotsInstalled++;
          this.trace(`node ${node.id} installs snapshot ${meta.index}/${meta.term}`);
        }),
      discard: () => undefined,
      checkpoint: () =>
        this.write(node, 'a checkpoint', () => {
          node.durableState = { meta: cloneMeta(meta), cmds: [...node.sm] };
        }),
    };
  }

  private record(node: SimNode, cmd: string): void {
    const pos = node.sm.length;
    if (pos < this.history.length) {
      if (this.history[pos] !== cmd) {
        this.fail(`node ${node.id} applies ${cmd} as command #${pos}; the history has ${this.history[pos]}`);
      }
    } else if (pos === this.history.length) {
      this.history.push(cmd);
    } else {
      this.fail(`node ${node.id} skipped commands`);
    }
    node.sm.push(cmd);
    if (cmd.startsWith('refused:')) this.stats.refused++;
    else this.stats.applied++;
  }

  private transport(node: SimNode): Transport {
    return {
      send: (messages, snapshotFor) => {
        for (const m of messages) {
          if (m.type !== 'snap') {
            this.send(node, m);
            continue;
          }
          // As the peer transport does: the snapshot sent is the state machine now, streamed
          // in chunks, the message riding on the last.
          const s = snapshotFor();
          if (s instanceof Promise) return this.fail('the simulation copies snapshots in step');
          if (!Buffer.isBuffer(s.data)) this.fail('the simulation sends snapshots as buffers');
          this.stats.snapshotsSent++;
          this.sendChunks(node, { ...m, snapshot: s.meta }, s.data);
        }
      },
      setPeers: () => undefined,
      lastHeard: () => node.clock.now(),
      close: () => undefined,
    };
  }

  private isHistoryPrefix(data: readonly string[]): boolean {
    return data.length <= this.history.length && data.every((c, i) => this.history[i] === c);
  }

  // ---------------------------------------------------------------- network

  /** Splits the cluster: nodes in different groups cannot talk; unlisted nodes form one more group. */
  partition(...groups: NodeId[][]): void {
    this.groups.clear();
    groups.forEach((g, i) => g.forEach((id) => this.groups.set(id, i + 1)));
    this.trace(`PARTITION ${groups.map((g) => `[${g.join(',')}]`).join(' ')}`);
  }

  isolate(id: NodeId): void {
    this.partition([id]);
  }

  /** Messages from `from` to `to` are lost; the other direction still works. */
  cut(from: NodeId, to: NodeId): void {
    this.cuts.add(`${from}>${to}`);
    this.trace(`CUT ${from}→${to}`);
  }

  heal(): void {
    this.groups.clear();
    this.cuts.clear();
    this.trace('HEAL network');
  }

  /**
   * Crashes `id` at its next write of a kind (`a log write`, `a snapshot chunk` received,
   * `a snapshot install` into the state machine, `a snapshot record` in the log, `a
   * checkpoint`, `a compaction`), just
   * before or just after it is durable.
   */
  crashAt(id: NodeId, what: string, when: 'before' | 'after'): void {
    this.plannedCrashes.set(id, { what, when: when === 'before' ? 'crash-before' : 'crash-after' });
  }

  /**
   * The state database of crashed node `id` is gone (deleted, or moved aside as corrupt): it
   * restarts with an empty state, its Raft log as it was.
   */
  loseState(id: NodeId): void {
    const node = this.node(id);
    if (node.driver) throw new Error(`node ${id} must be down to lose its state`);
    node.durableState = { meta: { index: 0, term: 0, members: [] }, cmds: [] };
    this.stats.statesLost++;
    this.trace(`STATE of ${id} lost`);
  }

  /**
   * Whether losing the state of `id` leaves the data somewhere: no other node is still
   * fetching its own back, and its configuration has three voters or more (a member alone
   * holds the only copy).
   */
  mayLoseState(id: NodeId): boolean {
    const node = this.node(id);
    const voters = membersAfter(node.log.snapshot.members, node.log.entries).filter((m) => m.voter);
    return voters.length >= 3 && [...this.nodes.values()].every((n) => !n.log.floor);
  }

  /** The disk of `id` refuses every write for the next `steps` steps. */
  refuseWrites(id: NodeId, steps: number): void {
    this.node(id).refusingUntil = this.now + steps;
    this.trace(`DISK of ${id} refuses writes for ${steps} steps`);
  }

  private canReach(from: NodeId, to: NodeId): boolean {
    if (this.cuts.size && this.cuts.has(`${from}>${to}`)) return false; // (no key to build for no cut)
    return (this.groups.get(from) ?? 0) === (this.groups.get(to) ?? 0);
  }

  private send(node: SimNode, msg: Message, chunk?: SimChunk, notBefore = 0): number {
    const f = this.faults;
    if (this.rng.chance(f.drop)) {
      if (this.traceOn) this.trace(`drop ${describeMessage(msg)}${chunk ? ` chunk ${chunk.seq}/${chunk.count}` : ''}`);
      if (msg.type === 'snap') this.snapshotFailed(node.id, node.incarnation, msg.to);
      return -1;
    }
    const copies = this.rng.chance(f.duplicate) ? 2 : 1;
    let at = 0;
    for (let c = 0; c < copies; c++) {
      let delay = this.rng.between(1, Math.max(1, f.maxDelay));
      if (this.rng.chance(f.straggle)) delay += this.rng.between(1, 50); // a message that turns up very late
      at = Math.max(this.now + delay, notBefore);
      const packet: Packet = { at, from: node.id, to: msg.to, fromIncarnation: node.incarnation, msg };
      if (chunk) packet.chunk = chunk;
      this.queue.push(packet);
    }
    return at;
  }

  private nextTransfer = 0;

  /**
   * A snapshot as the peer transport streams it: one to four chunks, in order on the link
   * (one after another; a chunk lost breaks the transfer, and the sender hears of it).
   */
  private sendChunks(node: SimNode, msg: Message, data: Buffer): void {
    const count = this.rng.between(1, 4);
    const transfer = ++this.nextTransfer;
    const size = Math.ceil(data.length / count);
    let at = 0;
    for (let seq = 0; seq < count; seq++) {
      const chunk = { transfer, seq, count, data: data.subarray(seq * size, (seq + 1) * size) };
      at = this.send(node, msg, chunk, at);
      if (at < 0) return;
    }
  }

  /** The transport noticed a snapshot did not get through: it tells the sender's driver. */
  private snapshotFailed(from: NodeId, incarnation: number, to: NodeId): void {
    const sender = this.nodes.get(from);
    if (sender?.driver && sender.incarnation === incarnation) sender.driver.onSnapshotFailed(to);
  }

  private deliver(p: Packet): void {
    const dest = this.nodes.get(p.to);
    if (!dest?.driver || !this.canReach(p.from, p.to)) {
      if (this.traceOn) this.trace(`lost ${describeMessage(p.msg)}`);
      if (p.msg.type === 'snap') this.snapshotFailed(p.from, p.fromIncarnation, p.to);
      return;
    }
    const msg = cloneMessage(p.msg);
    if (this.traceOn) this.trace(`deliver ${describeMessage(msg)}`);
    const driver = dest.driver;
    this.input(dest, () => {
      if (msg.type !== 'snap') return driver.onFrame({ msgs: [msg] });
      const chunk = p.chunk ?? this.fail('snap without data');
      const data = this.receiveChunk(dest, p.from, chunk);
      if (data) driver.onFrame({ msgs: [msg], snapshot: { meta: msg.snapshot, data } });
    });
    if (this.rng.chance(this.opts.eagerReady)) this.runTurns(dest);
  }

  /**
   * Writes a chunk to the receiving node's temp file (a write that may crash it, between
   * chunks); the whole snapshot once its last chunk is in. A chunk that does not follow on
   * (a duplicate, a transfer a crash cut short) abandons what was received, as the receiver does.
   */
  private receiveChunk(dest: SimNode, from: NodeId, chunk: SimChunk): Buffer | undefined {
    let cur = dest.receiving.get(from);
    if (chunk.seq === 0) {
      cur = { transfer: chunk.transfer, parts: [] };
      dest.receiving.set(from, cur);
    } else if (!cur || cur.transfer !== chunk.transfer || cur.parts.length !== chunk.seq) {
      if (cur?.transfer === chunk.transfer) dest.receiving.delete(from);
      return undefined;
    }
    const parts = cur.parts;
    try {
      this.write(dest, 'a snapshot chunk', () => parts.push(chunk.data));
    } catch (e) {
      if (!(e instanceof StorageError)) throw e;
      dest.receiving.delete(from); // a chunk the disk refused abandons the transfer
      return undefined;
    }
    if (parts.length < chunk.count) return undefined;
    dest.receiving.delete(from);
    return Buffer.concat(parts);
  }

  /** Messages in flight (for scenarios that wait for the network to drain). */
  get inFlight(): number {
    return this.queue.length;
  }

  // ---------------------------------------------------------------- driving the nodes

  /**
   * Feeds one input to a node, then checks what can be checked at once. A port that crashes
   * its node ends the input there; anything else the driver throws is a failure.
   */
  private input(node: SimNode, f: () => void): void {
    try {
      f();
    } catch (e) {
      if (e instanceof SimCrash) return this.crash(node.id);
      if (e instanceof SimFailure) throw e;
      this.fail(`node ${node.id} threw: ${(e as Error).stack ?? e}`);
    }
    this.observe(node);
  }

  /** Runs the node's pending turns: its Ready loop, as the event loop would. */
  runTurns(node: SimNode): void {
    if (node.driver) this.input(node, () => node.clock.runTurns());
  }

  /** One tick of the node's clock: the driver's ticker, and any timer due. */
  private tick(node: SimNode): void {
    this.input(node, () => node.clock.advance(TICK_MS));
  }

  // ---------------------------------------------------------------- clients

  /** Proposes a command to `to` (default: the leader); false when it was refused at once. */
  propose(cmd: string, to?: NodeId, type: SimCommand['type'] = 'put'): boolean {
    const r = to === undefined ? this.leader() : this.nodes.get(to)?.raft;
    if (!r) return false;
    const node = this.node(r.id);
    let ok = false;
    this.input(node, () => {
      ok = this.accepted(() => node.driver!.submit({ type, value: cmd }, () => undefined));
    });
    if (ok) this.trace(`propose ${type} ${cmd} at ${r.id}`);
    return ok;
  }

  proposeConfChange(cc: ConfChange, to?: NodeId): boolean {
    const r = to === undefined ? this.leader() : this.nodes.get(to)?.raft;
    if (!r) return false;
    const node = this.node(r.id);
    let ok = false;
    this.input(node, () => {
      ok = this.accepted(() => node.driver!.submitConf(cc, () => undefined));
    });
    if (ok) this.trace(`propose conf ${JSON.stringify(cc)} at ${r.id}`);
    return ok;
  }

  transfer(to: NodeId, via?: NodeId): boolean {
    const r = via === undefined ? this.leader() : this.nodes.get(via)?.raft;
    if (!r) return false;
    const node = this.node(r.id);
    let ok = false;
    this.input(node, () => {
      ok = this.accepted(() => node.driver!.transferLeadership(to));
    });
    if (ok) this.trace(`transfer ${r.id} → ${to}`);
    return ok;
  }

  /**
   * Whether the driver took a request; the refusals it may give are errors with a code.
   *
   * Clients here ask nodes that do not lead all the time (about half the proposals of a seed
   * are refused), and each refusal builds two errors (the core's, and the WeirError the driver
   * makes of it) whose stack traces nobody reads: so, unless tracing, errors made meanwhile
   * capture no stack. That changes nothing the run does or checks; an error without a code is
   * still a failure, and its stack is there when the seed is replayed (SEED=n traces).
   */
  private accepted(f: () => unknown): boolean {
    const limit = Error.stackTraceLimit;
    if (!this.traceOn) Error.stackTraceLimit = 0;
    try {
      f();
      return true;
    } catch (e) {
      if ((e as { code?: unknown }).code === undefined) throw e;
      return false;
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  /** Asks `at` (default: the leader) for a linearizable read; returns its number, or 0 when refused. */
  readIndex(at?: NodeId): number {
    const r = at === undefined ? this.leader() : this.nodes.get(at)?.raft;
    if (!r) return 0;
    const node = this.node(r.id);
    const id = this.nextRead++;
    const req: ReadRequest = { node: node.id, minIndex: this.maxCommitted };
    this.reads.set(id, req);
    let refused = false;
    const incarnation = node.incarnation;
    this.input(node, () =>
      node.driver!.requestRead((err) => {
        if (err) {
          refused = true;
          this.reads.delete(id);
        } else if (node.incarnation === incarnation) this.checkRead(node, id);
      }),
    );
    if (refused) return 0;
    this.trace(`read #${id} at ${node.id} (committed anywhere: ${req.minIndex})`);
    return id;
  }

  /** Reads answered so far: read → the index the node had applied when it answered. */
  readonly readResults = new Map<number, number>();

  /** The driver compacts its log now (keeping `keepEntries`), as it does past `snapshotEntries`. */
  compact(id: NodeId): void {
    const node = this.node(id);
    const driver = node.driver;
    if (!driver) return;
    this.input(node, () => {
      try {
        driver.compact();
      } catch (e) {
        if (!(e instanceof StorageError)) throw e; // the disk refused: nothing compacted
      }
    });
  }

  // ---------------------------------------------------------------- time

  /** One step: every live clock ticks (mostly), due messages arrive, turns run. */
  step(): void {
    this.now++;
    for (const node of this.live()) {
      if (this.rng.chance(this.opts.tickChance)) this.tick(node);
      if (node.driver && this.rng.chance(this.opts.eagerReady)) this.runTurns(node);
    }
    if (this.faults.diskRefuses) {
      for (const node of this.live()) {
        if (this.now >= node.refusingUntil && this.rng.chance(this.faults.diskRefuses)) {
          this.refuseWrites(node.id, this.rng.between(1, 30));
        }
      }
    }
    // The packets due leave the queue; the others stay, in order (packed in place).
    const due: Packet[] = [];
    const queue = this.queue;
    let kept = 0;
    for (let i = 0; i < queue.length; i++) {
      const p = queue[i]!;
      if (p.at <= this.now) due.push(p);
      else queue[kept++] = p;
    }
    queue.length = kept;
    for (const p of this.rng.shuffle(due)) this.deliver(p);
    if (this.queue.length > 5000) this.fail(`message storm: ${this.queue.length} messages in flight`);
    for (const node of this.live()) this.runTurns(node);
    this.checkAll();
  }

  run(steps: number): void {
    for (let i = 0; i < steps; i++) this.step();
  }

  /** Steps until `pred` holds; fails after `max` steps. */
  runUntil(pred: () => boolean, max: number, what = 'condition'): void {
    for (let i = 0; i < max; i++) {
      if (pred()) return;
      this.step();
    }
    if (!pred()) this.fail(`${what} did not happen within ${max} steps`);
  }

  /**
   * Proposes `cmd` (retrying while refused) until every live voter — or every node in `on` —
   * has applied it.
   */
  commitEverywhere(cmd: string, max = 1000, on?: NodeId[]): void {
    let proposedAt = -Infinity;
    this.runUntil(
      () => {
        const leader = this.leader();
        if (!leader) return false;
        const voters = (on ?? leader.voters).map((id) => this.node(id)).filter((n) => n.driver);
        if (voters.length && voters.every((n) => n.sm.includes(cmd))) return true;
        // Re-propose when it seems lost (a leader change can drop it); duplicates are fine.
        if (!this.history.includes(cmd) && this.now - proposedAt > 4 * this.opts.electionTicks) {
          if (this.propose(cmd)) proposedAt = this.now;
        }
        return false;
      },
      max,
      `commit of ${cmd} on every live voter`,
    );
  }

  // ---------------------------------------------------------------- checks

  fail(what: string): never {
    throw new SimFailure(this.seed, this.now, `${what}\n${this.describeState()}`, this.traceLog);
  }

  /** One line per node: role, term, log, and (on a leader) what it knows of each follower. */
  describeState(): string {
    const lines: string[] = [];
    for (const n of this.nodes.values()) {
      const r = n.raft;
      if (!r) {
        lines.push(
          `  node ${n.id}: down (durable term ${n.log.hardState.term}, log snapshot ${n.log.snapshot.index}, state ${n.durableState.meta.index})`,
        );
        continue;
      }
      const l = r.log;
      let line = `  node ${n.id}: ${r.role} term ${r.term} vote ${r.vote} leader ${r.leader}; log ${l.firstIndex}..${l.lastIndex} commit ${l.committed} applied ${l.applied}; members ${r.members.map((m) => `${m.id}${m.voter ? '' : 'L'}`).join(',')}`;
      if (r.role === 'leader') {
        for (const m of r.members) {
          const pr = r.progressOf(m.id);
          if (pr)
            line += `\n    → ${m.id}: ${pr.state} match ${pr.match} next ${pr.next} paused ${pr.paused} inflight ${pr.inflight.length}`;
        }
      }
      lines.push(line);
    }
    return lines.join('\n');
  }

  trace(line: string): void {
    if (!this.traceOn) return;
    this.traceLog.push(`[${this.now}] ${line}`);
    if (this.traceLog.length > 400) this.traceLog.splice(0, this.traceLog.length - 400);
  }

  /** Checks made after every input to a node. */
  private observe(node: SimNode): void {
    const r = node.raft;
    if (!r) return;
    if (r !== node.core) {
      // The driver rebuilt its core from the durable state (its disk refused a write): as
      // after a restart, a term it never persisted (and so never sent) may be lost.
      if (node.core) this.trace(`node ${node.id} starts over from its durable state (term ${node.log.hardState.term})`);
      node.core = r;
      node.maxTerm = node.log.hardState.term;
    }
    // Terms never go back (a restart resumes from the durable term; persist checks that).
    if (r.term < node.maxTerm) this.fail(`node ${node.id} went back from term ${node.maxTerm} to ${r.term}`);
    node.maxTerm = r.term;
    // (a) §5.2 election safety: at most one leader per term, ever.
    if (r.role === 'leader') {
      const before = this.termLeader.get(r.term);
      if (before === undefined) {
        this.termLeader.set(r.term, node.id);
        this.stats.elections++;
        this.trace(`LEADER ${node.id} term ${r.term}`);
        this.checkLeaderCompleteness(node);
      } else if (before !== node.id) {
        this.fail(`two leaders in term ${r.term}: ${before} and ${node.id}`);
      }
    }
    // (e) applied <= commit <= lastIndex.
    const { applied, committed, lastIndex } = r.log;
    if (!(applied <= committed && committed <= lastIndex)) {
      this.fail(`node ${node.id}: applied ${applied}, commit ${committed}, last ${lastIndex}`);
    }
    // (c) what a node learns is committed must match what anyone learned before.
    if (committed > node.seenCommit) {
      for (let i = Math.max(node.seenCommit + 1, r.log.firstIndex); i <= committed; i++) {
        const e = r.log.entry(i)!;
        this.checkCommitted(node, e.index, e.term, e.kind, entryKey(e), 'committed');
      }
      node.seenCommit = committed;
    }
  }

  /** `key`: the entry's entryKey. */
  private checkCommitted(
    node: SimNode,
    index: number,
    term: number,
    kind: Entry['kind'],
    key: string,
    how: string,
  ): void {
    const known = this.committed[index];
    if (!known) {
      this.committed[index] = { term, key };
      if (kind === 'conf') this.stats.confChanges++;
      this.maxCommitted = Math.max(this.maxCommitted, index);
    } else if (known.term !== term || known.key !== key) {
      this.fail(
        `node ${node.id} ${how} index ${index} as term ${term} ${key}; it was committed as term ${known.term} ${known.key}`,
      );
    }
  }

  /** §5.4 leader completeness: a new leader holds every entry known committed. */
  private checkLeaderCompleteness(node: SimNode): void {
    const log = node.raft!.log;
    for (let i = log.firstIndex; i <= this.maxCommitted; i++) {
      const known = this.committed[i];
      if (known && log.term(i) !== known.term) {
        this.fail(
          `new leader ${node.id} (term ${node.raft!.term}) lacks committed entry ${i} (term ${known.term}); it has term ${log.term(i)}`,
        );
      }
    }
  }

  /**
   * (b) §5.3 log matching, checked as each entry is persisted: an (index, term) pair always
   * comes with the same content and the same term before it. By induction, two logs that share
   * an (index, term) agree on everything before it that both still hold.
   */
  private checkLogFact(node: SimNode, e: Entry, prevTerm: number): void {
    const id = `${e.index}:${e.term}`;
    const fact = this.logFacts.get(id);
    const key = entryKey(e);
    if (!fact) this.logFacts.set(id, { prevTerm, key });
    else if (fact.prevTerm !== prevTerm || fact.key !== key) {
      this.fail(
        `log matching: node ${node.id} persists ${id} (${key}) after term ${prevTerm}; elsewhere it is ${fact.key} after term ${fact.prevTerm}`,
      );
    }
  }

  /** (b) literally: every pair of durable logs agrees below any (index, term) they share. */
  checkLogMatching(): void {
    const logs = [...this.nodes.values()].map((n) => ({ id: n.id, s: n.log }));
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const x = logs[a]!;
        const y = logs[b]!;
        const lo = Math.max(x.s.snapshot.index, y.s.snapshot.index) + 1;
        const hi = Math.min(x.s.snapshot.index + x.s.entries.length, y.s.snapshot.index + y.s.entries.length);
        let matched = false;
        for (let i = hi; i >= lo; i--) {
          const ex = x.s.entries[i - x.s.snapshot.index - 1]!;
          const ey = y.s.entries[i - y.s.snapshot.index - 1]!;
          if (ex.term === ey.term && !sameKey(ex, ey)) {
            this.fail(`log matching: nodes ${x.id} and ${y.id} hold different entries at ${i} in term ${ex.term}`);
          }
          if (ex.term === ey.term) matched = true;
          else if (matched) {
            this.fail(
              `log matching: nodes ${x.id} and ${y.id} agree on a later entry but differ at ${i} (terms ${ex.term} and ${ey.term})`,
            );
          }
        }
      }
    }
  }

  private checkRead(node: SimNode, id: number): void {
    const req = this.reads.get(id) ?? this.fail(`node ${node.id} answers read ${id} nobody asked for`);
    if (req.node !== node.id) this.fail(`read ${id} asked at ${req.node} is answered by ${node.id}`);
    // §6.4 linearizable reads: the read must see every write committed before it was asked.
    if (node.smIndex < req.minIndex) {
      this.fail(`read ${id} at ${node.id} answered at applied ${node.smIndex}; ${req.minIndex} was already committed`);
    }
    this.reads.delete(id);
    this.readResults.set(id, node.smIndex);
    this.stats.reads++;
    this.trace(`read #${id} at ${node.id} → ${node.smIndex}`);
  }

  /** Checks made after every step. */
  checkAll(): void {
    for (const node of this.live()) {
      const r = node.raft!;
      // (d) every state machine is a prefix of the one history (checked on apply, and here).
      if (node.sm.length > this.history.length) this.fail(`node ${node.id} applied more than the history`);
      // A follower applies in batches: its state machine may lag the core, never lead it.
      if (node.smIndex > r.log.applied) {
        this.fail(`node ${node.id}: state machine at ${node.smIndex}, core applied only ${r.log.applied}`);
      }
      this.observe(node);
    }
    if (this.now % 50 === 0) this.checkLogMatching();
  }
}

// ------------------------------------------------------------------ seeded chaos runs

export interface SeedPlan {
  nodes: number;
  membership: boolean;
  chaosSteps: number;
}

/** What a seed does is decided by the seed alone, so `SEED=n` replays it exactly. */
export function planFor(seed: number): SeedPlan {
  return { nodes: seed % 2 === 0 ? 5 : 3, membership: seed % 3 === 0, chaosSteps: 400 + (seed % 7) * 150 };
}

export interface SeedReport {
  seed: number;
  nodes: number;
  steps: number;
  commands: number;
  /** Commands the state machine refused (the same on every node, the log going on). */
  refused: number;
  terms: number;
  stats: SimCluster['stats'];
}

/**
 * Runs one seed: a phase of chaos (faults, partitions, one-way cuts, crashes, client traffic,
 * transfers, reads, compactions and — for some seeds — membership changes), then everything
 * heals and the cluster must elect a leader and commit a fresh command on every live voter.
 */
export function runSeed(seed: number, o: { trace?: boolean; chaosSteps?: number } = {}): SeedReport {
  const plan = planFor(seed);
  // The seed's character: how hostile the network is, how busy the clients are.
  const setup = new Rng(seed ^ 0x5eed);
  const faults: Faults = {
    drop: setup.pick([0, 0.02, 0.05, 0.1, 0.2]),
    duplicate: setup.pick([0, 0.02, 0.1]),
    maxDelay: setup.pick([1, 2, 3, 5]),
    straggle: setup.pick([0, 0.01, 0.05]),
    crashInReady: setup.pick([0, 0.002, 0.01]),
    diskRefuses: setup.pick([0, 0, 0.001, 0.005]),
  };
  const sim = new SimCluster({
    seed,
    nodes: plan.nodes,
    electionTicks: 10,
    heartbeatTicks: setup.pick([1, 2, 3]),
    maxInflight: setup.pick([1, 2, 4, 64]),
    maxEntriesPerMsg: setup.pick([1, 3, 512]),
    maxApplyBatch: setup.pick([1, 4, 2048]),
    tickChance: setup.pick([1, 0.9, 0.7]),
    eagerReady: setup.pick([0, 0.5, 1]),
    snapshotEntries: setup.pick([20, 100, 1_000_000]),
    keepEntries: setup.pick([0, 5, 30]),
    faults,
    trace: o.trace ?? false,
  });
  const rng = sim.rng;
  const p = {
    propose: setup.pick([0.1, 0.3, 0.6]),
    /** Of the proposals, the share the state machine must refuse. */
    poison: setup.pick([0, 0.05]),
    partition: setup.pick([0, 0.005, 0.02]),
    cut: setup.pick([0, 0.005, 0.02]),
    crash: setup.pick([0, 0.003, 0.01]),
    /** Of a partition or crash, the chance that it aims at the leader. */
    aimAtLeader: setup.pick([0, 0.5, 0.9]),
    transfer: setup.pick([0, 0.005, 0.02]),
    read: setup.pick([0, 0.02, 0.05]),
    compact: setup.pick([0, 0.01, 0.05]),
    conf: plan.membership ? setup.pick([0.01, 0.03]) : 0,
    /**
     * Of the restarts, the share whose state database is lost (deleted or corrupt) meanwhile.
     * Not with membership changes: a configuration shrunk to two voters, one of which lost its
     * state, cannot elect (safely) when the other lacks the tail the lost log had.
     */
    loseState: plan.membership ? 0 : setup.pick([0, 0, 0.2]),
  };
  let cmd = 0;
  let healAt = 0;
  const restartAt = new Map<NodeId, number>();
  const learnerSince = new Map<NodeId, number>();
  let nextId = plan.nodes + 1;
  const chaosSteps = o.chaosSteps ?? plan.chaosSteps;
  const leaderOr = (pick: () => NodeId): NodeId => {
    const l = sim.leader();
    return l && rng.chance(p.aimAtLeader) ? l.id : pick();
  };

  try {
    for (let s = 0; s < chaosSteps; s++) {
      // The network: partitions and one-way cuts come and go.
      if (healAt && sim.now >= healAt) {
        sim.heal();
        healAt = 0;
      }
      if (!healAt && rng.chance(p.partition)) {
        const ids = [...sim.nodes.keys()];
        const first = leaderOr(() => rng.pick(ids));
        const rest = rng.shuffle(ids.filter((id) => id !== first));
        const k = rng.between(1, Math.floor(ids.length / 2)); // a minority, perhaps with the leader
        sim.partition([first, ...rest.slice(0, k - 1)]);
        healAt = sim.now + rng.between(5, 80);
      }
      if (rng.chance(p.cut)) {
        const ids = [...sim.nodes.keys()];
        const a = rng.pick(ids);
        sim.cut(a, rng.pick(ids.filter((x) => x !== a)));
        if (!healAt) healAt = sim.now + rng.between(5, 60);
      }
      // Crashes and restarts.
      for (const [id, at] of restartAt) {
        if (sim.now >= at) {
          restartAt.delete(id);
          if (rng.chance(p.loseState) && sim.mayLoseState(id)) sim.loseState(id);
          sim.restart(id);
        }
      }
      for (const node of sim.nodes.values()) {
        if (!node.driver && !restartAt.has(node.id)) restartAt.set(node.id, sim.now + rng.between(3, 60)); // crashed at a write
      }
      const live = sim.live();
      if (live.length && rng.chance(p.crash)) {
        const victim = leaderOr(() => rng.pick(live).id);
        sim.crash(victim);
        restartAt.set(victim, sim.now + rng.between(3, 60));
      }
      // Clients talk to whoever claims to lead (during a partition that may be a stale leader
      // of an older term), now and then to any node.
      const leaders = sim.leaders();
      if (rng.chance(p.propose)) {
        const to =
          rng.chance(0.9) && leaders.length ? rng.pick(leaders).id : live.length ? rng.pick(live).id : undefined;
        if (to !== undefined) sim.propose(`s${seed}c${++cmd}`, to, rng.chance(p.poison) ? 'poison' : 'put');
      }
      // A read goes to every node that claims to lead: a stale one must not answer it.
      if (rng.chance(p.read)) for (const l of leaders) sim.readIndex(l.id);
      const leader = sim.leader();
      if (leader && rng.chance(p.transfer)) {
        const others = leader.voters.filter((v) => v !== leader.id);
        if (others.length) sim.transfer(rng.pick(others));
      }
      if (live.length && rng.chance(p.compact)) sim.compact(rng.pick(live).id);
      if (leader && rng.chance(p.conf)) {
        // One change at a time (the core refuses more): add a learner (up to two at once),
        // promote one that has had time to catch up, or remove a voter — the leader itself too.
        const learners = leader.members.filter((m) => !m.voter).map((m) => m.id);
        const voters = leader.voters;
        const ripe = learners.filter((id) => sim.now - (learnerSince.get(id) ?? 0) > 20);
        const options: (() => void)[] = [];
        if (learners.length < 2 && nextId <= plan.nodes + 4) {
          options.push(() => {
            const id = nextId;
            if (sim.proposeConfChange({ op: 'addLearner', id, address: `n${id}` }, leader.id)) {
              nextId++;
              sim.addNode(id);
              learnerSince.set(id, sim.now);
            }
          });
        }
        if (ripe.length) options.push(() => sim.proposeConfChange({ op: 'promote', id: rng.pick(ripe) }, leader.id));
        if (voters.length > (plan.nodes === 3 ? 1 : 3)) {
          options.push(() => {
            const victim = rng.chance(0.25) ? leader.id : rng.pick(voters);
            sim.proposeConfChange({ op: 'remove', id: victim }, leader.id);
          });
        }
        if (options.length) rng.pick(options)();
      }
      sim.step();
    }

    // Heal everything and go quiet: a leader must emerge and a fresh command must commit.
    sim.trace('=== heal ===');
    sim.heal();
    sim.faults = NO_FAULTS;
    for (const node of sim.nodes.values()) node.refusingUntil = 0;
    for (const id of sim.nodes.keys()) sim.restart(id);
    sim.runUntil(() => sim.leader() !== undefined, 300, 'a leader after healing');
    sim.commitEverywhere(`s${seed}-final`, 1500);
    sim.checkLogMatching();
    return {
      seed,
      nodes: plan.nodes,
      steps: sim.now,
      commands: sim.history.length,
      refused: sim.stats.refused,
      terms: sim.termLeader.size,
      stats: sim.stats,
    };
  } catch (e) {
    if (e instanceof SimFailure) throw e;
    throw new SimFailure(seed, sim.now, `unexpected error: ${(e as Error).stack ?? e}`, []);
  }
}

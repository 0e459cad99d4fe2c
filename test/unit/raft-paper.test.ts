// The Raft core against the sentences of the paper (Ongaro & Ousterhout, "In Search of an
// Understandable Consensus Algorithm", 2014) and of Ongaro's thesis ("Consensus: Bridging Theory
// and Practice", 2014) for what production Raft adds. Each test names the section it checks.
//
// The tests drive `Raft` directly: they build a node in a given state, step messages into it and
// look at what it sends. `Net` is a tiny synchronous network (as in etcd's raft tests) that
// delivers everything until the cluster is quiet; it can cut links and isolate nodes.
import { describe, expect, it } from 'vitest';
import { NotLeaderError, ProposalRefusedError, Raft } from '../../src/consensus/core/raft.js';
import type {
  ConfChange,
  Entry,
  Member,
  Message,
  NodeId,
  ReadState,
  SnapshotMeta,
} from '../../src/consensus/core/types.js';

const ELECTION = 10;

interface NodeSpec {
  voters?: NodeId[];
  learners?: NodeId[];
  term?: number;
  vote?: NodeId;
  commit?: number;
  /** Terms of the log entries, from index snapshot.index + 1. */
  log?: number[];
  /** Extra entries appended after `log` (conf changes, say). */
  extra?: Omit<Entry, 'index'>[];
  snapshot?: SnapshotMeta;
  /** The injected randomness; 0 makes the election timeout exactly ELECTION ticks. */
  random?: number;
}

const membersOf = (voters: NodeId[], learners: NodeId[] = []): Member[] =>
  [
    ...voters.map((id) => ({ id, address: `n${id}`, voter: true })),
    ...learners.map((id) => ({ id, address: `n${id}`, voter: false })),
  ].sort((a, b) => a.id - b.id);

function node(id: NodeId, s: NodeSpec = {}): Raft {
  const snapshot = s.snapshot ?? { index: 0, term: 0, members: membersOf(s.voters ?? [1, 2, 3], s.learners) };
  const entries: Entry[] = (s.log ?? []).map((term, i) => ({
    index: snapshot.index + i + 1,
    term,
    kind: 'cmd',
    data: `e${snapshot.index + i + 1}`,
  }));
  for (const e of s.extra ?? []) entries.push({ ...e, index: snapshot.index + entries.length + 1 });
  return new Raft({
    id,
    electionTicks: ELECTION,
    heartbeatTicks: 1,
    random: () => s.random ?? 0,
    hardState: { term: s.term ?? 0, vote: s.vote ?? 0, commit: s.commit ?? 0 },
    snapshot,
    entries,
  });
}

interface Drained {
  messages: Message[];
  committed: Entry[];
  entries: Entry[];
  snapshot?: SnapshotMeta;
  readStates: ReadState[];
}

/** Handles a node's Ready as a driver would (its log lives in memory here) and says what came out. */
function drain(r: Raft): Drained {
  const out: Drained = { messages: [], committed: [], entries: [], readStates: [] };
  while (r.hasReady()) {
    const rd = r.ready();
    out.messages.push(...rd.messages);
    out.committed.push(...rd.committed);
    out.entries.push(...rd.entries);
    out.readStates.push(...rd.readStates);
    if (rd.snapshot) out.snapshot = rd.snapshot;
    r.advance(rd);
  }
  return out;
}

const sent = (r: Raft) => drain(r).messages;
const ofType = <T extends Message['type']>(msgs: Message[], type: T) =>
  msgs.filter((m): m is Message & { type: T } => m.type === type);

function tick(r: Raft, n: number): void {
  for (let i = 0; i < n; i++) r.tick();
}

/** A synchronous network: delivering a message delivers everything it causes, until quiet. */
class Net {
  readonly peers = new Map<NodeId, Raft>();
  private readonly cut = new Set<string>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly reads = new Map<NodeId, ReadState[]>();
  /** Every message delivered, for tests that look at the traffic. */
  readonly log: Message[] = [];

  constructor(...rafts: Raft[]) {
    for (const r of rafts) this.add(r);
  }

  add(r: Raft): void {
    this.peers.set(r.id, r);
    this.applied.set(r.id, []);
    this.reads.set(r.id, []);
  }

  get(id: NodeId): Raft {
    return this.peers.get(id)!;
  }

  isolate(id: NodeId): void {
    this.partition(
      [id],
      [...this.peers.keys()].filter((other) => other !== id),
    );
  }

  /** Nodes in different groups cannot talk. */
  partition(...groups: NodeId[][]): void {
    for (const [i, g] of groups.entries()) {
      for (const other of groups.slice(i + 1).flat()) {
        for (const id of g) {
          this.cut.add(`${id}>${other}`);
          this.cut.add(`${other}>${id}`);
        }
      }
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Loses the next message that matches. */
  dropNext(match: (m: Message) => boolean): void {
    this.drops.push(match);
  }
  private drops: ((m: Message) => boolean)[] = [];

  /** Collects what a node has to say and delivers it (and all that follows). */
  settle(): void {
    const queue: Message[] = [];
    const collect = (r: Raft) => {
      const d = drain(r);
      this.applied.get(r.id)!.push(...d.committed);
      this.reads.get(r.id)!.push(...d.readStates);
      queue.push(...d.messages);
    };
    for (const r of this.peers.values()) collect(r);
    for (let delivered = 0; queue.length; delivered++) {
      if (delivered > 100_000) throw new Error('the network never goes quiet');
      const m = queue.shift()!;
      const to = this.peers.get(m.to);
      if (!to || this.cut.has(`${m.from}>${m.to}`)) continue;
      const drop = this.drops.findIndex((match) => match(m));
      if (drop >= 0) {
        this.drops.splice(drop, 1);
        continue;
      }
      this.log.push(m);
      to.step(m);
      collect(to);
    }
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.get(id).tick();
      this.settle();
    }
  }

  /** Every node's clock ticks `n` times. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const r of this.peers.values()) r.tick();
      this.settle();
    }
  }

  /** Lets `id`'s election timer run out; with everyone reachable it wins. */
  elect(id: NodeId): Raft {
    const r = this.get(id);
    for (let i = 0; i < 2 * ELECTION && r.role !== 'leader'; i++) this.tick(id);
    expect(r.role).toBe('leader');
    return r;
  }

  propose(id: NodeId, data: unknown): number {
    const index = this.get(id).propose(data);
    this.settle();
    return index;
  }

  /** Commands applied on a node, in order. */
  commands(id: NodeId): unknown[] {
    return this.applied
      .get(id)!
      .filter((e) => e.kind === 'cmd')
      .map((e) => e.data);
  }
}

/** A cluster of `n` voters; node i times out after ELECTION + i - 1 ticks, so that no two tie. */
const cluster = (n: number, spec: NodeSpec = {}) => {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  return new Net(...ids.map((id) => node(id, { voters: ids, random: (id - 1) / ELECTION, ...spec })));
};

/** A node that has just won an election in term `term` (it then appends its noop). */
function leaderOf(spec: NodeSpec & { voters: NodeId[] }): Raft {
  const r = node(1, spec);
  tick(r, ELECTION);
  for (const v of spec.voters)
    if (v !== 1) r.step({ type: 'preVoteResp', from: v, to: 1, term: r.term + 1, reject: false });
  for (const v of spec.voters) if (v !== 1) r.step({ type: 'voteResp', from: v, to: 1, term: r.term, reject: false });
  expect(r.role).toBe('leader');
  drain(r);
  return r;
}

// ================================================================== §5.1

describe('§5.1 Raft basics: terms', () => {
  it('a follower, candidate or leader that sees a higher term adopts it and becomes a follower', () => {
    const follower = node(1, { term: 1 });
    const candidate = node(1, { term: 1 });
    tick(candidate, ELECTION);
    candidate.step({ type: 'preVoteResp', from: 2, to: 1, term: 2, reject: false });
    expect(candidate.role).toBe('candidate');
    const leader = leaderOf({ voters: [1, 2, 3], term: 1 });

    for (const r of [follower, candidate, leader]) {
      r.step({ type: 'app', from: 3, to: 1, term: 5, prevIndex: 0, prevTerm: 0, entries: [], commit: 0 });
      expect(r.role).toBe('follower');
      expect(r.term).toBe(5);
      expect(r.leader).toBe(3);
    }
  });

  it('a leader learns it is stale from a higher term in an answer and steps down', () => {
    const leader = leaderOf({ voters: [1, 2, 3], term: 1 });
    leader.step({ type: 'appResp', from: 2, to: 1, term: 7, index: 0, reject: true, hint: 0 });
    expect(leader.role).toBe('follower');
    expect(leader.term).toBe(7);
  });

  it('a request from an older term is rejected and tells the stale sender the current term', () => {
    const r = node(1, { term: 3, log: [1, 2] });
    r.step({
      type: 'app',
      from: 2,
      to: 1,
      term: 2,
      prevIndex: 2,
      prevTerm: 2,
      entries: [{ index: 3, term: 2, kind: 'cmd', data: 'x' }],
      commit: 3,
    });
    expect(r.log.lastIndex).toBe(2);
    expect(r.log.committed).toBe(0);
    const [resp] = ofType(sent(r), 'appResp');
    expect(resp).toMatchObject({ to: 2, term: 3, reject: true });
  });

  it('the term and vote are handed to the driver to persist before the messages that depend on them', () => {
    const r = node(1, { term: 4 });
    tick(r, ELECTION);
    r.step({ type: 'preVoteResp', from: 2, to: 1, term: 5, reject: false });
    const rd = r.ready();
    expect(rd.hardState).toMatchObject({ term: 5, vote: 1 });
    expect(ofType(rd.messages, 'vote').map((m) => m.to)).toEqual([2, 3]);
  });
});

// ================================================================== §5.2

describe('§5.2 leader election', () => {
  it('servers start as followers', () => {
    expect(node(1).role).toBe('follower');
  });

  it('after an election timeout without a leader, a follower starts a pre-vote (thesis §9.6): no term change yet', () => {
    const r = node(1, { term: 2 });
    tick(r, ELECTION - 1);
    expect(sent(r)).toEqual([]);
    tick(r, 1);
    expect(r.role).toBe('precandidate');
    expect(r.term).toBe(2);
    const msgs = sent(r);
    expect(msgs.map((m) => [m.type, m.to, m.term])).toEqual([
      ['preVote', 2, 3],
      ['preVote', 3, 3],
    ]);
  });

  it('with a majority of pre-votes it becomes a candidate: increments its term, votes for itself, asks for votes', () => {
    const r = node(1, { term: 2, log: [1, 2] });
    tick(r, ELECTION);
    drain(r);
    r.step({ type: 'preVoteResp', from: 3, to: 1, term: 3, reject: false });
    expect(r.role).toBe('candidate');
    expect(r.term).toBe(3);
    expect(r.vote).toBe(1);
    expect(ofType(sent(r), 'vote')).toEqual([
      { type: 'vote', from: 1, to: 2, term: 3, lastIndex: 2, lastTerm: 2 },
      { type: 'vote', from: 1, to: 3, term: 3, lastIndex: 2, lastTerm: 2 },
    ]);
  });

  it.each([
    // size, responses (true: granted), the outcome
    [1, {}, 'leader'],
    [3, { 2: true }, 'leader'],
    [3, { 2: true, 3: true }, 'leader'],
    [5, { 2: true, 3: true }, 'leader'],
    [3, { 2: false, 3: false }, 'follower'],
    [5, { 2: true, 3: false, 4: false, 5: false }, 'follower'],
    [3, {}, 'candidate'],
    [5, { 2: true }, 'candidate'],
    [5, { 2: false, 3: false }, 'candidate'],
  ] as const)('a candidate in a cluster of %i with votes %j ends up %s', (size, votes, role) => {
    const voters = Array.from({ length: size }, (_, i) => i + 1);
    const r = node(1, { voters, term: 1 });
    tick(r, ELECTION);
    for (const v of voters.slice(1)) r.step({ type: 'preVoteResp', from: v, to: 1, term: 2, reject: false });
    for (const [from, granted] of Object.entries(votes)) {
      r.step({ type: 'voteResp', from: Number(from), to: 1, term: 2, reject: !granted });
    }
    expect(r.role).toBe(role);
    expect(r.term).toBe(2);
  });

  it('a new leader appends an entry of its term and sends it to everyone at once', () => {
    const r = node(1, { term: 1, log: [1] });
    tick(r, ELECTION);
    r.step({ type: 'preVoteResp', from: 2, to: 1, term: 2, reject: false });
    r.step({ type: 'voteResp', from: 2, to: 1, term: 2, reject: false });
    expect(r.role).toBe('leader');
    const apps = ofType(sent(r), 'app');
    expect(apps.map((m) => m.to)).toEqual([2, 3]);
    expect(apps[0]).toMatchObject({ prevIndex: 1, prevTerm: 1, entries: [{ index: 2, term: 2, kind: 'noop' }] });
  });

  it('each server votes for at most one candidate per term, first come first served', () => {
    for (const [votedFor, asks, granted] of [
      [0, 2, true],
      [2, 2, true], // asking again (a duplicate) gets the same answer
      [2, 3, false],
      [3, 2, false],
    ] as const) {
      const r = node(1, { term: 1, vote: votedFor });
      r.step({ type: 'vote', from: asks, to: 1, term: 1, lastIndex: 0, lastTerm: 0 });
      expect(ofType(sent(r), 'voteResp')).toEqual([{ type: 'voteResp', from: 1, to: asks, term: 1, reject: !granted }]);
    }
  });

  it('a candidate that hears from a leader of its own term recognises it and becomes a follower', () => {
    const r = node(1, { term: 1 });
    tick(r, ELECTION);
    r.step({ type: 'preVoteResp', from: 2, to: 1, term: 2, reject: false });
    expect(r.role).toBe('candidate');
    r.step({ type: 'heartbeat', from: 3, to: 1, term: 2, commit: 0, ctx: 0 });
    expect(r.role).toBe('follower');
    expect(r.leader).toBe(3);
    expect(r.term).toBe(2);
  });

  it('split votes: a candidate without a majority times out and tries again in a new term', () => {
    const r = node(1, { voters: [1, 2, 3, 4], term: 1 });
    tick(r, ELECTION);
    for (const v of [2, 3, 4]) r.step({ type: 'preVoteResp', from: v, to: 1, term: 2, reject: false });
    r.step({ type: 'voteResp', from: 2, to: 1, term: 2, reject: false });
    r.step({ type: 'voteResp', from: 3, to: 1, term: 2, reject: true }); // 3 voted for 4
    expect(r.role).toBe('candidate');
    drain(r);
    tick(r, ELECTION);
    expect(r.role).toBe('precandidate');
    for (const v of [2, 3]) r.step({ type: 'preVoteResp', from: v, to: 1, term: 3, reject: false });
    expect(r.role).toBe('candidate');
    expect(r.term).toBe(3);
    for (const v of [2, 3]) r.step({ type: 'voteResp', from: v, to: 1, term: 3, reject: false });
    expect(r.role).toBe('leader');
  });

  it('election timeouts are randomized in [timeout, 2·timeout)', () => {
    const ticksUntilCampaign = (random: number) => {
      const r = node(1, { random });
      for (let t = 1; t < 3 * ELECTION; t++) {
        r.tick();
        if (r.role === 'precandidate') return t;
      }
      return Infinity;
    };
    expect(ticksUntilCampaign(0)).toBe(ELECTION);
    expect(ticksUntilCampaign(0.5)).toBe(ELECTION + ELECTION / 2);
    expect(ticksUntilCampaign(0.999)).toBe(2 * ELECTION - 1);
  });

  it('in a quiet cluster one node wins and everyone follows it', () => {
    const net = cluster(3);
    net.elect(2);
    for (const r of net.peers.values()) {
      expect(r.term).toBe(1);
      expect(r.leader).toBe(2);
    }
  });
});

// ================================================================== §5.3

describe('§5.3 log replication', () => {
  it('the leader appends a proposal and sends it with the index and term of the entry before it', () => {
    const r = leaderOf({ voters: [1, 2, 3], term: 1, log: [1] }); // its noop is index 2, term 2
    for (const from of [2, 3]) r.step({ type: 'appResp', from, to: 1, term: 2, index: 2, reject: false, hint: 0 });
    drain(r);
    const index = r.propose('x');
    expect(index).toBe(3);
    const d = drain(r);
    expect(d.entries).toEqual([{ index: 3, term: 2, kind: 'cmd', data: 'x' }]); // for the driver to persist
    expect(
      ofType(d.messages, 'app').map((m) => [m.to, m.prevIndex, m.prevTerm, m.entries.map((e) => e.index)]),
    ).toEqual([
      [2, 2, 2, [3]],
      [3, 2, 2, [3]],
    ]);
  });

  it('a follower not yet known to match gets one append at a time (probe), until it answers', () => {
    const r = leaderOf({ voters: [1, 2, 3], term: 1 });
    r.propose('x');
    expect(ofType(sent(r), 'app')).toEqual([]); // the noop is still unanswered
    r.step({ type: 'appResp', from: 2, to: 1, term: 2, index: 1, reject: false, hint: 0 });
    const apps = ofType(sent(r), 'app');
    expect(apps[0]).toMatchObject({ to: 2, prevIndex: 1, entries: [{ index: 2, data: 'x' }] });
    expect(apps.filter((m) => m.to === 3)).toEqual([]);
  });

  it('an entry is committed once the leader has it on a majority; the next append or heartbeat carries the commit', () => {
    for (const [size, acceptors, committed] of [
      [3, [], false],
      [3, [2], true],
      [5, [2], false],
      [5, [2, 3], true],
    ] as const) {
      const voters = Array.from({ length: size }, (_, i) => i + 1);
      const r = leaderOf({ voters, term: 1 });
      const index = r.propose('x');
      for (const to of acceptors) r.step({ type: 'appResp', from: to, to: 1, term: 2, index, reject: false, hint: 0 });
      const d = drain(r);
      expect(r.log.committed >= index).toBe(committed);
      if (!committed) continue;
      expect(d.committed.map((e) => e.data)).toContain('x');
      r.tick();
      const beats = ofType(drain(r).messages, 'heartbeat');
      for (const to of acceptors) expect(beats.find((m) => m.to === to)?.commit).toBe(index);
      r.propose('y');
      const apps = ofType(drain(r).messages, 'app');
      for (const to of acceptors) expect(apps.filter((m) => m.to === to).at(-1)?.commit).toBe(index);
    }
  });

  it('a commit sends nothing of its own: followers learn it from the next heartbeat', () => {
    const r = leaderOf({ voters: [1, 2, 3], term: 1 });
    for (const from of [2, 3]) r.step({ type: 'appResp', from, to: 1, term: 2, index: 1, reject: false, hint: 0 });
    drain(r);
    const index = r.propose('x');
    expect(ofType(sent(r), 'app').map((m) => m.to)).toEqual([2, 3]);
    r.step({ type: 'appResp', from: 2, to: 1, term: 2, index, reject: false, hint: 0 });
    const d = drain(r);
    expect(d.committed.map((e) => e.data)).toEqual(['x']);
    expect(ofType(d.messages, 'app')).toEqual([]);
    r.tick();
    expect(ofType(sent(r), 'heartbeat').map((m) => [m.to, m.commit])).toEqual([
      [2, index],
      [3, 1],
    ]);
  });

  it('the leader counts its own copy only once it is persisted (a Ready was advanced)', () => {
    const r = leaderOf({ voters: [1, 2, 3], term: 1 });
    const index = r.propose('x');
    r.step({ type: 'appResp', from: 2, to: 1, term: 2, index, reject: false, hint: 0 });
    r.step({ type: 'appResp', from: 3, to: 1, term: 2, index, reject: false, hint: 0 });
    expect(r.log.committed).toBe(index); // two followers are a majority on their own
    const solo = leaderOf({ voters: [1, 2, 3], term: 1 });
    const i2 = solo.propose('y');
    solo.step({ type: 'appResp', from: 2, to: 1, term: 2, index: i2, reject: false, hint: 0 });
    expect(solo.log.committed).toBeLessThan(i2); // itself + 2, but its copy is not durable yet
    drain(solo);
    expect(solo.log.committed).toBe(i2);
  });

  it('consistency check: a follower rejects an append whose previous entry it does not hold, with a hint', () => {
    for (const [log, prevIndex, prevTerm, hint] of [
      [[1, 1], 3, 1, 2], // too short: it holds up to 2
      [[1, 2, 2, 2], 4, 3, 1], // conflicting term 2 at 4: the whole of term 2 is skipped
      [[1, 1, 1], 3, 2, 0], // a conflict in term 1 goes back to the start
    ] as const) {
      const r = node(1, { term: 3, log: [...log] });
      r.step({ type: 'app', from: 2, to: 1, term: 3, prevIndex, prevTerm, entries: [], commit: 0 });
      expect(ofType(sent(r), 'appResp')).toEqual([
        { type: 'appResp', from: 1, to: 2, term: 3, index: prevIndex, reject: true, hint },
      ]);
      expect(r.log.lastIndex).toBe(log.length);
    }
  });

  it('a follower deletes a conflicting entry and all that follow it, then appends the new ones', () => {
    const r = node(1, { term: 3, log: [1, 1, 2, 2] });
    r.step({
      type: 'app',
      from: 2,
      to: 1,
      term: 3,
      prevIndex: 2,
      prevTerm: 1,
      entries: [{ index: 3, term: 3, kind: 'cmd', data: 'new' }],
      commit: 0,
    });
    expect(r.log.lastIndex).toBe(3);
    expect(r.log.entry(3)).toMatchObject({ term: 3, data: 'new' });
    const d = drain(r);
    expect(d.entries.map((e) => e.index)).toEqual([3]); // the driver overwrites from 3
    expect(ofType(d.messages, 'appResp')[0]).toMatchObject({ index: 3, reject: false });
  });

  it('a stale, reordered append does not truncate entries the follower already has from the same leader', () => {
    const r = node(1, { term: 2, log: [1, 2, 2, 2] });
    r.step({
      type: 'app',
      from: 2,
      to: 1,
      term: 2,
      prevIndex: 1,
      prevTerm: 1,
      entries: [{ index: 2, term: 2, kind: 'cmd', data: 'e2' }],
      commit: 0,
    });
    expect(r.log.lastIndex).toBe(4);
  });

  it('a heartbeat never tells a follower to commit past what the leader knows it holds', () => {
    // Node 3 may still hold stale entries at those indexes from an older term.
    const r = leaderOf({ voters: [1, 2, 3], term: 1 });
    r.propose('x');
    r.step({ type: 'appResp', from: 2, to: 1, term: 2, index: 2, reject: false, hint: 0 });
    drain(r);
    expect(r.log.committed).toBe(2);
    r.tick();
    const beats = ofType(sent(r), 'heartbeat');
    expect(beats.map((m) => [m.to, m.commit])).toEqual([
      [2, 2],
      [3, 0],
    ]);
  });

  it('a follower commits up to the leader commit, but never past the last entry this append vouched for', () => {
    const r = node(1, { term: 2, log: [1, 1, 1, 1] }); // entries 3 and 4 may be stale
    r.step({ type: 'app', from: 2, to: 1, term: 2, prevIndex: 2, prevTerm: 1, entries: [], commit: 4 });
    expect(r.log.committed).toBe(2);
  });

  it('the leader backs off to where the logs agree and then repairs the follower log (Figure 7)', () => {
    // Node 1 leads term 5 with terms [1,1,1,4,4,5,5]; node 2 holds a divergent [1,1,1,2,2,2,3,3,3].
    const leader = node(1, { term: 5, log: [1, 1, 1, 4, 4, 5, 5] });
    const follower = node(2, { term: 5, log: [1, 1, 1, 2, 2, 2, 3, 3, 3] });
    const net = new Net(leader, follower, node(3, { term: 5, log: [1, 1, 1, 4, 4, 5, 5] }));
    net.elect(1);
    net.propose(1, 'z');
    const f = net.get(2);
    expect(f.log.lastIndex).toBe(leader.log.lastIndex);
    for (let i = 1; i <= leader.log.lastIndex; i++) expect(f.log.term(i)).toBe(leader.log.term(i));
    const rejections = net.log.filter((m) => m.type === 'appResp' && m.from === 2 && m.reject);
    expect(rejections.length).toBeLessThanOrEqual(2); // whole terms are skipped, not one entry at a time
  });

  it('every node applies the same commands in the same order', () => {
    const net = cluster(5);
    net.elect(1);
    for (let i = 0; i < 20; i++) net.propose(1, `c${i}`);
    net.tick(1); // a heartbeat carries the last commit index
    const want = Array.from({ length: 20 }, (_, i) => `c${i}`);
    for (const id of net.peers.keys()) expect(net.commands(id)).toEqual(want);
  });
});

// ================================================================== §5.4

describe('§5.4.1 election restriction', () => {
  it.each([
    // voter log terms, candidate last index / last term, granted
    [[1, 2, 2], 3, 1, false], // older last term, even though longer
    [[1, 2, 2], 2, 2, false], // same last term, shorter
    [[1, 2, 2], 3, 2, true], // same
    [[1, 2, 2], 4, 2, true], // longer
    [[1, 2, 2], 1, 3, true], // newer last term, even though shorter
  ] as const)('a voter with log %j and a candidate at %i/%i: granted %s', (log, lastIndex, lastTerm, granted) => {
    for (const type of ['preVote', 'vote'] as const) {
      const r = node(1, { term: 2, log: [...log] });
      r.step({ type, from: 2, to: 1, term: 3, lastIndex, lastTerm });
      const [resp] = sent(r);
      expect(resp).toMatchObject({ to: 2, reject: !granted });
      if (type === 'vote') expect(r.vote).toBe(granted ? 2 : 0);
    }
  });

  it('the cluster never elects a node that lacks a committed entry', () => {
    const net = cluster(3);
    net.elect(1);
    net.isolate(3);
    net.propose(1, 'committed');
    expect(net.get(1).log.committed).toBe(2);
    net.heal();
    net.isolate(1);
    // Node 3 times out first but cannot win: node 2 holds more. Node 2 then wins.
    net.tick(3, 2 * ELECTION);
    expect(net.get(3).role).not.toBe('leader');
    net.tick(2, 2 * ELECTION);
    expect(net.get(2).role).toBe('leader');
    expect(net.get(2).log.term(2)).toBe(1);
  });
});

describe('§5.4.2 committing entries from previous terms', () => {
  it('a leader does not commit an entry of an earlier term by counting replicas (Figure 8)', () => {
    // Node 1 holds an entry of term 2 at index 2 that was never committed; it now leads term 3.
    const r = leaderOf({ voters: [1, 2, 3, 4, 5], term: 2, log: [1, 2], commit: 1 });
    expect(r.term).toBe(3);
    expect(r.log.entry(3)).toMatchObject({ term: 3, kind: 'noop' });
    for (const from of [2, 3]) r.step({ type: 'appResp', from, to: 1, term: 3, index: 2, reject: false, hint: 0 });
    drain(r);
    expect(r.log.committed).toBe(1); // a majority holds index 2, but it is of term 2
    for (const from of [2, 3]) r.step({ type: 'appResp', from, to: 1, term: 3, index: 3, reject: false, hint: 0 });
    expect(r.log.committed).toBe(3); // the term-3 entry commits, and with it index 2
  });
});

// ================================================================== §6 / thesis ch. 4

describe('§6, thesis ch. 4: membership changes, one server at a time', () => {
  it('a second change is refused until the first has committed', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(2);
    net.isolate(3);
    leader.proposeConfChange({ op: 'addLearner', id: 4, address: 'n4' });
    expect(() => leader.proposeConfChange({ op: 'promote', id: 4 })).toThrow(ProposalRefusedError);
    net.heal();
    net.tick(1);
    expect(leader.log.committed).toBe(leader.log.lastIndex);
    expect(() => leader.proposeConfChange({ op: 'promote', id: 4 })).not.toThrow();
  });

  it('a new leader allows no change until an entry of its own term has committed', () => {
    const r = leaderOf({ voters: [1, 2, 3], term: 1 });
    expect(() => r.proposeConfChange({ op: 'addLearner', id: 4, address: 'n4' })).toThrow(ProposalRefusedError);
    r.step({ type: 'appResp', from: 2, to: 1, term: 2, index: 1, reject: false, hint: 0 });
    expect(() => r.proposeConfChange({ op: 'addLearner', id: 4, address: 'n4' })).not.toThrow();
  });

  it('a change is in effect as soon as it is in the log (§4.1): the leader counts the new voter at once', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.add(node(4, { voters: [1, 2, 3] })); // a joining node starts from the bootstrap configuration
    leader.proposeConfChange({ op: 'addLearner', id: 4, address: 'n4' });
    net.settle();
    leader.proposeConfChange({ op: 'promote', id: 4 });
    expect(leader.voters).toEqual([1, 2, 3, 4]);
    net.settle();
    expect(net.get(4).voters).toEqual([1, 2, 3, 4]);
    // With four voters, the leader and one follower are no longer a majority.
    net.isolate(3);
    net.isolate(4);
    const index = net.propose(1, 'x');
    expect(leader.log.committed).toBeLessThan(index);
  });

  it('learners receive the log but are not counted in commit quorums, and never campaign', () => {
    const net = new Net(...[1, 2, 3, 4, 5].map((id) => node(id, { voters: [1, 2, 3], learners: [4, 5] })));
    const leader = net.elect(1);
    net.partition([1, 4, 5], [2, 3]);
    const index = net.propose(1, 'x');
    expect(net.get(4).log.lastIndex).toBe(index); // the learners have it
    expect(leader.log.committed).toBeLessThan(index); // but leader + learners are no quorum
    net.heal();
    net.isolate(1);
    net.tick(4, 5 * ELECTION);
    expect(net.get(4).role).toBe('follower');
    expect(net.log.some((m) => m.from === 4 && (m.type === 'preVote' || m.type === 'vote'))).toBe(false);
  });

  it("a learner's vote does not count", () => {
    const r = node(1, { voters: [1, 2, 3], learners: [4], term: 1 });
    tick(r, ELECTION);
    expect(ofType(sent(r), 'preVote').map((m) => m.to)).toEqual([2, 3]);
    r.step({ type: 'preVoteResp', from: 4, to: 1, term: 2, reject: false });
    expect(r.role).toBe('precandidate');
  });

  it('a leader that removes itself keeps leading without counting itself, then steps down once the removal commits (§4.2.2)', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(3);
    leader.proposeConfChange({ op: 'remove', id: 1 });
    expect(leader.role).toBe('leader');
    expect(leader.voters).toEqual([2, 3]);
    // Leader + node 2 would be a majority of the old configuration, but not of the new one.
    const index = leader.log.lastIndex;
    net.settle();
    expect(leader.log.committed).toBeLessThan(index);
    net.heal();
    net.tick(1);
    expect(leader.log.committed).toBeGreaterThanOrEqual(index);
    expect(leader.role).toBe('follower');
    // The remaining voters elect a leader; the removed node never campaigns again.
    const since = net.log.length;
    net.tickAll(3 * ELECTION);
    const next = [2, 3].map((id) => net.get(id)).find((r) => r.role === 'leader');
    expect(next).toBeDefined();
    expect(net.log.slice(since).some((m) => m.from === 1 && m.type === 'preVote')).toBe(false);
  });

  it('a server removed by an entry that is not yet committed still campaigns: it may be the only one that can win (§4.2.2, Figure 4.6)', () => {
    // Node 1 led {1, 2} and appended its own removal (index 2); it stepped down before node 2
    // received it. Node 2 cannot win without node 1's vote, which its shorter log will not get.
    const removal: Omit<Entry, 'index'> = { term: 1, kind: 'conf', data: { op: 'remove', id: 1 } satisfies ConfChange };
    const n1 = node(1, { voters: [1, 2], term: 1, vote: 1, log: [1], extra: [removal], commit: 1 });
    const n2 = node(2, { voters: [1, 2], term: 1, vote: 1, log: [1], commit: 1 });
    expect(n1.voters).toEqual([2]);
    const net = new Net(n1, n2);
    net.tick(2, 2 * ELECTION);
    expect(n2.role).not.toBe('leader');
    net.tick(1, 2 * ELECTION); // node 1 wins with node 2's vote alone (its own does not count)...
    // ...gets the removal committed, and steps down; node 2 then leads alone.
    expect(n2.voters).toEqual([2]);
    expect(n1.log.committed).toBe(n1.log.lastIndex);
    expect(n1.role).toBe('follower');
    net.tick(2, 2 * ELECTION);
    expect(n2.role).toBe('leader');
    expect(net.propose(2, 'after')).toBe(n2.log.committed);
  });

  it('a follower that truncates an uncommitted change falls back to the configuration before it (§4.1)', () => {
    const add: Omit<Entry, 'index'> = { term: 1, kind: 'conf', data: { op: 'addLearner', id: 4, address: 'n4' } };
    const r = node(2, { term: 1, log: [1], extra: [add] });
    expect(r.members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
    r.step({
      type: 'app',
      from: 3,
      to: 2,
      term: 2,
      prevIndex: 1,
      prevTerm: 1,
      entries: [{ index: 2, term: 2, kind: 'noop' }],
      commit: 0,
    });
    expect(r.members.map((m) => m.id)).toEqual([1, 2, 3]);
  });

  it('the last voter cannot be removed, and a non-member cannot be promoted', () => {
    const r = leaderOf({ voters: [1], term: 0 });
    expect(() => r.proposeConfChange({ op: 'remove', id: 1 })).toThrow(ProposalRefusedError);
    expect(() => r.proposeConfChange({ op: 'promote', id: 9 })).toThrow(ProposalRefusedError);
  });
});

// ================================================================== §7

describe('§7 log compaction and snapshots', () => {
  it('compaction drops applied entries; the snapshot records the term and the configuration at its index', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.propose(1, 'a');
    leader.proposeConfChange({ op: 'addLearner', id: 4, address: 'n4' });
    net.settle();
    net.propose(1, 'b');
    const applied = leader.log.applied;
    expect(applied).toBe(4);
    expect(leader.snapshotMeta(2).members.map((m) => m.id)).toEqual([1, 2, 3]);
    leader.compact(applied);
    expect(leader.log.firstIndex).toBe(5);
    expect(leader.log.snapshot).toMatchObject({ index: 4, term: 1 });
    expect(leader.log.snapshot.members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
  });

  it('compaction never goes past what is applied, nor records a configuration that is not yet applied', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.propose(1, 'a');
    net.isolate(2);
    net.isolate(3);
    leader.proposeConfChange({ op: 'addLearner', id: 4, address: 'n4' }); // never commits
    net.settle();
    const applied = leader.log.applied;
    leader.compact(leader.log.lastIndex);
    expect(leader.log.snapshot.index).toBe(applied);
    expect(leader.log.snapshot.members.map((m) => m.id)).toEqual([1, 2, 3]);
  });

  it('a follower missing compacted entries gets a snapshot, installs it in place of its log, and catches up', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 10; i++) net.propose(1, `c${i}`);
    leader.compact(leader.log.applied);
    for (const id of [1, 2]) net.get(id).compact(net.get(id).log.applied);
    const f = net.get(3);
    const before = f.log.lastIndex;
    net.heal();
    net.tick(1); // the heartbeat's answer shows node 3 behind; what it lacks is compacted away
    expect(before).toBe(1);
    expect(f.log.snapshot.index).toBeGreaterThanOrEqual(11);
    expect(f.log.lastIndex).toBe(leader.log.lastIndex);
    expect(f.log.committed).toBe(leader.log.committed);
    expect(net.log.some((m) => m.type === 'snap' && m.to === 3)).toBe(true);
    expect(leader.progressOf(3)).toMatchObject({ state: 'replicate', match: leader.log.lastIndex });
  });

  it("installing a snapshot is handed to the driver in Ready, and the follower takes the snapshot's configuration", () => {
    const f = node(3, { term: 2, log: [1, 1] });
    const snapshot: SnapshotMeta = { index: 10, term: 2, members: membersOf([1, 2, 3], [4]) };
    f.step({ type: 'snap', from: 1, to: 3, term: 2, snapshot });
    const d = drain(f);
    expect(d.snapshot).toBe(snapshot);
    expect(d.committed).toEqual([]); // the state machine comes from the snapshot, not from entries
    expect(ofType(d.messages, 'appResp')).toEqual([
      { type: 'appResp', from: 3, to: 1, term: 2, index: 10, reject: false, hint: 0 },
    ]);
    expect(f.log).toMatchObject({ firstIndex: 11, lastIndex: 10, committed: 10, applied: 10 });
    expect(f.members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
  });

  it('a snapshot the follower already covers is acknowledged, not installed', () => {
    const f = node(3, { term: 2, log: [1, 2, 2], commit: 3 });
    f.step({ type: 'snap', from: 1, to: 3, term: 2, snapshot: { index: 2, term: 2, members: membersOf([1, 2, 3]) } });
    const d = drain(f);
    expect(d.snapshot).toBeUndefined();
    expect(ofType(d.messages, 'appResp')[0]).toMatchObject({ index: 3, reject: false });
    expect(f.log.lastIndex).toBe(3);
  });

  it('a node restarts from its snapshot and the entries after it, with the configuration they make', () => {
    const add: Omit<Entry, 'index'> = { term: 3, kind: 'conf', data: { op: 'addLearner', id: 5, address: 'n5' } };
    const snapshot: SnapshotMeta = { index: 10, term: 3, members: membersOf([1, 2, 3], [4]) };
    const r = node(2, { snapshot, term: 3, vote: 1, commit: 12, log: [3], extra: [add] });
    expect(r.log).toMatchObject({ firstIndex: 11, lastIndex: 12, committed: 12, applied: 10 });
    expect(r.members.map((m) => m.id)).toEqual([1, 2, 3, 4, 5]);
    expect(drain(r).committed.map((e) => e.index)).toEqual([11, 12]);
  });

  /** A leader that compacted the entries follower 3 missed while cut off: it owes 3 a snapshot. */
  const owingASnapshot = () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 5; i++) net.propose(1, `c${i}`);
    leader.compact(leader.log.applied);
    net.heal();
    return { net, leader };
  };

  it('a snapshot that travels longer than an election timeout: the follower has a whole one after it arrives to answer, before another is sent', () => {
    const { net, leader } = owingASnapshot();
    net.dropNext((m) => m.type === 'snap' && m.to === 3);
    net.tick(1);
    expect(leader.progressOf(3)!.state).toBe('snapshot');
    // Still on its way for longer than an election timeout (the driver skips Raft asking again).
    net.isolate(3);
    net.tick(1, ELECTION + 2);
    // Delivered whole now; the follower takes a while to install it and answer.
    leader.reportSnapshotSent(3);
    net.tick(1, ELECTION - 1);
    expect(leader.progressOf(3)!.state).toBe('snapshot');
    // No answer came within it after all (here the follower never got it): sent again, installed.
    net.heal();
    net.tick(1, ELECTION + 1);
    expect(leader.progressOf(3)).toMatchObject({ state: 'replicate', match: leader.log.lastIndex });
  });

  it('a leader whose snapshot (or its answer) was lost sends it again after an election timeout (§5.1: RPCs are retried)', () => {
    const { net, leader } = owingASnapshot();
    net.dropNext((m) => m.type === 'appResp' && m.from === 3 && !m.reject && m.index > 1); // the answer to the snapshot
    net.tick(1);
    expect(net.get(3).log.snapshot.index).toBe(leader.log.snapshot.index);
    expect(leader.progressOf(3)!.state).toBe('snapshot');
    net.tick(1, ELECTION);
    expect(leader.progressOf(3)).toMatchObject({ state: 'replicate', match: leader.log.lastIndex });
  });
});

// ================================================================== flow control (etcd's refinement of §5.3)

describe('pipelined replication survives lost appends', () => {
  it('when every append filling the window was lost, a heartbeat answer lets replication resume', () => {
    const voters = [1, 2, 3];
    const nodes = voters.map(
      (id) =>
        new Raft({
          id,
          electionTicks: ELECTION,
          heartbeatTicks: 1,
          random: () => 0,
          maxInflight: 2,
          hardState: { term: 0, vote: 0, commit: 0 },
          snapshot: { index: 0, term: 0, members: membersOf(voters) },
          entries: [],
        }),
    );
    const net = new Net(...nodes);
    const leader = net.elect(1);
    net.propose(1, 'warm-up'); // node 3 is now in replicate state
    net.cutLink(1, 3);
    for (let i = 0; i < 4; i++) net.propose(1, `lost${i}`); // fills node 3's window; all lost
    expect(leader.progressOf(3)!.inflight.length).toBe(2);
    net.heal();
    net.tick(1, 3);
    expect(net.get(3).log.lastIndex).toBe(leader.log.lastIndex);
  });
});

// ================================================================== §6.4 (thesis §6.4)

describe('thesis §6.4: read index', () => {
  it('a read waits until the leader has committed an entry of its own term', () => {
    const r = leaderOf({ voters: [1, 2, 3], term: 1, log: [1], commit: 1 });
    r.readIndex(1);
    expect(drain(r).readStates).toEqual([]);
    r.step({ type: 'appResp', from: 2, to: 1, term: 2, index: 2, reject: false, hint: 0 });
    const hb = ofType(sent(r), 'heartbeat');
    expect(hb.map((m) => [m.to, m.ctx])).toEqual([
      [2, 1],
      [3, 1],
    ]);
  });

  it('a read is answered with the commit index once a quorum confirms the leadership', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.propose(1, 'a');
    net.isolate(3);
    leader.readIndex(7);
    net.settle();
    expect(net.reads.get(1)).toEqual([{ ctx: 7, index: leader.log.committed }]);
  });

  it('a leader cut off from the quorum never confirms a read', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(1);
    leader.readIndex(1);
    net.tick(1, 2 * ELECTION);
    expect(net.reads.get(1)).toEqual([]);
    expect(leader.role).toBe('follower'); // and check-quorum took its leadership
  });

  it('a leader in a minority that still hears from one follower does not confirm a read', () => {
    const net = cluster(5);
    const leader = net.elect(1);
    net.propose(1, 'a');
    net.partition([1, 2], [3, 4, 5]);
    leader.readIndex(1);
    net.tick(1, 3);
    expect(net.reads.get(1)).toEqual([]);
  });

  it('a leader removing itself is not a voter: the remaining voter must confirm its reads', () => {
    const net = cluster(2);
    const leader = net.elect(1);
    net.isolate(1);
    leader.proposeConfChange({ op: 'remove', id: 1 });
    expect(leader.voters).toEqual([2]);
    leader.readIndex(1);
    net.settle();
    expect(net.reads.get(1)).toEqual([]);
  });

  it('a single-voter leader answers reads at once', () => {
    const net = cluster(1);
    const leader = net.elect(1);
    leader.readIndex(1);
    net.settle();
    expect(net.reads.get(1)).toEqual([{ ctx: 1, index: leader.log.committed }]);
  });

  it('a follower cannot serve a read index', () => {
    expect(() => node(2).readIndex(1)).toThrow(NotLeaderError);
  });
});

// ================================================================== thesis §3.10

describe('thesis §3.10: leadership transfer', () => {
  it('to an up-to-date follower: it is told to campaign at once and wins in the next term', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.propose(1, 'a');
    leader.transferLeadership(3);
    net.settle();
    expect(net.get(3).role).toBe('leader');
    expect(net.get(3).term).toBe(2);
    expect(leader.role).toBe('follower');
    expect(leader.leader).toBe(3);
    expect(net.log.some((m) => m.type === 'timeoutNow' && m.to === 3)).toBe(true);
  });

  it('to a lagging follower: the leader first brings it up to date', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 5; i++) net.propose(1, `c${i}`);
    net.heal();
    leader.transferLeadership(3);
    expect(leader.transferring).toBe(3);
    expect(ofType(sent(leader), 'timeoutNow')).toEqual([]);
    net.tick(1, 2);
    expect(net.get(3).role).toBe('leader');
    expect(net.get(3).log.lastIndex).toBeGreaterThan(leader.log.committed - 1);
  });

  it('proposals are refused while a transfer is under way, and the transfer is abandoned after an election timeout', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(3);
    leader.transferLeadership(3);
    expect(() => leader.propose('x')).toThrow(ProposalRefusedError);
    net.tick(1, ELECTION);
    expect(leader.transferring).toBe(0);
    expect(() => leader.propose('x')).not.toThrow();
  });

  it('only to a voter', () => {
    const r = leaderOf({ voters: [1, 2, 3], learners: [4], term: 1 });
    expect(() => r.transferLeadership(4)).toThrow(ProposalRefusedError);
  });
});

// ================================================================== thesis §6.2, §9.6, §4.2.3

describe('check-quorum (thesis §6.2) and pre-vote (§9.6)', () => {
  it('a leader that has not heard from a quorum for a whole election timeout steps down', () => {
    // Quorum is checked once per election timeout, on what was heard since the last check: a
    // partition is noticed within two election timeouts.
    const net = cluster(5);
    const leader = net.elect(1);
    net.isolate(1);
    net.tick(1, ELECTION - 1);
    expect(leader.role).toBe('leader');
    net.tick(1, ELECTION + 1);
    expect(leader.role).toBe('follower');
    expect(leader.term).toBe(1);
  });

  it('a leader that hears from a quorum keeps leading', () => {
    const net = cluster(5);
    const leader = net.elect(1);
    net.isolate(4);
    net.isolate(5);
    net.tick(1, 5 * ELECTION);
    expect(leader.role).toBe('leader');
  });

  it('a partitioned node does not raise its term, so on rejoining it does not depose the leader', () => {
    const net = cluster(3);
    const leader = net.elect(1);
    net.isolate(3);
    net.tick(3, 10 * ELECTION);
    expect(net.get(3).term).toBe(1);
    expect(net.get(3).role).toBe('precandidate');
    net.heal();
    net.tick(1, 2);
    expect(leader.role).toBe('leader');
    expect(leader.term).toBe(1);
    expect(net.get(3).role).toBe('follower');
  });

  it('a pre-vote is refused while the voter has heard from a leader within the election timeout (§4.2.3)', () => {
    const r = node(2, { term: 1 });
    r.step({ type: 'heartbeat', from: 1, to: 2, term: 1, commit: 0, ctx: 0 });
    drain(r);
    r.step({ type: 'preVote', from: 3, to: 2, term: 2, lastIndex: 5, lastTerm: 1 });
    expect(sent(r)).toEqual([{ type: 'preVoteResp', from: 2, to: 3, term: 1, reject: true }]);
    tick(r, ELECTION);
    drain(r);
    r.step({ type: 'preVote', from: 3, to: 2, term: 2, lastIndex: 5, lastTerm: 1 });
    expect(sent(r)).toEqual([{ type: 'preVoteResp', from: 2, to: 3, term: 2, reject: false }]);
    expect(r.term).toBe(1); // granting a pre-vote changes nothing
    expect(r.vote).toBe(0);
  });

  it('a vote request of a higher term is ignored within the lease, unless it comes from a leadership transfer', () => {
    const r = node(2, { term: 1 });
    r.step({ type: 'heartbeat', from: 1, to: 2, term: 1, commit: 0, ctx: 0 });
    drain(r);
    r.step({ type: 'vote', from: 3, to: 2, term: 2, lastIndex: 0, lastTerm: 0 });
    expect(r.term).toBe(1);
    expect(sent(r)).toEqual([]);
    r.step({ type: 'vote', from: 3, to: 2, term: 2, lastIndex: 0, lastTerm: 0, transfer: true });
    expect(r.term).toBe(2);
    expect(sent(r)).toEqual([{ type: 'voteResp', from: 2, to: 3, term: 2, reject: false }]);
  });
});

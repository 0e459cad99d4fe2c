// The quorum arithmetic of the Raft core against naive versions that follow the definitions
// literally, over many seeded random inputs (in the manner of etcd's quorum/quick_test.go).
import { describe, expect, it } from 'vitest';
import { committedIndex, majority, voteResult } from '../../src/consensus/core/quorum.js';
import type { NodeId } from '../../src/consensus/core/types.js';
import { Rng } from '../helpers/raft-sim.js';

const CASES = 5_000;

/** Random distinct voter ids (0 to 9 of them), and some ids that are not voters. */
function randomVoters(rng: Rng): { voters: NodeId[]; others: NodeId[] } {
  const ids = rng.shuffle(Array.from({ length: 20 }, (_, i) => i + 1));
  const n = rng.int(10);
  return { voters: ids.slice(0, n), others: ids.slice(n, n + 3) };
}

/**
 * Naive: an index is committed when more than half of the voters have it; the committed index
 * is the highest such index (0 if none, and 0 with no voters).
 */
function naiveCommitted(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  let best = 0;
  const candidates = new Set(voters.map(matchOf));
  for (const index of candidates) {
    const have = voters.filter((v) => matchOf(v) >= index).length;
    if (2 * have > voters.length) best = Math.max(best, index);
  }
  return best;
}

/**
 * Naive: try every way the voters not yet heard from could still answer. Won if every
 * completion wins, lost if none does, otherwise still open.
 */
function naiveVote(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): 'won' | 'lost' | 'pending' {
  const silent = voters.filter((v) => !votes.has(v));
  let wins = 0;
  for (let mask = 0; mask < 1 << silent.length; mask++) {
    let granted = voters.filter((v) => votes.get(v) === true).length;
    for (let b = 0; b < silent.length; b++) if (mask & (1 << b)) granted++;
    if (2 * granted > voters.length) wins++;
  }
  if (wins === 1 << silent.length) return 'won';
  if (wins === 0) return 'lost';
  return 'pending';
}

describe('majority', () => {
  it('is the smallest number of voters that is more than half (so any two majorities share a voter)', () => {
    for (let n = 0; n <= 20; n++) {
      const m = majority(n);
      expect(2 * m).toBeGreaterThan(n);
      expect(2 * (m - 1)).toBeLessThanOrEqual(n);
    }
  });
});

describe('committedIndex', () => {
  it(`agrees with the naive definition on ${CASES} random inputs`, () => {
    const rng = new Rng(1);
    for (let c = 0; c < CASES; c++) {
      const { voters, others } = randomVoters(rng);
      const match = new Map<NodeId, number>();
      // Small index ranges make ties common; sometimes an index is missing (0).
      const top = rng.pick([1, 3, 10, 1000]);
      for (const id of [...voters, ...others]) if (rng.chance(0.9)) match.set(id, rng.int(top + 1));
      const matchOf = (id: NodeId) => match.get(id) ?? 0;
      const got = committedIndex(voters, matchOf);
      const want = naiveCommitted(voters, matchOf);
      expect(got, `voters ${JSON.stringify(voters)}, match ${JSON.stringify([...match])}`).toBe(want);
    }
  });

  it('ignores what non-voters (learners) hold', () => {
    const rng = new Rng(2);
    for (let c = 0; c < CASES; c++) {
      const { voters, others } = randomVoters(rng);
      const match = new Map<NodeId, number>(voters.map((v) => [v, rng.int(50)]));
      const before = committedIndex(voters, (id) => match.get(id) ?? 0);
      for (const o of others) match.set(o, 1000);
      expect(committedIndex(voters, (id) => match.get(id) ?? 0)).toBe(before);
    }
  });

  it('never goes back when any voter acknowledges more', () => {
    const rng = new Rng(3);
    for (let c = 0; c < CASES; c++) {
      const { voters } = randomVoters(rng);
      if (!voters.length) continue;
      const match = new Map<NodeId, number>(voters.map((v) => [v, rng.int(50)]));
      const before = committedIndex(voters, (id) => match.get(id)!);
      const v = rng.pick(voters);
      match.set(v, match.get(v)! + rng.int(10));
      expect(committedIndex(voters, (id) => match.get(id)!)).toBeGreaterThanOrEqual(before);
    }
  });

  it('is 0 without voters', () => {
    expect(committedIndex([], () => 7)).toBe(0);
  });
});

describe('voteResult', () => {
  it(`agrees with the naive definition on ${CASES} random inputs`, () => {
    const rng = new Rng(4);
    for (let c = 0; c < CASES; c++) {
      const { voters, others } = randomVoters(rng);
      const votes = new Map<NodeId, boolean>();
      for (const id of [...voters, ...others]) if (rng.chance(0.6)) votes.set(id, rng.chance(0.5));
      const got = voteResult(voters, votes);
      expect(got, `voters ${JSON.stringify(voters)}, votes ${JSON.stringify([...votes])}`).toBe(
        naiveVote(voters, votes),
      );
    }
  });

  it('counts only voters: grants from learners or strangers never win an election', () => {
    const rng = new Rng(5);
    for (let c = 0; c < CASES; c++) {
      const { voters, others } = randomVoters(rng);
      const votes = new Map<NodeId, boolean>();
      for (const v of voters) if (rng.chance(0.5)) votes.set(v, rng.chance(0.5));
      const before = voteResult(voters, votes);
      for (const o of others) votes.set(o, true);
      expect(voteResult(voters, votes)).toBe(before);
    }
  });

  it('a decided vote stays decided as more answers arrive', () => {
    const rng = new Rng(6);
    for (let c = 0; c < CASES; c++) {
      const { voters } = randomVoters(rng);
      const votes = new Map<NodeId, boolean>();
      let decided: 'won' | 'lost' | undefined;
      for (const v of rng.shuffle([...voters])) {
        votes.set(v, rng.chance(0.5));
        const r = voteResult(voters, votes);
        if (decided) expect(r).toBe(decided);
        else if (r !== 'pending') decided = r;
      }
      // Everyone answered: nothing is pending any more.
      if (voters.length) expect(voteResult(voters, votes)).not.toBe('pending');
    }
  });

  it('with no voters, nobody can win', () => {
    expect(voteResult([], new Map([[1, true]]))).toBe('lost');
  });
});

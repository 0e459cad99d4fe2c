import { describe, expect, it } from 'vitest';
import type { MemberInfo } from '../../src/consensus/consensus.js';
import { copyPlan } from '../../src/master/upload-replication.js';

const member = (id: number, voter = true): MemberInfo => ({
  id,
  address: `http://10.0.0.${id}:8080`,
  role: voter ? 'follower' : 'learner',
  voter,
  healthy: true,
});
const self = 'http://10.0.0.1:8080';

describe('how many masters hold an upload before it is acknowledged', () => {
  it('a majority of the voters, this master’s copy included', () => {
    expect(copyPlan([member(1), member(2), member(3)], self)).toEqual({
      peers: [
        { url: 'http://10.0.0.2:8080', voter: true },
        { url: 'http://10.0.0.3:8080', voter: true },
      ],
      needed: 2,
      selfVotes: true,
    });
    expect(
      copyPlan(
        [1, 2, 3, 4, 5].map((id) => member(id)),
        self,
      ).needed,
    ).toBe(3);
    expect(
      copyPlan(
        [1, 2, 3, 4].map((id) => member(id)),
        self,
      ).needed,
    ).toBe(3);
  });

  it('a single master holds it alone', () => {
    expect(copyPlan([member(1)], self)).toEqual({ peers: [], needed: 1, selfVotes: true });
    expect(copyPlan([], self)).toEqual({ peers: [], needed: 1, selfVotes: true });
  });

  it('a learner’s copy does not count toward the majority, though it gets one (voters first)', () => {
    const plan = copyPlan([member(1, false), member(4, false), member(2), member(3)], self);
    expect(plan.selfVotes).toBe(false);
    expect(plan.needed).toBe(2);
    expect(plan.peers.map((p) => p.url)).toEqual([
      'http://10.0.0.2:8080',
      'http://10.0.0.3:8080',
      'http://10.0.0.4:8080',
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { aheadOfUs, behindRules, FIRST_RULES, nextRules } from '../../src/state/rules.js';

describe('rules a cluster applies commands by', () => {
  it('moves to the newest rules every member knows, once all of them know newer ones', () => {
    expect(nextRules(1, 2, [2, 2])).toBe(2);
    expect(nextRules(1, 3, [2, 3])).toBe(2);
    // A master alone needs nobody's word.
    expect(nextRules(1, 2, [])).toBe(2);
  });

  it('stays while any member knows no newer rules, or has not said what it knows', () => {
    expect(nextRules(1, 2, [2, 1])).toBeUndefined();
    // Silent: a Weir from before the announcement, or a member not linked yet.
    expect(nextRules(1, 2, [2, undefined])).toBeUndefined();
    expect(nextRules(2, 2, [3, 3])).toBeUndefined();
  });

  it('never proposes going back', () => {
    expect(nextRules(3, 2, [2, 2])).toBeUndefined();
  });

  it('names a member that knows older rules than the cluster applies, and what to do', () => {
    expect(behindRules(3, 2, 2)).toBeUndefined();
    expect(behindRules(3, 3, 2)).toBeUndefined();
    expect(behindRules(3, undefined, FIRST_RULES)).toBeUndefined();
    expect(behindRules(3, undefined, 2)).toBe(
      'master 3 runs an older Weir: it knows the rules of version 1 and this cluster applies version 2, which it would apply differently from the others, so it is sent no entries of the log; upgrade it, and it catches up',
    );
  });

  it('tells a master whose state follows rules newer than it knows', () => {
    expect(aheadOfUs(2, 2)).toBeUndefined();
    expect(aheadOfUs(3, 2)).toBe(
      'the cluster applies the rules of version 3, newer than this Weir knows (2): this master applies some entries differently from the others; upgrade it',
    );
  });
});

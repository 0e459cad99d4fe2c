import { describe, expect, it } from 'vitest';
import { blockedAbove, lookUpUser, permits, R, W, X, type Owned } from '../../src/worker/executor-user.js';

const user = { name: 'weir-exec', uid: 999, gid: 995 };
const root = (mode: number): Owned => ({ uid: 0, gid: 0, mode });

describe('--executor-user', () => {
  it('is refused on a worker that does not run as root, naming what to do', () => {
    expect(() => lookUpUser('weir-exec', 1000)).toThrow(/needs a worker running as root.*uid 1000.*leave the flag out/);
  });

  it('is refused for a name that is no user name, before the system is asked', () => {
    expect(() => lookUpUser('-rf', 0)).toThrow(/takes a user name/);
    expect(() => lookUpUser('a:b', 0)).toThrow(/takes a user name/);
  });

  it('is refused for a user the system does not have, saying how to make one', () => {
    expect(() => lookUpUser('no-such-weir-user', 0)).toThrow(/no user 'no-such-weir-user'.*useradd --system/);
  });

  it('is refused for root itself', () => {
    expect(() => lookUpUser('root', 0)).toThrow(/uid or gid 0/);
  });

  it("reads a file's mode as that user would: owner, then group, then others", () => {
    expect(permits(root(0o644), user, R)).toBe(true);
    expect(permits(root(0o640), user, R)).toBe(false);
    expect(permits({ uid: 0, gid: 995, mode: 0o640 }, user, R)).toBe(true);
    expect(permits({ uid: 999, gid: 0, mode: 0o700 }, user, R | W | X)).toBe(true);
    expect(permits(root(0o711), user, X)).toBe(true);
    expect(permits(root(0o711), user, R)).toBe(false);
  });

  it('finds the first directory above a path that the user cannot pass through', () => {
    const modes: Record<string, number> = {
      '/': 0o755,
      '/root': 0o700,
      '/root/w': 0o755,
      '/srv': 0o755,
      '/srv/w': 0o711,
    };
    const stat = (p: string) => root(modes[p]!);
    expect(blockedAbove('/root/w/data', user, stat)).toBe('/root');
    expect(blockedAbove('/srv/w/data', user, stat)).toBeUndefined();
  });
});

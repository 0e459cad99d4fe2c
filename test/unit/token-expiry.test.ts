import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenExpiry } from '../../src/common/token-expiry.js';
import { TokenSource } from '../../src/common/auth.js';

describe('a long-lived connection held to its token', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('ends when the token expires', () => {
    const ended = vi.fn();
    new TokenExpiry(1_000_000 + 5000, ended);
    vi.advanceTimersByTime(4999);
    expect(ended).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(ended).toHaveBeenCalledOnce();
  });

  it('lives until a fresh token expires, once one is checked', () => {
    const ended = vi.fn();
    const expiry = new TokenExpiry(1_000_000 + 5000, ended);
    vi.advanceTimersByTime(4000);
    expiry.renew(Date.now() + 5000);
    vi.advanceTimersByTime(4000);
    expect(ended).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1000);
    expect(ended).toHaveBeenCalledOnce();
  });

  it('never ends for a token without expiry (an open cluster), nor once stopped', () => {
    const open = vi.fn();
    new TokenExpiry(undefined, open);
    const stopped = vi.fn();
    const expiry = new TokenExpiry(1_000_000 + 5000, stopped);
    expiry.stop();
    expiry.renew(Date.now() + 1000);
    vi.advanceTimersByTime(60_000);
    expect(open).not.toHaveBeenCalled();
    expect(stopped).not.toHaveBeenCalled();
  });

  it('reaches an expiry beyond what one timer holds (a token of a year)', () => {
    const ended = vi.fn();
    const year = 365 * 86_400_000;
    new TokenExpiry(1_000_000 + year, ended);
    vi.advanceTimersByTime(year - 1);
    expect(ended).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(ended).toHaveBeenCalledOnce();
  });
});

describe('a node’s own token source', () => {
  it('says when it next mints a token: a third of a short life before the expiry, a minute of a long one', async () => {
    const short = new TokenSource('s'.repeat(32), undefined, 'w', {}, 9000);
    const first = await short.header();
    const at = short.renewsAt()!;
    expect(at - Date.now()).toBeGreaterThan(5000);
    expect(at - Date.now()).toBeLessThanOrEqual(6000);
    expect(await short.header()).toBe(first);
    const long = new TokenSource('s'.repeat(32), undefined, 'w');
    await long.header();
    expect(long.renewsAt()! - Date.now()).toBeGreaterThan(3_600_000 - 61_000);
  });

  it('renews a full margin before the exp the token carries, though exp counts whole seconds from a floored now', async () => {
    vi.useFakeTimers({ now: 1_700_000_000_999 });
    try {
      const short = new TokenSource('s'.repeat(32), undefined, 'w', {}, 3000);
      const token = (await short.header())!.replace('Bearer ', '');
      const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
      // exp is 2.001 s away, not 3: a renewal at now + 2 s would race it by a millisecond.
      expect(exp * 1000 - Date.now()).toBe(2001);
      expect(exp * 1000 - short.renewsAt()!).toBe(1000);
    } finally {
      vi.useRealTimers();
    }
  });

  it('never renews a fixed token, and has none on an open cluster', () => {
    expect(new TokenSource('s'.repeat(32), 'a.fixed.token', 'cli').renewsAt()).toBeUndefined();
    expect(new TokenSource(undefined, undefined, 'w').renewsAt()).toBeUndefined();
  });
});

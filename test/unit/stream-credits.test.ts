import { describe, expect, it } from 'vitest';
import { ReceiveWindow, SendCredits } from '../../src/stream/credits.js';

describe('SendCredits', () => {
  it('sends nothing before the first grant', () => {
    expect(new SendCredits().trySend()).toBe(0);
  });

  it('sends only what it holds credits for, and as much of a batch as it can', () => {
    const s = new SendCredits();
    s.grant(3);
    expect(s.trySend()).toBe(1);
    expect(s.trySend(5)).toBe(2);
    expect(s.trySend()).toBe(0);
    s.grant(4);
    expect(s.available).toBe(4);
  });

  it('forgets its credits on reset (a new connection) and refuses nonsense grants', () => {
    const s = new SendCredits();
    s.grant(10);
    s.reset();
    expect(s.available).toBe(0);
    expect(() => s.grant(-1)).toThrow(RangeError);
    expect(() => s.grant(1.5)).toThrow(RangeError);
  });
});

describe('ReceiveWindow', () => {
  it('grants its whole buffer when a sender connects', () => {
    expect(new ReceiveWindow(8).open()).toBe(8);
  });

  it('grants freed slots back in batches of half the buffer by default', () => {
    const r = new ReceiveWindow(8);
    r.open();
    r.received(8);
    expect(r.consumed(1)).toBe(0);
    expect(r.consumed(2)).toBe(0);
    expect(r.consumed(1)).toBe(4);
    expect(r.consumed(4)).toBe(4);
    expect(r.buffered).toBe(0);
  });

  it('grants every free slot once its buffer empties, short of a batch or not: a drained channel is at rest', () => {
    const r = new ReceiveWindow(8);
    r.open();
    expect(r.atRest).toBe(true);
    r.received(3);
    expect(r.atRest).toBe(false);
    expect(r.consumed(2)).toBe(0);
    expect(r.consumed(1)).toBe(3);
    expect(r.atRest).toBe(true);
  });

  it('takes another batch size', () => {
    const r = new ReceiveWindow(10, 1);
    r.open();
    r.received(2);
    expect(r.consumed(1)).toBe(1);
    expect(() => new ReceiveWindow(10, 11)).toThrow(RangeError);
    expect(() => new ReceiveWindow(0)).toThrow(RangeError);
  });

  it('fails loudly when a sender overruns its credits, or more is consumed than arrived', () => {
    const r = new ReceiveWindow(4);
    r.open();
    expect(() => r.received(5)).toThrow(/overran its credits/);
    r.received(2);
    expect(() => r.consumed(3)).toThrow(RangeError);
  });

  it('on a new connection, grants what is free and voids the old credits', () => {
    const r = new ReceiveWindow(8);
    r.open();
    r.received(5); // the old sender still held 3
    expect(r.open()).toBe(3);
    expect(() => r.received(4)).toThrow(/overran/);
  });

  it('never lets the buffer exceed its capacity, and never stalls, with a sender and receiver in step', () => {
    const capacity = 16;
    const s = new SendCredits();
    const r = new ReceiveWindow(capacity);
    s.grant(r.open());
    let sent = 0;
    let consumed = 0;
    let maxBuffered = 0;
    // A fast sender and a receiver that drains 3 events a round: the sender is held to its credits.
    for (let round = 0; round < 1000; round++) {
      const n = s.trySend(10);
      r.received(n);
      sent += n;
      maxBuffered = Math.max(maxBuffered, r.buffered);
      const k = Math.min(3, r.buffered);
      consumed += k;
      s.grant(r.consumed(k));
    }
    expect(maxBuffered).toBeLessThanOrEqual(capacity);
    expect(consumed).toBe(3000);
    expect(sent - consumed).toBe(r.buffered);
  });
});

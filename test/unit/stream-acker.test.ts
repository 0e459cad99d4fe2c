import { describe, expect, it } from 'vitest';
import { Acker, TupleIdSource, tupleIdHex, xorIds, type TupleId } from '../../src/stream/acker.js';

/** A deterministic random source: a 32-bit LCG scaled to [0, 1). */
const seeded = (seed: number) => () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 0x1_0000_0000;
};
const xorAll = (...ids: TupleId[]) => ids.reduce(xorIds, { hi: 0, lo: 0 });

describe('tuple ids', () => {
  it('draws 64-bit ids as two uint32 halves from the injected source', () => {
    const ids = new TupleIdSource(seeded(1));
    const a = ids.next();
    expect(Number.isInteger(a.hi) && a.hi >= 0 && a.hi < 2 ** 32).toBe(true);
    expect(Number.isInteger(a.lo) && a.lo >= 0 && a.lo < 2 ** 32).toBe(true);
    expect(new TupleIdSource(seeded(1)).next()).toEqual(a);
    expect(ids.next()).not.toEqual(a);
  });

  it('never gives the id 0, which would vanish from the XOR', () => {
    const zeroThenOne = [0, 0, 0.5, 0];
    expect(new TupleIdSource(() => zeroThenOne.shift()!).next()).toEqual({ hi: 0x8000_0000, lo: 0 });
    expect(() => new TupleIdSource(() => 0).next()).toThrow(/not random/);
  });

  it('prints as 16 hex digits and XORs half by half', () => {
    expect(tupleIdHex({ hi: 0xdeadbeef, lo: 1 })).toBe('deadbeef00000001');
    expect(xorIds({ hi: 0xffff_ffff, lo: 0b1100 }, { hi: 0x0f0f_0f0f, lo: 0b1010 })).toEqual({
      hi: 0xf0f0_f0f0,
      lo: 0b0110,
    });
  });
});

describe('Acker: the XOR ack tree', () => {
  const ids = new TupleIdSource(seeded(42));

  it('completes a root when every tuple of its tree is acked', () => {
    const acker = new Acker<number>();
    const [t1, t2, c1] = [ids.next(), ids.next(), ids.next()];
    // The spout sends t1 and t2; the bolt on t1 anchors child c1 and acks t1; then c1 and t2 are acked.
    expect(acker.track('r', 3, 1000, xorAll(t1, t2))).toBeUndefined();
    expect(acker.update('r', xorAll(t1, c1))).toBeUndefined();
    expect(acker.update('r', c1)).toBeUndefined();
    expect(acker.pending).toBe(1);
    expect(acker.update('r', t2)).toEqual({ rootId: 'r', spout: 3, startedMs: 1000 });
    expect(acker.pending).toBe(0);
    expect(acker.stats.completed).toBe(1);
  });

  it('completes whatever order the updates arrive in, even before the spout tracks the root', () => {
    const [t, c] = [ids.next(), ids.next()];
    const updates = [xorAll(t, c), c];
    for (const order of [updates, [...updates].reverse()]) {
      const acker = new Acker<string>();
      for (const u of order) expect(acker.update('r', u)).toBeUndefined();
      expect(acker.track('r', 'spout-0', 5, t)).toEqual({ rootId: 'r', spout: 'spout-0', startedMs: 5 });
    }
  });

  it('lets the spout report its ids by update instead of at track', () => {
    const acker = new Acker();
    const t = ids.next();
    acker.track('r', 0, 0);
    expect(acker.update('r', t)).toBeUndefined();
    expect(acker.update('r', t)).toMatchObject({ rootId: 'r' });
  });

  it('does not complete a root that sent no tuples: the spout acks those itself', () => {
    const acker = new Acker();
    expect(acker.track('r', 0, 0)).toBeUndefined();
    expect(acker.pending).toBe(1);
  });

  it('keeps roots apart', () => {
    const acker = new Acker();
    const [a, b] = [ids.next(), ids.next()];
    acker.track('ra', 0, 0, a);
    acker.track('rb', 1, 0, b);
    expect(acker.update('rb', a)).toBeUndefined();
    expect(acker.update('ra', a)).toMatchObject({ rootId: 'ra', spout: 0 });
    expect(acker.pending).toBe(1);
  });

  it('hands a failed root back for replay and forgets it', () => {
    const acker = new Acker();
    const t = ids.next();
    acker.track('r', 2, 7, t);
    expect(acker.fail('r')).toEqual({ rootId: 'r', spout: 2, startedMs: 7 });
    expect(acker.fail('r')).toBeUndefined();
    expect(acker.pending).toBe(0);
    expect(acker.stats.failed).toBe(1);
  });

  it('completes a random tree of many tuples, acked in random order, only at its last ack', () => {
    const acker = new Acker();
    const random = seeded(99);
    const src = new TupleIdSource(random);
    const root = src.next();
    acker.track('r', 0, 0, root);
    // Each tuple, when processed, anchors 1-2 children (none after the 200th) and acks itself in one update.
    const open: TupleId[] = [root];
    let acked = 0;
    while (open.length > 0) {
      const [t] = open.splice(Math.floor(random() * open.length), 1);
      const children = acked < 200 ? [src.next(), src.next()].slice(0, 1 + (acked % 2)) : [];
      open.push(...children);
      const done = acker.update('r', xorAll(t!, ...children));
      acked++;
      expect(done !== undefined).toBe(open.length === 0);
    }
    expect(acked).toBeGreaterThan(200);
  });
});

describe('Acker: expiry', () => {
  const ids = new TupleIdSource(seeded(7));

  it('hands back roots older than the timeout, oldest first, and keeps the young ones', () => {
    const acker = new Acker();
    acker.track('old', 0, 1000, ids.next());
    acker.track('mid', 1, 2000, ids.next());
    acker.track('new', 0, 3000, ids.next());
    expect(acker.expire(3500, 1500)).toEqual([
      { rootId: 'old', spout: 0, startedMs: 1000 },
      { rootId: 'mid', spout: 1, startedMs: 2000 },
    ]);
    expect(acker.pending).toBe(1);
    expect(acker.expire(3500, 1500)).toEqual([]);
    expect(acker.expire(4000, 1000)).toHaveLength(1);
    expect(acker.stats.expired).toBe(3);
  });

  it('drops stray updates for roots that already left, counting them as orphans', () => {
    const acker = new Acker();
    const t = ids.next();
    acker.track('r', 0, 0, t);
    acker.fail('r');
    acker.update('r', t); // an ack still in flight when the root failed
    expect(acker.pending).toBe(1);
    expect(acker.expire(60_000, 30_000)).toEqual([]);
    expect(acker.pending).toBe(0);
    expect(acker.stats.orphaned).toBe(1);
  });

  it('ages a root from when its entry was created, so a clock stepping back cannot hide it', () => {
    const acker = new Acker();
    acker.track('a', 0, 10_000, ids.next());
    acker.track('b', 0, 5_000, ids.next()); // born at 10_000 on the acker's clock
    expect(acker.expire(14_000, 5_000).map((r) => r.rootId)).toEqual([]);
    expect(acker.expire(15_000, 5_000).map((r) => r.rootId)).toEqual(['a', 'b']);
  });
});

import { describe, expect, it } from 'vitest';
import { EdgeRouter, fieldsTarget, fnv1a32 } from '../../src/stream/grouping.js';

const routeAll = (router: EdgeRouter, events: Record<string, unknown>[]) => events.map((e) => [...router.route(e)]);

describe('fnv1a32', () => {
  it('matches the published FNV-1a test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('hashes the UTF-8 bytes, including characters outside the BMP', () => {
    // 'é' is C3 A9 in UTF-8; hashing those two bytes by hand:
    const byHand = [0xc3, 0xa9].reduce((h, b) => Math.imul(h ^ b, 0x01000193) >>> 0, 0x811c9dc5);
    expect(fnv1a32('é')).toBe(byHand);
    const emoji = [0xf0, 0x9f, 0x98, 0x80].reduce((h, b) => Math.imul(h ^ b, 0x01000193) >>> 0, 0x811c9dc5);
    expect(fnv1a32('😀')).toBe(emoji);
  });
});

describe('fields grouping', () => {
  it('is a pure function of the chosen field values: same instance in every process, every run', () => {
    // Pinned values: a change here would send keys to different instances than older workers.
    expect(fnv1a32('["apple"]')).toBe(fnv1a32(JSON.stringify(['apple'])));
    expect([...Array(8).keys()].map((i) => fieldsTarget({ word: `w${i}` }, ['word'], 4))).toEqual(
      [...Array(8).keys()].map((i) => fnv1a32(`["w${i}"]`) % 4),
    );
    expect(fieldsTarget({ word: 'apple', n: 1 }, ['word'], 7)).toBe(fieldsTarget({ n: 2, word: 'apple' }, ['word'], 7));
  });

  it('uses the values of every chosen field, in order, with missing fields as null', () => {
    const h = (s: string) => fnv1a32(s) % 1000;
    expect(fieldsTarget({ a: 1, b: 'x' }, ['a', 'b'], 1000)).toBe(h('[1,"x"]'));
    expect(fieldsTarget({ a: 1, b: 'x' }, ['b', 'a'], 1000)).toBe(h('["x",1]'));
    expect(fieldsTarget({}, ['a'], 1000)).toBe(h('[null]'));
    expect(fieldsTarget({ a: null }, ['a'], 1000)).toBe(fieldsTarget({}, ['a'], 1000));
  });

  it('spreads many keys over every instance', () => {
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[fieldsTarget({ k: `key-${i}` }, ['k'], 8)]++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });

  it('routes through EdgeRouter to one instance per event', () => {
    const r = new EdgeRouter({ from: 's', grouping: 'fields', fields: ['k'] }, 5);
    const events = [{ k: 'a' }, { k: 'b' }, { k: 'a' }];
    const targets = routeAll(r, events);
    expect(targets.map((t) => t.length)).toEqual([1, 1, 1]);
    expect(targets[0]).toEqual(targets[2]);
    expect(targets[0]).toEqual([fieldsTarget({ k: 'a' }, ['k'], 5)]);
  });
});

describe('EdgeRouter', () => {
  it('shuffles round-robin per sender, starting at the sender index', () => {
    const e = {};
    expect(routeAll(new EdgeRouter({ from: 's', grouping: 'shuffle' }, 3), [e, e, e, e])).toEqual([[0], [1], [2], [0]]);
    expect(routeAll(new EdgeRouter({ from: 's', grouping: 'shuffle' }, 3, 4), [e, e, e])).toEqual([[1], [2], [0]]);
  });

  it('sends to every instance for all, and to instance 0 for global', () => {
    expect([...new EdgeRouter({ from: 's', grouping: 'all' }, 4).route({})]).toEqual([0, 1, 2, 3]);
    expect([...new EdgeRouter({ from: 's', grouping: 'global' }, 4).route({ k: 'x' })]).toEqual([0]);
  });

  it('returns frozen shared arrays, so routing allocates nothing per event', () => {
    const r = new EdgeRouter({ from: 's', grouping: 'global' }, 2);
    expect(r.route({})).toBe(r.route({}));
    expect(Object.isFrozen(r.route({}))).toBe(true);
  });

  it('refuses a parallelism below 1', () => {
    expect(() => new EdgeRouter({ from: 's', grouping: 'all' }, 0)).toThrow(RangeError);
  });
});

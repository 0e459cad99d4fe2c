import { describe, expect, it } from 'vitest';
import { EdgeRouter, fieldsTarget, fnv1a32 } from '../../src/stream/grouping.js';

/** Where each event of `batch` goes, in batch order. */
function targetsOf(router: EdgeRouter, batch: Record<string, unknown>[]): number[][] {
  const to = batch.map((): number[] => []);
  for (const [target, events] of router.split(batch)) for (const e of events) to[batch.indexOf(e)]!.push(target);
  return to;
}

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

  it('splits a batch through EdgeRouter: each event to the one instance of its key, in batch order', () => {
    const r = new EdgeRouter({ from: 's', grouping: 'fields', fields: ['k'] }, 5);
    const events = [{ k: 'a' }, { k: 'b' }, { k: 'a' }, { k: 'c', n: 1 }];
    const targets = targetsOf(r, events);
    expect(targets.map((t) => t.length)).toEqual([1, 1, 1, 1]);
    expect(targets[0]).toEqual(targets[2]);
    expect(targets[0]).toEqual([fieldsTarget({ k: 'a' }, ['k'], 5)]);
    for (const [target, part] of r.split(events)) {
      expect(part.length).toBeGreaterThan(0);
      expect(part).toEqual(events.filter((e) => fieldsTarget(e, ['k'], 5) === target));
    }
  });

  it('hashes a single string field as the JSON array of it, like every other value', () => {
    expect(fieldsTarget({ k: 'say "hi"' }, ['k'], 1000)).toBe(fnv1a32(JSON.stringify(['say "hi"'])) % 1000);
    expect(fieldsTarget({ k: 7 }, ['k'], 1000)).toBe(fnv1a32('[7]') % 1000);
  });
});

describe('EdgeRouter', () => {
  it('shuffles whole batches round-robin per sender, starting at the sender index', () => {
    const batch = [{}, {}];
    const r = new EdgeRouter({ from: 's', grouping: 'shuffle' }, 3);
    expect([0, 1, 2, 3].map(() => r.split(batch).map(([t]) => t))).toEqual([[0], [1], [2], [0]]);
    const from4 = new EdgeRouter({ from: 's', grouping: 'shuffle' }, 3, 4);
    expect([0, 1, 2].map(() => from4.split(batch).map(([t]) => t))).toEqual([[1], [2], [0]]);
    expect(r.split(batch)[0]![1]).toBe(batch); // the batch itself, not a copy
  });

  it('sends the batch to every instance for all, and to instance 0 for global', () => {
    const batch = [{ k: 'x' }];
    expect(new EdgeRouter({ from: 's', grouping: 'all' }, 4).split(batch)).toEqual([0, 1, 2, 3].map((i) => [i, batch]));
    expect(new EdgeRouter({ from: 's', grouping: 'global' }, 4).split(batch)).toEqual([[0, batch]]);
  });

  it('sends nothing for an empty batch', () => {
    for (const grouping of ['shuffle', 'global', 'all'] as const) {
      expect(new EdgeRouter({ from: 's', grouping }, 3).split([])).toEqual([]);
    }
    expect(new EdgeRouter({ from: 's', grouping: 'fields', fields: ['k'] }, 3).split([])).toEqual([]);
  });

  it('refuses a parallelism below 1', () => {
    expect(() => new EdgeRouter({ from: 's', grouping: 'all' }, 0)).toThrow(RangeError);
  });
});

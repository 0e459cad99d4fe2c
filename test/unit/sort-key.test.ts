import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/common/mulberry32.js';
import { compareKeys } from '../../src/ops/keys.js';
import { keyOfRow, sortKey } from '../../src/ops/sort-key.js';

const sign = (n: number) => Math.sign(n) + 0;

/** What the pager did before the index: a stable sort by key of the rows read task by task. */
const byCompareKeys = (a: Row, b: Row) => compareKeys(a.key, b.key) || a.idx - b.idx || a.pos - b.pos;
interface Row {
  key: unknown;
  idx: number;
  pos: number;
}

/** Random keys of every kind the order knows, with the awkward values over-represented. */
function randomKey(rand: () => number, depth = 0): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const str = () => {
    const units = [0, 1, 0x41, 0x61, 0x7e, 0x7f, 0x80, 0xe9, 0x407e, 0x407f, 0xd800, 0xdc00, 0xfffe, 0xffff];
    const n = Math.floor(rand() * 5);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(rand() < 0.6 ? pick(units) : Math.floor(rand() * 0x10000));
    return s;
  };
  switch (Math.floor(rand() * (depth > 1 ? 6 : 8))) {
    case 0:
      return pick([0, -0, 1, -1, 0.5, -0.5, 2 ** 53, -(2 ** 53), 1e308, -1e308, 5e-324, -5e-324, 10, 9, 100]);
    case 1:
      return (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 4);
    case 2:
      return Math.floor((rand() - 0.5) * 1000);
    case 3:
    case 4:
      return str();
    case 5:
      return pick([null, true, false, undefined]);
    case 6:
      return Array.from({ length: Math.floor(rand() * 3) }, () => randomKey(rand, depth + 1));
    default:
      return { [str()]: randomKey(rand, depth + 1) };
  }
}

describe('sortKey: result rows in the order compareKeys gives them', () => {
  it('orders any two rows as compareKeys (then task, then position) does, over 200,000 random pairs', () => {
    const rand = mulberry32(16);
    for (let i = 0; i < 200_000; i++) {
      const a: Row = { key: randomKey(rand), idx: Math.floor(rand() * 3), pos: Math.floor(rand() * 3) };
      const b: Row = rand() < 0.1 ? { ...a, idx: Math.floor(rand() * 3) } : { key: randomKey(rand), idx: 1, pos: 0 };
      const want = sign(byCompareKeys(a, b));
      const got = sign(Buffer.compare(sortKey(a.key, a.idx, a.pos), sortKey(b.key, b.idx, b.pos)));
      if (got !== want) expect({ a, b, got }).toEqual({ a, b, got: want });
    }
  });

  it('sorts a job of random rows exactly as the stable sort by compareKeys did', () => {
    const rand = mulberry32(7);
    const rows: Row[] = [];
    for (let idx = 0; idx < 20; idx++) {
      for (let pos = 0; pos < 500; pos++) rows.push({ key: randomKey(rand), idx, pos });
    }
    const want = [...rows].sort((a, b) => compareKeys(a.key, b.key));
    const got = [...rows].sort((a, b) => Buffer.compare(sortKey(a.key, a.idx, a.pos), sortKey(b.key, b.idx, b.pos)));
    expect(got).toEqual(want);
  });

  it('puts numbers before strings before everything else, and -0 with 0', () => {
    const keys = [null, 'a', '', [1], -1, 0, true, 1e9, { a: 1 }];
    const sorted = [...keys].sort((a, b) => Buffer.compare(sortKey(a, 0, 0), sortKey(b, 0, 0)));
    expect(sorted).toEqual([...keys].sort(compareKeys));
    expect(sortKey(-0, 3, 4)).toEqual(sortKey(0, 3, 4));
  });

  it('orders a string before every longer string it starts, whatever follows it', () => {
    for (const [a, b] of [
      ['a', 'a\u0000'],
      ['', '\u0000'],
      ['ab', 'ab\uffff'],
      ['x', 'x\u0001'],
    ] as const) {
      expect(Buffer.compare(sortKey(a, 0xffff_ffff, 0xffff_ffff), sortKey(b, 0, 0))).toBe(-1);
    }
  });

  it('costs a byte a character for ASCII keys', () => {
    expect(sortKey('hello', 0, 0).length).toBe(1 + 5 + 1 + 8);
  });

  it('reads the key of a row, and none of a row that is not an object', () => {
    expect(keyOfRow({ key: 'k', value: 1 })).toBe('k');
    expect(keyOfRow(null)).toBeUndefined();
    expect(keyOfRow(3)).toBeUndefined();
  });
});

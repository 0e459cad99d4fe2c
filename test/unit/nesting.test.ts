// Values from outside are bounded in depth where they come in, by walks that do not recurse:
// deep enough to overflow a stack, a value is refused before anything recursive meets it.
import { describe, expect, it } from 'vitest';
import { jsonNestsDeeper, MAX_NESTING, nestsDeeper, tooDeep } from '../../src/protocol/nesting.js';

const nested = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
};

describe('JSON text nesting deeper than the bound', () => {
  it('is told from the brackets alone, strings aside', () => {
    expect(jsonNestsDeeper(JSON.stringify(nested(MAX_NESTING)))).toBe(false);
    expect(jsonNestsDeeper(JSON.stringify(nested(MAX_NESTING + 1)))).toBe(true);
    // Brackets inside strings (escaped quotes too) are text, not nesting.
    const text = JSON.stringify({ s: '['.repeat(10_000) + '\\"{{{', t: '"]]]' });
    expect(jsonNestsDeeper(text)).toBe(false);
    expect(jsonNestsDeeper('[[[', 2)).toBe(true);
  });

  it('costs no stack, however deep the text', () => {
    expect(jsonNestsDeeper('['.repeat(5_000_000))).toBe(true);
  });
});

describe('a value nesting deeper than the bound', () => {
  it('is told by a walk that does not recurse, arrays, objects and maps alike', () => {
    expect(nestsDeeper(nested(MAX_NESTING))).toBe(false);
    expect(nestsDeeper(nested(MAX_NESTING + 1))).toBe(true);
    expect(nestsDeeper(nested(1_000_000))).toBe(true);
    expect(nestsDeeper(new Map([['k', nested(MAX_NESTING)]]))).toBe(true);
    expect(nestsDeeper('[[[[')).toBe(false);
    expect(nestsDeeper(Buffer.alloc(10))).toBe(false);
  });

  it('counts a cycle as too deep (it is endless)', () => {
    const a: unknown[] = [];
    a.push(a);
    expect(nestsDeeper(a)).toBe(true);
  });

  it('is refused with a message that says what to do', () => {
    expect(tooDeep('the request body')).toBe(
      `the request body nests arrays and objects more than ${MAX_NESTING} deep; flatten it`,
    );
  });
});

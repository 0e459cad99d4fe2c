import { describe, expect, it } from 'vitest';
import { etagOf, matches } from '../../src/master/etag.js';

describe('ETags of JSON answers (the dashboard polls with If-None-Match)', () => {
  it('gives equal bodies equal weak tags, and different bodies different ones', () => {
    expect(etagOf('{"a":1}')).toBe(etagOf(Buffer.from('{"a":1}')));
    expect(etagOf('{"a":1}')).not.toBe(etagOf('{"a":2}'));
    expect(etagOf('{}')).toMatch(/^W\/"[A-Za-z0-9_-]+"$/);
  });

  it('matches a tag alone, in a list, as a strong tag, or *; nothing else', () => {
    const tag = etagOf('x');
    expect(matches(tag, tag)).toBe(true);
    expect(matches(`W/"other", ${tag}`, tag)).toBe(true);
    expect(matches(tag.slice(2), tag)).toBe(true);
    expect(matches('*', tag)).toBe(true);
    expect(matches(undefined, tag)).toBe(false);
    expect(matches('', tag)).toBe(false);
    expect(matches(etagOf('y'), tag)).toBe(false);
  });
});

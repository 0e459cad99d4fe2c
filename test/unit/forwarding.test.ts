// Which forwarded requests go to the pool of requests that may stay open for a minute: decided
// from the query as the route reads it, however it is spelled.
import { describe, expect, it } from 'vitest';
import { longLived } from '../../src/master/forwarding.js';
import { parse } from 'node:querystring';

describe('a forwarded request that may stay open until its job ends', () => {
  it.each(['follow=1', '%66ollow=1', 'wait_ms=60000', 'wait_ms=+60000', 'wait_ms=%36%30000', 'wait_ms=1&wait_ms=2'])(
    'is told by its parsed query: %s',
    (q) => expect(longLived(parse(q))).toBe(true),
  );

  it.each(['', 'limit=10', 'consistency=stale', 'cursor=wait_ms'])('and a short one too: %s', (q) =>
    expect(longLived(parse(q))).toBe(false),
  );
});

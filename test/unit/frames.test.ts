// Every frame between nodes is checked where it is decoded: these are the frames the nodes
// themselves build (which must pass) and the ones built to break a listener (which must not).
import { Packr } from 'msgpackr';
import { holdsProtoKey } from '../../src/protocol/json-values.js';
import { describe, expect, it } from 'vitest';
import { decodeFrame as decodePeer, encodeFrame as encodePeer } from '../../src/consensus/peer-frame.js';
import { decodeFrame as decodeLink, encodeFrame as encodeLink } from '../../src/protocol/stream-link.js';
import { decodeToMaster, decodeToWorker, encode } from '../../src/protocol/worker-channel.js';

const raw = new Packr({ useRecords: true, mapsAsObjects: true });

describe('the worker channel', () => {
  it("takes a stream instance's assignment (no timeout, no memory limit of its own)", () => {
    const frame = encode({
      t: 'assign',
      tasks: [
        { job_id: 'job-1', idx: 0, attempt: 1, timeout_ms: 0, memory_mb: 0, spec: { operation: 'stream' } as never },
      ],
    });
    expect(decodeToWorker(frame)).toMatchObject({ ok: true });
  });

  it('takes the attempts a worker says it began, and refuses a began frame whose attempts are not attempts', () => {
    expect(decodeToMaster(encode({ t: 'began', tasks: [{ job_id: 'job-1', idx: 2, attempt: 1 }] }))).toEqual({
      ok: true,
      value: { t: 'began', tasks: [{ job_id: 'job-1', idx: 2, attempt: 1 }] },
    });
    for (const tasks of [
      [{ job_id: 'job-1', idx: 2, attempt: 0 }],
      [{ job_id: '../x', idx: 0, attempt: 1 }],
      'all',
      null,
    ]) {
      expect(decodeToMaster(raw.pack({ t: 'began', tasks })).ok, JSON.stringify(tasks)).toBe(false);
    }
  });

  it('refuses a report whose job_id is not an id, naming the field', () => {
    const d = decodeToMaster(
      raw.pack({ t: 'report', reports: [{ job_id: true, idx: 0, attempt: 1, ok: true, result_json: '[]' }] }),
    );
    expect(d).toMatchObject({ ok: false });
  });

  it('refuses a report whose results nest deeper than 100 (applied, they would overflow the masters’ stacks)', () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const d = decodeToMaster(
      encode({ t: 'report', reports: [{ job_id: 'job-1', idx: 0, attempt: 1, ok: true, result_json: `[${deep}]` }] }),
    );
    expect(d).toEqual({
      ok: false,
      error: '/reports/0/result_json: its results nest arrays and objects more than 100 deep',
    });
  });

  it('takes a hello naming the jobs whose map outputs the worker keeps, and one from before it named them', () => {
    expect(decodeToMaster(encode({ t: 'hello', running: [], unacked: [], holds: ['job-1'] }))).toMatchObject({
      ok: true,
      value: { holds: ['job-1'] },
    });
    expect(decodeToMaster(encode({ t: 'hello', running: [], unacked: [] })).ok).toBe(true);
  });

  it.each([
    ['random bytes', Buffer.from([0x92])],
    ['a frame of no known kind', raw.pack({ t: 'format' })],
    ['a negative attempt', raw.pack({ t: 'hello', running: [{ job_id: 'j', idx: 0, attempt: -1 }], unacked: [] })],
    ['a hold that is no job id', raw.pack({ t: 'hello', running: [], unacked: [], holds: ['../etc'] })],
    ['too many holds', raw.pack({ t: 'hello', running: [], unacked: [], holds: Array(10_001).fill('j') })],
  ])('refuses %s', (_what, bytes) => {
    expect(decodeToMaster(bytes).ok).toBe(false);
  });
});

describe('a frame nesting arrays and objects deeper than any frame a node sends', () => {
  // msgpack of 500 arrays one inside the other: small, and deep enough that checking it against
  // a schema (or packing what it carries again, or applying it) recurses 500 times.
  const deep = Buffer.concat([Buffer.alloc(500, 0x91), Buffer.from([0x01])]);

  it.each([
    ['on a worker channel, to a master', () => decodeToMaster(deep), 'error'],
    ['on a worker channel, to a worker', () => decodeToWorker(deep), 'error'],
    ['on a stream link', () => decodeLink(deep), 'error'],
    ['on the Raft stream', () => decodePeer(deep), 'error'],
  ])('is refused %s, before its schema is checked', (_where, decode, field) => {
    const d = decode() as Record<string, unknown>;
    expect(String(d[field])).toMatch(/^the frame nests arrays and objects more than \d+ deep/);
  });
});

describe('the Raft stream', () => {
  const vote = { type: 'vote' as const, from: 2, to: 1, term: 3, lastIndex: 10, lastTerm: 2 };

  it('takes what masters send: votes, appends of commands and conf changes, snapshots in chunks', () => {
    const app = {
      type: 'app' as const,
      from: 2,
      to: 1,
      term: 3,
      prevIndex: 4,
      prevTerm: 2,
      commit: 4,
      entries: [
        { index: 5, term: 3, kind: 'cmd' as const, data: Buffer.from([1, 2]) },
        { index: 6, term: 3, kind: 'conf' as const, data: { op: 'promote', id: 3 } },
        { index: 7, term: 3, kind: 'noop' as const },
      ],
    };
    const meta = { index: 9, term: 3, members: [{ id: 1, address: 'http://a:1', voter: true }] };
    for (const frame of [
      { from: 2, msgs: [vote] },
      { from: 2, msgs: [app] },
      { from: 2, chunk: { transfer: 7, offset: 0, size: 4, data: Buffer.from('db') } },
      {
        from: 2,
        msgs: [{ type: 'snap' as const, from: 2, to: 1, term: 3, snapshot: meta }],
        chunk: { transfer: 7, offset: 2, size: 4, data: Buffer.from('db'), sha256: 'a'.repeat(64) },
      },
      { from: 2, addr: 'http://127.0.0.2:8080', ping: true as const },
    ]) {
      expect(decodePeer(encodePeer(frame))).toHaveProperty('frame');
    }
  });

  it.each([
    ['{from: 77, msgs: 5}', { from: 77, msgs: 5 }],
    ['a message from another sender than its frame', { from: 3, msgs: [vote] }],
    [
      'an append whose entries skip an index',
      {
        from: 2,
        msgs: [
          {
            type: 'app',
            from: 2,
            to: 1,
            term: 3,
            prevIndex: 4,
            prevTerm: 2,
            commit: 4,
            entries: [{ index: 6, term: 3, kind: 'noop' }],
          },
        ],
      },
    ],
    [
      'a snapshot message without its data',
      { from: 2, msgs: [{ type: 'snap', from: 2, to: 1, term: 3, snapshot: { index: 9, term: 3, members: [] } }] },
    ],
    [
      'a snapshot message on a chunk that is not the last',
      {
        from: 2,
        msgs: [{ type: 'snap', from: 2, to: 1, term: 3, snapshot: { index: 9, term: 3, members: [] } }],
        chunk: { transfer: 1, offset: 0, size: 9, data: Buffer.from('db') },
      },
    ],
    [
      'a last chunk without its snapshot message',
      { from: 2, chunk: { transfer: 1, offset: 0, size: 2, data: Buffer.from('db'), sha256: 'a'.repeat(64) } },
    ],
    [
      'a last chunk that does not end its snapshot',
      {
        from: 2,
        msgs: [{ type: 'snap', from: 2, to: 1, term: 3, snapshot: { index: 9, term: 3, members: [] } }],
        chunk: { transfer: 1, offset: 0, size: 9, data: Buffer.from('db'), sha256: 'a'.repeat(64) },
      },
    ],
    [
      'a chunk past the end of its snapshot',
      { from: 2, chunk: { transfer: 1, offset: 8, size: 9, data: Buffer.from('db') } },
    ],
    [
      'a chunk over 1 MiB',
      { from: 2, chunk: { transfer: 1, offset: 0, size: 2 ** 21, data: Buffer.alloc(2 ** 20 + 1) } },
    ],
    [
      'a checksum that is not one',
      { from: 2, chunk: { transfer: 1, offset: 0, size: 2, data: Buffer.from('db'), sha256: 'xyz' } },
    ],
    [
      'a chunk with a field of no known kind',
      { from: 2, chunk: { transfer: 1, offset: 0, size: 2, data: Buffer.from('db'), eof: 1 } },
    ],
    ['a term that is not a number', { from: 2, msgs: [{ ...vote, term: '3' }] }],
  ])('refuses %s', (_what, frame) => {
    expect(decodePeer(raw.pack(frame))).toHaveProperty('error');
  });
});

describe('a stream link', () => {
  const tuple = (e: unknown[]) => ({ e, o: 1, a: 1, r: 2 ** 40, h: 1, l: 2 });

  it('takes events that are objects or arrays of JSON values, and root numbers past 32 bits', () => {
    const events = [{ w: 1, at: 2 ** 40, n: null, deep: { list: [1.5, 'x', true] } }, ['w', 1]];
    const f = encodeLink({ t: 'tuples', job: 'j', to: [0], tuples: [tuple(events) as never] });
    expect(decodeLink(f)).toEqual({ ok: true, value: expect.objectContaining({ tuples: [tuple(events)] }) });
  });

  // msgpack's extensions make these; none of our senders does, and JSON carries none of them on.
  const byHand = new Packr({ useRecords: false, moreTypes: true });
  it.each([
    ['a BigInt', { n: 2n ** 60n }],
    ['a BigInt', { deep: [{ n: 5n }] }],
    ['a Date', { at: new Date(0) }],
    ['a Date', new Date(0)],
    ['a Set', { s: [new Set([1])] }],
    ['a RegExp', { r: /x/ }],
    ['a Uint8Array', { b: new Uint8Array([1, 2]) }],
    ['an Error', { err: new Error('x') }],
  ])('refuses an event holding %s, saying so', (what, event) => {
    const f = byHand.pack({ t: 'tuples', job: 'j', to: [0], tuples: [tuple([{ fine: 1 }, event])] });
    expect(decodeLink(f)).toEqual({ ok: false, error: `an event holding ${what}, which JSON cannot carry` });
  });

  it.each([
    ['one byte', Buffer.from([0x92])],
    [
      'tuples for fewer instances than tuples',
      encodeLink({ t: 'tuples', job: 'j', to: [], tuples: [tuple([{}]) as never] }),
    ],
    ['an event that is a number', encodeLink({ t: 'tuples', job: 'j', to: [0], tuples: [tuple([5]) as never] })],
    ['a negative credit', encodeLink({ t: 'credit', n: -1 })],
  ])('refuses %s', (_what, bytes) => {
    expect(decodeLink(bytes).ok).toBe(false);
  });
});

describe('an object with a key __proto__ (msgpack renames it between workers)', () => {
  it.each([
    ['{"a":1,"__proto__":{"x":1}}', true],
    ['[{"deep":[{"__proto__":1}]}]', true],
    ['{"a":"\\"__proto__\\""}', false],
    ['{"a":{"b":2}}', false],
  ])('%s: %s', (text, held) => {
    expect(holdsProtoKey(JSON.parse(text), text)).toBe(held);
  });
});

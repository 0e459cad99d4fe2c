import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { newCodec } from '../../src/protocol/msgpack.js';

/** How the previous version encoded frames and log entries: plain maps. */
const previous = new Packr({ useRecords: false });

const completions = (n: number) => ({
  type: 'completeTasks',
  at: 1_764_000_000_000,
  completions: Array.from({ length: n }, (_, i) => ({
    job_id: 'job-mk2abcd1aaaaaaaaaaaaaaaa',
    idx: 60 + i, // crosses 64–127: positive fixints share their first byte with record ids
    attempt: 1,
    worker_id: 'w-mk2abcd1bbbbbbbbbbbbbbbb',
    result_json: '[]',
    ms: 0.125 + i,
  })),
});

const varied = {
  type: 'submitJob',
  config: {
    operation: 'noop',
    params: {},
    input: [{ x: 1 }, { y: [64, 100, 127] }, { x: 3, z: null }, 'text', 2.5],
    n: null,
  },
};

describe('the msgpack codec of frames and log entries', () => {
  it('reads back what it writes', () => {
    const codec = newCodec();
    for (const msg of [completions(40), varied, { t: 'ack', keys: [] }])
      expect(codec.unpack(codec.pack(msg))).toEqual(msg);
  });

  it('reads what the previous version wrote (log rows, frames from a node not yet upgraded)', () => {
    const codec = newCodec();
    codec.unpack(codec.pack(completions(3))); // record definitions seen before must not leak
    for (const msg of [completions(40), varied]) expect(codec.unpack(previous.pack(msg))).toEqual(msg);
  });

  it('writes what the previous version reads', () => {
    const codec = newCodec();
    for (const msg of [completions(40), varied]) expect(previous.unpack(codec.pack(msg))).toEqual(msg);
  });

  it('writes each message on its own: a fresh decoder reads the tenth as well as the first', () => {
    const codec = newCodec();
    const msgs = Array.from({ length: 10 }, (_, i) => (i % 2 ? completions(i + 1) : varied));
    const bytes = msgs.map((m) => codec.pack(m));
    bytes.forEach((b, i) => expect(newCodec().unpack(b)).toEqual(msgs[i]));
  });

  it('writes a list of same-shaped objects in a third less than plain maps', () => {
    const msg = completions(40);
    expect(newCodec().pack(msg).length).toBeLessThan(previous.pack(msg).length * (2 / 3));
  });
});

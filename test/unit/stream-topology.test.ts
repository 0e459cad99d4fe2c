import { describe, expect, it } from 'vitest';
import { WeirError } from '../../src/common/errors.js';
import { consumersOf, instancesOf, normalizeTopology } from '../../src/stream/topology.js';

const refused = (raw: unknown, moduleExports?: string[]): string => {
  try {
    normalizeTopology(raw, moduleExports);
  } catch (err) {
    expect(err).toBeInstanceOf(WeirError);
    expect((err as WeirError).code).toBe('bad_request');
    return (err as WeirError).message;
  }
  throw new Error(`accepted ${JSON.stringify(raw)}`);
};

/** A word count: lines over http, split into words, counted in a window, collected. */
const wordCount = () => ({
  spouts: [{ id: 'lines', type: 'http', parallelism: 2 }],
  bolts: [
    { id: 'split', op: 'flat_map', fn: 'words', parallelism: 2, inputs: [{ from: 'lines', grouping: 'shuffle' }] },
    {
      id: 'count',
      op: 'window',
      aggregate: 'count',
      key: 'word',
      window: { type: 'tumbling', size_ms: 500 },
      parallelism: 2,
      inputs: [{ from: 'split', grouping: 'fields', fields: ['word'] }],
    },
    { id: 'out', op: 'collect', inputs: [{ from: 'count', grouping: 'global' }] },
  ],
});

const spout = { id: 's', type: 'http' };
const bolt = (id: string, from: string | string[], extra: Record<string, unknown> = {}) => ({
  id,
  op: 'map',
  fn: 'f',
  inputs: [from].flat().map((f) => ({ from: f, grouping: 'shuffle' })),
  ...extra,
});
const withBolts = (...bolts: unknown[]) => ({ spouts: [spout], bolts });

describe('normalizeTopology: the design example', () => {
  it('accepts it and fills the defaults', () => {
    const t = normalizeTopology(wordCount(), ['words']);
    expect(t.spouts).toEqual([{ id: 'lines', type: 'http', parallelism: 2 }]);
    expect(t.bolts.map((b) => b.id)).toEqual(['split', 'count', 'out']);
    expect(t.bolts[1]).toEqual({
      id: 'count',
      op: 'window',
      parallelism: 2,
      inputs: [{ from: 'split', grouping: 'fields', fields: ['word'] }],
      aggregate: 'count',
      key: 'word',
      window: { type: 'tumbling', size_ms: 500, slide_ms: 500, allowed_lateness_ms: 0 },
    });
    expect(t.bolts[2]).toEqual({
      id: 'out',
      op: 'collect',
      parallelism: 1,
      inputs: [{ from: 'count', grouping: 'global' }],
    });
  });

  it('lists every instance, spouts first', () => {
    expect(instancesOf(normalizeTopology(wordCount()))).toEqual([
      { component: 'lines', index: 0 },
      { component: 'lines', index: 1 },
      { component: 'split', index: 0 },
      { component: 'split', index: 1 },
      { component: 'count', index: 0 },
      { component: 'count', index: 1 },
      { component: 'out', index: 0 },
    ]);
  });

  it('lists the consumers of a component with their groupings', () => {
    const t = normalizeTopology(wordCount());
    expect(consumersOf(t, 'split').map(({ bolt, input }) => [bolt.id, input])).toEqual([
      ['count', { from: 'split', grouping: 'fields', fields: ['word'] }],
    ]);
    expect(consumersOf(t, 'out')).toEqual([]);
  });
});

describe('normalizeTopology: the DAG', () => {
  it('puts bolts in topological order, keeping the given order among independent ones', () => {
    const t = normalizeTopology(withBolts(bolt('c', ['a', 'b']), bolt('b', 'a'), bolt('a', 's'), bolt('d', 's')));
    expect(t.bolts.map((b) => b.id)).toEqual(['a', 'd', 'b', 'c']);
  });

  it('refuses a topology without spouts', () => {
    expect(refused({ spouts: [], bolts: [] })).toMatch(/at least one spout/);
    expect(refused({ bolts: [] })).toMatch(/at least one spout/);
    expect(refused('x')).toMatch(/config.topology must be an object/);
  });

  it('accepts spouts alone, and components nobody consumes', () => {
    expect(normalizeTopology({ spouts: [spout] }).bolts).toEqual([]);
    expect(normalizeTopology(withBolts(bolt('a', 's'), bolt('b', 's'))).bolts).toHaveLength(2);
  });

  it('refuses an input from an unknown component, naming the bolt and the id', () => {
    expect(refused(withBolts(bolt('a', 's'), bolt('b', 'aa')))).toMatch(
      /bolt 'b': inputs\[0\]\.from 'aa' is not a spout or bolt of this topology \(known: s, a, b\)/,
    );
  });

  it('refuses cycles, naming the path in the direction events flow', () => {
    expect(refused(withBolts(bolt('a', ['s', 'c']), bolt('b', 'a'), bolt('c', 'b')))).toMatch(
      /has a cycle: a -> b -> c -> a/,
    );
    expect(refused(withBolts(bolt('a', ['s', 'a'])))).toMatch(/has a cycle: a -> a/);
    // A bolt downstream of a cycle is not part of it.
    expect(refused(withBolts(bolt('z', 'x'), bolt('x', ['s', 'y']), bolt('y', 'x')))).toMatch(
      /has a cycle: x -> y -> x$/,
    );
  });

  it('refuses bolts without inputs and spouts with inputs', () => {
    expect(refused(withBolts({ id: 'a', op: 'collect' }))).toMatch(/bolt 'a': inputs must be a non-empty array/);
    expect(refused(withBolts({ id: 'a', op: 'collect', inputs: [] }))).toMatch(/bolt 'a': inputs/);
    expect(refused({ spouts: [{ ...spout, inputs: [{ from: 's', grouping: 'all' }] }] })).toMatch(
      /spout 's': a spout cannot have inputs/,
    );
  });

  it('refuses reading from a sink, or from one component twice', () => {
    expect(
      refused(withBolts({ id: 'out', op: 'collect', inputs: [{ from: 's', grouping: 'all' }] }, bolt('a', 'out'))),
    ).toMatch(/bolt 'a': inputs\[0\]\.from 'out' is a collect sink, which emits nothing/);
    expect(refused(withBolts(bolt('a', ['s', 's'])))).toMatch(/bolt 'a': inputs\[1\] reads 's' a second time/);
  });

  it('checks ids: their shape, and unique across spouts and bolts', () => {
    expect(refused({ spouts: [{ ...spout, id: 'a b' }] })).toMatch(/spouts\[0\]\.id must match/);
    expect(refused({ spouts: [{ ...spout, id: 'x'.repeat(65) }] })).toMatch(/spouts\[0\]\.id/);
    expect(refused({ spouts: [{ type: 'http' }] })).toMatch(/spouts\[0\]\.id/);
    expect(refused(withBolts(bolt('s', 's')))).toMatch(/id 's' is used twice/);
    expect(refused(withBolts(bolt('a', 's'), bolt('a', 's')))).toMatch(/id 'a' is used twice/);
    expect(normalizeTopology({ spouts: [{ ...spout, id: 'A-z_09' }] }).spouts[0]!.id).toBe('A-z_09');
  });

  it('takes parallelism as an integer from 1 to 256', () => {
    for (const p of [0, 257, 1.5, '2']) {
      expect(refused({ spouts: [{ ...spout, parallelism: p }] })).toMatch(
        /spout 's': parallelism must be an integer from 1 to 256/,
      );
      expect(refused(withBolts(bolt('a', 's', { parallelism: p })))).toMatch(/bolt 'a': parallelism/);
    }
    expect(normalizeTopology({ spouts: [{ ...spout, parallelism: 256 }] }).spouts[0]!.parallelism).toBe(256);
  });

  it('takes at most 256 components and 4096 instances in all (each holds a worker slot while the job runs)', () => {
    const fanOut = (n: number, parallelism: number) =>
      withBolts(...Array.from({ length: n }, (_, i) => bolt(`b${i}`, 's', { parallelism })));
    expect(refused(fanOut(256, 1))).toBe(
      'config.topology has 257 spouts and bolts; at most 256: split it into several jobs',
    );
    expect(refused(fanOut(16, 256))).toBe(
      'config.topology has 4097 instances (the sum of its parallelisms); at most 4096: lower some parallelism',
    );
    expect(normalizeTopology(fanOut(15, 256)).bolts).toHaveLength(15);
    expect(normalizeTopology(fanOut(255, 1)).bolts).toHaveLength(255);
  });

  it('refuses unknown fields, so typos do not silently become defaults', () => {
    expect(refused({ spouts: [{ ...spout, paralelism: 4 }] })).toMatch(/spout 's': unknown field 'paralelism'/);
    expect(refused(withBolts(bolt('a', 's', { window: {} })))).toMatch(/bolt 'a': unknown field 'window'/);
    expect(refused({ spouts: [spout], sinks: [] })).toMatch(/^config.topology: unknown field 'sinks'/);
  });
});

describe('normalizeTopology: groupings', () => {
  const input = (i: Record<string, unknown>) => withBolts({ id: 'a', op: 'collect', inputs: [{ from: 's', ...i }] });

  it('requires a known grouping, and fields exactly for the fields grouping', () => {
    expect(refused(input({ grouping: 'random' }))).toMatch(
      /bolt 'a': inputs\[0\]\.grouping must be one of: shuffle, fields, all, global/,
    );
    expect(refused(input({ grouping: 'fields' }))).toMatch(/bolt 'a': inputs\[0\]\.fields must be a non-empty array/);
    expect(refused(input({ grouping: 'fields', fields: [] }))).toMatch(/inputs\[0\]\.fields/);
    expect(refused(input({ grouping: 'fields', fields: [1] }))).toMatch(/inputs\[0\]\.fields/);
    expect(refused(input({ grouping: 'shuffle', fields: ['k'] }))).toMatch(
      /fields applies only to the fields grouping/,
    );
  });

  it('allows global grouping into many instances (instance 0 gets everything)', () => {
    const t = normalizeTopology(
      withBolts({ id: 'a', op: 'collect', parallelism: 3, inputs: [{ from: 's', grouping: 'global' }] }),
    );
    expect(t.bolts[0]!.inputs).toEqual([{ from: 's', grouping: 'global' }]);
  });

  it('makes a window with parallelism > 1 receive each key in one instance', () => {
    const topo = (grouping: Record<string, unknown>, key?: string) =>
      withBolts({
        id: 'w',
        op: 'window',
        aggregate: 'count',
        ...(key ? { key } : {}),
        window: { type: 'tumbling', size_ms: 1000 },
        parallelism: 2,
        inputs: [{ from: 's', ...grouping }],
      });
    expect(refused(topo({ grouping: 'shuffle' }, 'k'))).toMatch(
      /bolt 'w': a window with parallelism 2 must receive inputs\[0\] \('s'\) by fields grouping on \["k"\] or global grouping.*got shuffle/,
    );
    expect(refused(topo({ grouping: 'fields', fields: ['j'] }, 'k'))).toMatch(/got fields on \["j"\]/);
    expect(refused(topo({ grouping: 'all' }, 'k'))).toMatch(/got all/);
    expect(refused(topo({ grouping: 'fields', fields: ['k'] }))).toMatch(/by global grouping/);
    expect(() => normalizeTopology(topo({ grouping: 'fields', fields: ['k'] }, 'k'))).not.toThrow();
    expect(() => normalizeTopology(topo({ grouping: 'global' }))).not.toThrow();
  });

  it("groups a window's output only by the fields it emits", () => {
    const t = (fields: string[]) =>
      withBolts(
        {
          id: 'w',
          op: 'window',
          aggregate: 'count',
          window: { type: 'tumbling', size_ms: 10 },
          inputs: [{ from: 's', grouping: 'all' }],
        },
        { id: 'o', op: 'collect', inputs: [{ from: 'w', grouping: 'fields', fields }] },
      );
    expect(refused(t(['word']))).toMatch(
      /bolt 'o': inputs\[0\]\.fields names 'word', but window 'w' emits only key, window_start, window_end, value/,
    );
    expect(() => normalizeTopology(t(['key', 'window_start']))).not.toThrow();
  });
});

describe('normalizeTopology: spouts', () => {
  it('fills generator defaults: one key, no rate limit, unbounded', () => {
    expect(normalizeTopology({ spouts: [{ id: 'g', type: 'generator' }] }).spouts[0]).toEqual({
      id: 'g',
      type: 'generator',
      parallelism: 1,
      keys: 1,
    });
    expect(
      normalizeTopology({ spouts: [{ id: 'g', type: 'generator', rate: 2.5, count: 10, keys: 4 }] }).spouts[0],
    ).toMatchObject({
      rate: 2.5,
      count: 10,
      keys: 4,
    });
  });

  it('checks generator parameters', () => {
    const g = (p: Record<string, unknown>) => ({ spouts: [{ id: 'g', type: 'generator', ...p }] });
    expect(refused(g({ rate: 0 }))).toMatch(/spout 'g': rate must be a positive number/);
    expect(refused(g({ rate: 'fast' }))).toMatch(/rate/);
    expect(refused(g({ count: 0 }))).toMatch(/spout 'g': count must be an integer/);
    expect(refused(g({ keys: 0 }))).toMatch(/spout 'g': keys must be an integer/);
    expect(refused(g({ fields: [] }))).toMatch(/unknown field 'fields'/);
  });

  it('reads a file spout from an absolute path, in one instance', () => {
    expect(normalizeTopology({ spouts: [{ id: 'f', type: 'file', path: '/in.txt' }] }).spouts[0]).toEqual({
      id: 'f',
      type: 'file',
      parallelism: 1,
      path: '/in.txt',
      offset: 0,
      format: 'lines',
    });
    expect(refused({ spouts: [{ id: 'f', type: 'file', path: 'in.txt' }] })).toMatch(
      /spout 'f': path must be an absolute path/,
    );
    expect(refused({ spouts: [{ id: 'f', type: 'file', path: '/in', offset: -1 }] })).toMatch(/spout 'f': offset/);
    expect(refused({ spouts: [{ id: 'f', type: 'file', path: '/in', format: 'csv' }] })).toMatch(
      /format must be one of: lines, jsonl/,
    );
    expect(refused({ spouts: [{ id: 'f', type: 'file', path: '/in', parallelism: 2 }] })).toMatch(
      /parallelism must be 1/,
    );
  });

  it('refuses unknown spout types', () => {
    expect(refused({ spouts: [{ id: 'k', type: 'kafka' }] })).toMatch(
      /spout 'k': type must be one of: http, generator, file; got "kafka"/,
    );
  });
});

describe('normalizeTopology: bolts', () => {
  it('requires fn for map, filter and flat_map, and an export of that name when the exports are known', () => {
    for (const op of ['map', 'filter', 'flat_map']) {
      expect(refused(withBolts({ id: 'a', op, inputs: [{ from: 's', grouping: 'shuffle' }] }))).toMatch(
        /bolt 'a': fn must be a non-empty string/,
      );
    }
    expect(refused(withBolts(bolt('a', 's', { fn: 'wrods' })), ['words', 'parse'])).toMatch(
      /bolt 'a': fn 'wrods' is not an export of config.module; it exports 'words', 'parse'/,
    );
    expect(normalizeTopology(withBolts(bolt('a', 's', { fn: 'words' })), ['words']).bolts[0]).toMatchObject({
      fn: 'words',
    });
    expect(normalizeTopology(withBolts(bolt('a', 's', { fn: 'anything' }))).bolts[0]).toMatchObject({ fn: 'anything' });
  });

  it('checks sinks: file takes an absolute path, http an http(s) URL', () => {
    const sink = (p: Record<string, unknown>) =>
      withBolts({ id: 'o', inputs: [{ from: 's', grouping: 'shuffle' }], ...p });
    expect(normalizeTopology(sink({ op: 'file', path: '/out' })).bolts[0]).toMatchObject({ op: 'file', path: '/out' });
    expect(refused(sink({ op: 'file', path: 'out' }))).toMatch(/bolt 'o': path must be an absolute path/);
    expect(normalizeTopology(sink({ op: 'http', url: 'https://x.test/in' })).bolts[0]).toMatchObject({
      url: 'https://x.test/in',
    });
    expect(refused(sink({ op: 'http', url: 'ftp://x.test' }))).toMatch(/bolt 'o': url must be an http/);
    expect(refused(sink({ op: 'http', url: 'not a url' }))).toMatch(/url/);
    expect(refused(sink({ op: 'reduce' }))).toMatch(
      /bolt 'o': op must be one of: map, filter, flat_map, window, collect, file, http/,
    );
  });
});

describe('normalizeTopology: windows', () => {
  const win = (p: Record<string, unknown>, w: Record<string, unknown>) =>
    withBolts({
      id: 'w',
      op: 'window',
      aggregate: 'sum',
      field: 'v',
      ...p,
      window: w,
      inputs: [{ from: 's', grouping: 'global' }],
    });
  const sliding = { type: 'sliding', size_ms: 1000, slide_ms: 250 };

  it('puts an event in at most 1000 sliding windows (a pane per key each)', () => {
    expect(refused(win({}, { type: 'sliding', size_ms: 1_795_000, slide_ms: 1 }))).toBe(
      "config.topology bolt 'w': window.size_ms / window.slide_ms is 1795000: each event would fall in that many windows; at most 1000 (make slide_ms at least 1795)",
    );
    expect(normalizeTopology(win({}, { type: 'sliding', size_ms: 60_000, slide_ms: 60 })).bolts[0]).toMatchObject({
      window: { size_ms: 60_000, slide_ms: 60 },
    });
  });

  it('fills defaults for an event-time sliding window', () => {
    expect(normalizeTopology(win({}, { ...sliding, time_field: 'ts' })).bolts[0]).toMatchObject({
      aggregate: 'sum',
      field: 'v',
      window: { type: 'sliding', size_ms: 1000, slide_ms: 250, time_field: 'ts', allowed_lateness_ms: 0 },
    });
  });

  it('requires field for every aggregate but count, and refuses it for count', () => {
    for (const aggregate of ['sum', 'min', 'max', 'avg']) {
      expect(refused(win({ aggregate, field: undefined }, sliding))).toMatch(
        /bolt 'w': field must be a non-empty string/,
      );
    }
    expect(refused(win({ aggregate: 'count' }, sliding))).toMatch(/field does not apply to aggregate count/);
    expect(refused(win({ aggregate: 'median' }, sliding))).toMatch(
      /aggregate must be one of: count, sum, min, max, avg/,
    );
  });

  it('checks sizes and slides', () => {
    expect(refused(win({}, { type: 'tumbling', size_ms: 0 }))).toMatch(
      /bolt 'w': window.size_ms must be an integer from 1/,
    );
    expect(refused(win({}, { type: 'hopping', size_ms: 10 }))).toMatch(/window.type must be one of: tumbling, sliding/);
    expect(refused(win({}, { type: 'sliding', size_ms: 1000 }))).toMatch(
      /window.slide_ms must be an integer from 1 to 1000/,
    );
    expect(refused(win({}, { type: 'sliding', size_ms: 1000, slide_ms: 2000 }))).toMatch(/window.slide_ms/);
    expect(refused(win({}, { type: 'sliding', size_ms: 1000, slide_ms: 300 }))).toMatch(
      /window.slide_ms \(300\) must divide window.size_ms \(1000\)/,
    );
    expect(refused(win({}, { type: 'tumbling', size_ms: 1000, slide_ms: 500 }))).toMatch(
      /slide_ms applies only to sliding/,
    );
    expect(refused(win({}, { type: 'tumbling', size_ms: 10, every: 1 }))).toMatch(/unknown field 'window.every'/);
    expect(refused(win({}, 'tumbling' as never))).toMatch(/window must be an object/);
  });

  it('takes allowed lateness only with event time', () => {
    expect(refused(win({}, { type: 'tumbling', size_ms: 10, allowed_lateness_ms: 5 }))).toMatch(
      /allowed_lateness_ms needs window.time_field/,
    );
    expect(refused(win({}, { type: 'tumbling', size_ms: 10, time_field: 'ts', allowed_lateness_ms: -1 }))).toMatch(
      /window.allowed_lateness_ms must be an integer/,
    );
  });
});

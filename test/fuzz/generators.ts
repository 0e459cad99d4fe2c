// What the boundary fuzzer sends: a seeded random source; random JSON and msgpack values;
// mutations of valid values and of their bytes; realistic frames for each of the three
// sockets; and HTTP requests on every route. Everything is drawn from an Rng, so one seed
// sends the same things again (what the cluster answers may still vary with timing).
//
// Nothing generated here names a host outside 127.0.0.x: no string contains "://" unless it
// is one of the local URLs below, so no mutated job, member or frame makes a node call out.
import { mulberry32 } from '../../src/common/mulberry32.js';

export class Rng {
  private readonly draw: () => number;

  constructor(readonly seed: number) {
    this.draw = mulberry32(seed);
  }

  float(): number {
    return this.draw();
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.draw() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.draw() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from nothing');
    return xs[this.int(0, xs.length - 1)]!;
  }

  /** One of the choices, each as likely as its weight. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    const total = choices.reduce((s, [w]) => s + w, 0);
    let x = this.draw() * total;
    for (const [w, v] of choices) {
      if (x < w) return v;
      x -= w;
    }
    return choices[choices.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }

  /** A stream of its own for one lane of work: lanes interleaving do not change what each draws. */
  fork(): Rng {
    return new Rng(this.int(0, 0xffffffff));
  }
}

// ---------------------------------------------------------------- values

export const EDGE_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  0.5,
  -2.5,
  63,
  64,
  65,
  255,
  256,
  65_535,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  2 ** 64,
  1e21,
  1e308,
  -1e308,
  Number.MIN_VALUE,
  Number.EPSILON,
  NaN,
  Infinity,
  -Infinity,
];

/** Names that mean something to a JavaScript object rather than to the data in it. */
export const PROTO_KEYS: readonly string[] = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  'then',
];

const EDGE_STRINGS: readonly string[] = [
  '',
  ' ',
  '0',
  '-1',
  '1e3',
  'NaN',
  'true',
  'null',
  '[]',
  '{}',
  '\u0000',
  'a\u0000b',
  '\uffff',
  '\ud800',
  '💥',
  'é',
  '../',
  '../../etc/passwd',
  '%00',
  '%2e%2e%2f',
  '\\',
  '"',
  "'; DROP TABLE jobs; --",
  '<script>',
  'k1',
  'a'.repeat(65),
  ...PROTO_KEYS,
];

/** Field names the frames and bodies use: a key drawn from here lands where a decoder looks. */
const FIELD_NAMES: readonly string[] = (
  't type from to term index commit ctx reject hint lastIndex lastTerm prevIndex prevTerm entries kind data ' +
  'msgs addr ping snapshot chunk transfer offset size sha256 meta members id address voter op job_id idx attempt ok result_json error message ' +
  'stack fetch_failed ms running unacked reports resent job tuples acks e o a r h l n name config operation ' +
  'factor task_count max_retries worker_id max_tasks events rows key value'
).split(' ');

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';

/** Percent-encodes every byte of `s` as UTF-8 but the unreserved ones (lone surrogates included). */
export function pct(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(b);
    out += /[A-Za-z0-9._~-]/.test(ch) ? ch : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function randomId(rng: Rng, prefix = ''): string {
  let s = prefix;
  for (let i = rng.int(1, 12); i > 0; i--) s += ID_CHARS[rng.int(0, ID_CHARS.length - 1)];
  return s;
}

export function randomString(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => rng.pick(EDGE_STRINGS)],
    [4, () => randomId(rng)],
    [
      2,
      () => {
        let s = '';
        for (let i = rng.int(1, 16); i > 0; i--) s += String.fromCodePoint(rng.int(0, 0x10ffff));
        return s;
      },
    ],
    [1, () => rng.pick(['x', 'é', '💥', '\u0000']).repeat(rng.pick([1_000, 70_000, 300_000]))],
  ])();
}

/** Sets an own property, `__proto__` included (assigning that name would set the prototype). */
export function setOwn(o: object, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

function randomKey(rng: Rng): string {
  return rng.weighted<() => string>([
    [3, () => rng.pick(FIELD_NAMES)],
    [2, () => rng.pick(PROTO_KEYS)],
    [3, () => randomString(rng).slice(0, 40)],
  ])();
}

type Kind = 'number' | 'string' | 'boolean' | 'null' | 'array' | 'object' | 'bytes' | 'undefined' | 'bigint' | 'exotic';
const JSON_KINDS: readonly Kind[] = ['number', 'string', 'boolean', 'null', 'array', 'object'];
const BINARY_KINDS: readonly Kind[] = [...JSON_KINDS, 'bytes', 'undefined', 'bigint', 'exotic'];

function kindOf(v: unknown): Kind {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return 'bytes';
  const t = typeof v;
  if (t === 'number' || t === 'string' || t === 'boolean' || t === 'undefined' || t === 'bigint') return t;
  return 'object';
}

/**
 * A random value: JSON's kinds, and with `binary` what msgpack carries beyond them (bytes,
 * undefined, 64-bit integers, and the types msgpackr extends it with).
 */
export function randomValue(rng: Rng, depth = 3, binary = false, not?: Kind): unknown {
  const kinds = (binary ? BINARY_KINDS : JSON_KINDS).filter(
    (k) => k !== not && (depth > 0 || (k !== 'array' && k !== 'object')),
  );
  switch (rng.pick(kinds)) {
    case 'number':
      return rng.weighted<() => number>([
        [3, () => rng.pick(EDGE_NUMBERS)],
        [3, () => rng.int(-1000, 1000)],
        [1, () => (rng.float() - 0.5) * 1e6],
      ])();
    case 'string':
      return randomString(rng);
    case 'boolean':
      return rng.chance(0.5);
    case 'null':
      return null;
    case 'array':
      return Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth - 1, binary));
    case 'object': {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) setOwn(o, randomKey(rng), randomValue(rng, depth - 1, binary));
      return o;
    }
    case 'bytes':
      return rng.bytes(rng.int(0, 64));
    case 'undefined':
      return undefined;
    case 'bigint':
      return BigInt.asIntN(64, (BigInt(rng.int(0, 0xffffffff)) << 32n) | BigInt(rng.int(0, 0xffffffff)));
    case 'exotic':
      return rng.pick<() => unknown>([
        () => new Date(rng.chance(0.5) ? NaN : rng.int(-1e9, 1e9) * 1000),
        () => new Set([1, 'a']),
        () => new Map<unknown, unknown>([[1, 2]]),
        () => /x+/g,
        () => new Error('boom'),
        () => new Float64Array([1.5, NaN]),
      ])();
  }
}

/** A value nested `depth` levels deep in arrays and objects. */
export function nest(rng: Rng, inner: unknown, depth: number): unknown {
  let v = inner;
  for (let i = 0; i < depth; i++) v = rng.chance(0.5) ? [v] : { [rng.pick(FIELD_NAMES)]: v };
  return v;
}

function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o = {};
    for (const k of Object.keys(v)) setOwn(o, k, clone((v as Record<string, unknown>)[k]));
    return o;
  }
  return v;
}

/** About how many bytes `v` encodes to, counting no further than `budget`. */
function sizeOf(v: unknown, budget = 4_000_000): number {
  let n = 0;
  const walk = (x: unknown): void => {
    if (n > budget) return;
    if (typeof x === 'string') n += x.length + 1;
    else if (x instanceof Uint8Array) n += x.length + 1;
    else if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') {
      for (const k of Object.keys(x)) {
        n += k.length;
        walk((x as Record<string, unknown>)[k]);
      }
    } else n += 9;
  };
  walk(v);
  return Math.max(1, n);
}

/** A place in a value: `holder[key]` (the root sits in a holder of its own). */
interface Slot {
  holder: Record<string, unknown> | unknown[];
  key: string | number;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  !!v && typeof v === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(v));

/** The places in a value's arrays and plain objects (not inside bytes, dates, sets, typed arrays). */
function slotsOf(root: { v: unknown }, max = 300): Slot[] {
  const out: Slot[] = [{ holder: root as Record<string, unknown>, key: 'v' }];
  for (let i = 0; i < out.length && out.length < max; i++) {
    const { holder, key } = out[i]!;
    const v = (holder as Record<string | number, unknown>)[key];
    if (Array.isArray(v)) for (let j = 0; j < v.length && out.length < max; j++) out.push({ holder: v, key: j });
    else if (isPlainObject(v)) {
      for (const k of Object.keys(v)) if (out.length < max) out.push({ holder: v as Record<string, unknown>, key: k });
    }
  }
  return out;
}

type Mutation = 'retype' | 'edge' | 'tweak' | 'delete' | 'extra' | 'proto' | 'nest' | 'long' | 'many' | 'prefixed';
const MUTATIONS: readonly (readonly [number, Mutation])[] = [
  [5, 'retype'],
  [4, 'edge'],
  [4, 'tweak'],
  [3, 'delete'],
  [3, 'extra'],
  [2, 'proto'],
  [1, 'nest'],
  [1, 'long'],
  [2, 'many'],
  [1, 'prefixed'],
];

/**
 * A copy of `value` with one to a few mutations at random places: types flipped, edge
 * numbers, fields missing or added, prototype keys, deep nesting, long strings, long arrays.
 */
export function mutate(rng: Rng, value: unknown, binary = false): unknown {
  const root = { v: clone(value) };
  const times = rng.weighted([
    [6, 1],
    [3, 2],
    [1, 4],
  ] as const);
  for (let i = 0; i < times; i++) mutateOnce(rng, root, binary);
  return root.v;
}

function mutateOnce(rng: Rng, root: { v: unknown }, binary: boolean): void {
  const slots = slotsOf(root);
  // Leaves more often than the root: a frame with one bad field is the interesting case.
  const { holder, key } = slots.length > 1 && rng.chance(0.9) ? rng.pick(slots.slice(1)) : slots[0]!;
  const h = holder as Record<string | number, unknown>;
  const x = h[key];
  const put = (v: unknown) => (Array.isArray(holder) ? (holder[key as number] = v) : setOwn(holder, String(key), v));
  switch (rng.weighted(MUTATIONS)) {
    case 'retype':
      return void put(randomValue(rng, 2, binary, kindOf(x)));
    case 'edge':
      return void put(rng.chance(0.7) ? rng.pick(EDGE_NUMBERS) : rng.pick(EDGE_STRINGS));
    case 'tweak':
      if (typeof x === 'number') {
        return void put(
          rng.pick<(n: number) => number>([
            (n) => n + 1,
            (n) => n - 1,
            (n) => -n,
            (n) => n + 0.5,
            (n) => n * 2 ** 32,
            (n) => n + 2 ** 53,
          ])(x),
        );
      }
      if (typeof x === 'string') {
        return void put(
          rng.pick<(s: string) => string>([
            () => '',
            (s) => s + s,
            (s) => s.toUpperCase(),
            (s) => s.slice(1),
            (s) => `${s}\u0000`,
            (s) => `${s}/..`,
          ])(x),
        );
      }
      if (typeof x === 'boolean') return void put(x ? 1 : 0);
      return void put(randomValue(rng, 1, binary));
    case 'delete':
      if (slots[0]!.holder === holder) return void put(undefined);
      if (Array.isArray(holder)) holder.splice(key as number, 1);
      else delete h[key];
      return;
    case 'extra':
      if (Array.isArray(x)) x.push(randomValue(rng, 2, binary));
      else if (isPlainObject(x)) setOwn(x, randomKey(rng), randomValue(rng, 2, binary));
      else put([x, randomValue(rng, 1, binary)]);
      return;
    case 'proto': {
      const bad = {};
      setOwn(bad, rng.pick(PROTO_KEYS), rng.chance(0.5) ? { polluted: true } : randomValue(rng, 1, binary));
      if (isPlainObject(x)) {
        setOwn(x, rng.pick(PROTO_KEYS), rng.chance(0.5) ? bad : randomValue(rng, 1, binary));
      } else put(bad);
      return;
    }
    case 'nest':
      return void put(nest(rng, x, rng.pick([2, 20, 200])));
    case 'long':
      return void put(rng.chance(0.5) ? 'A'.repeat(rng.pick([1_000, 100_000, 1_000_000])) : rng.bytes(100_000));
    case 'many': {
      // Many copies of what is there: lists longer than any window or buffer expects (a few MB at most).
      const item = Array.isArray(x) && x.length ? x[0] : x;
      const n = Math.min(rng.pick([65, 100, 1_000, 20_000]), Math.floor(4_000_000 / sizeOf(item)));
      return void put(Array.from({ length: Math.max(1, n) }, () => clone(item)));
    }
    case 'prefixed':
      return void put(`${rng.pick(PROTO_KEYS)}${typeof x === 'string' ? x : typeof x}`);
  }
}

// ---------------------------------------------------------------- bytes

/** Header bytes of msgpack containers, strings and extensions, to be followed by a length that lies. */
const LYING_HEADERS = [0xdc, 0xdd, 0xde, 0xdf, 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9];
/** Extension types msgpack and msgpackr give meaning to (timestamps, records, sets, errors, regexps, typed arrays). */
const EXT_TYPES = [0xff, 0x42, 0x62, 0x65, 0x69, 0x6d, 0x70, 0x72, 0x73, 0x74, 0x78, 0x79, 0x00, 0x01];

/** Bytes that are msgpack no longer: cut short, flipped, lengths that lie, extensions, garbage around. */
export function mutateBytes(rng: Rng, bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  const at = () => rng.int(0, Math.max(0, b.length - 1));
  switch (rng.pick(['truncate', 'flip', 'insert', 'append', 'duplicate', 'lie', 'ext', 'prepend'] as const)) {
    case 'truncate':
      return b.subarray(0, at());
    case 'flip':
      for (let i = rng.int(1, 8); i > 0 && b.length; i--)
        b[at()] = rng.chance(0.5) ? rng.int(0, 255) : b[at()]! ^ (1 << rng.int(0, 7));
      return b;
    case 'insert': {
      const i = at();
      return Buffer.concat([b.subarray(0, i), rng.bytes(rng.int(1, 16)), b.subarray(i)]);
    }
    case 'append':
      return Buffer.concat([b, rng.bytes(rng.int(1, 32))]);
    case 'duplicate': {
      const i = at();
      const j = rng.int(i, b.length);
      return Buffer.concat([b.subarray(0, j), b.subarray(i, j), b.subarray(j)]);
    }
    case 'lie': {
      const i = at();
      const lie = Buffer.from([rng.pick(LYING_HEADERS), 0xff, 0xff, 0xff, 0xff]);
      return Buffer.concat([b.subarray(0, i), lie, b.subarray(i)]);
    }
    case 'ext': {
      const i = at();
      const n = rng.int(0, 12);
      const ext = Buffer.concat([Buffer.from([0xc7, n, rng.pick(EXT_TYPES)]), rng.bytes(n)]);
      return Buffer.concat([b.subarray(0, i), ext, b.subarray(i)]);
    }
    case 'prepend':
      return Buffer.concat([rng.bytes(rng.int(1, 4)), b]);
  }
}

/** Bytes with no relation to any frame: noise, empty, or a nesting deeper than any stack. */
export function randomBytes(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [5, () => rng.bytes(rng.int(1, 64))],
    [1, () => Buffer.alloc(0)],
    [1, () => rng.bytes(rng.int(1_000, 100_000))],
    // An array of one array of one … a hundred thousand deep, then nil; or maps {0: {0: …}}.
    [1, () => Buffer.concat([Buffer.alloc(rng.pick([1_000, 100_000]), 0x91), Buffer.from([0xc0])])],
    [1, () => Buffer.concat([Buffer.from('\x81\x00'.repeat(50_000), 'latin1'), Buffer.from([0xc0])])],
  ])();
}

// ---------------------------------------------------------------- frames

/** What the fuzzer knows of the cluster's Raft log: terms and indexes to build plausible messages. */
export interface RaftView {
  term: number;
  index: number;
  commit: number;
  ids: readonly number[];
}

export const LOCAL_URL = 'http://127.0.0.159:1';

const near = (rng: Rng, n: number) => Math.max(0, n + rng.pick([-3, -1, 0, 0, 1, 2, 10]));

function raftEntry(rng: Rng, index: number, term: number, v: RaftView): Record<string, unknown> {
  return rng.weighted<() => Record<string, unknown>>([
    [4, () => ({ index, term, kind: 'cmd', data: rng.bytes(rng.int(0, 40)) })],
    [1, () => ({ index, term, kind: 'cmd', data: { type: 'cancelJob', at: Date.now(), job_id: 'job-x' } })],
    [1, () => ({ index, term, kind: 'noop' })],
    [
      1,
      () => ({ index, term, kind: 'conf', data: { op: 'addLearner', id: 9_000 + rng.int(1, 9), address: LOCAL_URL } }),
    ],
    [1, () => ({ index, term, kind: 'conf', data: { op: rng.pick(['promote', 'remove']), id: rng.pick(v.ids) } })],
    [
      1,
      () => ({
        index,
        term,
        kind: 'conf',
        data: { op: 'bootstrap', members: v.ids.map((id) => ({ id, address: LOCAL_URL, voter: true })) },
      }),
    ],
  ])();
}

/** One Raft message of any type from `from` to `to`, with numbers near what the cluster holds. */
export function raftMessage(rng: Rng, from: number, to: number, v: RaftView): Record<string, unknown> {
  const head = { from, to, term: near(rng, v.term) };
  const type = rng.pick([
    'preVote',
    'vote',
    'preVoteResp',
    'voteResp',
    'app',
    'appResp',
    'heartbeat',
    'heartbeatResp',
    'snap',
    'timeoutNow',
  ] as const);
  switch (type) {
    case 'preVote':
    case 'vote':
      return {
        type,
        ...head,
        lastIndex: near(rng, v.index),
        lastTerm: near(rng, v.term),
        ...(rng.chance(0.3) ? { transfer: rng.chance(0.5) } : {}),
      };
    case 'preVoteResp':
    case 'voteResp':
      return { type, ...head, reject: rng.chance(0.5) };
    case 'app': {
      const prevIndex = near(rng, v.index);
      const entries = Array.from({ length: rng.int(0, 3) }, (_, i) => raftEntry(rng, prevIndex + 1 + i, head.term, v));
      return { type, ...head, prevIndex, prevTerm: near(rng, v.term), entries, commit: near(rng, v.commit) };
    }
    case 'appResp':
      return { type, ...head, index: near(rng, v.index), reject: rng.chance(0.5), hint: near(rng, v.index) };
    case 'heartbeat':
      return { type, ...head, commit: near(rng, v.commit), ctx: rng.int(0, 1000) };
    case 'heartbeatResp':
      return { type, ...head, ctx: rng.int(0, 1000) };
    case 'snap':
      return {
        type,
        ...head,
        snapshot: {
          index: near(rng, v.index),
          term: near(rng, v.term),
          members: v.ids.map((id) => ({ id, address: LOCAL_URL, voter: true })),
        },
      };
    case 'timeoutNow':
      return { type, ...head };
  }
}

/** A frame between masters: a ping, Raft messages, or a chunk of a snapshot (rarely ill-formed). */
export function peerFrame(rng: Rng, from: number, to: number, v: RaftView): Record<string, unknown> {
  const addr = rng.chance(0.7) ? { addr: LOCAL_URL } : {};
  if (rng.chance(0.2)) return { from, ...addr, ping: true };
  if (rng.chance(0.15)) return { from, ...addr, ...snapshotChunk(rng, from, to, v) };
  // A snapshot message travels alone on its snapshot's last chunk (the decoder refuses it otherwise).
  const msgs = Array.from({ length: rng.int(1, 3) }, () => {
    for (;;) {
      const m = raftMessage(rng, from, to, v);
      if (m.type !== 'snap') return m;
    }
  });
  return { from, ...addr, msgs };
}

/**
 * A well-formed chunk of a small snapshot: its first, a middle one (maybe out of order, of a
 * transfer the receiver never saw begin) or its last, with the snapshot message and a
 * checksum that rarely matches (the receiver drops the transfer then). Ill-formed ones come
 * from the mutators.
 */
function snapshotChunk(rng: Rng, from: number, to: number, v: RaftView): Record<string, unknown> {
  const size = rng.int(0, 600);
  const offset = rng.chance(0.5) ? 0 : rng.int(0, size);
  const last = rng.chance(0.4);
  const length = last ? size - offset : rng.int(0, size - offset);
  const chunk: Record<string, unknown> = {
    transfer: rng.chance(0.8) ? 1 : rng.int(1, 1_000_000),
    offset,
    size,
    data: rng.bytes(length),
  };
  if (!last) return { chunk };
  chunk.sha256 = rng.bytes(32).toString('hex');
  let snap: Record<string, unknown>;
  do snap = raftMessage(rng, from, to, v);
  while (snap.type !== 'snap');
  return { chunk, msgs: [snap] };
}

/**
 * Raft trusts its members (it is not Byzantine fault tolerant): a frame in a member's name
 * with a current term is that master speaking. So frames sent with a member's token keep
 * only terms older than the receiver's — a late message from an earlier term, which a real
 * link delivers after an election — and what they exercise is the decoder and the core's
 * handling of stale messages, not the cluster's trust in its members.
 */
export function staleTerms(frame: unknown, currentTerm: number): unknown {
  const msgs = (frame as { msgs?: unknown } | null)?.msgs;
  if (!Array.isArray(msgs)) return frame;
  for (const m of msgs) {
    if (m && typeof m === 'object' && Number.isSafeInteger((m as { term?: unknown }).term)) {
      const t = (m as { term: number }).term;
      if (t >= currentTerm) (m as { term: number }).term = Math.max(0, currentTerm - 1);
    }
  }
  return frame;
}

/** Whether every message of a frame with messages carries a term older than `currentTerm`. */
export function hasStaleTerms(frame: unknown, currentTerm: number): boolean {
  const msgs = (frame as { msgs?: unknown } | null)?.msgs;
  if (!Array.isArray(msgs)) return true;
  return msgs.every((m) => {
    const t = (m as { term?: unknown } | null)?.term;
    return !Number.isSafeInteger(t) || (t as number) < currentTerm;
  });
}

/** One attempt of one task, as the worker channel names it. */
export interface Ref {
  job_id: string;
  idx: number;
  attempt: number;
}

/**
 * A frame a worker sends its master. `assigned` are tasks the master really gave this
 * worker: they are reported only as done (a worker saying its task failed is believed, and
 * would spend the job's retries), with results that may be anything.
 */
export function toMasterFrame(rng: Rng, assigned: readonly Ref[], jobIds: readonly string[]): Record<string, unknown> {
  const other = (): Ref => ({
    job_id: jobIds.length && rng.chance(0.8) ? rng.pick(jobIds) : randomId(rng, 'job-'),
    idx: rng.int(0, 6),
    attempt: rng.int(1, 3),
  });
  const ref = () => (assigned.length && rng.chance(0.5) ? { ...rng.pick(assigned) } : other());
  const refs = (of = ref) => Array.from({ length: rng.int(0, 4) }, of);
  switch (
    rng.weighted([
      [2, 'hello'],
      [5, 'report'],
      [1, 'began'],
      [1, 'drain'],
    ] as const)
  ) {
    // A task really given to the fuzzer is never said begun (a hello's `running` says so too):
    // the decoy's lost channel would count against it, and three fail its job (rules.ts).
    case 'hello':
      return { t: 'hello', running: refs(other), unacked: refs() };
    case 'began':
      return { t: 'began', tasks: refs(other) };
    case 'drain':
      return { t: 'drain' };
    case 'report': {
      const reports = Array.from({ length: rng.int(1, 4) }, () => {
        const mine = assigned.length > 0 && rng.chance(0.5);
        const r = mine ? { ...rng.pick(assigned) } : other();
        if (mine || rng.chance(0.6)) {
          const result_json = rng.pick(['[]', '[2,4,6]', '[1]', '[{"key":1}]', '[null,"x",{}]']);
          return { ...r, ok: true, result_json, ...(rng.chance(0.5) ? { ms: rng.int(0, 5000) } : {}) };
        }
        return {
          ...r,
          ok: false,
          error: {
            message: randomString(rng),
            ...(rng.chance(0.3) ? { stack: 'Error: x\n    at y' } : {}),
            ...(rng.chance(0.2) ? { name: 'TypeError' } : {}),
            ...(rng.chance(0.1) ? { fetch_failed: { idx: rng.int(0, 3), attempt: rng.int(1, 2) } } : {}),
          },
        };
      });
      return { t: 'report', reports, ...(rng.chance(0.3) ? { resent: true } : {}) };
    }
  }
}

/** A streaming job as the fuzzer knows it: its id and its instances' current attempts. */
export interface StreamTarget {
  job_id: string;
  instances: readonly { idx: number; attempt: number }[];
}

/** An event as a generator spout makes them, or any object. */
function streamEvent(rng: Rng, seq: number): Record<string, unknown> {
  if (rng.chance(0.7)) return { seq, key: `k${seq % 3}`, value: 1, ts: Date.now() };
  const v = randomValue(rng, 2);
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : { key: v };
}

/** A frame one worker sends another on a stream link: tuples, acks or a credit. */
export function linkFrame(
  rng: Rng,
  streams: readonly StreamTarget[],
  jobIds: readonly string[],
): Record<string, unknown> {
  const s = streams.length && rng.chance(0.7) ? rng.pick(streams) : undefined;
  const job = s?.job_id ?? (jobIds.length && rng.chance(0.5) ? rng.pick(jobIds) : randomId(rng, 'job-'));
  const inst = () => (s?.instances.length ? rng.pick(s.instances) : { idx: rng.int(0, 5), attempt: rng.int(0, 2) });
  const u32 = () => rng.int(0, 0xffffffff);
  switch (rng.pick(['tuples', 'acks', 'credit'] as const)) {
    case 'credit':
      return { t: 'credit', n: rng.pick([0, 1, 32, 64, 1_000_000]) };
    case 'acks':
      return {
        t: 'acks',
        job,
        acks: Array.from({ length: rng.int(1, 8) }, () => {
          const i = inst();
          return [i.idx, i.attempt, rng.int(0, 1000), u32(), u32()];
        }),
      };
    case 'tuples': {
      const n = rng.weighted([
        [8, rng.int(1, 16)],
        [1, 64],
        [1, rng.int(65, 200)],
      ] as const);
      const to: number[] = [];
      const tuples = [];
      for (let i = 0; i < n; i++) {
        const owner = inst();
        to.push(inst().idx);
        tuples.push({
          e: Array.from({ length: rng.int(1, 4) }, (_, k) => streamEvent(rng, i * 4 + k)),
          o: owner.idx,
          a: owner.attempt,
          r: rng.int(0, 1000),
          h: u32(),
          l: u32(),
        });
      }
      return { t: 'tuples', job, to, tuples };
    }
  }
}

// ---------------------------------------------------------------- HTTP

/** Ids the requests name: real ones the cluster gave out, and ones it never did. */
export interface IdPools {
  /** Jobs only read: a fuzzed request must not cancel what the test waits to see completed. */
  readJobs: readonly string[];
  /** Jobs any request may act on (the fuzzer's own). */
  victimJobs: readonly string[];
  workers: readonly string[];
  uploads: readonly string[];
  /** Member ids an admin's request may remove: never a real master's. */
  fakeMembers: readonly number[];
  realMembers: readonly number[];
}

export interface RouteTemplate {
  method: string;
  /** `:job` (read), `:victim`, `:worker`, `:upload`, `:member`, `:task`, `:n` are filled in. */
  path: string;
  body?: (rng: Rng, ids: IdPools) => unknown;
  /** A raw body (uploads). */
  raw?: true;
}

const submitBody = (rng: Rng) => ({
  name: `fuzz-${randomId(rng)}`,
  type: 'batch',
  config: rng.pick([
    { operation: 'multiply', factor: 3, task_count: 2, data: [1, 2, 3, 4] },
    { operation: 'noop', task_count: rng.int(1, 5) },
    { operation: 'sleep', ms: rng.int(0, 200), task_count: 1 },
  ]),
});

export const MASTER_ROUTES: readonly RouteTemplate[] = [
  { method: 'GET', path: '/health' },
  { method: 'GET', path: '/ready' },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/cluster/status' },
  { method: 'GET', path: '/uploads/:upload' },
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/openapi.json' },
  { method: 'POST', path: '/api/jobs', body: submitBody },
  { method: 'GET', path: '/api/jobs' },
  { method: 'GET', path: '/api/jobs/:job' },
  { method: 'GET', path: '/api/jobs/:job/tasks' },
  { method: 'GET', path: '/api/jobs/:job/results' },
  { method: 'POST', path: '/api/jobs/:victim/cancel' },
  { method: 'DELETE', path: '/api/jobs/:victim' },
  { method: 'POST', path: '/api/jobs/:job/events', body: (rng) => [{ line: randomString(rng) }] },
  {
    method: 'POST',
    path: '/api/jobs/:job/rows',
    body: (rng) => ({ rows: [{ key: 'k', value: randomValue(rng, 2) }] }),
  },
  { method: 'POST', path: '/api/uploads', raw: true },
  { method: 'PUT', path: '/api/uploads/:upload', raw: true },
  { method: 'GET', path: '/api/workers' },
  { method: 'POST', path: '/api/workers/register', body: () => ({ address: '127.0.0.159:1', max_tasks: 1 }) },
  {
    method: 'POST',
    path: '/api/workers/heartbeat',
    body: (rng, ids) => ({
      worker_id: ids.workers.length ? rng.pick(ids.workers) : randomId(rng),
      status: 'active',
      active_tasks: 0,
      metrics: {},
      timestamp: new Date().toISOString(),
    }),
  },
  { method: 'GET', path: '/api/workers/:worker/channel' },
  {
    method: 'POST',
    path: '/api/cluster/members',
    body: (rng, ids) => ({ id: rng.pick(ids.fakeMembers), address: LOCAL_URL }),
  },
  { method: 'DELETE', path: '/api/cluster/members/:member' },
  { method: 'GET', path: '/raft/stream' },
];

export const WORKER_ROUTES: readonly RouteTemplate[] = [
  { method: 'GET', path: '/health' },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/api/status' },
  { method: 'GET', path: '/api/shuffle/:job/:task/:n' },
  { method: 'GET', path: '/api/stream/link' },
  {
    method: 'POST',
    path: '/api/stream/:job/:n/events',
    body: (rng) => ({ events: [{ seq: 1, key: 'k1', value: 1, ts: Date.now() }, randomValue(rng, 2)] }),
  },
];

const QUERY_KEYS = ['limit', 'cursor', 'status', 'wait_ms', 'consistency', 'task', 'attempt', 'follow', 'spout'];

/** A random query string: known keys with odd values, unknown keys, repeats, stray separators. */
export function randomQuery(rng: Rng): string {
  if (rng.chance(0.5)) return '';
  const parts: string[] = [];
  for (let i = rng.int(1, 4); i > 0; i--) {
    const key = rng.chance(0.7) ? rng.pick(QUERY_KEYS) : pct(randomString(rng).slice(0, 20));
    // A long poll is a wait by design: keep any wait short so that a slow answer means a hang.
    const value =
      key === 'wait_ms'
        ? rng.pick(['-1', '0', '1', '500', '1.5', '1e3', '60001', 'x'])
        : rng.pick<() => string>([
            () => String(rng.pick(EDGE_NUMBERS)),
            () => pct(randomString(rng).slice(0, 50)),
            () => 'stale',
            () => rng.pick(['pending', 'running', 'completed', '1.0', 'k0', 's0']),
            () => '%',
            () => '',
          ])();
    parts.push(rng.chance(0.1) ? key : `${key}=${value}`);
  }
  return rng.pick(['?', '?&', '??']) + parts.join(rng.chance(0.9) ? '&' : ';');
}

/**
 * A path the router may still take for a real route, or almost: characters percent-encoded,
 * slashes doubled or encoded, dot segments, case changed, segments added, bad escapes.
 * Only ASCII without spaces: what an HTTP client sends on the request line.
 */
export function mutatePath(rng: Rng, path: string): string {
  const segs = path.split('/');
  const seg = () => rng.int(1, Math.max(1, segs.length - 1));
  switch (
    rng.pick([
      'encode',
      'encodeSlash',
      'double',
      'dots',
      'case',
      'trailing',
      'append',
      'badEscape',
      'long',
      'unicode',
    ] as const)
  ) {
    case 'encode': {
      const i = rng.int(0, path.length - 1);
      const ch = path[i]!;
      if (ch === '/' && rng.chance(0.5)) return path;
      const hex = ch.charCodeAt(0).toString(16).padStart(2, '0');
      return `${path.slice(0, i)}%${rng.chance(0.5) ? hex : hex.toUpperCase()}${path.slice(i + 1)}`;
    }
    case 'encodeSlash': {
      const i = seg();
      return [...segs.slice(0, i), segs.slice(i).join(rng.pick(['%2F', '%2f', '%5C']))].join('/');
    }
    case 'double': {
      const i = seg();
      segs.splice(i, 0, '');
      return segs.join('/');
    }
    case 'dots': {
      const i = seg();
      segs.splice(i, 0, ...rng.pick([['.'], ['..'], ['x', '..'], ['%2e%2e'], ['.%2E'], ['..', '..', '..']]));
      return segs.join('/');
    }
    case 'case': {
      const i = seg();
      segs[i] = rng.chance(0.5) ? segs[i]!.toUpperCase() : segs[i]!.replace(/^./, (c) => c.toUpperCase());
      return segs.join('/');
    }
    case 'trailing':
      return path + rng.pick(['/', '//', '/.', '%20', '#x', ';x', '%00']);
    case 'append':
      return `${path}/${pct(randomString(rng).slice(0, 30)) || 'x'}`;
    case 'badEscape': {
      const i = seg();
      segs[i] = `${segs[i]}${rng.pick(['%', '%G1', '%E0%A4%A', '%ff', '%c0%af', '%00', '%ED%A0%80'])}`;
      return segs.join('/');
    }
    case 'long': {
      const i = seg();
      segs[i] = 'a'.repeat(rng.pick([65, 1_000, 20_000]));
      return segs.join('/');
    }
    case 'unicode': {
      const i = seg();
      segs[i] = pct(rng.pick(['é', '💥', '\u0000', 'İ', 'ﬀ', '\ufeff'])) + segs[i];
      return segs.join('/');
    }
  }
}

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'application/x-ndjson',
  'application/jsonx',
  'image/png',
  ';;;',
  '',
];

/** A body's text: JSON of the value as it is, or broken on purpose. */
function bodyText(rng: Rng, value: unknown): string | Buffer {
  const json = () => {
    try {
      return JSON.stringify(value) ?? 'null';
    } catch {
      return '{}';
    }
  };
  return rng.weighted<() => string | Buffer>([
    [10, json],
    [2, () => json().slice(0, rng.int(0, Math.max(0, json().length - 1)))],
    [1, () => `${json()}${rng.pick([',', '}', ']', ' x', '\u0000'])}`],
    [1, () => `\ufeff${json()}`],
    [1, () => rng.pick(["{'name': 'x'}", '{"name": NaN}', '{"a":1,}', '[1 2]', '{"name":"x","name":1}', 'nul', '-'])],
    [
      1,
      () => `{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"name":"x","type":"batch"}`,
    ],
    [1, () => JSON.stringify(randomValue(rng, 3)) ?? 'null'],
    [1, () => rng.bytes(rng.int(1, 200))],
    [1, () => ''],
    [1, () => '['.repeat(rng.pick([1_000, 100_000])) + ']'.repeat(rng.pick([0, 1_000, 100_000]))],
    [1, () => '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000)],
    // Near and over the 16 MiB limit, rarely: they cost the server a parse each.
    [
      0.15,
      () =>
        JSON.stringify({
          name: 'big',
          type: 'batch',
          config: { operation: 'noop', pad: 'x'.repeat(rng.pick([2e6, 17e6])) },
        }),
    ],
  ])();
}

export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/**
 * A request on one of `routes`: its template's method mostly (any method sometimes), its path
 * filled with ids and maybe mutated, a random query, a body (valid, mutated, broken, huge) with
 * a content type that may not fit. `auth` is the Authorization header (or none).
 */
export function httpRequest(
  rng: Rng,
  routes: readonly RouteTemplate[],
  ids: IdPools,
  auth: string | undefined,
  isAdmin: boolean,
): FuzzRequest {
  const route = rng.pick(routes);
  const fill = (name: string): string => {
    switch (name) {
      case ':job':
        return rng.chance(0.8) && ids.readJobs.length + ids.victimJobs.length > 0
          ? rng.pick([...ids.readJobs, ...ids.victimJobs])
          : randomId(rng, 'job-');
      case ':victim':
        return rng.chance(0.7) && ids.victimJobs.length ? rng.pick(ids.victimJobs) : randomId(rng, 'job-');
      case ':worker':
        return rng.chance(0.7) && ids.workers.length ? rng.pick(ids.workers) : randomId(rng, 'w-');
      case ':upload':
        return rng.chance(0.6) && ids.uploads.length ? rng.pick(ids.uploads) : randomId(rng);
      case ':member':
        // An admin may remove any master: it is given only ids no master has.
        return String(isAdmin || rng.chance(0.5) ? rng.pick(ids.fakeMembers) : rng.pick(ids.realMembers));
      case ':task':
        return rng.pick(['0.1', '1.1', '0.0', '999999999.1', '1.2.3', '-1.1', 'x']);
      case ':n':
        return String(rng.pick([0, 1, 2, 3, 4, -1, 999_999_999, 1e10, 1.5]));
      default:
        return name;
    }
  };
  let path = route.path
    .split('/')
    .map((s) => (s.startsWith(':') ? fill(s) : s))
    .join('/');
  // A cancel or a delete must stay on a victim: a mutated path could move it onto another job.
  const onVictim = route.path.includes(':victim');
  if (rng.chance(0.35) && !onVictim) path = mutatePath(rng, path);
  path += randomQuery(rng);

  // On a job the test only reads, another method may only read too (a DELETE would delete it).
  const methods = route.path.includes(':job')
    ? ['GET', 'HEAD', 'OPTIONS']
    : ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];
  const method = onVictim || rng.chance(0.85) ? route.method : rng.pick(methods);
  const headers: Record<string, string> = {};
  if (auth !== undefined) headers.authorization = auth;
  let body: string | Buffer | undefined;
  if (route.raw) {
    body = rng.chance(0.8) ? rng.bytes(rng.int(0, 2_000)) : undefined;
    headers['content-type'] = rng.chance(0.8) ? 'application/octet-stream' : rng.pick(CONTENT_TYPES);
  } else if (route.body || (method !== 'GET' && method !== 'HEAD' && rng.chance(0.3))) {
    const valid = route.body ? route.body(rng, ids) : randomValue(rng, 3);
    body = bodyText(rng, rng.chance(0.5) ? mutate(rng, valid) : valid);
    headers['content-type'] = rng.chance(0.8) ? 'application/json' : rng.pick(CONTENT_TYPES);
  }
  if (headers['content-type'] === '') delete headers['content-type'];
  if (rng.chance(0.15)) headers['idempotency-key'] = rng.pick(['', 'k', 'x'.repeat(201), randomId(rng)]);
  if (rng.chance(0.05)) headers['x-weir-forwarded'] = '1';
  if (rng.chance(0.05)) headers.range = rng.pick(['bytes=0-1', 'bytes=-5', 'bytes=9-2', 'bytes=x', 'items=0-1']);
  if (rng.chance(0.03)) headers['x-weir-node-id'] = String(rng.pick(EDGE_NUMBERS));
  return { method, path, headers, ...(body !== undefined && method !== 'GET' && method !== 'HEAD' ? { body } : {}) };
}

/**
 * Bytes that are not HTTP, or bend it: unknown methods and versions, spaces and control bytes
 * in the target, headers without a colon, conflicting lengths, a bad chunk, a header too
 * large. Each is a whole request, so a server has all it needs to answer.
 */
export function rawHttp(rng: Rng, path: string): Buffer {
  const req = (line: string, ...headers: string[]) =>
    [line, 'Host: x', 'Connection: close', ...headers, '', ''].join('\r\n');
  const text = rng.pick<() => string>([
    () => req(`FOO ${path} HTTP/1.1`),
    () => req(`GET ${path} HTTP/9.9`),
    () => req(`GET ${path} x y`),
    () => req('GET /api/jobs /x HTTP/1.1'),
    () => req('GET /api/\u0001jobs HTTP/1.1'),
    () => req(`GET ${path}\u0000 HTTP/1.1`),
    () => req(`get ${path} HTTP/1.1`),
    () => req(`GET ${path} HTTP/1.1`, 'no colon here'),
    () => req(`POST ${path} HTTP/1.1`, 'Content-Length: 5', 'Content-Length: 6') + '12345',
    () => req(`POST ${path} HTTP/1.1`, 'Content-Length: 3', 'Transfer-Encoding: chunked') + '0\r\n\r\n',
    () => req(`POST ${path} HTTP/1.1`, 'Transfer-Encoding: chunked') + 'zz\r\nx\r\n0\r\n\r\n',
    () => req(`GET ${path} HTTP/1.1`, `X-Big: ${'a'.repeat(20_000)}`),
    () => req(`POST ${path} HTTP/1.1`, 'Content-Length: -1'),
    () => req(`GET ${path} HTTP/1.1`, 'Bad\u0001Header: 1'),
  ])();
  return Buffer.from(text, 'latin1');
}

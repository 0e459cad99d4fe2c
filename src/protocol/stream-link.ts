import { Type } from '@sinclair/typebox';
import { Packr } from 'msgpackr';
import { checkedDecoder, type Decoded } from './checked-decode.js';
import { TokenFrameSchema, type TokenFrame } from './token-frame.js';
import { notJson } from './json-values.js';

/**
 * A batch of events on its way to one instance, tracked as one tuple: the events, and the
 * batch's place in a tuple tree — the root it descends from (owned by instance `o`,
 * incarnation `a`) and its own 64-bit id as two uint32 halves (`h`, `l`). Batches, as
 * Flink's network buffers and Trident's batches, make routing, acking and framing cost per
 * batch instead of per event; a root that fails replays its whole batch.
 */
export interface Tuple {
  e: Record<string, unknown>[];
  o: number;
  a: number;
  r: number;
  h: number;
  l: number;
}

/** An ack update for root `r` of instance `o` (incarnation `a`): XOR `h`,`l` into its value. */
export type AckItem = [o: number, a: number, r: number, h: number, l: number];

/**
 * The link protocol this build speaks, asked for in the link's URL (`?v=2`). Version 1 (no
 * `v`) shares one credit window among everything a link carries, so tuples for a blocked
 * instance can hold up tuples for a free one; version 2 gives each (job, receiving instance)
 * its own: a channel, as Flink has one per input channel. A receiver answers the version it
 * speaks: a version-1 receiver with its first `credit`, a later one with `hello`.
 */
export const LINK_VERSION = 2;

/** Events in one tuple, at most: a spout's batch; every edge splits what it sends to fit. */
export const TUPLE_EVENTS = 1024;

/** A channel's credits granted back: `n` more tuples for instance `to` of `job`. */
export type ChannelGrant = [job: string, to: number, n: number];

/** Frames on a link between two workers (a WebSocket, msgpack). */
export type LinkFrame =
  /** Tuples for instances on the receiving worker; they spend the sender's credits. */
  | { t: 'tuples'; job: string; to: number[]; tuples: Tuple[] }
  /** Ack updates; never held back by credits, so acking cannot deadlock on a full buffer. */
  | { t: 'acks'; job: string; acks: AckItem[] }
  /** Version 1: the receiver freed buffer space: the sender may send `n` more tuples. */
  | { t: 'credit'; n: number }
  /**
   * Version 2, the receiver's first frame: every channel starts with `window` credits, granted
   * without a word (so a new channel costs no round trip) and back to that once drained.
   */
  | { t: 'hello'; v: number; window: number }
  /** Version 2: channels' freed buffer space. */
  | { t: 'grants'; g: ChannelGrant[] }
  /** The sender's fresh token: the receiver closes a link that outlived its token. */
  | TokenFrame;

const packr = new Packr({ useRecords: false });
export const encodeFrame = (f: LinkFrame): Buffer => packr.pack(f);

const U32 = Type.Integer({ minimum: 0, maximum: 0xffffffff });
/** A counter that only grows (a root's number): any safe integer. */
const Counter = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Job = Type.String({ maxLength: 64 });
/** A channel's window, at most: more than any receiver grants, less than would overflow a count. */
const MAX_WINDOW = 65_536;
const LinkFrameSchema = Type.Union([
  Type.Object({
    t: Type.Literal('tuples'),
    job: Job,
    to: Type.Array(U32),
    tuples: Type.Array(
      Type.Object({
        e: Type.Array(Type.Unknown(), { maxItems: TUPLE_EVENTS }),
        o: U32,
        a: U32,
        r: Counter,
        h: U32,
        l: U32,
      }),
    ),
  }),
  Type.Object({ t: Type.Literal('acks'), job: Job, acks: Type.Array(Type.Tuple([U32, U32, Counter, U32, U32])) }),
  Type.Object({ t: Type.Literal('credit'), n: U32 }),
  Type.Object({ t: Type.Literal('hello'), v: U32, window: Type.Integer({ minimum: 1, maximum: MAX_WINDOW }) }),
  Type.Object({
    t: Type.Literal('grants'),
    g: Type.Array(Type.Tuple([Job, U32, Type.Integer({ minimum: 1, maximum: MAX_WINDOW })])),
  }),
  TokenFrameSchema,
]);

const decodeChecked = checkedDecoder<LinkFrame>(packr, LinkFrameSchema);

/** A link frame, checked; tuples must each name the instance they are for. */
export function decodeFrame(bytes: Buffer): Decoded<LinkFrame> {
  const d = decodeChecked(bytes);
  if (!d.ok || d.value.t !== 'tuples') return d;
  const f = d.value;
  if (f.to.length !== f.tuples.length)
    return { ok: false, error: `${f.tuples.length} tuples for ${f.to.length} instances` };
  for (const t of f.tuples) {
    for (const e of t.e) {
      if (e === null || typeof e !== 'object') return { ok: false, error: 'an event that is not an object' };
      const why = notJson(e);
      if (why !== undefined) return { ok: false, error: `an event holding ${why}, which JSON cannot carry` };
    }
  }
  return d;
}

import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { newCodec } from '../protocol/msgpack.js';
import type { Message, NodeId } from './core/types.js';
import { MAX_TOKEN_LENGTH } from '../protocol/token-frame.js';
import { CHUNK_BYTES, type SnapshotChunk } from './snapshot-stream.js';
import { MAX_NESTING, nestsDeeper, tooDeep } from '../protocol/nesting.js';

// The frames masters send each other, and their schema: a frame is checked where it is
// decoded, so nothing the core is handed can make it throw.

const Id = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Index = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Member = Type.Object({ id: Id, address: Type.String({ maxLength: 300 }), voter: Type.Boolean() });
const SnapshotMetaSchema = Type.Object({ index: Index, term: Index, members: Type.Array(Member, { maxItems: 1000 }) });
const ConfChange = Type.Union([
  Type.Object({ op: Type.Literal('bootstrap'), members: Type.Array(Member, { maxItems: 1000 }) }),
  Type.Object({ op: Type.Literal('addLearner'), id: Id, address: Type.String({ maxLength: 300 }) }),
  Type.Object({ op: Type.Union([Type.Literal('promote'), Type.Literal('remove')]), id: Id }),
]);
// A command travels as its bytes (an object in entries an earlier version logged).
const Entry = Type.Union([
  Type.Object({
    index: Index,
    term: Index,
    kind: Type.Literal('cmd'),
    data: Type.Union([Type.Uint8Array(), Type.Object({})]),
  }),
  Type.Object({ index: Index, term: Index, kind: Type.Literal('conf'), data: ConfChange }),
  Type.Object({ index: Index, term: Index, kind: Type.Literal('noop'), data: Type.Optional(Type.Unknown()) }),
]);
const head = { from: Id, to: Id, term: Index };
const MessageSchema = Type.Union([
  Type.Object({
    type: Type.Union([Type.Literal('preVote'), Type.Literal('vote')]),
    ...head,
    lastIndex: Index,
    lastTerm: Index,
    transfer: Type.Optional(Type.Boolean()),
  }),
  Type.Object({
    type: Type.Union([Type.Literal('preVoteResp'), Type.Literal('voteResp')]),
    ...head,
    reject: Type.Boolean(),
  }),
  Type.Object({
    type: Type.Literal('app'),
    ...head,
    prevIndex: Index,
    prevTerm: Index,
    entries: Type.Array(Entry),
    commit: Index,
  }),
  Type.Object({ type: Type.Literal('appResp'), ...head, index: Index, reject: Type.Boolean(), hint: Index }),
  Type.Object({ type: Type.Literal('heartbeat'), ...head, commit: Index, ctx: Index }),
  Type.Object({ type: Type.Literal('heartbeatResp'), ...head, ctx: Index }),
  Type.Object({ type: Type.Literal('snap'), ...head, snapshot: SnapshotMetaSchema }),
  Type.Object({ type: Type.Literal('timeoutNow'), ...head }),
]);
const PeerFrameSchema = Type.Object({
  from: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  /** The sender's URL: a master not yet in our configuration (one joining) can be answered. */
  addr: Type.Optional(Type.String({ pattern: '^https?://[^/\\s]+$', maxLength: 300 })),
  msgs: Type.Optional(Type.Array(MessageSchema)),
  chunk: Type.Optional(
    Type.Object(
      {
        transfer: Id,
        offset: Index,
        size: Index,
        data: Type.Uint8Array({ maxByteLength: CHUNK_BYTES }),
        sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
      },
      { additionalProperties: false },
    ),
  ),
  ping: Type.Optional(Type.Literal(true)),
  /** A fresh token for the link, sent before the one it opened with expires (no `Bearer `). */
  token: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH })),
});

/** One frame between masters: Raft messages, maybe a chunk of a snapshot, or just a sign of life. */
export interface PeerFrame {
  from: NodeId;
  addr?: string;
  msgs?: Message[];
  chunk?: SnapshotChunk;
  ping?: true;
  token?: string;
}

// The schema and the core's types describe the same frames; this keeps them from drifting.
type Checked = Static<typeof PeerFrameSchema>;
const _sameShape = (f: PeerFrame): Pick<Checked, 'from' | 'addr' | 'ping' | 'token'> => f;
void _sameShape;

const check = TypeCompiler.Compile(PeerFrameSchema);

// Entries' bytes are copied out of the frame: a slice would keep the whole read buffer alive
// for as long as the entry stays in the in-memory log.
const packr = newCodec({ copyBuffers: true });
/**
 * Deeper than any frame a master sends: messages, entries, memberships — and an entry of the
 * log's first format, whose command is an object holding values bounded where they came in.
 */
const PEER_FRAME_NESTING = MAX_NESTING + 16;

export const encodeFrame = (f: PeerFrame): Buffer => packr.pack(f);

/**
 * The frame in `bytes`, or why it is not one: undecodable, of the wrong shape, or carrying a
 * message that claims another sender than the frame.
 */
export function decodeFrame(bytes: Buffer): { frame: PeerFrame } | { error: string } {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (err) {
    return { error: `not msgpack: ${(err as Error).message}` };
  }
  // A frame's own levels, a few: commands travel as bytes. Before the schema's check, which
  // recurses as deep as the value goes.
  if (nestsDeeper(value, PEER_FRAME_NESTING)) return { error: tooDeep('the frame', PEER_FRAME_NESTING) };
  if (!check.Check(value)) {
    const first = check.Errors(value).First();
    return { error: first ? `${first.path || 'frame'}: ${first.message}` : 'not a peer frame' };
  }
  const frame = value as PeerFrame;
  const chunk = frame.chunk;
  if (chunk && chunk.offset + chunk.data.length > chunk.size) return { error: 'a chunk past the end of its snapshot' };
  if (chunk?.sha256 !== undefined && chunk.offset + chunk.data.length !== chunk.size) {
    return { error: 'a last chunk that does not end its snapshot' };
  }
  const snaps = (frame.msgs ?? []).filter((m) => m.type === 'snap').length;
  // A snapshot message travels on its snapshot's last chunk, alone; the chunk's checksum vouches for the data.
  if (snaps > 0 && (chunk?.sha256 === undefined || snaps !== 1 || frame.msgs!.length !== 1)) {
    return { error: 'a snapshot message without its last chunk' };
  }
  if (chunk?.sha256 !== undefined && snaps === 0) return { error: 'a last chunk without its snapshot message' };
  for (const m of frame.msgs ?? []) {
    if (m.from !== frame.from) return { error: 'a message claims another sender than its frame' };
    if (m.type === 'app' && m.entries.some((e, i) => e.index !== m.prevIndex + 1 + i)) {
      return { error: 'an append whose entries do not follow on from prevIndex' };
    }
  }
  return { frame };
}

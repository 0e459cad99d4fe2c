import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Packr } from 'msgpackr';
import { MAX_NESTING, nestsDeeper, tooDeep } from './nesting.js';

/** A frame's own levels around the values it carries (each bounded by MAX_NESTING where it came in). */
const FRAME_NESTING = MAX_NESTING + 16;

/** A frame as it came off a socket: the value its schema promises, or why it is not one. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Decodes a socket's frames and checks each against its schema, once, where bytes become
 * values: what a listener gets is the type it expects, and nothing a sender puts in a frame
 * can make it throw.
 */
export function checkedDecoder<T>(packr: Packr, schema: TSchema): (bytes: Buffer) => Decoded<T> {
  const check = TypeCompiler.Compile(schema);
  return (bytes) => {
    let value: unknown;
    try {
      value = packr.unpack(bytes);
    } catch (err) {
      return { ok: false, error: `not msgpack: ${(err as Error).message}` };
    }
    // Before the schema's check, which recurses as deep as the value goes.
    if (nestsDeeper(value, FRAME_NESTING)) return { ok: false, error: tooDeep('the frame', FRAME_NESTING) };
    if (check.Check(value)) return { ok: true, value: value as T };
    const first = check.Errors(value).First();
    return {
      ok: false,
      error: first ? `${first.path || 'the frame'}: ${first.message}` : 'not a frame of this socket',
    };
  };
}

/** Frames refused since start, by socket: for /metrics. */
export const refusedFrames = { peer: 0, worker_channel: 0, stream_link: 0 };

/** Which counter a socket's route counts under, for frames ws itself refuses before ours see them. */
export const SOCKET_ROUTES: Readonly<Record<string, keyof typeof refusedFrames>> = {
  '/raft/stream': 'peer',
  '/api/workers/:worker_id/channel': 'worker_channel',
  '/api/stream/link': 'stream_link',
};

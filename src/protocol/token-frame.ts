import { Type } from '@sinclair/typebox';

/**
 * A fresh token (no `Bearer `) sent on a long-lived socket before the one it runs on expires:
 * a worker's channel to the leader, a stream link between workers. The receiving end closes a
 * socket whose token expired with no fresh one, or that is sent one that may not speak for it.
 */
export interface TokenFrame {
  t: 'token';
  token: string;
}

/** A token is a few hundred bytes; this bounds what a frame of one makes the receiver verify. */
export const MAX_TOKEN_LENGTH = 8192;

export const TokenFrameSchema = Type.Object({
  t: Type.Literal('token'),
  token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH }),
});

/** A token sent on a socket may not speak for it (another worker's, a client's, a forgery). */
export const CLOSE_TOKEN_REFUSED = 4403;

import type { FastifyReply } from 'fastify';

/**
 * Aborts once the connection `reply` would answer on has closed before the answer was sent,
 * so that a long poll, or a request forwarded to the leader, stops working for a client that
 * left. The response's 'close' is the one to follow (the request's fires as soon as its body
 * has been read); it fires after every answer too, when aborting would only cost an
 * AbortError's stack (a DOMException for each long poll answered).
 */
export function clientGone(reply: FastifyReply): AbortSignal {
  const gone = new AbortController();
  const res = reply.raw;
  if (res.destroyed && !res.writableFinished) gone.abort();
  else res.once('close', () => res.writableFinished || gone.abort());
  return gone.signal;
}

/** That a client has left, or is told of as it leaves: what ends a wait on its behalf. */
export interface Departure {
  readonly left: boolean;
  /** Calls `fn` once, as the client leaves; returns what stops listening. */
  onLeave(fn: () => void): () => void;
}

/**
 * As `clientGone`, for a long poll: a listener on the response and nothing else. An
 * AbortController and its signal's listeners cost each long poll several times as much
 * (50–70 µs against 17 with the CPU's caches cold, as between a master's requests).
 */
export function clientDeparture(reply: FastifyReply): Departure {
  const res = reply.raw;
  return {
    get left() {
      return res.destroyed && !res.writableFinished;
    },
    onLeave(fn) {
      const closed = () => res.writableFinished || fn();
      res.once('close', closed);
      return () => res.removeListener('close', closed);
    },
  };
}

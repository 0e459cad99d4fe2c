import type { FastifyReply } from 'fastify';

/** That a client has left, or is told of as it leaves: what ends a wait on its behalf. */
export interface Departure {
  readonly left: boolean;
  /** Calls `fn` once, as the client leaves; returns what stops listening. */
  onLeave(fn: () => void): () => void;
}

/**
 * Whether the connection `reply` would answer on has closed before the answer was sent, so
 * that a long poll stops working for a client that left: a listener on the response and
 * nothing else. The response's 'close' is the one to follow (the request's fires as soon as
 * its body has been read); it fires after every answer too, which is no departure.
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

/**
 * The same departure as a signal, for what takes one (a request forwarded to the leader).
 * Not for a long poll: an AbortController and its signal's listeners cost each one several
 * times as much as `clientDeparture` (50–70 µs against 17 with the CPU's caches cold, as
 * between a master's requests).
 */
export function clientGone(reply: FastifyReply): AbortSignal {
  const gone = new AbortController();
  const departure = clientDeparture(reply);
  if (departure.left) gone.abort();
  else departure.onLeave(() => gone.abort());
  return gone.signal;
}

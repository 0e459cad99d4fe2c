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

import type { FastifyReply } from 'fastify';

/**
 * Aborts once the connection `reply` would answer on has closed, so that a long poll, or a
 * request forwarded to the leader, stops working for a client that left. The response's
 * 'close' is the one to follow: the request's fires as soon as its body has been read.
 */
export function clientGone(reply: FastifyReply): AbortSignal {
  const gone = new AbortController();
  if (reply.raw.destroyed) gone.abort();
  else reply.raw.once('close', () => gone.abort());
  return gone.signal;
}

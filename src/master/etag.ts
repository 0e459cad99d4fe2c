import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** A weak validator of a JSON answer: equal bodies, equal tags (any master, any time). */
export function etagOf(body: string | Buffer): string {
  return `W/"${createHash('sha1').update(body).digest('base64url')}"`;
}

/** Whether an If-None-Match header names `tag` (a list, or `*`). */
export function matches(ifNoneMatch: string | undefined, tag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === tag || `W/${v}` === tag;
  });
}

/**
 * An onSend hook: a 200 answer to a GET carries an ETag, and a caller that already holds that
 * body (If-None-Match) gets 304 with none. The dashboard polls every second and most polls
 * find nothing changed: a 304 costs the master no bytes to send and the browser nothing to
 * parse or draw. Streamed answers (results pages, forwarded calls, logs) pass untouched.
 */
export async function conditionalGet(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  if (req.method !== 'GET' || reply.statusCode !== 200) return payload;
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
  const tag = etagOf(payload);
  reply.header('etag', tag);
  if (!matches(req.headers['if-none-match'], tag)) return payload;
  reply.code(304);
  reply.removeHeader('content-length');
  return '';
}

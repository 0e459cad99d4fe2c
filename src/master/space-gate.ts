import type { FastifyReply, FastifyRequest } from 'fastify';
import { routeKey } from '../common/auth-hook.js';
import { noSpace } from '../common/errors.js';

/**
 * The routes whose writes add data, refused with 507 `no_space` while the alarm is on: a
 * submit, an upload (or a master's copy of one), a worker's registration, a streaming job's
 * events and the rows its collect sinks deliver (a sink keeps them and retries; its sources
 * slow down meanwhile, and nothing is lost). Everything else goes on: reads, cancels,
 * deletes, heartbeats, worker channels — over which task reports of jobs already running
 * arrive (refusing them would wedge those jobs for good, and what they add is bounded by
 * the per-task and per-job result caps: the headroom `--min-free-bytes` keeps is for them)
 * — membership changes, and the Raft stream.
 */
export const ADDS_DATA: ReadonlySet<string> = new Set([
  'POST /api/jobs',
  'POST /api/uploads',
  'PUT /api/uploads/:id',
  'POST /api/workers/register',
  'POST /api/jobs/:job_id/events',
  'POST /api/jobs/:job_id/rows',
]);

/** Bodies of refused requests are read and dropped up to this, so the answer reaches a client still sending. */
const MAX_DRAIN = 256 * 1024 * 1024;

/**
 * An onRequest hook, after auth and before forwarding to the leader: a write that adds data
 * is refused here while `alarm()` gives a reason — before its body is read, so an upload
 * never reaches the disk.
 */
export function spaceGate(alarm: () => string | undefined) {
  return (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    const key = routeKey(req);
    const why = key !== undefined && ADDS_DATA.has(key) ? alarm() : undefined;
    if (!why) return done();
    const refusal = noSpace(why);
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody || req.raw.readableEnded) return done(refusal);
    // Answered only once the body is in: a client still sending would otherwise see its
    // connection reset instead of the 507.
    let seen = 0;
    req.raw.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > MAX_DRAIN) req.raw.destroy();
    });
    req.raw.on('end', () => void reply.code(refusal.status).send(refusal.toJSON()));
  };
}

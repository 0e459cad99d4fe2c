import type { FastifyReply, FastifyRequest } from 'fastify';
import { routeKey } from '../common/auth-hook.js';
import { noSpace } from '../common/errors.js';
import { refuseOnceBodyIsIn } from '../common/http-errors.js';

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

/** The routes that store their body as a file on this master's disk, as it arrives. */
const STORES_BODY: ReadonlySet<string> = new Set(['POST /api/uploads', 'PUT /api/uploads/:id']);

/**
 * An onRequest hook, after auth and before forwarding to the leader: a write that adds data
 * is refused here while `alarm()` gives a reason — before its body is read, so an upload
 * never reaches the disk. So is an upload declared larger than `room()`, the bytes above
 * `--min-free-bytes`: one upload of 150 MiB with 155 MiB free took the headroom kept for the
 * task reports of running jobs before the alarm could go on.
 */
export function spaceGate(alarm: () => string | undefined, room: () => number = () => Infinity) {
  return (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    const key = routeKey(req);
    if (key === undefined || !ADDS_DATA.has(key)) return done();
    let why = alarm();
    const declared = Number(req.headers['content-length'] ?? 0);
    if (!why && STORES_BODY.has(key)) {
      const left = room();
      if (declared > left) {
        why = `this upload's ${mib(declared)} would leave less than --min-free-bytes free on this master's disk (room for ${mib(Math.max(0, left))})`;
      }
    }
    if (!why) return done();
    refuseOnceBodyIsIn(req, reply, noSpace(why), done);
  };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

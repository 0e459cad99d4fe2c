import type { FastifyReply, FastifyRequest } from 'fastify';
import { Agent, request } from 'undici';
import { noLeader } from '../common/errors.js';
import { AtMostEvery } from '../common/at-most-every.js';
import type { TlsConnect } from '../common/tls.js';
import type { ClusterConsensus } from './cluster-log.js';
import { clientGone } from './client-gone.js';
import { LIVE_PATH } from './live-feed.js';

/**
 * Headers of one connection, not of the request: not passed on. `expect` above all: this master
 * answered the 100-continue itself, and undici refuses to send the header at all.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
  'te',
  'trailer',
  'proxy-connection',
]);
export const FORWARDED = 'x-weir-forwarded';
/** Headers of the leader's answer a forwarded one keeps: a download's name, a read's ETag, a stream's caching. */
const FORWARDED_BACK = new Set(['content-disposition', 'etag', 'cache-control']);
/**
 * Uploads are copied from master to master, not through the log: they need no leader. Their
 * deletion goes through the log, as other writes do.
 */
export const UPLOADS_PATH = '/api/uploads';
const isUpload = (method: string, url: string) =>
  method !== 'DELETE' && (url === UPLOADS_PATH || url.startsWith(`${UPLOADS_PATH}/`));
const BACKUP_ROUTE = '/api/cluster/backup';
/**
 * Whether a request may stay open until its job ends — it names `wait_ms` or `follow` (a
 * backup is long too). Read from the parsed query, as the route reads it: `%66ollow=1` and
 * `wait_ms=+60000` are long polls too, and 64 of them must not hold the shared pool.
 */
export function longLived(query: unknown): boolean {
  if (query === null || typeof query !== 'object') return false;
  return 'wait_ms' in query || 'follow' in query;
}
/**
 * Routes whose answers carry figures that only the leader holds — workers' heartbeats and
 * metrics, streaming instances' rates: workers report them to the leader alone — and the
 * dashboard's stream of them. (A streaming job's own route shows its rates too, but a stale
 * read of a job is how one asks what a follower has applied: the dashboard reads it unstale.) A follower forwards these even when read stale, and the leader
 * serves them stale (no read round), so a dashboard opened on any master shows them; a
 * follower that knows no leader answers them itself, without those figures.
 */
const LEADER_FIGURES: ReadonlySet<string> = new Set([LIVE_PATH, '/api/workers']);
/** undici refusing the request as given (a header it will not send): this master's fault, not `no_leader`. */
const LOCAL_FAULTS = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);
/** How long a follower waits for the leader's answer to a stale read before answering it itself. */
const STALE_WAIT_MS = 2000;
/** How long `weir backup` waits for one (src/client/sdk.ts). */
const BACKUP_WAIT_MS = 600_000;

/**
 * Any master answers: a follower proxies calls that need the leader to it (a redirect would
 * lose the Authorization header in common clients), streaming the body through untouched.
 * Reads with `?consistency=stale` are served locally; the leader serves the others after a
 * read-index round, so they are linearizable.
 */
export class LeaderForwarding {
  private readonly agent: Agent;
  /**
   * For requests that may hold their connection for a minute (a long poll, a log followed):
   * in the pool of 64, 64 of them queued every other request forwarded meanwhile behind them.
   * Each holds one connection to the leader, as it would had its client gone there directly.
   */
  private readonly waits: Agent;

  /** `tls`: how to reach a leader serving https (see tls.ts). */
  constructor(
    private readonly consensus: ClusterConsensus,
    tls?: TlsConnect,
  ) {
    const connect = tls ? { connect: tls } : {};
    this.agent = new Agent({ keepAliveTimeout: 10_000, connections: 64, ...connect });
    this.waits = new Agent({ keepAliveTimeout: 10_000, ...connect });
  }

  /** An onRequest hook for /api routes. */
  hook = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    // Decided on the route the router matched, as auth is: `/%61pi/jobs` is forwarded too.
    const route = req.routeOptions.url;
    if (route === undefined || !route.startsWith('/api/') || req.headers.upgrade || isUpload(req.method, route))
      return undefined;
    const leads = this.consensus.isLeader();
    const leader = leads ? undefined : this.consensus.leaderUrl();
    // The dashboard's stream, like a stale read, is served without a read round.
    const stale =
      route === LIVE_PATH || (req.method === 'GET' && (req.query as { consistency?: unknown }).consistency === 'stale');
    if (stale && (leads || !leader || !LEADER_FIGURES.has(route) || req.headers[FORWARDED])) return undefined;
    if (leads) {
      if (req.method === 'GET') await this.consensus.readBarrier();
      return undefined;
    }
    // One hop only: a master that was told it leads but does not is in an election.
    if (!leader || req.headers[FORWARDED]) throw noLeader();
    // A stale read the leader cannot answer now is this master's to answer, as before it asked.
    return this.forward(req, reply, leader, stale);
  };

  /** A leader down in an election fails every forward for a moment: said once a second. */
  private readonly unreachable = new AtMostEvery(1000);

  /** `orHere`: if the leader cannot be reached, undefined (this master answers) rather than no_leader. */
  private async forward(
    req: FastifyRequest,
    reply: FastifyReply,
    leader: string,
    orHere = false,
  ): Promise<FastifyReply | undefined> {
    const headers: Record<string, string> = { [FORWARDED]: '1' };
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string' && !HOP_BY_HOP.has(k)) headers[k] = v;
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const route = req.routeOptions.url;
    const backup = route === BACKUP_ROUTE;
    // A long poll forwarded for a client that then left is not left parked on the leader.
    const gone = clientGone(reply);
    let res;
    try {
      res = await request(`${leader}${req.url}`, {
        signal: gone,
        method: req.method as 'POST',
        headers,
        body: hasBody ? req.raw : null,
        dispatcher: backup || route === LIVE_PATH || longLived(req.query) ? this.waits : this.agent,
        // A backup is made whole before its first byte leaves: wait for it as long as the CLI does.
        headersTimeout: backup ? BACKUP_WAIT_MS : orHere ? STALE_WAIT_MS : 90_000,
        bodyTimeout: 90_000,
      });
    } catch (err) {
      // Nobody to answer.
      if (gone.aborted) return reply.code(499).send();
      // This master could not even make the request: not the leader's absence, a fault here.
      if (LOCAL_FAULTS.has((err as { code?: string }).code ?? '')) throw err;
      // A leader down in an election fails every forward for a moment; a TLS or network
      // fault fails them until someone acts: said once a second, not once a request.
      this.unreachable.say((heldBack) =>
        req.log.warn(
          { err, leader, failed_since_last: heldBack },
          `could not forward a request to the leader; ${orHere ? 'answering it here' : 'answering no_leader'}`,
        ),
      );
      if (orHere) return undefined;
      throw noLeader();
    }
    reply.code(res.statusCode);
    const type = res.headers['content-type'];
    if (typeof type === 'string') reply.header('content-type', type);
    const retry = res.headers['retry-after'];
    if (typeof retry === 'string') reply.header('retry-after', retry);
    // What a download says of itself (a backup's log position, its file name).
    for (const [k, v] of Object.entries(res.headers)) {
      if (typeof v === 'string' && (k.startsWith('x-weir-applied-') || FORWARDED_BACK.has(k))) reply.header(k, v);
    }
    reply.send(res.body);
    // A body streamed through is still being sent when this hook returns, and until it ends
    // Fastify holds the reply unsent and goes on to the route's own handler: a forwarded live
    // stream's handler wrote its headers again (an error logged for each), and a forwarded long
    // poll was parked on this master too, for nothing. The answer is the leader's alone.
    return reply.hijack();
  }

  async close(): Promise<void> {
    await Promise.all([this.agent.close(), this.waits.close()]);
  }
}

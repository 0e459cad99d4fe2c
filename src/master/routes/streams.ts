import { commit } from '../cluster-log.js';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Agent, request } from 'undici';
import type { TokenSource } from '../../common/auth.js';
import { WeirError, badRequest, noLeader, notFound, replyError } from '../../common/errors.js';
import { ID_PATTERN } from '../../common/ids.js';
import { BOUNDED_INSIDE } from '../../common/json-bodies.js';
import { jsonNestsDeeper, tooDeep } from '../../protocol/nesting.js';
import { holdsProtoKey } from '../../protocol/json-values.js';
import { schemeOf } from '../../common/tls.js';
import { isStreamConfig, type StreamConfig } from '../../protocol/stream-job.js';
import { instancesOf } from '../../stream/topology.js';
import type { MasterContext } from '../context.js';
import { AcceptedReply, SaturatedReply, StoredReply } from '../reply-schemas.js';
import { BODY_LIMIT } from '../../common/http-errors.js';

const JobParams = Type.Object({ job_id: Type.String({ pattern: ID_PATTERN.source }) });

/** How long the master keeps trying to hand events to a source instance (re-placements included). */
const DELIVERY_WINDOW_MS = 30_000;

/** The message of a `{error: {code, message}}` reply, if the text is one. */
function errorMessageOf(text: string): string | undefined {
  try {
    return replyError(JSON.parse(text))?.message?.slice(0, 300);
  } catch {
    return undefined;
  }
}

/** Parses a JSON array or NDJSON body into events; each must be a JSON object. */
function eventsOf(body: unknown): Record<string, unknown>[] {
  let list: unknown = body;
  if (typeof body === 'string') {
    if (jsonNestsDeeper(body)) throw badRequest(tooDeep('an event of the body'));
    list = body
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .map((l, i) => {
        let event: unknown;
        try {
          event = JSON.parse(l) as unknown;
        } catch {
          throw badRequest(`line ${i + 1} of the NDJSON body is not JSON: ${l.slice(0, 80)}`);
        }
        // Refused in a JSON body too (Fastify's parser): between workers it would be renamed.
        if (holdsProtoKey(event, l))
          throw badRequest(`line ${i + 1} of the NDJSON body has a key __proto__; rename it`);
        return event;
      });
  }
  if (!Array.isArray(list)) throw badRequest('send the events as a JSON array, or as NDJSON (one object per line)');
  const bad = list.findIndex((e) => e === null || typeof e !== 'object' || Array.isArray(e));
  if (bad >= 0) throw badRequest(`event ${bad} is not a JSON object`);
  if (list.length === 0) throw badRequest('there are no events in the body');
  return list as Record<string, unknown>[];
}

/**
 * A streaming job's edges on the masters: events for its http sources (handed to a source
 * instance on its worker, answered once they are safe) and the rows its collect sinks
 * deliver (committed through the log).
 */
export function streamRoutes(ctx: MasterContext, tokens: TokenSource): FastifyPluginAsyncTypebox {
  const { consensus, queries } = ctx;
  const agent = new Agent({
    keepAliveTimeout: 10_000,
    connections: 32,
    ...(ctx.tls ? { connect: ctx.tls.connect } : {}),
  });
  const scheme = schemeOf(ctx.tls);
  let turn = 0;

  const streamingJob = (jobId: string): StreamConfig => {
    const row = queries.job(jobId);
    if (!row) throw notFound('job', jobId);
    const config = queries.jobConfig(jobId);
    if (!config || !isStreamConfig(config)) throw badRequest(`job '${jobId}' is not a streaming job`);
    if (row.status !== 'running' && row.status !== 'pending') {
      throw new WeirError('conflict', `job '${jobId}' is ${row.status}; it takes no more events`);
    }
    return config;
  };

  /** Global indexes of the instances of http source `spout` (the only one when not named). */
  const sourceInstances = (config: StreamConfig, spout: string | undefined): number[] => {
    const http = config.topology.spouts.filter((s) => s.type === 'http');
    if (http.length === 0) throw badRequest('this topology has no http source to send events to');
    if (spout === undefined && http.length > 1) {
      throw badRequest(
        `this topology has several http sources; name one with ?spout= (${http.map((s) => s.id).join(', ')})`,
      );
    }
    const id = spout ?? http[0]!.id;
    if (!http.some((s) => s.id === id)) {
      throw badRequest(
        `no http source '${id}' in this topology; its http sources: ${http.map((s) => s.id).join(', ')}`,
      );
    }
    return instancesOf(config.topology).flatMap((inst, idx) => (inst.component === id ? [idx] : []));
  };

  return async (app) => {
    app.addContentTypeParser(['application/x-ndjson', 'text/plain'], { parseAs: 'string' }, (_req, body, done) =>
      done(null, body),
    );
    app.addHook('onClose', async () => agent.close());

    app.post(
      '/jobs/:job_id/events',
      {
        schema: {
          params: JobParams,
          querystring: Type.Object({ spout: Type.Optional(Type.String()) }),
          response: { 202: AcceptedReply, 429: SaturatedReply },
        },
      },
      async (req, reply) => {
        const jobId = req.params.job_id;
        const config = streamingJob(jobId);
        const events = eventsOf(req.body);
        const candidates = sourceInstances(config, req.query.spout);
        // Written once: what every try sends. Past what a worker takes, no try could succeed.
        const body = JSON.stringify({ events });
        if (Buffer.byteLength(body) > BODY_LIMIT) {
          throw new WeirError(
            'payload_too_large',
            `${events.length === 1 ? 'the event takes' : `the ${events.length} events take`} ${(Buffer.byteLength(body) / 1048576).toFixed(1)} MiB as JSON written out, over the ${BODY_LIMIT / 1048576} MiB a source takes at once; send fewer or smaller events at a time`,
          );
        }
        const deadline = Date.now() + DELIVERY_WINDOW_MS;
        let last = 'no source instance is placed yet';
        while (Date.now() < deadline) {
          if (!consensus.isLeader()) throw noLeader();
          const placed = queries.streamPlacement(jobId).filter((p) => candidates.includes(p.idx));
          const target = placed[turn++ % Math.max(1, placed.length)];
          if (target) {
            const auth = await tokens.header();
            try {
              const res = await request(`${scheme}://${target.address}/api/stream/${jobId}/${target.idx}/events`, {
                method: 'POST',
                headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
                body,
                dispatcher: agent,
                headersTimeout: 2 * config.ack_timeout_ms,
                bodyTimeout: 2 * config.ack_timeout_ms,
              });
              const text = await res.body.text();
              if (res.statusCode === 200) return reply.code(202).send({ accepted: events.length });
              if (res.statusCode === 429) {
                return reply
                  .code(429)
                  .header('retry-after', '1')
                  .send(new WeirError('unavailable', 'the topology is saturated; retry after a second', 429).toJSON());
              }
              last = `${target.address} answered ${res.statusCode}: ${errorMessageOf(text) ?? text.slice(0, 200)}`;
            } catch (err) {
              // The instance's worker died with the events: they go to its replacement.
              last = `${target.address}: ${(err as Error).message}`;
            }
          }
          if (streamingJob(jobId) && Date.now() + 200 < deadline) await new Promise((r) => setTimeout(r, 200));
        }
        throw new WeirError('unavailable', `could not hand the events to a source instance (${last}); send them again`);
      },
    );

    app.post(
      '/jobs/:job_id/rows',
      {
        // Values bounded where they came in (an event, a function's output), in rows.
        config: BOUNDED_INSIDE,
        schema: {
          params: JobParams,
          body: Type.Object({
            rows: Type.Array(Type.Object({ key: Type.String(), value: Type.Unknown() }), { maxItems: 100_000 }),
          }),
          response: { 200: StoredReply },
        },
      },
      async (req) => {
        if (!consensus.isLeader()) throw noLeader();
        await commit(consensus, {
          type: 'collectRows',
          at: Date.now(),
          job_id: req.params.job_id,
          rows: req.body.rows.map((r) => ({ key: r.key, value: r.value })),
        });
        return { stored: req.body.rows.length };
      },
    );
  };
}

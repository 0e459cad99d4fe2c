import { createReadStream, type ReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Type, type FastifyPluginAsyncTypebox, type Static } from '@fastify/type-provider-typebox';
import type { Registry } from 'prom-client';
import { WeirError } from '../common/errors.js';
import { ERROR_REPLIES } from '../common/http-errors.js';
import { ID_PATTERN } from '../common/ids.js';
import { mapOutputDir, partitionFile } from './tasks/shuffle-files.js';
import { LINK_PATH } from './stream/links.js';
import { routeAuthority } from '../common/socket-token.js';
import { WORKER_ACCESS } from './access-table.js';
import type { StreamRuntime } from './stream/runtime.js';
import { BOUNDED_INSIDE } from '../common/json-bodies.js';

const JobId = Type.String({ pattern: ID_PATTERN.source });
/** Task indexes, attempts and partitions: bounded, so a path cannot name an absurd file. */
const Index = Type.Integer({ minimum: 0, maximum: 999_999_999 });

const EventsParams = Type.Object({ job_id: JobId, idx: Index });
const EventsBody = Type.Object({
  // The master has checked each event; here an event is anything JSON calls an object.
  events: Type.Array(Type.Unsafe<Record<string, unknown>>({ type: 'object' })),
});

const ShuffleParams = Type.Object({
  job_id: JobId,
  task: Type.String({ pattern: '^\\d{1,9}\\.\\d{1,9}$', description: 'TASK.ATTEMPT' }),
  partition: Index,
});

const WorkerStatus = Type.Object({
  worker_id: Type.Union([Type.String(), Type.Null()]),
  address: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('draining')]),
  connected: Type.Boolean(),
  master: Type.String(),
  max_tasks: Type.Integer(),
  active_tasks: Type.Integer(),
  /** Executor processes alive (--threads is how many at most). */
  threads: Type.Integer(),
  executor_pids: Type.Array(Type.Integer()),
  metrics: Type.Record(Type.String(), Type.Number()),
});

/** A stream link: its frames are msgpack tuples and credits (stream/links.ts). */
const LinkReply = Type.Unsafe<undefined>({
  type: 'null',
  description: 'Switching Protocols: a WebSocket of msgpack frames between stream instances',
});
const LinkQuery = Type.Object({
  v: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      description: 'the link protocol the sender speaks (absent: 1); the receiver answers the one it speaks',
    }),
  ),
});
const MetricsReply = {
  description: 'Prometheus text format (version 0.0.4)',
  content: { 'text/plain': { schema: Type.String() } },
};
/** A map output partition as written: msgpack frames. */
const PartitionReply = {
  description: 'the partition file as the map task wrote it: msgpack frames, streamed',
  content: { 'application/msgpack': { schema: Type.Unsafe<ReadStream>({ type: 'string', format: 'binary' }) } },
};

export interface WorkerRoutesOptions {
  streams: StreamRuntime;
  /** The cluster's JWT_SECRET, when it has one: a stream link then holds to its token's life. */
  jwtSecret?: string | undefined;
  shuffleDir: string;
  status: () => Static<typeof WorkerStatus>;
  metrics: Registry;
}

/**
 * A worker's HTTP edge: events for the http sources it runs (from the masters), its map
 * outputs (to reduce tasks on other workers), stream links, and what it shows of itself.
 */
export function workerRoutes(o: WorkerRoutesOptions): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      LINK_PATH,
      { websocket: true, schema: { querystring: LinkQuery, response: { 101: LinkReply } } },
      (socket, req) =>
        o.streams.accept(
          socket,
          req.query.v ?? 1,
          o.jwtSecret
            ? routeAuthority(o.jwtSecret, WORKER_ACCESS, `GET ${LINK_PATH}`, {}, req.principal?.expires_at)
            : undefined,
        ),
    );

    app.post(
      '/api/stream/:job_id/:idx/events',
      {
        // Events a master took from a client, each bounded there, handed on in an envelope.
        config: BOUNDED_INSIDE,
        schema: {
          params: EventsParams,
          body: EventsBody,
          response: { 200: Type.Object({ accepted: Type.Integer() }), ...ERROR_REPLIES },
        },
      },
      async (req) => {
        await o.streams.ingest(req.params.job_id, req.params.idx, req.body.events);
        return { accepted: req.body.events.length };
      },
    );

    app.get(
      '/api/shuffle/:job_id/:task/:partition',
      {
        schema: {
          params: ShuffleParams,
          // The partition file as written: msgpack frames, streamed without serialising.
          response: { 200: PartitionReply, ...ERROR_REPLIES },
        },
      },
      async (req, reply) => {
        const { job_id, task, partition } = req.params;
        const [idx, attempt] = task.split('.').map(Number) as [number, number];
        const file = partitionFile(mapOutputDir(o.shuffleDir, job_id, idx, attempt), partition);
        const size = await stat(file).then(
          (s) => s.size,
          () => undefined,
        );
        if (size === undefined) {
          throw new WeirError(
            'not_found',
            `no map output ${job_id}/${task}/${partition} here: lost, or its job is over`,
          );
        }
        return reply.type('application/msgpack').header('content-length', size).send(createReadStream(file));
      },
    );

    app.get('/api/status', { schema: { response: { 200: WorkerStatus, ...ERROR_REPLIES } } }, async () => o.status());

    app.get('/health', { schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
      status: 'ok' as const,
    }));

    app.get('/metrics', { schema: { response: { 200: MetricsReply } } }, async (_req, reply) =>
      reply.type(o.metrics.contentType).send(await o.metrics.metrics()),
    );
  };
}

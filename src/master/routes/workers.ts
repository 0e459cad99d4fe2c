import { commit } from '../cluster-log.js';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { WeirError, noLeader } from '../../common/errors.js';
import { ID_PATTERN, newId } from '../../common/ids.js';
import type { MasterContext } from '../context.js';
import { workerView } from '../views.js';
import { HeartbeatReply, RegisteredReply, SocketReply, WorkersReply } from '../reply-schemas.js';
import { routeAuthority } from '../../common/socket-token.js';
import { MASTER_ACCESS } from '../access-table.js';

const RegisterBody = Type.Object({
  address: Type.String({ minLength: 1, maxLength: 300 }),
  max_tasks: Type.Integer({ minimum: 1, maximum: 10_000 }),
});

const HeartbeatBody = Type.Object({
  worker_id: Type.String({ pattern: ID_PATTERN.source }),
  status: Type.Optional(Type.String({ maxLength: 50 })),
  active_tasks: Type.Optional(Type.Integer({ minimum: 0 })),
  metrics: Type.Optional(Type.Object({}, { additionalProperties: true })),
  timestamp: Type.Optional(Type.String({ maxLength: 64 })),
});

const ChannelParams = Type.Object({ worker_id: Type.String({ pattern: ID_PATTERN.source }) });
const Register = { body: RegisterBody, response: { 201: RegisteredReply } };
const Heartbeat = { body: HeartbeatBody, response: { 200: HeartbeatReply } };

const CHANNEL_ROUTE = 'GET /api/workers/:worker_id/channel';

/** `secret`: the cluster's JWT_SECRET, when it has one (the channel then holds to its token's life). */
export function workerRoutes(ctx: MasterContext, secret?: string): FastifyPluginAsyncTypebox {
  const { consensus, queries, registry, channels } = ctx;
  return async (app) => {
    app.post('/workers/register', { schema: Register }, async (req, reply) => {
      if (!consensus.isLeader()) throw noLeader();
      const at = Date.now();
      const workerId = newId('w', at);
      await commit(consensus, {
        type: 'registerWorker',
        at,
        worker_id: workerId,
        address: req.body.address,
        max_tasks: req.body.max_tasks,
      });
      registry.grace(workerId, Date.now());
      ctx.log.info({ worker_id: workerId, address: req.body.address }, 'worker registered');
      return reply.code(201).send({
        worker_id: workerId,
        heartbeat_interval_ms: ctx.heartbeatIntervalMs,
        heartbeat_timeout_ms: ctx.heartbeatTimeoutMs,
      });
    });

    app.post('/workers/heartbeat', { schema: Heartbeat }, async (req) => {
      if (!consensus.isLeader()) throw noLeader();
      // Memory only: no SQLite read, no log entry (a heartbeat is soft state).
      const w = queries.liveWorker(req.body.worker_id);
      if (!w) {
        throw new WeirError(
          'unknown_worker',
          `worker '${req.body.worker_id}' is not registered (or was declared dead); register again`,
        );
      }
      registry.heartbeat(w.worker_id, Date.now(), req.body.active_tasks ?? 0, req.body.metrics ?? {});
      return { ok: true, status: w.status };
    });

    app.get(
      '/workers',
      {
        schema: {
          querystring: Type.Object({
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            // `<registered_at>.<worker_id>` of the last worker of the page before: a keyset.
            cursor: Type.Optional(
              Type.String({ pattern: `^\\d{1,16}\\.${ID_PATTERN.source.replace(/^\^|\$$/g, '')}$` }),
            ),
          }),
          response: { 200: WorkersReply },
        },
      },
      async (req) => {
        const limit = req.query.limit ?? 1000;
        const c = req.query.cursor;
        const dot = c?.indexOf('.') ?? -1;
        const after: [number, string] | undefined = c ? [Number(c.slice(0, dot)), c.slice(dot + 1)] : undefined;
        const rows = queries.workers(limit + 1, after);
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        return {
          workers: page.map((w) => workerView(w, registry.get(w.worker_id))),
          next_cursor: rows.length > limit && last ? `${last.registered_at}.${last.worker_id}` : null,
        };
      },
    );

    // The worker's persistent channel (assignments down, reports up); see protocol/worker-channel.ts.
    app.get(
      '/workers/:worker_id/channel',
      { websocket: true, schema: { params: ChannelParams, response: { 101: SocketReply } } },
      (socket, req) => {
        const workerId = (req.params as { worker_id: string }).worker_id;
        const authority = secret
          ? routeAuthority(secret, MASTER_ACCESS, CHANNEL_ROUTE, { worker_id: workerId }, req.principal?.expires_at)
          : undefined;
        channels.accept(workerId, socket, authority);
      },
    );
  };
}

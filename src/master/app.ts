import websocket from '@fastify/websocket';
import { Ajv } from 'ajv';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { verifyBearer } from '../common/auth.js';
import { WeirError } from '../common/errors.js';
import { PEER_PATH, type PeerTransport } from '../consensus/peer-transport.js';
import type { MasterContext } from './context.js';
import { LeaderForwarding } from './forwarding.js';
import { clusterMemberRoutes } from './routes/members.js';
import { clusterRoutes } from './routes/cluster.js';
import { jobRoutes } from './routes/jobs.js';
import { workerRoutes } from './routes/workers.js';

export const BODY_LIMIT = 16 * 1024 * 1024;

// Bodies are JSON and must arrive with the right types; query strings and path parameters
// are text, so numbers in them are parsed.
const bodyAjv = new Ajv({ coerceTypes: false, useDefaults: true, allErrors: false });
const queryAjv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: false });

/** Maps any error to `{error: {code, message}}` with a status a client can act on. */
export function toHttpError(err: FastifyError | Error): WeirError {
  if (err instanceof WeirError) return err;
  const e = err as FastifyError;
  if (e.validation) {
    const where = e.validationContext ?? 'request';
    return new WeirError(
      'validation_failed',
      `invalid ${where}: ${e.message.replace(/^(body|querystring|params|headers)\/?/, '')}`,
    );
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new WeirError('invalid_json', `the body is not valid JSON: ${e.message}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new WeirError('payload_too_large', `the body is over the ${BODY_LIMIT / 1024 / 1024} MiB limit`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new WeirError('bad_request', 'send the body as application/json');
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new WeirError('bad_request', e.message);
  return new WeirError('internal', 'the master hit an internal error; see its log');
}

export interface AppOptions {
  jwtSecret?: string;
  transport: PeerTransport;
}

/** The master's HTTP edge: routes per resource under /api, auth, one error handler. */
export async function buildApp(ctx: MasterContext, opts: AppOptions): Promise<FastifyInstance> {
  // Request lines are info-level noise at thousands a second; the edge logs warnings up.
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    loggerInstance: ctx.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    forceCloseConnections: true,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const ajv = httpPart === 'querystring' || httpPart === 'params' ? queryAjv : bodyAjv;
    return ajv.compile(schema);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const e = toHttpError(err);
    if (e.code === 'internal') req.log.error({ err }, 'request failed');
    void reply.code(e.status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(
        new WeirError(
          'not_found',
          `no route ${req.method} ${req.url.split('?')[0]}; see the README's API section`,
        ).toJSON(),
      );
  });

  // Snapshots travel between masters as single frames.
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 * 1024 } });

  const secret = opts.jwtSecret;
  if (secret) {
    app.addHook('onRequest', async (req) => {
      if (req.url.startsWith('/api/') || req.url === '/api' || req.url.startsWith(PEER_PATH)) {
        await verifyBearer(secret, req.headers.authorization);
      }
    });
  }
  const forwarding = new LeaderForwarding(ctx.consensus);
  app.addHook('onRequest', forwarding.hook);
  app.addHook('onClose', async () => forwarding.close());

  app.get(PEER_PATH, { websocket: true }, (socket, req) => opts.transport.accept(socket, req.headers));
  await app.register(clusterRoutes(ctx));
  await app.register(
    async (api) => {
      await api.register(jobRoutes(ctx));
      await api.register(workerRoutes(ctx));
      await api.register(clusterMemberRoutes(ctx));
    },
    { prefix: '/api' },
  );
  return app;
}

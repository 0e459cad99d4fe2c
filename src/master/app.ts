import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { installAuth } from '../common/auth-hook.js';
import { MASTER_ACCESS } from './access-table.js';
import {
  BODY_LIMIT,
  clientErrors,
  frameworkErrors,
  installErrorHandlers,
  socketErrors,
} from '../common/http-errors.js';
import { validatorCompiler } from '../common/http-validation.js';
import { PEER_PATH, type PeerTransport } from '../consensus/peer-transport.js';
import type { MasterContext } from './context.js';
import { LeaderForwarding } from './forwarding.js';
import { clusterMemberRoutes } from './routes/members.js';
import { clusterRoutes } from './routes/cluster.js';
import { jobRoutes } from './routes/jobs.js';
import { workerRoutes } from './routes/workers.js';
import { streamRoutes } from './routes/streams.js';
import { UploadReplicator } from './upload-replication.js';
import { uploadRoutes, type UploadStore } from './uploads.js';

export interface AppOptions {
  jwtSecret?: string;
  transport: PeerTransport;
  uploads: UploadStore;
  selfUrl: string;
}

/** The master's HTTP edge: routes per resource under /api, auth, one error handler. */
export async function buildApp(ctx: MasterContext, opts: AppOptions): Promise<FastifyInstance> {
  // Request lines are info-level noise at thousands a second; the edge logs warnings up.
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    clientErrorHandler: clientErrors,
    loggerInstance: ctx.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    forceCloseConnections: true,
    frameworkErrors: frameworkErrors('master'),
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandlers(app, 'master');

  // Snapshots travel between masters as single frames.
  await app.register(websocket, { errorHandler: socketErrors, options: { maxPayload: 1024 * 1024 * 1024 } });

  installAuth(app, MASTER_ACCESS, opts.jwtSecret);
  const forwarding = new LeaderForwarding(ctx.consensus);
  app.addHook('onRequest', forwarding.hook);
  app.addHook('onClose', async () => forwarding.close());

  app.get(PEER_PATH, { websocket: true }, (socket, req) => opts.transport.accept(socket, req.headers, req.principal));
  const replicator = new UploadReplicator(ctx.consensus, opts.selfUrl, ctx.tokens, ctx.log);
  await app.register(uploadRoutes(opts.uploads, replicator, opts.selfUrl));
  await app.register(clusterRoutes(ctx));
  await app.register(
    async (api) => {
      await api.register(jobRoutes(ctx));
      await api.register(streamRoutes(ctx, ctx.tokens));
      await api.register(workerRoutes(ctx));
      await api.register(clusterMemberRoutes(ctx));
    },
    { prefix: '/api' },
  );
  return app;
}

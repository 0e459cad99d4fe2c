import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Dispatcher } from 'undici';
import { installAuth } from '../common/auth-hook.js';
import { checkRepliesIfAsked } from '../common/reply-check.js';
import { MASTER_ACCESS } from './access-table.js';
import {
  BODY_LIMIT,
  clientErrors,
  frameworkErrors,
  installErrorHandlers,
  socketErrors,
} from '../common/http-errors.js';
import { installJsonBodies } from '../common/json-bodies.js';
import { schemaCompilers, validatorCompiler } from '../common/http-validation.js';
import { routeAuthority } from '../common/socket-token.js';
import { refuseUnverifiedClients } from '../common/tls.js';
import { PEER_PATH, type PeerTransport } from '../consensus/peer-transport.js';
import type { MasterContext } from './context.js';
import { conditionalGet } from './etag.js';
import { LeaderForwarding } from './forwarding.js';
import { clusterMemberRoutes } from './routes/members.js';
import { backupRoutes } from './routes/backup.js';
import { clusterRoutes } from './routes/cluster.js';
import { dashboardRoutes, liveRoutes } from './routes/dashboard.js';
import { jobRoutes } from './routes/jobs.js';
import { logRoutes } from './routes/logs.js';
import { mastersRoutes } from './routes/masters.js';
import { workerRoutes } from './routes/workers.js';
import { streamRoutes } from './routes/streams.js';
import { registerOpenApi } from '../common/openapi.js';
import { SocketReply } from './reply-schemas.js';
import { UploadReplicator } from './upload-replication.js';
import { spaceGate } from './space-gate.js';
import { uploadRoutes, type UploadStore } from './uploads.js';

export interface AppOptions {
  jwtSecret?: string;
  transport: PeerTransport;
  uploads: UploadStore;
  selfUrl: string;
  /** For copies to the other masters when they serve TLS. */
  peerAgent?: Dispatcher;
}

/** The master's HTTP edge: routes per resource under /api, auth, one error handler. */
export async function buildApp(ctx: MasterContext, opts: AppOptions): Promise<FastifyInstance> {
  // Request lines are info-level noise at thousands a second; the edge logs warnings up.
  const app = Fastify({
    ...schemaCompilers,
    bodyLimit: BODY_LIMIT,
    clientErrorHandler: clientErrors,
    loggerInstance: ctx.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    forceCloseConnections: true,
    frameworkErrors: frameworkErrors('master'),
    ...(ctx.tls ? { https: ctx.tls.server } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();
  if (ctx.tls?.server.requestCert) {
    refuseUnverifiedClients(app.server, (why, remote, count) =>
      ctx.log.warn({ why, remote, count }, 'refused a TLS client: its certificate is not signed by --tls-ca'),
    );
  }
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandlers(app, 'master');
  installJsonBodies(app);
  checkRepliesIfAsked(app);

  // Snapshots travel between masters as single frames.
  await app.register(websocket, { errorHandler: socketErrors, options: { maxPayload: 1024 * 1024 * 1024 } });

  installAuth(app, MASTER_ACCESS, opts.jwtSecret);
  // After auth (a stranger learns nothing of the disk), before forwarding: a follower whose own
  // disk is full does not take writes for the leader either (they would land on its disk too).
  app.addHook(
    'onRequest',
    spaceGate(
      () => ctx.space.reason,
      () => ctx.space.uploadRoom(),
    ),
  );
  await registerOpenApi(app);
  const forwarding = new LeaderForwarding(ctx.consensus, ctx.tls?.connect);
  app.addHook('onRequest', forwarding.hook);
  app.addHook('onClose', async () => forwarding.close());
  app.addHook('onSend', conditionalGet);

  app.get(PEER_PATH, { websocket: true, schema: { response: { 101: SocketReply } } }, (socket, req) => {
    const opened = req.principal;
    // Fresh tokens on a master's link: a peer's, and of the master the link's first token named.
    const authority =
      opts.jwtSecret && opened
        ? routeAuthority(opts.jwtSecret, MASTER_ACCESS, `GET ${PEER_PATH}`, {}, opened.expires_at, (fresh) =>
            fresh.node_id === opened.node_id
              ? undefined
              : `a token of master ${fresh.node_id ?? '(none)'} on the link of master ${opened.node_id}`,
          )
        : undefined;
    opts.transport.accept(socket, req.headers, opened, authority);
  });
  const replicator = new UploadReplicator(ctx.consensus, opts.selfUrl, ctx.tokens, ctx.log, opts.peerAgent);
  await app.register(uploadRoutes(opts.uploads, replicator, opts.selfUrl, ctx.consensus, ctx.retentionMs ?? 0));
  await app.register(clusterRoutes(ctx));
  await app.register(dashboardRoutes());
  await app.register(
    async (api) => {
      await api.register(jobRoutes(ctx));
      // Workers are handed a master's token when it brings them events: one without the
      // node_id that would open the Raft stream or copy uploads.
      await api.register(streamRoutes(ctx, ctx.tokens.derive({ role: 'peer' })));
      await api.register(workerRoutes(ctx, opts.jwtSecret));
      await api.register(clusterMemberRoutes(ctx));
      await api.register(backupRoutes(ctx));
      await api.register(mastersRoutes(ctx, opts.peerAgent));
      await api.register(logRoutes(ctx));
      if (ctx.live) await api.register(liveRoutes(ctx.live));
    },
    { prefix: '/api' },
  );
  return app;
}

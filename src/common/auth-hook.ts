import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authorizeOwner, authorizeRole, OPEN, type AccessTable } from './access.js';
import { OPEN_CLUSTER, verifyBearer, type Principal } from './auth.js';
import { VerifiedTokens } from './verified-tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Whom the request's token names (an open cluster's callers are admins). */
    principal: Principal | null;
  }
}

/**
 * The route the router matched, as its table names it: decided on the decoded, matched path
 * (`/%61pi/jobs` is `/api/jobs`), never on the raw URL. Undefined for a path no route has:
 * it gets the 404, and nothing else.
 */
export function routeKey(req: FastifyRequest): string | undefined {
  const url = req.routeOptions.url;
  if (url === undefined) return undefined;
  return `${req.method === 'HEAD' ? 'GET' : req.method} ${url}`;
}

/**
 * Auth for one server, in one place: the token and whether its role may call the route are
 * checked as the request arrives (401, 403), whether it acts for itself once the route's
 * params and body are validated (403) — before any handler runs and before a socket is
 * upgraded.
 */
export function installAuth(app: FastifyInstance, table: AccessTable, secret: string | undefined): void {
  app.decorateRequest('principal', null);
  const verified = new VerifiedTokens();
  app.addHook('onRequest', async (req) => {
    const key = routeKey(req);
    if (key === undefined || table[key] === OPEN) return;
    // An open cluster (no secret) lets everyone do everything, and says so at start.
    if (!secret) {
      req.principal = OPEN_CLUSTER;
      return;
    }
    req.principal = await verifyBearer(secret, req.headers.authorization, verified);
    authorizeRole(table, key, req.principal);
  });
  if (!secret) return;
  app.addHook('preHandler', async (req) => {
    const key = routeKey(req);
    if (key === undefined || !req.principal) return;
    authorizeOwner(table, key, req.principal, { params: req.params, body: req.body });
  });
}

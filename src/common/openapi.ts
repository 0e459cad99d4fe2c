import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES } from './errors.js';
import { ERROR_REPLIES } from './http-errors.js';
import { installRoot } from './install-root.js';

interface RouteSchema {
  response?: Record<string, unknown>;
  tags?: string[];
  querystring?: { type?: string; properties?: Record<string, unknown> };
}

/**
 * The routes the cluster's own nodes call (workers registering, reporting rows and logs, their
 * channel; masters' peer link): listed apart, so that a reader finds the API clients use first.
 */
const INTERNAL: { method?: string; url: RegExp }[] = [
  { url: /^\/api\/workers\/(register|heartbeat)$/ },
  { url: /\/channel$/ },
  { url: /^\/raft\// },
  { method: 'POST', url: /\/(rows|logs)$/ },
];
/** Routes outside /api, by the group they belong to. */
const GROUPS: Record<string, string> = { cluster: 'cluster', health: 'cluster', ready: 'cluster', metrics: 'cluster' };

/** A route's group in the document: its first segment after /api (jobs, workers, …), or internal. */
function tagOf(url: string, methods: readonly string[]): string {
  if (INTERNAL.some((r) => r.url.test(url) && (!r.method || methods.includes(r.method)))) return 'internal';
  const [first, second] = url.split('/').filter(Boolean);
  if (first === 'api' && second) return second;
  return first === undefined || first === 'jobs' ? 'dashboard' : (GROUPS[first] ?? first);
}

/** Every read of a master may be asked stale (`?consistency=stale`): the document says so on each. */
const CONSISTENCY = Type.Optional(
  Type.Literal('stale', {
    description:
      "Answer from this master's own state without a round to the leader (a follower trails by up to ~0.1 s); absent: a linearizable read",
  }),
);

function withConsistency(schema: RouteSchema): void {
  const qs = schema.querystring;
  if (qs === undefined) schema.querystring = Type.Object({ consistency: CONSISTENCY });
  else if (qs.type === 'object')
    schema.querystring = { ...qs, properties: { ...qs.properties, consistency: CONSISTENCY } };
}

/** The document's path, and the page that renders it (its assets are served from the package). */
export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PREFIX = '/docs';

const version = (): string => {
  const pkg = JSON.parse(readFileSync(join(installRoot(), 'package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
};

const ABOUT = {
  master: 'The REST API of a Weir master.',
  worker:
    'The HTTP API of a Weir worker: its status, its map outputs (for reduce tasks on other workers), stream links and events for the sources it runs. Clients talk to masters; these routes are for the cluster itself and for operators.',
};

/**
 * A node's API described as OpenAPI 3.1, generated from the routes' own schemas: every
 * route registered after this is in it, with its request, its reply where the route declares
 * one, and every refusal as `{error: {code, message}}`. Registered before the routes. Masters
 * also render it at /docs; a worker serves the document only.
 */
export async function registerOpenApi(app: FastifyInstance, node: 'master' | 'worker' = 'master'): Promise<void> {
  // A route that declares no refusals still refuses (auth, validation, not found): say so.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith(DOCS_PREFIX)) return;
    const schema = (route.schema ??= {}) as RouteSchema;
    schema.response = { ...ERROR_REPLIES, ...schema.response };
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    schema.tags ??= [tagOf(route.url, methods)];
    // Reads only: not a socket, nor the dashboard's stream (served stale as it is).
    const read = methods.includes('GET') && !('101' in schema.response);
    if (node === 'master' && read && route.url.startsWith('/api/') && route.url !== '/api/live')
      withConsistency(schema);
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: node === 'master' ? 'Weir' : 'Weir worker',
        version: version(),
        description:
          `${ABOUT[node]} Every refusal is \`{error: {code, message}}\`; the codes are ` +
          `${ERROR_CODES.map((c) => `\`${c}\``).join(', ')} (README, Errors).`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });
  if (node === 'master') await registerDocsPage(app);
  app.get(OPENAPI_PATH, { schema: { hide: true } }, () => app.swagger());
}

async function registerDocsPage(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    // Nothing from elsewhere: no validator badge from swagger.io, and no upgrade to https of a
    // master that serves http (the plugin's default policy asks browsers for that).
    uiConfig: { validatorUrl: null },
    staticCSP:
      "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
      "object-src 'none'; frame-ancestors 'self'; base-uri 'self'",
  });
}

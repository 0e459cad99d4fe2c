import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES } from './errors.js';
import { ERROR_REPLIES } from './http-errors.js';

/** The document's path, and the page that renders it (its assets are served from the package). */
export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PREFIX = '/docs';

const version = (): string => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
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
    const schema = (route.schema ??= {}) as { response?: Record<string, unknown> };
    schema.response = { ...ERROR_REPLIES, ...schema.response };
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

import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES } from '../common/errors.js';
import { ERROR_REPLIES } from '../common/http-errors.js';

/** The document's path, and the page that renders it (its assets are served from the package). */
export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PREFIX = '/docs';

const version = (): string => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
};

/**
 * The master's API described as OpenAPI 3.1, generated from the routes' own schemas: every
 * route registered after this is in it, with its request, its reply where the route declares
 * one, and every refusal as `{error: {code, message}}`. Registered before the routes.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
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
        title: 'Weir',
        version: version(),
        description:
          'The REST API of a Weir master. Every refusal is `{error: {code, message}}`; the codes are ' +
          `${ERROR_CODES.map((c) => `\`${c}\``).join(', ')} (README, Errors).`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    // Nothing from elsewhere: no validator badge from swagger.io, and no upgrade to https of a
    // master that serves http (the plugin's default policy asks browsers for that).
    uiConfig: { validatorUrl: null },
    staticCSP:
      "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
      "object-src 'none'; frame-ancestors 'self'; base-uri 'self'",
  });
  app.get(OPENAPI_PATH, { schema: { hide: true } }, () => app.swagger());
}

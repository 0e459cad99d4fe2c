// Route schemas are compiled on their route's first request, not at start
// (src/common/http-validation.ts); with WEIR_CHECK_SCHEMAS=1, as the OpenAPI spec runs its
// nodes, every one is compiled at start and checked against the JSON Schema meta-schema.
import { Type } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { installAuth } from '../../src/common/auth-hook.js';
import { ERROR_REPLIES, installErrorHandlers } from '../../src/common/http-errors.js';
import { bearer, signedToken } from '../helpers/tokens.js';

/** An app as a Weir server builds it, with the compilers of a fresh load of the module. */
async function appWith(env: string | undefined, secret?: string): Promise<FastifyInstance> {
  vi.resetModules();
  if (env === undefined) delete process.env.WEIR_CHECK_SCHEMAS;
  else process.env.WEIR_CHECK_SCHEMAS = env;
  const { schemaCompilers, validatorCompiler } = await import('../../src/common/http-validation.js');
  const app = Fastify({ ...schemaCompilers, logger: false });
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandlers(app, 'master');
  // As the servers install it: '/broken' is for clients; '/good' and '/odd', not named, for admins.
  if (secret) installAuth(app, { 'POST /broken': { roles: ['client'] } }, secret);
  app.post(
    '/good',
    {
      schema: {
        body: Type.Object({ n: Type.Integer({ minimum: 0 }) }),
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ maximum: 10 })) }),
        response: { 200: Type.Object({ n: Type.Integer(), limit: Type.Integer() }), ...ERROR_REPLIES },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number };
      return { n: (req.body as { n: number }).n, limit: q.limit ?? 0, dropped: 'by the schema' };
    },
  );
  // A format Ajv does not know: refused by its strict mode when compiled.
  app.post('/broken', { schema: { body: Type.Object({ url: Type.String({ format: 'uri' }) }) } }, async () => ({}));
  // Out of range for the meta-schema, though of the right type: compiled without complaint
  // unless checked against it.
  app.get('/odd', { schema: { querystring: Type.Object({ s: Type.String({ maxLength: -1 }) }) } }, async () => ({}));
  return app;
}

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
  delete process.env.WEIR_CHECK_SCHEMAS;
});

describe('schemas compiled on first use', () => {
  it('start without compiling any: a schema that would not compile does not stop the start', async () => {
    app = await appWith(undefined);
    await expect(app.ready()).resolves.toBeDefined();
  });

  it('check and serialize from the first request on, as if compiled at start', async () => {
    app = await appWith(undefined);
    const ok = await app.inject({ method: 'POST', url: '/good?limit=3', payload: { n: 2 } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ n: 2, limit: 3 });
    const wrongBody = await app.inject({ method: 'POST', url: '/good', payload: { n: -1 } });
    expect(wrongBody.statusCode).toBe(400);
    expect(wrongBody.json().error.message).toMatch(/body\.n must be >= 0/);
    const wrongQuery = await app.inject({ method: 'POST', url: '/good?limit=Infinity', payload: { n: 1 } });
    expect(wrongQuery.statusCode).toBe(400);
    expect(wrongQuery.json().error.message).toMatch(/limit must be a finite number/);
    // Compiled once: the next requests are checked the same way.
    expect((await app.inject({ method: 'POST', url: '/good?limit=11', payload: { n: 1 } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/good', payload: { n: 1 } })).json()).toEqual({ n: 1, limit: 0 });
  });

  it('answer a route whose schema does not compile with 500 internal, every time, and the other routes still', async () => {
    app = await appWith(undefined);
    for (let i = 0; i < 2; i++) {
      const r = await app.inject({ method: 'POST', url: '/broken', payload: { url: 'http://x' } });
      expect(r.statusCode).toBe(500);
      expect(r.json().error.code).toBe('internal');
    }
    expect((await app.inject({ method: 'POST', url: '/good', payload: { n: 1 } })).statusCode).toBe(200);
  });
});

describe('what reaches a route compiled on first use', () => {
  const SECRET = 'http-validation-secret-of-32-bytes-or-more';

  it('a caller without a token, or with one of the wrong role, is refused before any schema is compiled', async () => {
    app = await appWith(undefined, SECRET);
    const post = async (headers: Record<string, string>) =>
      app!.inject({ method: 'POST', url: '/broken', payload: { url: 'http://x' }, headers });
    // The route's schema cannot compile: a 500 would mean the caller got as far as compiling it.
    expect((await post({})).statusCode).toBe(401);
    expect((await post(bearer(await signedToken(SECRET, { role: 'worker', worker_id: 'w' })))).statusCode).toBe(403);
    const client = bearer(await signedToken(SECRET, { role: 'client' }));
    expect((await app.inject({ method: 'POST', url: '/good', payload: { n: 1 }, headers: client })).statusCode).toBe(
      403,
    );
    // Only a caller the route is for reaches its checks.
    const r = await post(client);
    expect(r.statusCode).toBe(500);
    expect(r.json().error.code).toBe('internal');
  });

  it('a body that is no JSON, as the first request, is refused with 400, and the next is checked as usual', async () => {
    app = await appWith(undefined);
    const bad = await app.inject({
      method: 'POST',
      url: '/good',
      payload: '{"n": 1',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/good', payload: { n: 'one' } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/good', payload: { n: 1 } })).json()).toEqual({ n: 1, limit: 0 });
  });
});

describe('with WEIR_CHECK_SCHEMAS=1', () => {
  it('compile every schema at start: one that would not compile stops the start', async () => {
    app = await appWith('1');
    await expect(app.ready()).rejects.toThrow(/unknown format "uri"/);
  });

  it('check every schema against the meta-schema at start', async () => {
    vi.resetModules();
    process.env.WEIR_CHECK_SCHEMAS = '1';
    const { schemaCompilers, validatorCompiler } = await import('../../src/common/http-validation.js');
    app = Fastify({ ...schemaCompilers, logger: false });
    app.setValidatorCompiler(validatorCompiler);
    app.get('/odd', { schema: { querystring: Type.Object({ s: Type.String({ maxLength: -1 }) }) } }, async () => ({}));
    await expect(app.ready()).rejects.toThrow(/must be >= 0/);
  });
});

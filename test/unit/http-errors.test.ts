// The error handling every Weir server installs, on a small app of its own: whatever goes
// wrong, the client reads `{error: {code, message}}` from the catalogue, and an internal
// error's text stays in the server's log.
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, WeirError } from '../../src/common/errors.js';
import { BODY_LIMIT, ERROR_REPLIES, frameworkErrors, installErrorHandlers } from '../../src/common/http-errors.js';
import { validatorCompiler } from '../../src/common/http-validation.js';

const logged: unknown[] = [];
let app: FastifyInstance;

beforeAll(async () => {
  const a = Fastify({
    bodyLimit: BODY_LIMIT,
    frameworkErrors: frameworkErrors('worker'),
    logger: { level: 'error', stream: { write: (line: string) => logged.push(JSON.parse(line)) } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  a.setValidatorCompiler(validatorCompiler);
  installErrorHandlers(a, 'worker');
  a.post(
    '/things/:id/:n',
    {
      schema: {
        params: Type.Object({ id: Type.String({ pattern: '^[a-z]+$' }), n: Type.Integer({ minimum: 0 }) }),
        body: Type.Object({ items: Type.Array(Type.Object({})) }),
        response: { 200: Type.Object({ n: Type.Integer() }), ...ERROR_REPLIES },
      },
    },
    async (req) => ({ n: req.params.n }),
  );
  a.get('/crash', async () => {
    throw new Error('ENOENT: /var/secret/path/state.db');
  });
  a.get('/crash-weir', async () => {
    throw new WeirError('internal', 'connect ECONNREFUSED 10.0.0.7:8080');
  });
  a.get('/conflict', async () => {
    throw new WeirError('conflict', 'job x is completed; it takes no more events');
  });
  await a.ready();
  app = a;
});
afterAll(() => app.close());

const expectRefusal = (r: { statusCode: number; json(): unknown }, status: number, code: string) => {
  expect(r.statusCode).toBe(status);
  expect(r.json()).toEqual({ error: { code, message: expect.any(String) } });
  return (r.json() as { error: { message: string } }).error.message;
};

describe('the shared error handling', () => {
  it('answers an unknown route with 404 not_found, naming the route', async () => {
    const message = expectRefusal(await app.inject({ method: 'GET', url: '/nowhere?x=1' }), 404, 'not_found');
    expect(message).toContain('GET /nowhere');
  });

  it('answers a path that cannot be decoded with 400 bad_request', async () => {
    const r = await app.inject({ method: 'POST', url: '/things/%E0%A4%A/1', payload: { items: [] } });
    expectRefusal(r, 400, 'bad_request');
    expectRefusal(await app.inject({ method: 'GET', url: '/nowhere/%E0%A4%A' }), 400, 'bad_request');
    expectRefusal(await app.inject({ method: 'GET', url: '/%E0%A4%A/things' }), 400, 'bad_request');
  });

  it('names the field of a path parameter or body that fails its schema', async () => {
    const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as object });
    expect(expectRefusal(await post('/things/abc/x', { items: [] }), 400, 'validation_failed')).toMatch(
      /params\.n must be an integer/,
    );
    expect(expectRefusal(await post('/things/ABC/1', { items: [] }), 400, 'validation_failed')).toMatch(/params\.id/);
    expect(expectRefusal(await post('/things/abc/1', {}), 400, 'validation_failed')).toMatch(/body\.items is required/);
    expect(expectRefusal(await post('/things/abc/1', { items: {} }), 400, 'validation_failed')).toMatch(
      /body\.items must be an array/,
    );
    // Ajv parses these into numbers past every minimum and maximum.
    for (const n of ['Infinity', '-Infinity', '1e400'])
      expect(expectRefusal(await post(`/things/abc/${n}`, { items: [] }), 400, 'validation_failed')).toMatch(
        /params\.n must be a finite number/,
      );
    const ok = await post('/things/abc/7', { items: [{}] });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ n: 7 });
  });

  it('answers a body that is not JSON with 400 invalid_json', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/things/abc/1',
      headers: { 'content-type': 'application/json' },
      payload: '{"items": [',
    });
    expectRefusal(r, 400, 'invalid_json');
  });

  it("keeps a catalogue error's code, status and message", async () => {
    const message = expectRefusal(await app.inject({ method: 'GET', url: '/conflict' }), 409, 'conflict');
    expect(message).toBe('job x is completed; it takes no more events');
  });

  it('answers an internal error with 500 internal and logs its text instead of sending it', async () => {
    logged.length = 0;
    for (const url of ['/crash', '/crash-weir']) {
      const r = await app.inject({ method: 'GET', url });
      expect(expectRefusal(r, 500, 'internal')).toBe('the worker hit an internal error; see its log');
      expect(r.body).not.toMatch(/ENOENT|ECONNREFUSED|secret|10\.0\.0\.7/);
    }
    expect(JSON.stringify(logged)).toMatch(/ENOENT: \/var\/secret\/path\/state\.db/);
    expect(JSON.stringify(logged)).toMatch(/ECONNREFUSED 10\.0\.0\.7/);
  });

  it('answers every code of the catalogue with its own status', () => {
    for (const code of ERROR_CODES) {
      const e = new WeirError(code, 'x');
      expect(e.status, code).toBeGreaterThanOrEqual(400);
      expect(e.toJSON()).toEqual({ error: { code, message: 'x' } });
    }
  });
});

// The error handling every Weir server installs, on a small app of its own: whatever goes
// wrong, the client reads `{error: {code, message}}` from the catalogue, and an internal
// error's text stays in the server's log.
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
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

describe('a body that does not arrive in time', () => {
  const DEADLINE_MS = 300;
  let slow: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    slow = Fastify({ bodyLimit: BODY_LIMIT, logger: false });
    installErrorHandlers(slow, 'master', { bodyDeadlineMs: DEADLINE_MS });
    slow.post('/echo', async (req) => req.body);
    slow.get('/ping', async () => ({ ok: true }));
    // A route streaming a big body (an upload) keeps its own limits.
    slow.register(async (scope) => {
      scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
      scope.post('/stream', { bodyLimit: BODY_LIMIT * 64 }, async (req) => {
        let n = 0;
        for await (const chunk of req.body as AsyncIterable<Buffer>) n += chunk.length;
        return { n };
      });
    });
    await slow.listen({ host: '127.0.0.1', port: 0 });
    port = (slow.server.address() as { port: number }).port;
  });
  afterAll(() => slow.close());

  /** A raw connection: what it was answered, and when it closed (ms after it opened). */
  function raw(parts: { text: string; afterMs: number }[]) {
    const t0 = performance.now();
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('error', () => undefined);
    for (const p of parts) setTimeout(() => s.writable && s.write(p.text), p.afterMs);
    return new Promise<{ answer: string; closedMs: number }>((resolve) =>
      s.on('close', () => resolve({ answer: got, closedMs: performance.now() - t0 })),
    );
  }
  const post = (path: string, type: string, length: number) =>
    `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: ${type}\r\ncontent-length: ${length}\r\n\r\n`;

  it('answers 408 {error} and closes the connection when half a body came', async () => {
    const { answer, closedMs } = await raw([{ text: `${post('/echo', 'application/json', 100)}{"a":`, afterMs: 0 }]);
    expect(answer).toMatch(/^HTTP\/1.1 408 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      error: { code: 'bad_request', message: 'the body did not arrive within 0.3 s of its headers; send it again' },
    });
    expect(closedMs).toBeGreaterThanOrEqual(DEADLINE_MS - 20);
  });

  it('takes a body that arrives slowly but whole in time, and lets the connection live on', async () => {
    const body = '{"a":1}';
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    s.write(`${post('/echo', 'application/json', body.length)}{"a"`);
    await new Promise((r) => setTimeout(r, DEADLINE_MS / 3));
    s.write(':1}');
    await waitUntil(() => got.includes('{"a":1}'));
    expect(got).toMatch(/^HTTP\/1.1 200 /);
    // Idle past the deadline between requests: the timer of the first is gone.
    await new Promise((r) => setTimeout(r, DEADLINE_MS * 2));
    got = '';
    s.write('GET /ping HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitUntil(() => got.includes('"ok":true'));
    s.destroy();
  });

  it('leaves a streamed body to its route', async () => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    s.write(`${post('/stream', 'application/octet-stream', 6)}abc`);
    await new Promise((r) => setTimeout(r, DEADLINE_MS * 2));
    s.write('def');
    await waitUntil(() => got.includes('"n":6'));
    expect(got).toMatch(/^HTTP\/1.1 200 /);
    s.destroy();
  });
});

async function waitUntil(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('never');
    await new Promise((r) => setTimeout(r, 10));
  }
}

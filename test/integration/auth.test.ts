// A cluster started with JWT_SECRET (addresses 127.0.0.61–69 belong to this file): every
// /api call needs an HS256 bearer token signed with the secret; the open endpoints stay open.
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  Cluster,
  allJobs,
  cliSync,
  http,
  jobIdFrom,
  untilJobStatus,
  waitFor,
  type HttpAnswer,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { bearer, cliToken, signedToken } from '../helpers/tokens.js';

const SECRET = 'integration-test-secret-0123456789abcdef';
const env = { JWT_SECRET: SECRET };
const c = new Cluster('auth');
let m: MasterProc;
let w: WorkerProc;
let token: string;

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

const signed = (secret: string, claims: { exp: number; iat?: number }) =>
  signedToken(secret, {}, { subject: 'integration-test', ...claims });

beforeAll(async () => {
  token = cliToken(env);
  m = await c.master('127.0.0.61', { env });
  w = await c.worker('127.0.0.62', m, { env, maxTasks: 2, token });
});
afterAll(() => c.cleanup());

function expectUnauthorized(r: HttpAnswer) {
  expect(r.status, r.text).toBe(401);
  expect(r.json).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
}

describe('a master with JWT_SECRET', () => {
  it.each([
    ['GET', '/api/jobs'],
    ['GET', '/api/workers'],
    ['GET', '/api/jobs/job-x'],
    ['POST', '/api/jobs'],
    ['POST', '/api/workers/register'],
    ['DELETE', `/api/uploads/up_${'a'.repeat(44)}`],
  ])('refuses %s %s without a token: 401', async (method, path) => {
    const body =
      method === 'POST'
        ? path === '/api/jobs'
          ? { name: 'sneaky', type: 'batch' }
          : { address: 'x:1', max_tasks: 1 }
        : undefined;
    expectUnauthorized(await http(method, `${m.url}${path}`, body));
  });

  it("refuses a worker's token the deletion of an upload: 403, and the upload stays", async () => {
    const up = await http('POST', `${m.url}/api/uploads`, 'a b\n', {
      'content-type': 'application/octet-stream',
      ...bearer(token),
    });
    expect(up.status, up.text).toBe(201);
    const workerToken = await signedToken(SECRET, { role: 'worker', worker_id: 'w-x' });
    const r = await http('DELETE', `${m.url}/api/uploads/${up.json.upload_id}`, undefined, bearer(workerToken));
    expect(r.status, r.text).toBe(403);
    expect(r.json.error.code).toBe('forbidden');
    expect((await http('GET', `${m.url}/uploads/${up.json.upload_id}`)).status).toBe(200);
  });

  it('creates nothing for an unauthenticated submit', async () => {
    const before = (await allJobs(m.url, bearer(token))).length;
    expectUnauthorized(await http('POST', `${m.url}/api/jobs`, { name: 'sneaky', type: 'batch' }));
    expect((await allJobs(m.url, bearer(token))).length).toBe(before);
  });

  it("accepts a token printed by 'weir token' (JWT_SECRET in the env): 200", async () => {
    const r = await http('GET', `${m.url}/api/jobs`, undefined, bearer(token));
    expect(r.status, r.text).toBe(200);
    expect(Array.isArray(r.json.jobs)).toBe(true);
  });

  it('refuses a token signed with another secret: 401', async () => {
    const other = await signed('some-other-secret-entirely-000000', { exp: nowS() + 3600 });
    expectUnauthorized(await http('GET', `${m.url}/api/jobs`, undefined, bearer(other)));
  });

  it('refuses an expired token: 401', async () => {
    const expired = await signed(SECRET, { iat: nowS() - 7200, exp: nowS() - 3600 });
    expectUnauthorized(await http('GET', `${m.url}/api/jobs`, undefined, bearer(expired)));
  });

  it('refuses a token it accepted before, once that token has expired: 401 saying so', async () => {
    // At least 2 s to live: the first request must land before it expires, on a loaded machine too.
    const shortLived = await signed(SECRET, { iat: nowS(), exp: nowS() + 3 });
    expect((await http('GET', `${m.url}/api/jobs`, undefined, bearer(shortLived))).status).toBe(200);
    const refused = await waitFor('the accepted token to be refused as expired', async () => {
      const r = await http('GET', `${m.url}/api/jobs`, undefined, bearer(shortLived));
      return r.status === 200 ? undefined : r;
    });
    expectUnauthorized(refused);
    expect(refused.json.error.message).toMatch(/expired/);
  });

  it('refuses an accepted token whose signature was changed: 401', async () => {
    expect((await http('GET', `${m.url}/api/jobs`, undefined, bearer(token))).status).toBe(200);
    const [h, p, s] = token.split('.');
    const forged = `${h}.${p}.${s![0] === 'A' ? 'B' : 'A'}${s!.slice(1)}`;
    expectUnauthorized(await http('GET', `${m.url}/api/jobs`, undefined, bearer(forged)));
  });

  it("refuses an 'alg: none' token: 401", async () => {
    const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'mallory', iat: nowS(), exp: nowS() + 3600 })}.`;
    expectUnauthorized(await http('GET', `${m.url}/api/jobs`, undefined, bearer(none)));
    expectUnauthorized(await http('POST', `${m.url}/api/jobs`, { name: 'none', type: 'batch' }, bearer(none)));
  });

  it('refuses a token signed with another algorithm (HS512) with the right secret: 401', async () => {
    const hs512 = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS512' })
      .setExpirationTime(nowS() + 3600)
      .sign(new TextEncoder().encode(SECRET));
    expectUnauthorized(await http('GET', `${m.url}/api/jobs`, undefined, bearer(hs512)));
  });

  it.each([
    ['garbage', 'Bearer not.a.jwt'],
    ['a tampered payload', 'TAMPER'],
    ['another scheme', 'BASIC'],
  ])('refuses %s: 401', async (_what, header) => {
    let value = header;
    if (header === 'TAMPER') {
      const [h, , s] = token.split('.');
      value = `Bearer ${h}.${b64url({ sub: 'admin', iat: nowS(), exp: nowS() + 86_400 * 365 })}.${s}`;
    } else if (header === 'BASIC') {
      value = `Basic ${Buffer.from(`weir:${SECRET}`).toString('base64')}`;
    }
    expectUnauthorized(await http('GET', `${m.url}/api/jobs`, undefined, { authorization: value }));
  });

  it.each(['/health', '/ready', '/metrics'])('leaves %s open without a token', async (path) => {
    const r = await http('GET', `${m.url}${path}`);
    expect(r.status, r.text.slice(0, 200)).toBe(200);
  });

  it('shows /cluster/status (the masters and their addresses) only with a token', async () => {
    expectUnauthorized(await http('GET', `${m.url}/cluster/status`));
    expect((await http('GET', `${m.url}/cluster/status`, undefined, bearer(token))).status).toBe(200);
  });
});

describe('a worker with the same JWT_SECRET', () => {
  it('registers with the master', async () => {
    const r = await http('GET', `${m.url}/api/workers`, undefined, bearer(token));
    expect(r.json.workers).toEqual([expect.objectContaining({ address: w.address, status: 'active' })]);
  });

  it('runs a job to completion', async () => {
    const sub = await http(
      'POST',
      `${m.url}/api/jobs`,
      { name: 'secured', type: 'batch', config: { operation: 'multiply', factor: 10, task_count: 3 } },
      bearer(token),
    );
    expect(sub.status, sub.text).toBe(201);
    await untilJobStatus(m.url, sub.json.job_id, 'completed', 30_000, bearer(token));
    const r = await http('GET', `${m.url}/api/jobs/${sub.json.job_id}/results`, undefined, bearer(token));
    expect(r.json.results).toEqual([10, 20, 30]);
  });

  it("refuses to open a worker's task channel without a token: 401", async () => {
    const list = await http('GET', `${m.url}/api/workers`, undefined, bearer(token));
    const id = list.json.workers[0].worker_id as string;
    const status = await new Promise<number | string>((resolve) => {
      const ws = new WebSocket(`${m.url.replace(/^http/, 'ws')}/api/workers/${id}/channel`);
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => {
        resolve('open');
        ws.terminate();
      });
      ws.once('error', (err) => resolve(`error: ${err.message}`));
    });
    expect(status).toBe(401);
    // The real worker keeps its channel and stays active.
    const after = await http('GET', `${m.url}/api/workers`, undefined, bearer(token));
    expect(after.json.workers[0].status).toBe('active');
  });

  it('guards its own /api with the secret too, /health stays open', async () => {
    expectUnauthorized(await http('GET', `${w.url}/api/status`));
    expect((await http('GET', `${w.url}/api/status`, undefined, bearer(token))).status).toBe(200);
    expect((await http('GET', `${w.url}/health`)).status).toBe(200);
  });
});

describe('a worker with the wrong secret', () => {
  it('is refused and never joins', async () => {
    const bad = await c.worker('127.0.0.63', m, {
      env: { JWT_SECRET: 'the-wrong-secret-xxxxxxxxxxxxxxxx' },
      wait: false,
    });
    await waitFor(
      'the refused worker to log its failed registration',
      () => /registration failed/.test(c.tail(bad, 200)),
      15_000,
    );
    const r = await http('GET', `${m.url}/api/workers`, undefined, bearer(token));
    expect(r.json.workers.map((x: { address: string }) => x.address)).not.toContain(bad.address);
    await c.stop(bad);
  });
});

describe('the CLI', () => {
  it('with JWT_SECRET set submits and waits successfully', async () => {
    const sub = await c.cli(
      [`${m.host}:${m.port}`, 'submit', 'batch', 'cli-secured', '{"operation":"noop","task_count":2}'],
      { env },
    );
    expect(sub.code, sub.stderr).toBe(0);
    const id = jobIdFrom(sub.stdout);
    const wt = await c.cli([`${m.host}:${m.port}`, 'wait', id], { env });
    expect(wt.code, wt.stderr).toBe(0);
    const rs = await c.cli([`${m.host}:${m.port}`, 'results', id], { env });
    expect(JSON.parse(rs.stdout)).toEqual([0, 1]);
  });

  it('with WEIR_TOKEN set (and no secret) is let in', async () => {
    const r = await c.cli(['--master', m.url, 'jobs', '--json'], { env: { WEIR_TOKEN: token } });
    expect(r.code, r.stderr).toBe(0);
    expect(Array.isArray(JSON.parse(r.stdout).jobs)).toBe(true);
  });

  it('without a token is refused at once (exit 1, not "unreachable"), saying a token is needed', async () => {
    const r = await c.cli(['--master', m.url, 'jobs'], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/token/i);
    expect(r.stderr).toMatch(/unauthorized/);
  });

  it("'weir token --ttl 5m' prints an HS256 JWT that expires ~300 s from now", () => {
    const r = cliSync(['token', '--ttl', '5m'], { env });
    expect(r.code, r.stderr).toBe(0);
    const jwt = r.stdout.trim();
    expect(jwt.split('\n')).toHaveLength(1);
    expect(decodeProtectedHeader(jwt).alg).toBe('HS256');
    const { exp } = decodeJwt(jwt);
    expect(exp! - nowS()).toBeGreaterThanOrEqual(295);
    expect(exp! - nowS()).toBeLessThanOrEqual(301);
  });

  it("'weir token' without JWT_SECRET exits non-zero and says what to set", () => {
    const r = cliSync(['token']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/JWT_SECRET/);
  });
});

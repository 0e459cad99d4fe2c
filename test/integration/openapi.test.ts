// GET /openapi.json describes the master's API as OpenAPI 3.1, generated from the routes'
// schemas, and GET /docs renders it; both are open, they hold no data. Real replies of a
// running master validate against the document's success schemas, and the master runs with
// the reply check on (the harness sets WEIR_CHECK_REPLIES=1): a schema that would drop or
// coerce a field of a reply turns it into a 500 and a line in the log
// (addresses 127.0.0.240 and 127.0.0.86 belong to this file).
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/common/errors.js';
import { MASTER_ACCESS } from '../../src/master/access-table.js';
import { WORKER_ACCESS } from '../../src/worker/access-table.js';
import {
  Cluster,
  http,
  waitFor,
  type HttpAnswer,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { bearer, signedToken } from '../helpers/tokens.js';

const SECRET = 'openapi-test-secret-of-32-bytes-or-more';
const c = new Cluster('openapi');
let m: MasterProc;
let w: WorkerProc;
let doc: Json;
let admin: Record<string, string>;

// Both nodes compile every route's schemas at start (WEIR_CHECK_SCHEMAS, http-validation.ts),
// against the JSON Schema meta-schema too: a schema that would fail its route's first request
// fails this file's start. Elsewhere nodes compile a route's schemas on its first request.
const CHECK_SCHEMAS = { WEIR_CHECK_SCHEMAS: '1' };

beforeAll(async () => {
  m = await c.master('127.0.0.240', { env: { JWT_SECRET: SECRET, ...CHECK_SCHEMAS } });
  const r = await http('GET', `${m.url}/openapi.json`);
  expect(r.status, r.text).toBe(200);
  doc = r.json;
  const token = await signedToken(SECRET, { role: 'admin' });
  admin = bearer(token);
  w = await c.worker('127.0.0.86', m, { env: { JWT_SECRET: SECRET, ...CHECK_SCHEMAS }, token });
});

afterAll(() => c.cleanup());

/** The document's paths are OpenAPI's (`{job_id}`), the router's are Fastify's (`:job_id`). */
const openApiPath = (route: string) => route.replace(/:([A-Za-z_]+)/g, '{$1}');
// The API's own pages and the dashboard's assets are not API.
const documented = (key: string) => !key.includes(' /docs') && key !== 'GET /openapi.json' && key !== 'GET /assets/*';

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document, served without a token', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('has every route of the master, with its method', () => {
    const missing = Object.keys(MASTER_ACCESS)
      .filter(documented)
      .filter((key) => {
        const [method, route] = key.split(' ') as [string, string];
        return !doc.paths[openApiPath(route)]?.[method.toLowerCase()];
      });
    expect(missing).toEqual([]);
  });

  it('groups the routes by what they serve, the cluster’s own apart, and offers every read stale', () => {
    const ops = Object.entries(
      doc.paths as Record<string, Record<string, { tags?: string[]; parameters?: { name: string; in: string }[] }>>,
    ).flatMap(([path, byMethod]) =>
      Object.entries(byMethod).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })),
    );
    const tagged = (key: string) => ops.find((o) => o.key === key)?.op.tags;
    expect(ops.filter((o) => o.op.tags?.length !== 1).map((o) => o.key)).toEqual([]);
    expect(tagged('GET /api/jobs/{job_id}')).toEqual(['jobs']);
    expect(tagged('GET /api/jobs/{job_id}/logs')).toEqual(['jobs']);
    expect(tagged('POST /api/jobs/{job_id}/logs')).toEqual(['internal']);
    expect(tagged('POST /api/workers/heartbeat')).toEqual(['internal']);
    expect(tagged('GET /metrics')).toEqual(['cluster']);
    const reads = ops.filter(
      (o) => /^GET \/api\//.test(o.key) && !o.key.endsWith('/channel') && o.key !== 'GET /api/live',
    );
    expect(reads.length).toBeGreaterThan(5);
    const without = reads.filter((o) => !o.op.parameters?.some((p) => p.name === 'consistency' && p.in === 'query'));
    expect(without.map((o) => o.key)).toEqual([]);
  });

  it('gives every route its refusals as {error: {code, message}} with the catalogue’s codes', () => {
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
      for (const [method, op] of Object.entries(methods)) {
        for (const status of ['4XX', '5XX']) {
          const schema = op.responses?.[status]?.content?.['application/json']?.schema;
          expect(schema, `${method} ${path} ${status}`).toBeDefined();
          expect(schema.properties.error.properties.code.enum).toEqual([...ERROR_CODES]);
          expect(schema.properties.error.required).toEqual(['code', 'message']);
        }
      }
    }
  });

  it('gives every route its success: a 2xx reply (with its media type and schema, or none for a 204), 101 for sockets', () => {
    const sockets = Object.keys(MASTER_ACCESS).filter((k) => k.endsWith('/channel') || k.endsWith('/raft/stream'));
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
      for (const [method, op] of Object.entries(methods)) {
        const route = `${method.toUpperCase()} ${path}`;
        const successes = Object.keys(op.responses).filter((s) => /^(2\d\d|2XX|101)$/.test(s));
        if (sockets.some((k) => openApiPath(k) === route)) {
          expect(successes, route).toEqual(['101']);
          continue;
        }
        expect(successes.length, `${route} declares no success`).toBeGreaterThan(0);
        for (const status of successes) {
          const reply = op.responses[status];
          if (status === '204') {
            expect(reply.content, route).toBeUndefined();
            continue;
          }
          const media = Object.entries(reply.content ?? {}) as [string, Json][];
          expect(media.length, `${route} ${status} names no media type`).toBeGreaterThan(0);
          for (const [type, { schema }] of media) {
            expect(schema?.type, `${route} ${status} ${type}`).toBeDefined();
            if (type === 'application/json') expect(schema.type, `${route} ${status}`).toBe('object');
          }
        }
      }
    }
  });

  it('describes requests from the routes’ own schemas (a submit’s body, a job’s id)', () => {
    const submit = doc.paths['/api/jobs'].post.requestBody.content['application/json'].schema;
    expect(submit.required).toEqual(expect.arrayContaining(['name', 'type']));
    expect(submit.properties.type.enum).toEqual(['batch', 'streaming']);
    const params = doc.paths['/api/jobs/{job_id}'].get.parameters as Json[];
    expect(params).toContainEqual(expect.objectContaining({ name: 'job_id', in: 'path', required: true }));
    // A submit may wait for its job, as a GET of it may.
    for (const waits of [doc.paths['/api/jobs'].post.parameters, params] as Json[][])
      expect(waits).toContainEqual(expect.objectContaining({ name: 'wait_ms', in: 'query' }));
  });

  it('asks for a bearer token', () => {
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });
});

describe('GET /docs', () => {
  it('renders the document with assets the master serves itself, without a token', async () => {
    const page = await http('GET', `${m.url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((x) => x[1]!);
    expect(assets.length).toBeGreaterThan(2);
    for (const src of assets) {
      expect(src, 'no CDN').not.toMatch(/^https?:/);
      const asset = await http('GET', new URL(src, `${m.url}/docs`).href);
      expect(asset.status, src).toBe(200);
    }
    const init = await http('GET', `${m.url}/docs/static/swagger-initializer.js`);
    expect(init.status).toBe(200);
    const json = await http('GET', `${m.url}/docs/json`);
    expect(json.json.openapi).toBe('3.1.0');
  });
});

/** The document's schema for what `route` (`GET /api/jobs/{job_id}`) answers with `status` as `mediaType`. */
function documentedReply(route: string, status: number, mediaType = 'application/json'): Json {
  const [method, path] = route.split(' ') as [string, string];
  const op = doc.paths[path]?.[method.toLowerCase()];
  expect(op, `${route} is in the document`).toBeDefined();
  const reply = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`];
  expect(reply, `${route} documents ${status}`).toBeDefined();
  if (status === 204) return undefined;
  const schema = reply.content?.[mediaType]?.schema;
  expect(schema, `${route} ${status} is documented as ${mediaType}`).toBeDefined();
  return schema;
}

const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
ajv.addFormat('binary', true);

/**
 * Calls `route` at `url` and checks what comes back: the status expected, and a body (or its
 * media type, when it is not JSON) that is what the document says for that status.
 */
async function check(
  route: string,
  url: string,
  status: number,
  o: { body?: unknown; headers?: Record<string, string>; mediaType?: string } = {},
): Promise<HttpAnswer> {
  const r = await http(route.split(' ')[0]!, url, o.body, { ...admin, ...o.headers });
  expect(r.status, `${route}: ${r.text.slice(0, 300)}`).toBe(status);
  const mediaType = o.mediaType ?? 'application/json';
  const schema = documentedReply(route, status, mediaType);
  if (status === 204) {
    expect(r.text).toBe('');
  } else if (mediaType === 'application/json') {
    const valid = ajv.validate(schema, r.json);
    expect(valid, `${route} ${status}: ${ajv.errorsText(ajv.errors)}\n${r.text.slice(0, 500)}`).toBe(true);
  } else {
    expect(r.headers.get('content-type'), route).toMatch(new RegExp(`^${mediaType.replace(/[.+]/g, '\\$&')}`));
  }
  return r;
}

describe('real replies are what the document says', () => {
  const job = (id: string) => `${m.url}/api/jobs/${id}`;
  const submit = (name: string, config: unknown, status = 201, headers: Record<string, string> = {}) =>
    check('POST /api/jobs', `${m.url}/api/jobs`, status, { body: { name, type: 'batch', config }, headers });
  const finished = async (id: string) => {
    const r = await check('GET /api/jobs/{job_id}', `${job(id)}?wait_ms=20000`, 200);
    expect(['completed', 'failed'], r.text).toContain(r.json.status);
    return r.json;
  };

  it('of the cluster: status, health, readiness, masters, workers, metrics', async () => {
    await check('GET /cluster/status', `${m.url}/cluster/status`, 200);
    await check('GET /health', `${m.url}/health`, 200);
    await check('GET /ready', `${m.url}/ready`, 200);
    const masters = await check('GET /api/cluster/masters', `${m.url}/api/cluster/masters`, 200);
    expect(masters.json.masters[0].term).toBeGreaterThan(0);
    // Live: its heartbeat's metrics come with it.
    const workers = await waitFor('the worker to have heartbeaten', async () => {
      const r = await check('GET /api/workers', `${m.url}/api/workers`, 200);
      return r.json.workers[0]?.last_heartbeat ? r : undefined;
    });
    expect(workers.json.workers[0]).toMatchObject({
      address: w.address,
      status: 'active',
      metrics: expect.any(Object),
    });
    await check('GET /metrics', `${m.url}/metrics`, 200, { mediaType: 'text/plain' });
  });

  it('of batch jobs: a submit (and its retry), a job, its tasks, its results, a page of jobs', async () => {
    const key = { 'idempotency-key': 'openapi-spec-multiply' };
    const first = await submit(
      'multiply',
      { operation: 'multiply', factor: 2, task_count: 2, data: [1, 2, 3] },
      201,
      key,
    );
    const again = await submit(
      'multiply',
      { operation: 'multiply', factor: 2, task_count: 2, data: [1, 2, 3] },
      200,
      key,
    );
    expect(again.json.job_id).toBe(first.json.job_id);
    // A submit that waits answers with the finished job, in the same schema.
    const waited = await check('POST /api/jobs', `${m.url}/api/jobs?wait_ms=20000`, 201, {
      body: { name: 'noop', type: 'batch', config: { operation: 'noop', task_count: 1 } },
    });
    expect(waited.json.status).toBe('completed');
    const id = first.json.job_id as string;
    expect(await finished(id)).toMatchObject({ status: 'completed', operation: 'multiply' });
    const tasks = await check('GET /api/jobs/{job_id}/tasks', `${job(id)}/tasks`, 200);
    expect(tasks.json.tasks).toHaveLength(2);
    const page = await check('GET /api/jobs/{job_id}/results', `${job(id)}/results?limit=2`, 200);
    expect(page.json).toEqual({ results: [2, 4], next_cursor: expect.any(String) });
    const rest = await check(
      'GET /api/jobs/{job_id}/results',
      `${job(id)}/results?cursor=${page.json.next_cursor}`,
      200,
    );
    expect(rest.json).toEqual({ results: [6], next_cursor: null });
    const jobs = await check('GET /api/jobs', `${m.url}/api/jobs?limit=1`, 200);
    expect(jobs.json.jobs).toHaveLength(1);
  });

  it('of a multi-stage job (its stages, keyed rows) and a failed one (its error, stack included)', async () => {
    const wc = await submit('wc', { operation: 'wordcount', data: ['a b', 'b c'], task_count: 2, reduce_tasks: 2 });
    const done = await finished(wc.json.job_id);
    expect(done.stages.map((s: Json) => s.name)).toEqual(['map', 'reduce']);
    const rows = await check('GET /api/jobs/{job_id}/results', `${job(wc.json.job_id)}/results`, 200);
    expect(rows.json.results).toEqual([
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
      { key: 'c', value: 1 },
    ]);

    const module = 'export function map(r) { throw new Error("boom " + r) }';
    const bad = await submit('boom', { module, data: [1], task_count: 1, max_retries: 0 });
    const failed = await finished(bad.json.job_id);
    expect(failed).toMatchObject({ status: 'failed', error: { task: 0, message: expect.stringContaining('boom 1') } });
    expect(failed.error.stack).toEqual(expect.any(String));
    const tasks = await check('GET /api/jobs/{job_id}/tasks', `${job(bad.json.job_id)}/tasks`, 200);
    expect(tasks.json.tasks[0].error).toMatchObject({ message: expect.stringContaining('boom 1') });
  });

  it('of a streaming job: events accepted, its components, rows as results, rows stored, a cancel', async () => {
    const topology = {
      spouts: [{ id: 'lines', type: 'http', parallelism: 1 }],
      bolts: [{ id: 'out', op: 'collect', inputs: [{ from: 'lines', grouping: 'global' }] }],
    };
    const s = await check('POST /api/jobs', `${m.url}/api/jobs`, 201, {
      body: { name: 'stream', type: 'streaming', config: { topology } },
    });
    const id = s.json.job_id as string;
    const placed = await waitFor('the topology to run', async () => {
      const r = await check('GET /api/jobs/{job_id}', job(id), 200);
      return r.json.components.every((x: Json) => x.instances.every((i: Json) => i.status === 'running'))
        ? r
        : undefined;
    });
    expect(placed.json.components.map((x: Json) => x.kind)).toEqual(['spout/http', 'bolt/collect']);
    const sent = await check('POST /api/jobs/{job_id}/events', `${job(id)}/events`, 202, {
      body: [{ key: 'k', n: 1 }],
    });
    expect(sent.json).toEqual({ accepted: 1 });
    const worker = bearer(await signedToken(SECRET, { role: 'worker' }));
    const stored = await check('POST /api/jobs/{job_id}/rows', `${job(id)}/rows`, 200, {
      body: { rows: [{ key: 'spec', value: { n: 2 } }] },
      headers: worker,
    });
    expect(stored.json).toEqual({ stored: 1 });
    const rows = await check('GET /api/jobs/{job_id}/results', `${job(id)}/results`, 200);
    expect(rows.json.follow_cursor).toEqual(expect.any(String));
    const cancelled = await check('POST /api/jobs/{job_id}/cancel', `${job(id)}/cancel`, 200);
    expect(cancelled.json.status).toBe('cancelled');
    await check('DELETE /api/jobs/{job_id}', job(id), 204);
  });

  it('of uploads: stored, a copy sent again, read whole and by range, a range refused', async () => {
    const octets = { 'content-type': 'application/octet-stream' };
    const up = await check('POST /api/uploads', `${m.url}/api/uploads`, 201, { body: 'one\ntwo\n', headers: octets });
    expect(up.json).toMatchObject({ bytes: 8, copies: 1 });
    const peer = bearer(await signedToken(SECRET, { role: 'peer', node_id: 240 }));
    const copy = await check('PUT /api/uploads/{id}', `${m.url}/api/uploads/${up.json.upload_id}`, 200, {
      body: 'one\ntwo\n',
      headers: { ...octets, ...peer },
    });
    expect(copy.json).toEqual({ upload_id: up.json.upload_id, bytes: 8 });
    const file = `${m.url}/uploads/${up.json.upload_id}`;
    const mediaType = 'application/octet-stream';
    expect((await check('GET /uploads/{id}', file, 200, { mediaType })).text).toBe('one\ntwo\n');
    expect((await check('GET /uploads/{id}', file, 206, { mediaType, headers: { range: 'bytes=4-' } })).text).toBe(
      'two\n',
    );
    // A refusal of that route is JSON still, though its successes are bytes.
    await check('GET /uploads/{id}', file, 416, { headers: { range: 'bytes=100-' } });
  });

  it('of workers: a registration and a heartbeat', async () => {
    const r = await check('POST /api/workers/register', `${m.url}/api/workers/register`, 201, {
      body: { address: '127.0.0.87:1', max_tasks: 1 },
      headers: bearer(await signedToken(SECRET, { role: 'worker' })),
    });
    const own = bearer(await signedToken(SECRET, { role: 'worker', worker_id: r.json.worker_id }));
    const beat = await check('POST /api/workers/heartbeat', `${m.url}/api/workers/heartbeat`, 200, {
      body: { worker_id: r.json.worker_id, active_tasks: 0 },
      headers: own,
    });
    expect(beat.json).toEqual({ ok: true, status: 'active' });
  });

  it('of membership, a backup and the dashboard’s pages', async () => {
    const added = await check('POST /api/cluster/members', `${m.url}/api/cluster/members`, 201, {
      body: { id: 88, address: 'http://127.0.0.88:1' },
    });
    expect(added.json).toEqual({ id: 88, address: 'http://127.0.0.88:1', role: 'learner' });
    const removed = await check('DELETE /api/cluster/members/{id}', `${m.url}/api/cluster/members/88`, 200);
    expect(removed.json).toEqual({ removed: 88 });
    const backup = await check('GET /api/cluster/backup', `${m.url}/api/cluster/backup`, 200, {
      mediaType: 'application/vnd.sqlite3',
    });
    const headers = doc.paths['/api/cluster/backup'].get.responses['200'].headers as Json;
    expect(Object.keys(headers)).toContain('x-weir-applied-index');
    for (const h of Object.keys(headers)) expect(backup.headers.get(h), h).not.toBeNull();
    await check('GET /', `${m.url}/`, 200, { mediaType: 'text/html' });
    await check('GET /jobs/{job_id}', `${m.url}/jobs/job-x`, 200, { mediaType: 'text/html' });
  });

  it('and no reply was changed by its schema on the master or the worker', () => {
    expect(c.log(m)).not.toContain('differs from its schema');
    expect(c.log(w)).not.toContain('differs from its schema');
  });
});

describe("a worker's GET /openapi.json", () => {
  let workerDoc: Json;
  beforeAll(async () => {
    const r = await http('GET', `${w.url}/openapi.json`);
    expect(r.status, r.text).toBe(200);
    workerDoc = r.json;
  });

  it('is a valid OpenAPI 3.1 document of the worker, served without a token', async () => {
    expect(workerDoc.openapi).toBe('3.1.0');
    expect(workerDoc.info.title).toBe('Weir worker');
    const result = await new Validator().validate(workerDoc);
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
  });

  it('has every route of the worker, each with its success and its refusals', () => {
    const missing = Object.keys(WORKER_ACCESS)
      .filter((key) => key !== 'GET /openapi.json')
      .filter((key) => {
        const [method, route] = key.split(' ') as [string, string];
        const op = workerDoc.paths[openApiPath(route)]?.[method.toLowerCase()];
        return !op || !Object.keys(op.responses).some((s) => /^(2\d\d|101)$/.test(s)) || !op.responses['4XX'];
      });
    expect(missing).toEqual([]);
    expect(
      Object.keys(workerDoc.paths['/api/shuffle/{job_id}/{task}/{partition}'].get.responses['200'].content),
    ).toEqual(['application/msgpack']);
    expect(Object.keys(workerDoc.paths['/api/stream/link'].get.responses)).toContain('101');
  });
});

describe('streams in the document', () => {
  it('describes a followed log as NDJSON beside the JSON page', () => {
    const content = doc.paths['/api/jobs/{job_id}/logs'].get.responses['200'].content;
    expect(Object.keys(content).sort()).toEqual(['application/json', 'application/x-ndjson']);
    expect(content['application/x-ndjson'].schema.required).toEqual(expect.arrayContaining(['task', 'text']));
  });

  it("describes the dashboard's change stream as server-sent events", () => {
    expect(Object.keys(doc.paths['/api/live'].get.responses['200'].content)).toEqual(['text/event-stream']);
  });

  it('answers a followed log as NDJSON, as documented', async () => {
    const r = await http(
      'POST',
      `${m.url}/api/jobs`,
      { name: 'nd', type: 'batch', config: { operation: 'multiply', factor: 1, task_count: 1 } },
      admin,
    );
    expect(r.status, r.text).toBe(201);
    const id = r.json.job_id as string;
    await waitFor(
      'the job to end',
      async () => (await http('GET', `${m.url}/api/jobs/${id}`, undefined, admin)).json.status === 'completed',
    );
    await check('GET /api/jobs/{job_id}/logs', `${m.url}/api/jobs/${id}/logs?follow=1`, 200, {
      mediaType: 'application/x-ndjson',
    });
  });
});

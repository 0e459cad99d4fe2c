// GET /openapi.json describes the master's API as OpenAPI 3.1, generated from the routes'
// schemas, and GET /docs renders it; both are open, they hold no data
// (address 127.0.0.240 belongs to this file).
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/common/errors.js';
import { MASTER_ACCESS } from '../../src/master/access-table.js';
import { Cluster, http, type Json, type MasterProc } from '../helpers/cluster.js';

const c = new Cluster('openapi');
let m: MasterProc;
let doc: Json;

beforeAll(async () => {
  m = await c.master('127.0.0.240', { env: { JWT_SECRET: 'openapi-test-secret-of-32-bytes-or-more' } });
  const r = await http('GET', `${m.url}/openapi.json`);
  expect(r.status, r.text).toBe(200);
  doc = r.json;
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

  it('describes requests from the routes’ own schemas (a submit’s body, a job’s id)', () => {
    const submit = doc.paths['/api/jobs'].post.requestBody.content['application/json'].schema;
    expect(submit.required).toEqual(expect.arrayContaining(['name', 'type']));
    expect(submit.properties.type.enum).toEqual(['batch', 'streaming']);
    const params = doc.paths['/api/jobs/{job_id}'].get.parameters as Json[];
    expect(params).toContainEqual(expect.objectContaining({ name: 'job_id', in: 'path', required: true }));
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

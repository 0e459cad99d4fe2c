// Malformed requests against one real master and one real worker (addresses 127.0.0.51–59
// belong to this file): each gets a 4xx `{error: {code, message}}` a person can act on, and
// changes nothing.
import { mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  allJobs,
  freePort,
  http,
  httpEarlyAnswer,
  waitFor,
  type HttpAnswer,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('bad-input');
let m: MasterProc;
let w: WorkerProc;

beforeAll(async () => {
  m = await c.master('127.0.0.51');
  w = await c.worker('127.0.0.52', m);
});
afterAll(() => c.cleanup());

const jobCount = async () => (await allJobs(m.url)).length;
const workerCount = async () => (await http('GET', `${m.url}/api/workers`)).json.workers.length as number;

function expectError(r: HttpAnswer, status: number, code?: string) {
  expect(r.status, r.error ?? r.text.slice(0, 300)).toBe(status);
  expect(r.json, r.text.slice(0, 300)).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  expect(r.json.error.message.length).toBeGreaterThan(10);
  if (code) expect(r.json.error.code).toBe(code);
}

const batch = (config: unknown) => ({ name: 'bad', type: 'batch', config });

/** Resolves once `sock` can take more, or is closed; leaves no listener behind (a loop calls it per MiB). */
function drainedOrClosed(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done).off('close', done);
      resolve();
    };
    sock.once('drain', done).once('close', done);
  });
}

// [what, body (a string is sent as is), status]
const badSubmits: [string, unknown, number][] = [
  ['a body that is not valid JSON', '{"name": "x", "type": "batch",', 400],
  ['an empty body', '', 400],
  ['a body that is an array, not an object', '[{"name":"x","type":"batch"}]', 400],
  ['a body that is a string, not an object', '"submit please"', 400],
  ['a body that is a number', '42', 400],
  ['a body that is null', 'null', 400],
  ['a missing name', { type: 'batch' }, 400],
  ['an empty name', { name: '', type: 'batch' }, 400],
  ['a 201-character name', { name: 'n'.repeat(201), type: 'batch' }, 400],
  ['a name that is not a string', { name: 42, type: 'batch' }, 400],
  ['a missing type', { name: 'x' }, 400],
  ['a type other than batch or streaming', { name: 'x', type: 'stream' }, 400],
  ['an unknown operation', batch({ operation: 'divide', task_count: 2 }), 400],
  ['an operation that is not a string', batch({ operation: 7 }), 400],
  ['task_count 0', batch({ operation: 'noop', task_count: 0 }), 400],
  ['task_count -1', batch({ operation: 'noop', task_count: -1 }), 400],
  ['task_count 1.5', batch({ operation: 'noop', task_count: 1.5 }), 400],
  ['task_count "5" (a string)', batch({ operation: 'noop', task_count: '5' }), 400],
  ['task_count 100001', batch({ operation: 'noop', task_count: 100_001 }), 400],
  ['task_count over data.length', batch({ operation: 'multiply', factor: 2, task_count: 4, data: [1, 2, 3] }), 400],
  ['data with a non-number', batch({ operation: 'multiply', factor: 2, task_count: 1, data: [1, '2', 3] }), 400],
  ['data that is not an array', batch({ operation: 'multiply', factor: 2, data: '1,2,3' }), 400],
  ['empty data', batch({ operation: 'multiply', factor: 2, data: [] }), 400],
  ['a factor that is not a number', batch({ operation: 'multiply', factor: '3', task_count: 2 }), 400],
  ['a sleep with negative ms', batch({ operation: 'sleep', ms: -5, task_count: 1 }), 400],
  ['max_retries that is not an integer', batch({ operation: 'noop', max_retries: 'many' }), 400],
  ['a config that is an array', batch([1, 2, 3]), 400],
  ['a config that is a string', batch('{"operation":"noop"}'), 400],
  ['a field a submit does not read (confg)', { name: 'x', type: 'batch', confg: { operation: 'sleep', ms: 1 } }, 400],
];

describe('POST /api/jobs refuses a malformed submission and creates no job', () => {
  it.each(badSubmits.map(([what, body, status]) => ({ what, body, status })))(
    '$what → $status',
    async ({ body, status }) => {
      const before = await jobCount();
      const r = await http('POST', `${m.url}/api/jobs`, body);
      expectError(r, status);
      expect(await jobCount()).toBe(before);
    },
  );

  it('says which field is wrong, and for a choice, what the choices are', async () => {
    const post = async (body: unknown) => (await http('POST', `${m.url}/api/jobs`, body)).json.error.message as string;
    expect(await post({ type: 'batch' })).toMatch(/\bname\b/);
    expect(await post(batch({ operation: 'noop', task_count: 0 }))).toMatch(/task_count/);
    expect(await post(batch({ operation: 'divide' }))).toMatch(/multiply/);
    const typeMessage = await post({ name: 'x', type: 'stream' });
    expect(typeMessage).toMatch(/\btype\b/);
    expect(typeMessage).toMatch(/batch/);
    expect(typeMessage).toMatch(/streaming/);
    expect(await post({ name: 'x', type: 'batch', confg: {} })).toBe(
      "unknown field 'confg' in the submit (did you mean 'config'?); a submit takes name, type, config",
    );
  });

  describe('a body over 16 MiB', () => {
    const big = `{"name":"big","type":"batch","config":{"operation":"multiply","data":[${'1,'.repeat(9 * 1024 * 1024)}1]}}`;

    it('→ 413 payload_too_large (read by a client that listens while it sends, as curl does)', async () => {
      expect(big.length).toBeGreaterThan(16 * 1024 * 1024);
      const before = await jobCount();
      const r = await httpEarlyAnswer('POST', `${m.url}/api/jobs`, big);
      expectError(r, 413, 'payload_too_large');
      expect(await jobCount()).toBe(before);
      expect((await http('GET', `${m.url}/health`)).status).toBe(200);
    });

    it('→ 413 that a plain fetch client receives too, every time (not a broken pipe), 20 times in a row', async () => {
      const before = await jobCount();
      const outcomes: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await http('POST', `${m.url}/api/jobs`, big, {}, 30_000);
        outcomes.push(r.status ? String(r.status) : (r.error ?? 'no answer'));
      }
      expect(outcomes).toEqual(Array(20).fill('413'));
      expect(await jobCount()).toBe(before);
    });
  });

  it('an empty Idempotency-Key header → 400', async () => {
    const before = await jobCount();
    const r = await http('POST', `${m.url}/api/jobs`, { name: 'x', type: 'batch' }, { 'Idempotency-Key': '' });
    expectError(r, 400);
    expect(await jobCount()).toBe(before);
  });

  it('while the limits themselves are accepted: a 200-character name, task_count 100000, task_count = data.length', async () => {
    const ok = [
      { name: 'n'.repeat(200), type: 'batch' },
      { name: 'many', type: 'batch', config: { operation: 'noop', task_count: 100_000 } },
      { name: 'exact', type: 'batch', config: { operation: 'multiply', factor: 2, task_count: 3, data: [1, 2, 3] } },
    ];
    for (const body of ok) {
      const r = await http('POST', `${m.url}/api/jobs`, body);
      expect(r.status, r.text.slice(0, 300)).toBe(201);
    }
  });
});

describe('values nested deeper than 100 arrays and objects', () => {
  const deep = (depth: number) => '['.repeat(depth) + '1' + ']'.repeat(depth);
  // A few KB each: once a value, any of them would overflow the stack of whatever recursed
  // into it next (the schema's check, msgpack, a master applying it, again at every restart).
  it.each([
    ['a job config', () => `{"name":"deep","type":"batch","config":{"operation":"noop","x":${deep(5000)}}}`],
    ['config.data', () => `{"name":"deep","type":"batch","config":{"operation":"multiply","data":${deep(5000)}}}`],
    ['config.env', () => `{"name":"deep","type":"batch","config":{"operation":"noop","env":{"A":${deep(200)}}}}`],
    ['a body of only brackets', () => deep(1_000_000)],
  ])('in %s → 400 bad_request saying so, and no job', async (_what, body) => {
    const before = await jobCount();
    const r = await http('POST', `${m.url}/api/jobs`, body());
    expectError(r, 400, 'bad_request');
    expect(r.json.error.message).toBe('the request body nests arrays and objects more than 100 deep; flatten it');
    expect(await jobCount()).toBe(before);
  });

  it('as rows or events → 400 the same way, on the master and on a worker', async () => {
    const rows = `{"rows":[{"key":"k","value":${deep(3000)}}]}`;
    expectError(await http('POST', `${m.url}/api/jobs/j-1/rows`, rows), 400, 'bad_request');
    expectError(await http('POST', `${m.url}/api/jobs/j-1/events`, `[{"a":${deep(3000)}}]`), 400, 'bad_request');
    const events = `{"events":[{"a":${deep(3000)}}]}`;
    expectError(await http('POST', `${w.url}/api/stream/job1/0/events`, events), 400, 'bad_request');
  });

  it('while 100 deep is accepted', async () => {
    // The config's own object is one level: 99 more inside it.
    const r = await http(
      'POST',
      `${m.url}/api/jobs`,
      `{"name":"deep-ok","type":"batch","config":{"operation":"noop","x":${deep(98)}}}`,
    );
    expect(r.status, r.text.slice(0, 300)).not.toBe(500);
    expect(r.text).not.toMatch(/more than 100 deep/);
  });
});

describe('unknown and malformed ids', () => {
  it.each([
    ['GET', '/api/jobs/job-that-does-not-exist'],
    ['GET', '/api/jobs/job-that-does-not-exist/results'],
    ['POST', '/api/jobs/job-that-does-not-exist/cancel'],
  ])('%s %s → 404 not_found', async (method, path) => {
    const before = await jobCount();
    expectError(await http(method, `${m.url}${path}`), 404, 'not_found');
    expect(await jobCount()).toBe(before);
  });

  it.each([
    ['GET', '/api/jobs/bad!id'],
    ['GET', '/api/jobs/bad.id/results'],
    ['POST', '/api/jobs/bad%20id/cancel'],
    ['GET', `/api/jobs/${'a'.repeat(65)}`],
  ])('%s %s (an id with bad characters or too long) → 400', async (method, path) => {
    expectError(await http(method, `${m.url}${path}`), 400);
  });
});

describe('the worker endpoints', () => {
  it('a heartbeat for an unknown worker → 404 unknown_worker', async () => {
    const r = await http('POST', `${m.url}/api/workers/heartbeat`, {
      worker_id: 'w-nobody',
      status: 'active',
      active_tasks: 0,
      metrics: {},
      timestamp: new Date().toISOString(),
    });
    const before = await workerCount();
    expectError(r, 404, 'unknown_worker');
    expect(await workerCount()).toBe(before);
  });

  it.each([
    ['max_tasks 0', { address: '127.0.0.59:9999', max_tasks: 0 }],
    ['max_tasks -3', { address: '127.0.0.59:9999', max_tasks: -3 }],
    ['max_tasks 2.5', { address: '127.0.0.59:9999', max_tasks: 2.5 }],
    ['no address', { max_tasks: 2 }],
  ])('register with %s → 400 and no worker', async (_what, body) => {
    const before = await workerCount();
    expectError(await http('POST', `${m.url}/api/workers/register`, body), 400);
    expect(await workerCount()).toBe(before);
  });
});

describe('unknown routes and paths that cannot be decoded', () => {
  it.each([
    ['GET', '/api/nothing-here'],
    ['GET', '/no/such/page'],
    ['DELETE', '/health'],
  ])('%s %s → 404 not_found on the master and on a worker, naming the route', async (method, path) => {
    for (const url of [m.url, w.url]) {
      const r = await http(method, `${url}${path}?x=1`);
      expectError(r, 404, 'not_found');
      expect(r.json.error.message).toContain(`${method} ${path}`);
    }
  });

  it.each([
    ['master', 'GET', '/api/jobs/%E0%A4%A'],
    ['master', 'POST', '/api/jobs/%E0%A4%A/cancel'],
    ['master', 'GET', '/%E0%A4%A'],
    ['worker', 'GET', '/api/shuffle/%E0%A4%A/0.1/0'],
    ['worker', 'POST', '/api/stream/job1/%FF/events'],
    ['worker', 'GET', '/%E0%A4%A'],
  ])('on the %s, %s %s (a malformed percent-encoding) → 400 bad_request', async (node, method, path) => {
    const url = node === 'master' ? m.url : w.url;
    expectError(await http(method, `${url}${path}`), 400, 'bad_request');
  });
});

describe("a worker's own routes", () => {
  it.each([
    ['a job id with bad characters', '/api/shuffle/bad!id/0.1/0', 'params.job_id'],
    ['a task without its attempt', '/api/shuffle/job1/0/0', 'params.task'],
    ['a task that is not a number', '/api/shuffle/job1/x.1/0', 'params.task'],
    ['a partition that is not an integer', '/api/shuffle/job1/0.1/p', 'params.partition'],
    ['a negative partition', '/api/shuffle/job1/0.1/-1', 'params.partition'],
  ])('GET a map output with %s → 400 validation_failed naming %s', async (_what, path, field) => {
    const r = await http('GET', `${w.url}${path}`);
    expectError(r, 400, 'validation_failed');
    expect(r.json.error.message).toContain(field);
  });

  it('GET a map output it does not hold → 404 not_found', async () => {
    expectError(await http('GET', `${w.url}/api/shuffle/job1/0.1/0`), 404, 'not_found');
  });

  it.each([
    ['a job id with bad characters', '/api/stream/bad.id/0/events', { events: [{}] }, 'params.job_id'],
    ['an instance that is not an integer', '/api/stream/job1/first/events', { events: [{}] }, 'params.idx'],
    ['no events', '/api/stream/job1/0/events', {}, 'body.events'],
    ['events that are not an array', '/api/stream/job1/0/events', { events: { a: 1 } }, 'body.events'],
    ['an event that is not an object', '/api/stream/job1/0/events', { events: [{}, 7] }, 'body.events.1'],
  ])('POST events with %s → 400 validation_failed naming %s', async (_what, path, body, field) => {
    const r = await http('POST', `${w.url}${path}`, body);
    expectError(r, 400, 'validation_failed');
    expect(r.json.error.message).toContain(field);
  });

  it('POST events that are not JSON → 400 invalid_json', async () => {
    expectError(await http('POST', `${w.url}/api/stream/job1/0/events`, '{"events": ['), 400, 'invalid_json');
  });

  it('POST events for an instance it does not run → 404 not_found', async () => {
    expectError(await http('POST', `${w.url}/api/stream/job1/0/events`, { events: [{ a: 1 }] }), 404, 'not_found');
  });

  it('still answers its status, whole, after all that', async () => {
    const r = await http('GET', `${w.url}/api/status`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      worker_id: expect.any(String),
      address: w.address,
      status: 'active',
      connected: true,
      max_tasks: expect.any(Number),
      metrics: { tasks_done: expect.any(Number), uptime_s: expect.any(Number) },
    });
  });
});

describe('uploads', () => {
  const uploads = async () => readdirSync(join(m.dataDir, 'uploads')).length;

  it('a body sent as application/json → 400 naming application/octet-stream, whatever it holds (no parser reads an upload)', async () => {
    const before = await uploads();
    for (const body of ['{"not": "a file"}', '{not json at all']) {
      const r = await http('POST', `${m.url}/api/uploads`, body, { 'content-type': 'application/json' });
      expectError(r, 400, 'bad_request');
      expect(r.json.error.message).toContain('Content-Type: application/octet-stream');
    }
    expect(await uploads()).toBe(before);
  });

  it('600 MiB sent as application/json do not take the master down: it refuses them and goes on answering', async () => {
    // A JSON parser given an upload's 1 GiB limit buffered such a body into one string, longer
    // than V8 allows: thrown outside any handler, it ended the master (and again on each one).
    const bytes = 600 * 1024 * 1024;
    const sock = connect({ host: m.host, port: m.port });
    const answer: Buffer[] = [];
    sock.on('data', (d: Buffer) => answer.push(d));
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    sock.on('error', () => {}); // reset once past what the master reads of a refused body
    await new Promise<void>((resolve) => sock.on('connect', () => resolve()));
    sock.write(
      `POST /api/uploads HTTP/1.1\r\nhost: ${m.host}\r\ncontent-type: application/json\r\ncontent-length: ${bytes}\r\n\r\n`,
    );
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    for (let sent = 0; sent < bytes && !sock.destroyed; sent += chunk.length) {
      if (!sock.write(chunk)) await drainedOrClosed(sock);
    }
    sock.end();
    await closed;
    const text = Buffer.concat(answer).toString('utf8');
    if (text) expect(text).toMatch(/^HTTP\/1\.1 400/);
    expect(m.exitCode, 'the master exited').toBeUndefined();
    expect((await http('GET', `${m.url}/health`)).status).toBe(200);
  });
});

describe('the CLI on bad input', () => {
  it("`weir submit batch X '{bad json'` exits non-zero with one clear line on stderr, no stack trace, and submits nothing", async () => {
    const before = await jobCount();
    const r = await c.cli(['--master', m.url, 'submit', 'batch', 'X', '{bad json']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/json/i);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(await jobCount()).toBe(before);
  });

  it('`weir --retry-for soon` exits 1 saying how to write a duration, and so does a bad WEIR_RETRY_FOR', async () => {
    const flag = await c.cli(['--master', m.url, '--retry-for', 'soon', 'jobs']);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toMatch(/--retry-for: 'soon' is not a duration; write it like 30s/);
    expect(flag.stderr).not.toMatch(/^\s+at /m);
    const env = await c.cli(['--master', m.url, 'jobs'], { env: { WEIR_RETRY_FOR: '-1s' } });
    expect(env.code).toBe(1);
    expect(env.stderr).toMatch(/WEIR_RETRY_FOR: '-1s' is not a duration/);
  });

  it('with --retry-for 1s and no master listening, `weir jobs` asks every master it was given and exits 3 soon, not after 30 s', async () => {
    const [a, b] = [await freePort(m.host), await freePort(m.host)];
    const r = await c.cli(['--master', `http://${m.host}:${a},http://${m.host}:${b}`, '--retry-for', '1s', 'jobs'], {
      timeoutMs: 15_000,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`no master answered (http://${m.host}:${a}, http://${m.host}:${b})`);
  });

  /** Runs `fn` with a directory of its own for input files, removed after. */
  async function withInputDir(fn: (dir: string) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'weir-input-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const heldUploads = () => readdirSync(join(m.dataDir, 'uploads')).length;
  const jobsAndUploads = async () => ({ jobs: await jobCount(), uploads: heldUploads() });

  it('`weir submit --input` of a file over 1 GiB exits 1 saying so, before sending any of it', async () => {
    await withInputDir(async (dir) => {
      const file = join(dir, 'big.txt');
      writeFileSync(file, '');
      truncateSync(file, 1024 ** 3 + 1); // sparse: nothing on the disk
      const before = await jobsAndUploads();
      const r = await c.cli(['--master', m.url, 'submit', 'batch', 'X', '{"operation":"wordcount"}', '--input', file], {
        timeoutMs: 15_000,
      });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        /big\.txt is 1\.00 GiB, over the 1 GiB an upload may be; put larger inputs where every worker can read them/,
      );
      expect(r.stderr).toContain('(payload_too_large)');
      expect(await jobsAndUploads()).toEqual(before);
    });
  });

  it('`weir submit --input` with a config the master would refuse exits 1 saying why, and uploads nothing', async () => {
    // An upload no job reads stays on the masters: a refused submit left one behind each time.
    await withInputDir(async (dir) => {
      const file = join(dir, 'words.txt');
      writeFileSync(file, 'a b\nc d\n');
      const before = await jobsAndUploads();
      const r = await c.cli(['--master', m.url, 'submit', 'batch', 'X', '{"operation":"divide"}', '--input', file]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/unknown operation "divide"/);
      expect(await jobsAndUploads()).toEqual(before);
      // The same config, right, goes up and runs.
      const ok = await c.cli(['--master', m.url, 'submit', 'batch', 'X', '{"operation":"wordcount"}', '--input', file]);
      expect(ok.code, ok.stderr).toBe(0);
    });
  });

  it('`weir submit --input` refused by the master after the file went up deletes the upload', async () => {
    // A streaming topology is checked by the master alone: the file is up when it is refused.
    await withInputDir(async (dir) => {
      const file = join(dir, 'words.txt');
      const topology = join(dir, 'topology.json');
      writeFileSync(file, 'a b\nc d\n');
      writeFileSync(topology, JSON.stringify({ topology: { nodes: 'none' } }));
      const before = await jobsAndUploads();
      const r = await c.cli(['--master', m.url, 'submit', 'streaming', 'X', topology, '--input', file]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/uploaded .*words\.txt/);
      expect(r.stderr).toMatch(/topology/);
      await waitFor('the refused job’s upload to be deleted', () => heldUploads() === before.uploads);
      expect(await jobCount()).toBe(before.jobs);
    });
  });

  it("`weir status nope` exits 1 with the server's message", async () => {
    const server = (await http('GET', `${m.url}/api/jobs/nope`)).json.error.message as string;
    const r = await c.cli([`${m.host}:${m.port}`, 'status', 'nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(server);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('`weir results -o` a path it cannot write, `jobs --limit abc`, `submit --input` a directory, a WEIR_TOKEN with a space: one line each, exit 1, at once', async () => {
    const job = (await http('POST', `${m.url}/api/jobs`, { name: 'cli-bad', type: 'batch' })).json.job_id as string;
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        ['results', job, '-o', '/nonexistent-dir/results.json'],
        {},
        /^weir: cannot write '\/nonexistent-dir\/results.json': ENOENT$/,
      ],
      [['jobs', '--limit', 'abc'], {}, /^weir: --limit takes a whole number from 1 to 1000; got 'abc'$/],
      [
        ['submit', 'batch', 'X', '{"operation":"wordcount"}', '--input', tmpdir()],
        {},
        /^weir: .+ is not a file; upload a file/,
      ],
      [
        ['jobs'],
        { WEIR_TOKEN: 'two words' },
        /^weir: WEIR_TOKEN is not a token: it holds a space or a control character/,
      ],
    ];
    for (const [args, env, line] of cases) {
      const r = await c.cli(['--master', m.url, '--retry-for', '2s', ...args], { env });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(line);
    }
    // A token file saved with a line end (CRLF) is still the token.
    expect((await c.cli(['--master', m.url, 'jobs'], { env: { WEIR_TOKEN: 'a.b.c\r\n' } })).code).toBe(0);
  });

  it('a job name with a control character is refused (400): no table of `weir jobs` shows a forged row', async () => {
    const before = await jobCount();
    const r = await http('POST', `${m.url}/api/jobs`, { name: 'x\njob-0  payroll  completed', type: 'batch' });
    expectError(r, 400, 'bad_request');
    expect(r.json.error.message).toMatch(/control character/);
    expect(await jobCount()).toBe(before);
  });

  it("`weir submit` of an unknown operation exits 1 with the server's message", async () => {
    const before = await jobCount();
    const r = await c.cli(['--master', m.url, 'submit', 'batch', 'X', '{"operation":"divide"}']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown operation/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(await jobCount()).toBe(before);
  });
});

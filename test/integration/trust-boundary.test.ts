// The trust boundary, tried as an attacker on the same network would (one master, one
// worker, JWT_SECRET set; addresses 127.0.0.141–149 and 11–13 belong to this file): paths that decode
// to a guarded route, strangers and wrong roles on every socket, and frames built to crash a
// node. Every refusal is `{error: {code, message}}` or a closed socket, and afterwards every
// process is alive and the cluster still runs jobs — across a restart of the master too.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  Cluster,
  freePorts,
  http,
  submitJob,
  untilAgreedLeader,
  untilJobStatus,
  waitFor,
  type HttpAnswer,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { bearer, signedToken } from '../helpers/tokens.js';

const SECRET = 'trust-boundary-secret-0123456789abcdef';
const env = { JWT_SECRET: SECRET };
const c = new Cluster('trust');
let m: MasterProc;
let w: WorkerProc;
/** The master's node id: c*256+d of 127.0.0.141. */
const MASTER_ID = 141;

const token = (claims: Record<string, unknown>, o: { exp?: boolean } = {}) =>
  signedToken(SECRET, claims, { ...o, subject: 'attacker' });
let client: string;
let admin: string;

/** One request with the path sent exactly as written (no client-side normalising). */
function rawRequest(
  url: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Bytes over a bare connection, as no HTTP client would send them; the answer the server wrote before closing. */
function rawBytes(url: string, bytes: string): Promise<{ status: number; json: unknown }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    let text = '';
    const sock = connect({ host: u.hostname, port: Number(u.port) }, () => sock.write(bytes));
    sock.setEncoding('utf8').on('data', (s: string) => (text += s));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(text);
      let json: unknown = m?.[2];
      try {
        json = JSON.parse(m?.[2] ?? '');
      } catch {
        // shown as text
      }
      resolve({ status: Number(m?.[1] ?? 0), json });
    });
  });
}

/** Opens a WebSocket; resolves with how it ended: refused at the upgrade, or closed with a code. */
function socketOutcome(
  url: string,
  headers: Record<string, string>,
  send: (ws: WebSocket) => void = () => undefined,
): Promise<{ refused?: number; closed?: number; open?: true }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    // Still open after this long: the server took it (what these specs say must not happen).
    const timer = setTimeout(() => {
      resolve({ open: true });
      ws.terminate();
    }, 10_000);
    ws.on('close', () => clearTimeout(timer));
    ws.on('unexpected-response', (_req, res) => {
      resolve({ refused: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.on('open', () => send(ws));
    ws.on('close', (code) => resolve({ closed: code }));
    ws.on('error', () => undefined);
  });
}

const alive = async (url: string) => (await http('GET', `${url}/health`, undefined, {}, 5000)).status === 200;
const expectCatalogue = (r: { json: unknown }, code: string) =>
  expect(r.json).toEqual({ error: { code, message: expect.any(String) } });
const term = async () => (await http('GET', `${m.url}/cluster/status`, undefined, bearer(admin))).json.term as number;

beforeAll(async () => {
  client = await token({});
  admin = await token({ role: 'admin' });
  m = await c.master('127.0.0.141', { env });
  w = await c.worker('127.0.0.142', m, { env, maxTasks: 2, token: admin });
});
afterAll(() => c.cleanup());

describe('paths: auth is decided on the route the router matched', () => {
  it.each([
    ['POST', '/%61pi/jobs'],
    ['POST', '/api/%6aobs'],
    ['GET', '/api/jobs/'],
    ['GET', '/%61pi/workers'],
  ])('%s %s without a token: 401, and no job is created', async (method, path) => {
    const r = await rawRequest(m.url, method, path, method === 'POST' ? '{"name":"x","type":"batch"}' : undefined);
    expect(r.status).toBe(401);
    expectCatalogue(r, 'unauthorized');
    expect((await http('GET', `${m.url}/api/jobs`, undefined, bearer(admin))).json.jobs).toEqual([]);
  });

  it.each([
    ['POST', '//api/jobs'],
    ['POST', '/API/jobs'],
  ])('%s %s is no route: 404 in the catalogue shape, nothing created', async (method, path) => {
    const r = await rawRequest(m.url, method, path, '{"name":"x","type":"batch"}');
    expect(r.status).toBe(404);
    expectCatalogue(r, 'not_found');
  });

  it.each(['/api/jobs/%00%ff', '/api/jobs/%E0%A4%A'])('GET %s answers in the catalogue shape', async (path) => {
    const r = await rawRequest(m.url, 'GET', path, undefined, bearer(client));
    expect([400, 404]).toContain(r.status);
    expect(r.json).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
  });

  it.each(['/%61pi/status', '/%61pi/shuffle/j/0.1/0', '/api/%73tatus'])(
    'on a worker, GET %s without a token: 401',
    async (path) => {
      const r = await rawRequest(w.url, 'GET', path);
      expect(r.status).toBe(401);
      expectCatalogue(r, 'unauthorized');
    },
  );

  it('the peer stream and a stream link behind an encoded path refuse the upgrade without a token', async () => {
    expect(await socketOutcome(`${m.url.replace('http', 'ws')}/r%61ft/stream`, {})).toEqual({ refused: 401 });
    expect(await socketOutcome(`${w.url.replace('http', 'ws')}/%61pi/stream/link`, {})).toEqual({ refused: 401 });
  });

  it.each([
    [
      'headers over 16 KiB',
      `GET /api/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'payload_too_large',
    ],
    ['a request line of HTTP/9.9', 'GET /api/jobs HTTP/9.9\r\nHost: x\r\n\r\n', 400, 'bad_request'],
    [
      'two lengths',
      'POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n12',
      400,
      'bad_request',
    ],
  ])(
    'a request Node cannot parse (%s) is answered in the catalogue shape, by masters and workers',
    async (_, bytes, status, code) => {
      for (const url of [m.url, w.url]) {
        const r = await rawBytes(url, bytes);
        expect(r.status, url).toBe(status);
        expectCatalogue(r, code);
      }
    },
  );

  it('headers over 16 KiB with a large body still on the way get their 431, not a reset connection', async () => {
    const big = JSON.stringify({ pad: 'x'.repeat(17 * 1024 * 1024) });
    for (const url of [m.url, w.url]) {
      const r = await rawRequest(url, 'POST', '/api/jobs', big, { 'x-big': 'a'.repeat(20_000) });
      expect(r.status, url).toBe(431);
      expectCatalogue(r, 'payload_too_large');
    }
  });

  it('a body over 16 MiB sent whole to a worker gets its 413, not a reset connection', async () => {
    const big = JSON.stringify({ events: [{ pad: 'x'.repeat(17 * 1024 * 1024) }] });
    const r = await rawRequest(w.url, 'POST', '/api/stream/job-x/0/events', big, bearer(await token({ role: 'peer' })));
    expect(r.status).toBe(413);
    expectCatalogue(r, 'payload_too_large');
  });

  it('?limit=Infinity is refused as no number, not answered with a 500', async () => {
    const r = await http('GET', `${m.url}/api/jobs?limit=Infinity`, undefined, bearer(client));
    expect(r.status, r.text).toBe(400);
    expectCatalogue(r, 'validation_failed');
  });

  it('a range outside an upload is refused with 416 in the catalogue shape', async () => {
    const up = await http('POST', `${m.url}/api/uploads`, 'abcdef', {
      ...bearer(client),
      'content-type': 'application/octet-stream',
    });
    expect(up.status, up.text).toBe(201);
    const r = await http('GET', `${m.url}/uploads/${up.json.upload_id}`, undefined, { range: 'bytes=9-2' });
    expect(r.status).toBe(416);
    expect(r.headers.get('content-range')).toBe('bytes */6');
    expectCatalogue(r, 'bad_request');
  });

  it('a request without an upgrade on a socket path is refused in the catalogue shape (not a bare 404)', async () => {
    const answers = [
      await http('GET', `${m.url}/raft/stream`, undefined, bearer(await token({ role: 'peer', node_id: MASTER_ID }))),
      await http('GET', `${m.url}/api/workers/${await theWorkerId()}/channel`, undefined, bearer(admin)),
      await http('GET', `${w.url}/api/stream/link`, undefined, bearer(await token({ role: 'worker' }))),
    ];
    for (const r of answers) {
      expect(r.status, r.text).toBe(400);
      expectCatalogue(r, 'bad_request');
    }
  });

  it('a long poll without a token is refused at once (401) and parks nothing', async () => {
    const waiting = async () =>
      Number(
        /^weir_long_polls_waiting (\d+)/m.exec(
          (await http('GET', `${m.url}/metrics`, undefined, bearer(admin))).text,
        )?.[1],
      );
    const before = await waiting();
    const polls = await Promise.all(
      Array.from({ length: 20 }, () => http('GET', `${m.url}/api/jobs/job-0000000000000000000000?wait_ms=60000`)),
    );
    expect(polls.map((p) => p.status)).toEqual(Array(20).fill(401));
    expect(await waiting()).toBe(before);
  });

  it('a token without exp is refused: 401', async () => {
    const r = await http('GET', `${m.url}/api/jobs`, undefined, bearer(await token({}, { exp: false })));
    expect(r.status).toBe(401);
    expect(r.json.error.message).toMatch(/exp/);
  });
});

describe('roles: what a token may do is its role’s', () => {
  it('a client token cannot add a master (which would be streamed the whole state): 403', async () => {
    const r = await http(
      'POST',
      `${m.url}/api/cluster/members`,
      { id: 9, address: 'http://127.0.0.149:1' },
      bearer(client),
    );
    expect(r.status).toBe(403);
    expectCatalogue(r, 'forbidden');
    const members = (await http('GET', `${m.url}/cluster/status`, undefined, bearer(admin))).json.nodes;
    expect(members.map((n: { id: number }) => n.id)).toEqual([MASTER_ID]);
  });

  it('a role that may not call a route hears 403 whatever its body says (not what is wrong with it)', async () => {
    const r = await http('POST', `${m.url}/api/cluster/members`, { nope: true }, bearer(client));
    expect(r.status).toBe(403);
  });

  it('a peer token adds only the master it names: 403 for another id', async () => {
    const peer = await token({ role: 'peer', node_id: 7 });
    const r = await http(
      'POST',
      `${m.url}/api/cluster/members`,
      { id: 9, address: 'http://127.0.0.149:1' },
      bearer(peer),
    );
    expect(r.status).toBe(403);
  });

  it('a client token cannot register a worker nor heartbeat for one: 403', async () => {
    expect(
      (await http('POST', `${m.url}/api/workers/register`, { address: '127.0.0.149:1', max_tasks: 1 }, bearer(client)))
        .status,
    ).toBe(403);
    const workerId = await theWorkerId();
    expect((await http('POST', `${m.url}/api/workers/heartbeat`, { worker_id: workerId }, bearer(client))).status).toBe(
      403,
    );
  });

  it("a worker's channel opens only for that worker: another worker's token and a client's are refused at the upgrade", async () => {
    const workerId = await theWorkerId();
    const url = `${m.url.replace('http', 'ws')}/api/workers/${workerId}/channel`;
    expect(await socketOutcome(url, bearer(client))).toEqual({ refused: 403 });
    expect(await socketOutcome(url, bearer(await token({ role: 'worker', worker_id: 'w-other' })))).toEqual({
      refused: 403,
    });
    expect(await socketOutcome(url, bearer(await token({ role: 'worker' })))).toEqual({ refused: 403 });
    expect((await http('GET', `${w.url}/api/status`, undefined, bearer(admin))).json.connected).toBe(true);
  });

  it('the peer stream opens only for a member master’s token: a client, an admin and a stranger master are refused', async () => {
    const url = `${m.url.replace('http', 'ws')}/raft/stream`;
    const before = await term();
    expect(await socketOutcome(url, bearer(client))).toEqual({ refused: 403 });
    expect(await socketOutcome(url, bearer(admin))).toEqual({ refused: 403 });
    const stranger = await socketOutcome(url, bearer(await token({ role: 'peer', node_id: 999 })));
    expect(stranger).toEqual({ closed: 1008 });
    expect(await term()).toBe(before);
  });
});

describe('tokens expire on open sockets too', () => {
  const packr = new Packr({ useRecords: true, mapsAsObjects: true });
  const peerPacker = new Packr({ useRecords: false });
  const peerLinkTokens = async (outcome: string) => {
    const text = (await http('GET', `${m.url}/metrics`, undefined, bearer(admin))).text;
    return Number(
      new RegExp(`^weir_peer_link_tokens_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0,
    );
  };
  const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s;
  const channelTokens = async (outcome: string) => {
    const text = (await http('GET', `${m.url}/metrics`, undefined, bearer(admin))).text;
    return Number(
      new RegExp(`^weir_worker_channel_tokens_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0,
    );
  };

  it('a worker channel whose token expires is closed then, when no fresh token came', async () => {
    const id = await fakeWorker();
    const url = `${m.url.replace('http', 'ws')}/api/workers/${id}/channel`;
    const expiring = bearer(await signedToken(SECRET, { role: 'worker', worker_id: id }, { exp: inSeconds(2) }));
    const before = await channelTokens('expired');
    const outcome = await socketOutcome(url, expiring, (ws) =>
      ws.send(packr.pack({ t: 'hello', running: [], unacked: [] })),
    );
    expect(outcome).toEqual({ closed: 4401 });
    expect(await channelTokens('expired')).toBe(before + 1);
  });

  /** How the channel of a worker of its own ends once it has said hello and sent `frame`. */
  const channelAfter = async (frame: (id: string) => unknown | Promise<unknown>) => {
    const id = await fakeWorker();
    const url = `${m.url.replace('http', 'ws')}/api/workers/${id}/channel`;
    const own = bearer(await token({ role: 'worker', worker_id: id }));
    const sent = packr.pack(await frame(id));
    return socketOutcome(url, own, (ws) => {
      ws.send(packr.pack({ t: 'hello', running: [], unacked: [] }));
      ws.send(sent);
    });
  };

  it("a fresh token for another worker, or a client's, closes the channel it is sent on", async () => {
    // A channel closed leaves its worker dead: each try is a worker of its own.
    for (const claims of [{ role: 'worker', worker_id: 'w-other' }, {}]) {
      const other = await token(claims);
      expect(await channelAfter(() => ({ t: 'token', token: other }))).toEqual({ closed: 4403 });
    }
  });

  it('a fresh token that is forged, expired or has no exp closes the channel (4403); the worker lives on', async () => {
    const forged = await signedToken('another-cluster-secret-0123456789abcdef', { role: 'worker', worker_id: 'x' });
    for (const make of [
      () => forged,
      (id: string) => signedToken(SECRET, { role: 'worker', worker_id: id }, { exp: inSeconds(-10) }),
      (id: string) => signedToken(SECRET, { role: 'worker', worker_id: id }, { exp: false }),
      () => Promise.resolve('not.a.token'),
    ]) {
      expect(await channelAfter(async (id) => ({ t: 'token', token: await make(id) }))).toEqual({ closed: 4403 });
    }
    expect(await alive(m.url)).toBe(true);
    expect((await http('GET', `${w.url}/api/status`, undefined, bearer(admin))).json.connected).toBe(true);
  });

  it('a token frame of the wrong shape (a number, 10 KB, empty) is a bad frame: 1007, counted, nothing renewed', async () => {
    const refusedFrames = async () =>
      Number(
        /^weir_refused_frames_total\{socket="worker_channel"\} (\d+)/m.exec(
          (await http('GET', `${m.url}/metrics`, undefined, bearer(admin))).text,
        )?.[1] ?? 0,
      );
    const [renewed, refused] = [await channelTokens('renewed'), await refusedFrames()];
    for (const bad of [42, 'x'.repeat(10_000), '']) {
      expect(await channelAfter(() => ({ t: 'token', token: bad }))).toEqual({ closed: 1007 });
    }
    expect(await channelTokens('renewed')).toBe(renewed);
    expect(await refusedFrames()).toBe(refused + 3);
    expect(await alive(m.url)).toBe(true);
  });

  it('the peer stream opened with a token is closed when that token expires', async () => {
    const url = `${m.url.replace('http', 'ws')}/raft/stream`;
    const before = await peerLinkTokens('expired');
    const expiring = bearer(await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID }, { exp: inSeconds(2) }));
    expect(await socketOutcome(url, expiring)).toEqual({ closed: 4401 });
    expect(await peerLinkTokens('expired')).toBe(before + 1);
  });

  it('a fresh token of its own master sent on a peer stream keeps it open past the first one’s expiry', async () => {
    const url = `${m.url.replace('http', 'ws')}/raft/stream`;
    const expiresAt = inSeconds(2);
    const expiring = bearer(await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID }, { exp: expiresAt }));
    const fresh = await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID }, { exp: inSeconds(120) });
    const before = await peerLinkTokens('renewed');
    const ws = new WebSocket(url, { headers: expiring });
    let closed: number | undefined;
    ws.on('close', (code) => (closed = code));
    ws.on('error', () => undefined);
    try {
      await new Promise((resolve) => ws.once('open', resolve));
      ws.send(peerPacker.pack({ from: MASTER_ID, token: fresh }));
      await waitFor('the fresh token to be taken', async () => (await peerLinkTokens('renewed')) === before + 1);
      await waitFor('the first token to be a second past its expiry', () => Date.now() > expiresAt * 1000 + 1000);
      expect(closed).toBeUndefined();
      expect(ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      ws.terminate();
    }
  });

  it('a peer frame whose token is of the wrong shape (a number, 10 KB, empty) is a bad frame: 1007, counted, nothing renewed', async () => {
    const url = `${m.url.replace('http', 'ws')}/raft/stream`;
    const own = bearer(await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID }));
    const refusedFrames = async () =>
      Number(
        /^weir_refused_frames_total\{socket="peer"\} (\d+)/m.exec(
          (await http('GET', `${m.url}/metrics`, undefined, bearer(admin))).text,
        )?.[1] ?? 0,
      );
    const [renewed, refused] = [await peerLinkTokens('renewed'), await refusedFrames()];
    for (const bad of [42, 'x'.repeat(10_000), '']) {
      expect(await socketOutcome(url, own, (ws) => ws.send(peerPacker.pack({ from: MASTER_ID, token: bad })))).toEqual({
        closed: 1007,
      });
    }
    expect(await peerLinkTokens('renewed')).toBe(renewed);
    expect(await refusedFrames()).toBe(refused + 3);
    expect(await alive(m.url)).toBe(true);
  });

  it('a fresh token of another master, a client’s, a worker’s, an admin’s, a task’s or a forged one closes the peer stream it is sent on (4403)', async () => {
    const url = `${m.url.replace('http', 'ws')}/raft/stream`;
    const own = bearer(await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID }));
    const tries = [
      await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID + 1 }),
      await signedToken(SECRET, { role: 'peer' }),
      await signedToken(SECRET, { role: 'peer', node_id: String(MASTER_ID) }),
      await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID, scope: 'shuffle', job_id: 'job-x' }),
      await token({}),
      await token({ role: 'worker', worker_id: 'w-1' }),
      admin,
      await signedToken('another-cluster-secret-0123456789abcdef', { role: 'peer', node_id: MASTER_ID }),
      await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID }, { exp: inSeconds(-10) }),
    ];
    const before = await peerLinkTokens('refused');
    for (const fresh of tries) {
      expect(
        await socketOutcome(url, own, (ws) => ws.send(peerPacker.pack({ from: MASTER_ID, token: fresh }))),
      ).toEqual({ closed: 4403 });
    }
    expect(await peerLinkTokens('refused')).toBe(before + tries.length);
    expect(await alive(m.url)).toBe(true);
  });

  it('a token frame that names another sender than the link’s is a bad frame (1007): the link speaks for one master', async () => {
    const url = `${m.url.replace('http', 'ws')}/raft/stream`;
    const own = bearer(await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID }));
    const other = await signedToken(SECRET, { role: 'peer', node_id: MASTER_ID + 1 });
    const renewed = await peerLinkTokens('renewed');
    expect(
      await socketOutcome(url, own, (ws) => ws.send(peerPacker.pack({ from: MASTER_ID + 1, token: other }))),
    ).toEqual({ closed: 1007 });
    expect(await peerLinkTokens('renewed')).toBe(renewed);
    expect(await alive(m.url)).toBe(true);
  });

  it('a worker minting 3-second tokens keeps its channel through a longer job: it sends fresh ones on it', async () => {
    const before = await channelTokens('renewed');
    const short = await c.worker('127.0.0.144', m, {
      env: { ...env, WEIR_TOKEN_TTL: '6s' },
      maxTasks: 2,
      token: admin,
    });
    try {
      const jobId = await submitJob(
        m.url,
        { name: 'through-renewals', type: 'batch', config: { operation: 'sleep', ms: 1500, task_count: 16 } },
        bearer(client),
      );
      await untilJobStatus(m.url, jobId, 'completed', 60_000, bearer(client));
      const tasks = await http('GET', `${m.url}/api/jobs/${jobId}/tasks`, undefined, bearer(client));
      const shortId = (await http('GET', `${m.url}/api/workers`, undefined, bearer(admin))).json.workers.find(
        (x: { address: string }) => x.address === short.address,
      ).worker_id as string;
      // Its channel was never cut: every task ran once, several of them on it, and it is still connected.
      expect(tasks.json.tasks.every((t: { attempt: number }) => t.attempt === 1)).toBe(true);
      expect(tasks.json.tasks.filter((t: { worker_id: string }) => t.worker_id === shortId).length).toBeGreaterThan(2);
      expect(await channelTokens('renewed')).toBeGreaterThan(before);
      expect((await http('GET', `${short.url}/api/status`, undefined, bearer(admin))).json.connected).toBe(true);
    } finally {
      await c.stop(short, 'SIGTERM');
    }
  });
});

describe('stream links between workers hold to their tokens too', () => {
  const linkPacker = new Packr({ useRecords: false });
  const link = (version = '') => `${w.url.replace('http', 'ws')}/api/stream/link${version}`;
  const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s;
  const linkTokens = async (url: string, outcome: string) =>
    Number(
      new RegExp(`^weir_stream_link_tokens_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(
        (await http('GET', `${url}/metrics`)).text,
      )?.[1] ?? 0,
    );

  // Both kinds of link a worker answers: one shared window (a sender from before channels) and
  // a window per receiving instance (`?v=2`, a receiver that answers `hello` first).
  describe.each([
    ['a link of one window', ''],
    ['a link of channels', '?v=2'],
  ])('%s', (_kind, version) => {
    it('a stream link whose token expires is closed then (4401), when no fresh token came', async () => {
      const before = await linkTokens(w.url, 'expired');
      const expiring = bearer(await signedToken(SECRET, { role: 'worker', worker_id: 'w-x' }, { exp: inSeconds(2) }));
      expect(await socketOutcome(link(version), expiring)).toEqual({ closed: 4401 });
      expect(await linkTokens(w.url, 'expired')).toBe(before + 1);
    });

    it("a fresh token a link may not use — a client's, a task's, forged, expired — closes it (4403); the worker lives on", async () => {
      const before = await linkTokens(w.url, 'refused');
      const tries = [
        await token({}),
        await token({ role: 'worker', scope: 'shuffle', job_id: 'j-1' }),
        await signedToken('another-cluster-secret-0123456789abcdef', { role: 'worker', worker_id: 'x' }),
        await signedToken(SECRET, { role: 'worker', worker_id: 'x' }, { exp: inSeconds(-10) }),
      ];
      const own = bearer(await token({ role: 'worker', worker_id: 'w-x' }));
      for (const fresh of tries) {
        expect(
          await socketOutcome(link(version), own, (ws) => ws.send(linkPacker.pack({ t: 'token', token: fresh }))),
        ).toEqual({
          closed: 4403,
        });
      }
      expect(await linkTokens(w.url, 'refused')).toBe(before + tries.length);
      expect(await alive(w.url)).toBe(true);
    });
  });

  it('workers minting 3-second tokens keep their links through a longer stream: fresh tokens go over them', async () => {
    // One slot each beside the 2 of the first worker: a 4-instance topology has an instance on
    // each, so each sends tuples or acks over a link of its own.
    const short = [
      await c.worker('127.0.0.145', m, { env: { ...env, WEIR_TOKEN_TTL: '6s' }, maxTasks: 1, token: admin }),
      await c.worker('127.0.0.146', m, { env: { ...env, WEIR_TOKEN_TTL: '6s' }, maxTasks: 1, token: admin }),
    ];
    const all = [w, ...short];
    const sum = async (outcome: string) =>
      (await Promise.all(all.map((x) => linkTokens(x.url, outcome)))).reduce((a, b) => a + b, 0);
    const [renewed, expired] = [await sum('renewed'), await sum('expired')];
    const id = await submitJob(
      m.url,
      {
        name: 'through-link-renewals',
        type: 'streaming',
        config: {
          topology: {
            spouts: [{ id: 'gen', type: 'generator', keys: 4, rate: 200 }],
            bolts: [
              { id: 'pass', op: 'map', fn: 'pass', parallelism: 2, inputs: [{ from: 'gen', grouping: 'shuffle' }] },
              { id: 'out', op: 'collect', inputs: [{ from: 'pass', grouping: 'global' }] },
            ],
          },
          module: 'export function pass(e) { return e }',
        },
      },
      bearer(client),
    );
    try {
      await waitFor('every instance to run', async () => {
        const job = (await http('GET', `${m.url}/api/jobs/${id}`, undefined, bearer(client))).json;
        const running = (job.components as { instances: { status: string }[] }[])
          .flatMap((x) => x.instances)
          .filter((i) => i.status === 'running');
        return running.length === 4 || undefined;
      });
      // Two fresh tokens each way is past the first token's 3 seconds on every link.
      await waitFor(
        'fresh tokens on the links',
        async () => (await sum('renewed')) >= renewed + 4 || undefined,
        30_000,
      );
      expect(await sum('expired')).toBe(expired);
      const rows = async () =>
        (await http('GET', `${m.url}/api/jobs/${id}`, undefined, bearer(client))).json.components.find(
          (x: { id: string }) => x.id === 'out',
        ).instances[0].events_in as number;
      const seen = await rows();
      await waitFor('events still flowing', async () => (await rows()) > seen || undefined);
    } finally {
      await http('POST', `${m.url}/api/jobs/${id}/cancel`, undefined, bearer(client));
      for (const x of short) await c.stop(x, 'SIGTERM');
    }
  });
});

describe('frames built to crash a node', () => {
  const packr = new Packr({ useRecords: true, mapsAsObjects: true });

  it('{from: 77, msgs: 5} and a vote claiming another sender on the peer stream close that link; the term stays', async () => {
    const url = `${m.url.replace('http', 'ws')}/raft/stream`;
    const peer = bearer(await token({ role: 'peer', node_id: MASTER_ID }));
    const before = await term();
    const frames = [
      packr.pack({ from: 77, msgs: 5 }),
      packr.pack({ from: MASTER_ID, msgs: 5 }),
      packr.pack({
        from: MASTER_ID,
        msgs: [{ type: 'vote', from: 2, to: MASTER_ID, term: 1000, lastIndex: 1e9, lastTerm: 1000 }],
      }),
      Buffer.from([0x92]),
    ];
    for (const f of frames) expect(await socketOutcome(url, peer, (ws) => ws.send(f))).toEqual({ closed: 1007 });
    expect(await alive(m.url)).toBe(true);
    expect(await term()).toBe(before);
  });

  it('one byte (0x92) on a stream link closes that link; the worker lives on', async () => {
    const url = `${w.url.replace('http', 'ws')}/api/stream/link`;
    const r = await socketOutcome(url, bearer(await token({ role: 'worker', worker_id: 'w-x' })), (ws) =>
      ws.send(Buffer.from([0x92])),
    );
    expect(r).toEqual({ closed: 1007 });
    expect(await alive(w.url)).toBe(true);
  });

  it('a text frame that is not UTF-8, with more on its way, closes a stream link and the peer stream with 1007, not a dropped connection, and is counted', async () => {
    const counted = async (url: string, socket: string) =>
      Number(
        new RegExp(`weir_refused_frames_total\\{socket="${socket}"\\} (\\d+)`).exec(
          (await http('GET', `${url}/metrics`)).text,
        )?.[1] ?? 0,
      );
    const before = { link: await counted(w.url, 'stream_link'), peer: await counted(m.url, 'peer') };
    const send = (ws: WebSocket) => {
      ws.send(Buffer.from([0xff, 0xfe, 0xfd]), { binary: false });
      ws.send(Buffer.alloc(4 * 1024 * 1024));
    };
    const link = `${w.url.replace('http', 'ws')}/api/stream/link`;
    const peer = `${m.url.replace('http', 'ws')}/raft/stream`;
    for (let i = 0; i < 5; i++) {
      expect(await socketOutcome(link, bearer(await token({ role: 'worker' })), send)).toEqual({ closed: 1007 });
      expect(await socketOutcome(peer, bearer(await token({ role: 'peer', node_id: MASTER_ID })), send)).toEqual({
        closed: 1007,
      });
    }
    expect(await alive(w.url)).toBe(true);
    expect(await counted(w.url, 'stream_link')).toBeGreaterThanOrEqual(before.link + 5);
    expect(await counted(m.url, 'peer')).toBeGreaterThanOrEqual(before.peer + 5);
  });

  it('65 tuples in one frame on a stream link, past the 64 credits it was granted, close that link; the worker lives on', async () => {
    const url = `${w.url.replace('http', 'ws')}/api/stream/link`;
    const tuple = { e: [{ seq: 1 }], o: 0, a: 1, r: 0, h: 1, l: 1 };
    const frame = new Packr({ useRecords: false }).pack({
      t: 'tuples',
      job: 'job-x',
      to: Array(65).fill(0),
      tuples: Array(65).fill(tuple),
    });
    const r = await socketOutcome(url, bearer(await token({ role: 'worker', worker_id: 'w-x' })), (ws) =>
      ws.send(frame),
    );
    expect(r).toEqual({ closed: 1007 });
    expect(await alive(w.url)).toBe(true);
    // Logged, at most once a second however many come (other specs here send bad frames too):
    // sent again until a line names this one.
    await waitFor(
      'the worker to log the bad frame',
      async () => {
        await socketOutcome(url, bearer(await token({ role: 'worker', worker_id: 'w-x' })), (ws) => ws.send(frame));
        return c
          .log(w)
          .split('\n')
          .some(
            (l) => l.includes('a bad frame on a stream link; closed it') && l.includes('more tuples than the credits'),
          );
      },
      10_000,
      300,
    );
  });

  it('a task reported done with results that are no JSON array closes that channel; the job completes elsewhere and its results are served', async () => {
    const id = await fakeWorker();
    const url = `${m.url.replace('http', 'ws')}/api/workers/${id}/channel`;
    const own = bearer(await token({ role: 'worker', worker_id: id }));
    const outcome = socketOutcome(url, own, (ws) => {
      ws.send(packr.pack({ t: 'hello', running: [], unacked: [] }));
      ws.on('message', (data: Buffer) => {
        const msg = packr.unpack(data) as { t: string; tasks?: { job_id: string; idx: number; attempt: number }[] };
        for (const t of msg.t === 'assign' ? (msg.tasks ?? []) : []) {
          const ref = { job_id: t.job_id, idx: t.idx, attempt: t.attempt };
          ws.send(packr.pack({ t: 'report', reports: [{ ...ref, ok: true, result_json: '{}' }] }));
        }
      });
    });
    // More tasks than the real worker's two slots: one is the fake worker's.
    const job = await http(
      'POST',
      `${m.url}/api/jobs`,
      { name: 'bad-results', type: 'batch', config: { operation: 'sleep', ms: 300, task_count: 4 } },
      bearer(client),
    );
    expect(job.status, job.text).toBe(201);
    await untilJobStatus(m.url, job.json.job_id, 'completed', 30_000, bearer(client));
    const r = await http('GET', `${m.url}/api/jobs/${job.json.job_id}/results`, undefined, bearer(client));
    expect(r.status, r.text).toBe(200);
    expect(await outcome).toEqual({ closed: 1007 });
  });

  it('a report with job_id: true on a worker channel closes it and reaches no log; the master survives a restart and runs jobs', async () => {
    const workerId = await theWorkerId();
    const url = `${m.url.replace('http', 'ws')}/api/workers/${workerId}/channel`;
    const own = bearer(await token({ role: 'worker', worker_id: workerId }));
    const bad = packr.pack({
      t: 'report',
      reports: [{ job_id: true, idx: 0, attempt: 1, ok: true, result_json: '[]' }],
    });
    expect(await socketOutcome(url, own, (ws) => ws.send(bad))).toEqual({ closed: 1007 });
    expect(await alive(m.url)).toBe(true);
    const metrics = await http('GET', `${m.url}/metrics`);
    expect(metrics.text).toMatch(/weir_refused_frames_total\{socket="worker_channel"\} [1-9]/);
    // The real worker reconnects; after a restart the master applies its whole log again.
    await c.stop(m, 'SIGKILL');
    m = await c.master('127.0.0.141', { env, port: m.port, dataDir: m.dataDir });
    await waitFor('the worker back on its channel', async () => {
      const s = await http('GET', `${w.url}/api/status`, undefined, bearer(admin));
      return s.json?.connected === true;
    });
    const job = await http(
      'POST',
      `${m.url}/api/jobs`,
      { name: 'after', type: 'batch', config: { operation: 'multiply', factor: 2, task_count: 2 } },
      bearer(client),
    );
    expect(job.status, job.text).toBe(201);
    await untilJobStatus(m.url, job.json.job_id, 'completed', 60_000, bearer(client));
  });
});

describe("a data dir whose state.db is another cluster's", () => {
  it('keeps a master from starting on it (its new log would adopt that state): it exits saying what to move', async () => {
    const dir = join(c.tmp, 'foreign');
    mkdirSync(dir, { recursive: true });
    for (const f of ['state.db', 'state.db-wal']) {
      if (existsSync(join(m.dataDir, f))) copyFileSync(join(m.dataDir, f), join(dir, f));
    }
    const stray = await c.master('127.0.0.143', { env, dataDir: dir, wait: false });
    await waitFor('the master to refuse', () => stray.exitCode !== undefined, 30_000);
    expect(stray.exitCode).not.toBe(0);
    expect(c.tail(stray)).toMatch(/state\.db .* raft\.db is new/);
  });
});

/** A worker registered by the spec itself (its channel is the spec's socket; its address serves nothing). */
async function fakeWorker(): Promise<string> {
  const reg = await http(
    'POST',
    `${m.url}/api/workers/register`,
    { address: '127.0.0.149:1', max_tasks: 1 },
    bearer(await token({ role: 'worker' })),
  );
  expect(reg.status, reg.text).toBe(201);
  return reg.json.worker_id as string;
}

async function theWorkerId(): Promise<string> {
  const r: HttpAnswer = await http('GET', `${m.url}/api/workers`, undefined, bearer(admin));
  return r.json.workers.find((x: { address: string }) => x.address === w.address).worker_id;
}

describe('masters minting 6-second tokens', () => {
  it('keep their Raft links through many token lifetimes: fresh tokens go over them, no link is cut, no election', async () => {
    const hosts = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];
    const ports = await freePorts(hosts);
    const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
    const masters = await Promise.all(
      hosts.map((h, i) =>
        c.master(h, { port: ports[i]!, env: { ...env, WEIR_TOKEN_TTL: '6s' }, args: ['--peers', peers], wait: false }),
      ),
    );
    const headers = bearer(admin);
    const urls = masters.map((x) => x.url);
    const tokens = async (url: string, outcome: string) =>
      Number(
        new RegExp(`^weir_peer_link_tokens_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(
          (await http('GET', `${url}/metrics`, undefined, headers)).text,
        )?.[1] ?? 0,
      );
    try {
      // Settled once the highest id leads (the hand-over after the first election).
      const settled = await untilAgreedLeader(urls, { leaderId: 13, procs: masters, headers });
      // Each master hears from two peers, each sending a fresh token 2 s before each 6 s one
      // expires (a third of its life: with 3 s tokens, 1 s, which a loaded CI machine once missed).
      await waitFor(
        'four fresh tokens taken on every master’s incoming links',
        async () => (await Promise.all(urls.map((u) => tokens(u, 'renewed')))).every((n) => n >= 4),
        30_000,
      );
      for (const u of urls) {
        expect(await tokens(u, 'expired')).toBe(0);
        expect(await tokens(u, 'refused')).toBe(0);
      }
      const now = await untilAgreedLeader(urls, { procs: masters, headers });
      expect(now.leaderId).toBe(settled.leaderId);
      expect(now.term).toBe(settled.term);
    } finally {
      for (const x of masters) c.kill(x);
    }
  });
});

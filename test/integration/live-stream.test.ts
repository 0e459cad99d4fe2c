// GET /api/live: the dashboard's stream of changes (server-sent events) from a real master —
// the same token rules as the reads it summarises, frames coalesced to about one a second
// whatever the burst, the job's page's frame the same view as GET /api/jobs/{job_id}, and a
// bound on streams per master (addresses 127.0.0.251–252 belong to this file).
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, http, untilJobStatus, waitFor, type MasterProc } from '../helpers/cluster.js';
import { sseData } from '../helpers/sse.js';
import { bearer, signedToken } from '../helpers/tokens.js';

const SECRET = 'live-stream-spec-secret-of-32-bytes-or-more';
const c = new Cluster('live');
let m: MasterProc;
let client: Record<string, string>;

interface Frame {
  seq: number;
  at: string;
  changed?: string[];
  cluster?: { tasks_completed: number; tasks_failed: number; running: number; pending: number };
  master?: { id: number; term: number; commit_index: number; last_applied: number };
  jobs?: { job_id: string; status: string; progress: { completed: number; total: number } }[];
  jobs_gone?: string[];
  history?: [number, number, number][];
  job_id?: string;
  job?: Record<string, unknown> & { status: string };
  gone?: boolean;
}

const agents = new Map<string, Agent>();
/** Connections from `address` (loopback sources need no server: any 127.x address will do). */
const agentFrom = (address: string): Agent => {
  let a = agents.get(address);
  if (!a) agents.set(address, (a = new Agent({ localAddress: address })));
  return a;
};

/** An open stream: the frames it has read so far (each with when it arrived), until closed. */
class Stream {
  readonly frames: (Frame & { got: number })[] = [];
  private readonly ctrl = new AbortController();
  status = 0;
  ended = false;

  /** `from`: the local address it connects from (a client of its own, as the master counts them). */
  static async open(path: string, headers: Record<string, string> = client, from?: string): Promise<Stream> {
    const s = new Stream();
    const res = from
      ? await undiciFetch(`${m.url}${path}`, { headers, signal: s.ctrl.signal, dispatcher: agentFrom(from) })
      : await fetch(`${m.url}${path}`, { headers, signal: s.ctrl.signal });
    s.status = res.status;
    if (res.status !== 200) {
      s.body = await res.text();
      return s;
    }
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    void s.read(res.body!);
    return s;
  }

  body = '';

  /** A live stream from `from`, opened again until it is taken (a closed one is let go soon after). */
  static async openOnceFree(from: string): Promise<Stream> {
    let s: Stream | undefined;
    await waitFor(`a stream from ${from} taken again`, async () => {
      s?.close();
      s = await Stream.open('/api/live', client, from);
      return s.status === 200;
    });
    return s!;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const data of sseData(body)) this.frames.push({ ...(JSON.parse(data) as Frame), got: Date.now() });
    } catch {
      // closed by the spec
    }
    this.ended = true;
  }

  async frame(pred: (f: Frame) => boolean, what: string): Promise<Frame> {
    return waitFor(what, () => this.frames.find(pred));
  }

  close(): void {
    this.ctrl.abort();
  }
}

beforeAll(async () => {
  m = await c.master('127.0.0.251', { env: { JWT_SECRET: SECRET } });
  const admin = await signedToken(SECRET, { role: 'admin' });
  client = bearer(await signedToken(SECRET, { role: 'client' }));
  await c.worker('127.0.0.252', m, { env: { JWT_SECRET: SECRET }, token: admin, maxTasks: 8 });
});

afterAll(async () => {
  for (const a of agents.values()) await a.destroy();
});
afterAll(() => c.cleanup());

describe('GET /api/live', () => {
  it('wants the token the reads want: none is 401, a worker’s is 403, a client’s streams', async () => {
    const none = await Stream.open('/api/live', {});
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body).error.code).toBe('unauthorized');
    const worker = await Stream.open('/api/live', bearer(await signedToken(SECRET, { role: 'worker' })));
    expect(worker.status).toBe(403);
    const bad = await Stream.open('/api/live?job=../../etc', client);
    expect(bad.status).toBe(400);
    const ok = await Stream.open('/api/live');
    try {
      expect(ok.status).toBe(200);
      const first = await ok.frame(() => true, 'a first frame');
      expect(first.cluster).toBeDefined();
      expect(first.master?.last_applied).toBeGreaterThan(0);
      expect(Array.isArray(first.history)).toBe(true);
    } finally {
      ok.close();
    }
  });

  it('ends when its token expires, and the token that expired opens none', async () => {
    const short = bearer(await signedToken(SECRET, { role: 'client' }, { exp: Math.floor(Date.now() / 1000) + 3 }));
    const s = await Stream.open('/api/live', short);
    try {
      expect(s.status).toBe(200);
      await s.frame(() => true, 'a first frame');
      await waitFor('the stream ended with its token', () => s.ended, 15_000);
      const again = await Stream.open('/api/live', short);
      expect(again.status).toBe(401);
      expect(JSON.parse(again.body).error.message).toMatch(/expired/);
    } finally {
      s.close();
    }
  });

  it('coalesces a burst of 3,000 completions into about one frame a second, counting every one', async () => {
    const s = await Stream.open('/api/live');
    try {
      const first = await s.frame((f) => f.cluster !== undefined, 'a first frame');
      const t0 = Date.now();
      const r = await http(
        'POST',
        `${m.url}/api/jobs`,
        {
          name: 'burst',
          type: 'batch',
          config: { operation: 'multiply', factor: 1, task_count: 3000 },
        },
        client,
      );
      expect(r.status, r.text).toBe(201);
      const id = r.json.job_id as string;
      await untilJobStatus(m.url, id, 'completed', 60_000, client);
      const done = await s.frame(
        (f) => f.jobs?.some((j) => j.job_id === id && j.status === 'completed') === true,
        'the job’s row, completed',
      );
      const seconds = (Date.now() - t0) / 1000;
      const during = s.frames.filter((f) => f.got >= t0);
      // One frame a second at most (plus the edges of the interval), however many entries applied.
      expect(during.length).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
      expect(done.cluster!.tasks_completed - first.cluster!.tasks_completed).toBe(3000);
      // Frames are numbered in order.
      const seqs = s.frames.map((f) => f.seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    } finally {
      s.close();
    }
  });

  it('gives a job’s page the job as GET /api/jobs/{job_id} shows it, then says when it is gone', async () => {
    const r = await http(
      'POST',
      `${m.url}/api/jobs`,
      {
        name: 'followed',
        type: 'batch',
        config: { operation: 'sleep', ms: 300, task_count: 16 },
      },
      client,
    );
    const id = r.json.job_id as string;
    const s = await Stream.open(`/api/live?job=${id}`);
    try {
      const f = await s.frame((x) => x.job?.status === 'completed', 'the job completed');
      const read = await http('GET', `${m.url}/api/jobs/${id}`, undefined, client);
      expect(f.job).toEqual(read.json);
      // Another job's changes do not reach this page.
      expect(s.frames.every((x) => x.job_id === id)).toBe(true);
      expect((await http('DELETE', `${m.url}/api/jobs/${id}`, undefined, client)).status).toBe(204);
      await s.frame((x) => x.gone === true, 'the job gone');
    } finally {
      s.close();
    }
  });

  it('refuses streams past its limit with 503 and a message to act on, and takes one again once another closes', async () => {
    const open: Stream[] = [];
    // From seven addresses, 16 or fewer each: no client over its own share.
    const from = (i: number) => `127.0.3.${1 + (i % 7)}`;
    try {
      for (let i = 0; i < 100; i++) open.push(await Stream.open('/api/live', client, from(i)));
      expect(open.every((s) => s.status === 200)).toBe(true);
      const refused = await Stream.open('/api/live', client, '127.0.3.9');
      expect(refused.status).toBe(503);
      const err = JSON.parse(refused.body).error;
      expect(err.code).toBe('unavailable');
      expect(err.message).toMatch(/100 live streams/);
      // The master is fine: its reads answer.
      expect((await http('GET', `${m.url}/api/jobs?limit=1`, undefined, client)).status).toBe(200);
      open.pop()!.close();
      open.push(await Stream.openOnceFree('127.0.3.9'));
    } finally {
      for (const s of open) s.close();
    }
  });

  it('lets one client hold 16 streams, refuses its 17th with 429, and still serves another client', async () => {
    const open: Stream[] = [];
    try {
      for (let i = 0; i < 16; i++) open.push(await Stream.open('/api/live', client, '127.0.4.1'));
      expect(open.every((s) => s.status === 200)).toBe(true);
      const refused = await Stream.open('/api/live', client, '127.0.4.1');
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.body).error).toEqual({
        code: 'unavailable',
        message: expect.stringMatching(/127\.0\.4\.1 already holds 16 live streams/),
      });
      const other = await Stream.open('/api/live', client, '127.0.4.2');
      expect(other.status).toBe(200);
      open.push(other);
      // One closed, that client may open one again.
      open.shift()!.close();
      open.push(await Stream.openOnceFree('127.0.4.1'));
    } finally {
      for (const s of open) s.close();
    }
  });
});

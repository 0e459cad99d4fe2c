// A dashboard opened on any master shows what only the leader knows: workers report their
// heartbeats, metrics and streams' rates to the leader alone, so a follower asks the leader for
// those even when read stale, and answers itself when the leader cannot. The cluster is a
// secured one: a follower forwards nothing a stranger sent. (Masters on 127.0.0.53–55 and a
// worker on 127.0.0.56: this file's addresses.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseData } from '../helpers/sse.js';
import {
  Cluster,
  freePorts,
  http,
  untilAgreedLeader,
  waitFor,
  type Json,
  type MasterProc,
} from '../helpers/cluster.js';
import { bearer, signedToken } from '../helpers/tokens.js';

const SECRET = 'follower-figures-spec-secret-of-32-bytes-or-more';
const env = { JWT_SECRET: SECRET };
const c = new Cluster('follower-figures');
afterAll(() => c.cleanup());

const hosts = ['127.0.0.53', '127.0.0.54', '127.0.0.55'];
let masters: MasterProc[];
/** The one the cluster hands the lead to (the highest id), and one that follows it. */
let leader: MasterProc;
let follower: MasterProc;
let client: Record<string, string>;

/** A live stream of `url`, opened with `headers`: its status, and its frames' data as they come. */
async function openLive(url: string, headers: Record<string, string>) {
  const ctrl = new AbortController();
  const res = await fetch(`${url}/api/live`, { headers, signal: ctrl.signal });
  return { status: res.status, frames: res.ok ? sseData(res.body!) : undefined, close: () => ctrl.abort() };
}

/** The first frame of `url`'s live stream that lists the workers. */
async function firstWorkersFrame(url: string): Promise<Json> {
  const live = await openLive(url, client);
  expect(live.status).toBe(200);
  try {
    for await (const data of live.frames!) {
      const frame = JSON.parse(data) as Json;
      if (frame.workers) return frame;
    }
    throw new Error('the stream ended before a frame listed the workers');
  } finally {
    live.close();
  }
}

beforeAll(async () => {
  const ports = await freePorts(hosts);
  const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
  masters = await Promise.all(hosts.map((h, i) => c.master(h, { port: ports[i]!, env, args: ['--peers', peers] })));
  const admin = await signedToken(SECRET, { role: 'admin' });
  client = bearer(await signedToken(SECRET, { role: 'client' }));
  await untilAgreedLeader(
    masters.map((m) => m.url),
    { leaderId: 55, procs: masters, headers: bearer(admin) },
  );
  leader = masters[2]!;
  follower = masters[0]!;
  await c.worker('127.0.0.56', leader, { env, token: admin, masters: masters.map((m) => m.url) });
  // Its first heartbeat after registering carries its metrics.
  await waitFor('the worker’s heartbeat on the leader', async () => {
    const r = await http('GET', `${leader.url}/api/workers`, undefined, client);
    return r.json.workers[0]?.last_heartbeat != null;
  });
});

describe('a follower asked for what only the leader knows', () => {
  it('answers a stale read of the workers with their heartbeats and metrics, as the leader does', async () => {
    const r = await http('GET', `${follower.url}/api/workers?consistency=stale`, undefined, client);
    expect(r.status).toBe(200);
    const [w] = r.json.workers;
    expect(w.last_heartbeat).not.toBeNull();
    expect(w.metrics).toBeTypeOf('object');
  });

  it('streams the leader’s live frames: the workers in them carry their figures', async () => {
    const frame = await firstWorkersFrame(follower.url);
    expect(frame.workers[0].last_heartbeat).not.toBeNull();
    expect(frame.workers[0].metrics).toBeTypeOf('object');
  });

  it('refuses a stranger itself (401, nothing forwarded), and a worker’s token a client’s reads (403)', async () => {
    for (const path of ['/api/live', '/api/workers?consistency=stale']) {
      const none = await http('GET', `${follower.url}${path}`);
      expect(none.status, path).toBe(401);
      expect(none.json.error.code).toBe('unauthorized');
    }
    const forged = await http('GET', `${follower.url}/api/workers?consistency=stale`, undefined, {
      authorization: `Bearer ${await signedToken('another-secret-of-32-bytes-or-more-0000', { role: 'admin' })}`,
    });
    expect(forged.status).toBe(401);
    const worker = bearer(await signedToken(SECRET, { role: 'worker', worker_id: 'w-x' }));
    const live = await openLive(follower.url, worker);
    live.close();
    expect(live.status).toBe(403);
  });

  it('refuses a value of consistency other than stale, saying so', async () => {
    const r = await http('GET', `${follower.url}/api/workers?consistency=eventual`, undefined, client);
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/consistency/);
  });

  it('still answers reads that need no leader figures itself (a stale list of jobs)', async () => {
    const r = await http('GET', `${follower.url}/api/jobs?consistency=stale`, undefined, client);
    expect(r.status).toBe(200);
    expect(r.json.jobs).toEqual([]);
  });

  it('answers a stale read of the workers itself, within seconds, when the leader does not answer', async () => {
    c.kill(leader, 'SIGSTOP');
    try {
      // Forwarded to a stopped leader, it would wait 90 s for an answer; the client gives up at 15.
      const r = await http('GET', `${follower.url}/api/workers?consistency=stale`, undefined, client, 15_000);
      expect(r.status).toBe(200);
      expect(r.json.workers).toHaveLength(1);
    } finally {
      c.kill(leader, 'SIGCONT');
    }
  });

  it('leaves what it forwarded to the leader alone: its own route does not answer it too', () => {
    // Had it run, the live route would have written its headers a second time (an error logged
    // for each forwarded stream, as the stream opened).
    expect(c.log(follower)).not.toMatch(/ERR_HTTP_HEADERS_SENT|already sent/);
  });

  it('ends a stream it forwarded when the leader is killed -9, and opens the next one', async () => {
    await untilAgreedLeader(
      masters.map((m) => m.url),
      { leaderId: 55, procs: masters, headers: client },
    );
    const live = await openLive(follower.url, client);
    expect(live.status).toBe(200);
    const first = await live.frames!.next();
    expect(first.done).toBe(false);
    c.kill(leader, 'SIGKILL');
    // The leader's socket closes with its process: the follower's answer ends (or errors) then,
    // rather than holding the page on a dead stream.
    const ended = (async () => {
      try {
        for await (const _ of live.frames!) {
          // frames sent before the kill
        }
      } catch {
        // cut rather than ended: as good
      }
      return true;
    })();
    expect(await ended).toBe(true);
    await waitFor('a live stream of the follower again', async () => {
      const next = await openLive(follower.url, client);
      next.close();
      return next.status === 200;
    });
    expect(follower.exitCode).toBeUndefined();
  });
});

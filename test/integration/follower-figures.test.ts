// A dashboard opened on any master shows what only the leader knows: workers report their
// heartbeats, metrics and streams' rates to the leader alone, so a follower asks the leader for
// those even when read stale, and answers itself when the leader cannot. (Masters on
// 127.0.0.53–55 and a worker on 127.0.0.56: this file's addresses.)
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

const c = new Cluster('follower-figures');
afterAll(() => c.cleanup());

const hosts = ['127.0.0.53', '127.0.0.54', '127.0.0.55'];
let masters: MasterProc[];
/** The one the cluster hands the lead to (the highest id), and one that follows it. */
let leader: MasterProc;
let follower: MasterProc;

/** The first frame of `url`'s live stream that lists the workers. */
async function firstWorkersFrame(url: string): Promise<Json> {
  const ctrl = new AbortController();
  const res = await fetch(`${url}/api/live`, { signal: ctrl.signal });
  expect(res.status).toBe(200);
  try {
    for await (const data of sseData(res.body!)) {
      const frame = JSON.parse(data) as Json;
      if (frame.workers) return frame;
    }
    throw new Error('the stream ended before a frame listed the workers');
  } finally {
    ctrl.abort();
  }
}

beforeAll(async () => {
  const ports = await freePorts(hosts);
  const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
  masters = await Promise.all(hosts.map((h, i) => c.master(h, { port: ports[i]!, args: ['--peers', peers] })));
  await untilAgreedLeader(
    masters.map((m) => m.url),
    { leaderId: 55, procs: masters },
  );
  leader = masters[2]!;
  follower = masters[0]!;
  await c.worker('127.0.0.56', leader, { masters: masters.map((m) => m.url) });
  // Its first heartbeat after registering carries its metrics.
  await waitFor('the worker’s heartbeat on the leader', async () => {
    const r = await http('GET', `${leader.url}/api/workers`);
    return r.json.workers[0]?.last_heartbeat != null;
  });
});

describe('a follower asked for what only the leader knows', () => {
  it('answers a stale read of the workers with their heartbeats and metrics, as the leader does', async () => {
    const r = await http('GET', `${follower.url}/api/workers?consistency=stale`);
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

  it('still answers reads that need no leader figures itself (a stale list of jobs)', async () => {
    const r = await http('GET', `${follower.url}/api/jobs?consistency=stale`);
    expect(r.status).toBe(200);
    expect(r.json.jobs).toEqual([]);
  });

  it('answers a stale read of the workers itself, within seconds, when the leader does not answer', async () => {
    c.kill(leader, 'SIGSTOP');
    try {
      // Forwarded to a stopped leader, it would wait 90 s for an answer; the client gives up at 15.
      const r = await http('GET', `${follower.url}/api/workers?consistency=stale`, undefined, {}, 15_000);
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
});

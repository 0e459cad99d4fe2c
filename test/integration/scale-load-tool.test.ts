// The scale benchmark's load tool (bench/sim-workers.ts) against a real master with a
// JWT_SECRET: twenty simulated workers in this process register, heartbeat with their own
// worker tokens, keep their channels open and complete a job as real workers would (addresses
// 127.0.0.130–139 belong to this file and the scale benchmark).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimWorkerFleet } from '../../bench/sim-workers.js';
import { Cluster, http, untilJobStatus, waitFor, type Json, type MasterProc } from '../helpers/cluster.js';
import { bearer, signedToken } from '../helpers/tokens.js';

const SECRET = 'scale-load-tool-secret-of-32-bytes-or-more';
const WORKERS = 20;

const c = new Cluster('scale-load');
let m: MasterProc;
let fleet: SimWorkerFleet | undefined;
let admin: Record<string, string>;

async function workersOf(): Promise<Json[]> {
  const r = await http('GET', `${m.url}/api/workers`, undefined, admin);
  expect(r.status, r.text).toBe(200);
  return (r.json.workers as Json[]).filter((w) => String(w.address).startsWith('spec-'));
}

beforeAll(async () => {
  admin = bearer(await signedToken(SECRET, { role: 'admin' }));
  m = await c.master('127.0.0.130', { env: { JWT_SECRET: SECRET } });
  fleet = new SimWorkerFleet({ masters: [m.url], workers: WORKERS, maxTasks: 4, secret: SECRET, label: 'spec' });
  await fleet.start();
});

afterAll(async () => {
  try {
    await fleet?.stop();
  } finally {
    await c.cleanup();
  }
});

describe('the simulated worker fleet', () => {
  it('registers every worker, each with its own id, and opens every channel', async () => {
    expect(new Set(fleet!.workerIds).size).toBe(WORKERS);
    await waitFor('every channel open', () => fleet!.stats().channels_open === WORKERS);
    const listed = await workersOf();
    expect(listed.map((w) => w.worker_id).sort()).toEqual([...fleet!.workerIds].sort());
    expect(listed.every((w) => w.status === 'active' && w.max_tasks === 4)).toBe(true);
  });

  it('heartbeats: the master sees every worker again and again, and none of them is refused', async () => {
    const first = new Map((await workersOf()).map((w) => [w.worker_id, w.last_heartbeat as string | null]));
    await waitFor(
      'a newer heartbeat from every worker',
      async () => (await workersOf()).every((w) => w.last_heartbeat && w.last_heartbeat !== first.get(w.worker_id)),
      15_000,
    );
    const s = fleet!.stats();
    expect(s.heartbeats_ok).toBeGreaterThanOrEqual(WORKERS);
    expect(s.heartbeats_failed).toBe(0);
    expect(s.registrations).toBe(WORKERS); // nobody had to register again
  });

  it('takes the tasks of a job, reports them done and has every report acknowledged', async () => {
    const r = await http(
      'POST',
      `${m.url}/api/jobs`,
      { name: 'fleet', type: 'batch', config: { operation: 'noop', task_count: 300 } },
      admin,
    );
    expect(r.status, r.text).toBe(201);
    const id = r.json.job_id as string;
    await untilJobStatus(m.url, id, 'completed', 60_000, admin);
    const results = await http('GET', `${m.url}/api/jobs/${id}/results`, undefined, admin);
    expect(results.json.results).toEqual(Array.from({ length: 300 }, (_, i) => i));
    // Spread over the fleet, not all on one worker.
    const tasks = await http('GET', `${m.url}/api/jobs/${id}/tasks`, undefined, admin);
    const ran = new Set((tasks.json.tasks as Json[]).map((t) => t.worker_id));
    expect(ran.size).toBeGreaterThan(WORKERS / 2);
    await waitFor('every report acknowledged', () => {
      const s = fleet!.stats();
      return s.acked >= 300 && s.acked === s.reported;
    });
    expect(fleet!.stats().refused_frames).toBe(0);
  });

  it('leaves nothing behind: once stopped, its workers are declared dead', async () => {
    await fleet!.stop();
    await waitFor('every simulated worker dead', async () => (await workersOf()).every((w) => w.status === 'dead'));
  });
});

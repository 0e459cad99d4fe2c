// A real network partition between masters. Every directed link between two masters runs
// through a fault-injecting TCP proxy in this process (test/helpers/fault-proxy.ts): master
// A's --peers names B at the proxy "A→B", which forwards to B. Raft traffic and the HTTP a
// follower forwards to its leader both take those links, so cutting the proxies to and from
// one master isolates it from the other masters, while clients (this test) still reach
// every master directly. (Addresses 127.0.0.81–89 belong to this file: masters on 81–83,
// the six proxies on 84, workers on 85.)
//
// Why per-link proxies and per-master --peers lists: a master finds itself in --peers by its
// own listen URL, so no single list can route every master's peer traffic through proxies;
// each master gets its own list instead (itself at its real URL, each other master at the
// proxy of that link). Every master then keeps its own view of its peers' addresses, which
// is consistent for the whole test: no membership change happens here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  GiveUp,
  clusterStatus,
  freePorts,
  http,
  untilAgreedLeader,
  untilConverged,
  untilJobStatus,
  waitFor,
  type HttpAnswer,
  type Json,
  type MasterProc,
  submitRetrying,
} from '../helpers/cluster.js';
import { FaultProxy } from '../helpers/fault-proxy.js';

const c = new Cluster('partition');
const ids = [81, 82, 83];
const hostOf = (id: number) => `127.0.0.${id}`;
const PROXY_HOST = '127.0.0.84';
const WORKER_HOST = '127.0.0.85';

const masters = new Map<number, MasterProc>();
const proxies = new Map<string, FaultProxy>();
const urlOf = (id: number) => masters.get(id)!.url;
const urls = () => ids.map(urlOf);
const link = (from: number, to: number) => proxies.get(`${from}->${to}`)!;

/** Cuts every link to and from `id` (the other masters still talk to each other). */
function isolate(id: number, mode: 'blackhole' | 'refuse' = 'blackhole'): void {
  for (const other of ids) {
    if (other === id) continue;
    link(id, other).cut(mode);
    link(other, id).cut(mode);
  }
}

function healAll(): void {
  for (const p of proxies.values()) p.heal();
}

const range = (n: number) => [...Array(n).keys()];

/** Every job in one master's own copy of the state (stale reads: no forwarding, no leader needed). */
async function jobsOn(url: string): Promise<Json[]> {
  const jobs: Json[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const q: string = cursor ? `&cursor=${cursor}` : '';
    const r = await http('GET', `${url}/api/jobs?consistency=stale&limit=1000${q}`);
    if (r.status !== 200) throw new Error(`GET ${url}/api/jobs -> ${r.status} ${r.text}`);
    jobs.push(...r.json.jobs);
    cursor = r.json.next_cursor;
    if (!cursor) break;
  }
  return jobs;
}

beforeAll(async () => {
  const ports = await freePorts(ids.map(hostOf));
  const portOf = (id: number) => ports[ids.indexOf(id)]!;
  for (const from of ids) {
    for (const to of ids) {
      if (from === to) continue;
      proxies.set(
        `${from}->${to}`,
        await FaultProxy.start(PROXY_HOST, { host: hostOf(to), port: portOf(to) }, `${from}->${to}`),
      );
    }
  }
  const peersOf = (id: number) =>
    ids.map((j) => (j === id ? `${j}=http://${hostOf(j)}:${portOf(j)}` : `${j}=${link(id, j).url}`)).join(',');
  await Promise.all(
    ids.map(async (id) => {
      masters.set(id, await c.master(hostOf(id), { port: portOf(id), args: ['--peers', peersOf(id)] }));
    }),
  );
  await Promise.all([
    c.worker(WORKER_HOST, masters.get(81)!, { maxTasks: 2, masters: urls() }),
    c.worker(WORKER_HOST, masters.get(82)!, { maxTasks: 2, masters: urls() }),
  ]);
});

afterAll(async () => {
  await c.cleanup();
  await Promise.all([...proxies.values()].map((p) => p.close()));
});

it('(the masters talk to each other only through the proxies)', async () => {
  const { statuses } = await untilAgreedLeader(urls(), { leaderId: 83, timeoutMs: 20_000 });
  for (const s of statuses) {
    for (const n of s.nodes) {
      if (n.id === s.current_node_id) expect(n.address).toBe(urlOf(n.id));
      else expect(n.address).toBe(link(s.current_node_id, n.id).url);
    }
  }
  for (const p of proxies.values()) expect(p.accepted, p.name).toBeGreaterThan(0);
});

describe('a follower cut off from the other two', () => {
  it('cannot disrupt the majority: no new term, the same leader, and it follows again once healed', async () => {
    const before = await untilAgreedLeader(urls(), { leaderId: 83, timeoutMs: 20_000 });
    isolate(81);
    try {
      // It loses its leader and keeps asking for (pre-)votes nobody hears...
      const lonely = await waitFor(
        'the cut-off follower to campaign',
        async () => {
          const s = await clusterStatus(urlOf(81));
          return s?.current_role === 'candidate' ? s : undefined;
        },
        10_000,
        25,
      );
      // ...without raising its term: pre-vote (a partitioned node cannot inflate terms).
      expect(lonely.term).toBe(before.term);
      expect(lonely.leader_id).toBeNull();
      // The majority carries on, in the same term.
      const id = await submitRetrying(urlOf(83), { name: 'while-81-is-cut-off', type: 'batch' });
      expect(id).toBeTruthy();
      const s83 = await clusterStatus(urlOf(83));
      expect(s83).toMatchObject({ current_role: 'leader', term: before.term });
      // A client of the cut-off master gets 503 no_leader for a write, not a hang.
      const refused = await http('POST', `${urlOf(81)}/api/jobs`, { name: 'to-the-cut-off-follower', type: 'batch' });
      expect(refused.status, refused.text).toBe(503);
      expect(refused.json?.error?.code).toBe('no_leader');
    } finally {
      healAll();
    }
    const after = await untilAgreedLeader(urls(), { leaderId: 83, timeoutMs: 15_000 });
    expect(after.term).toBe(before.term);
    await untilConverged(urls(), 0, 15_000);
  });
});

// Twice: links that go silent (the hard case: nothing fails, check-quorum must notice), and
// links whose connections are reset and refused.
describe.each(['blackhole', 'refuse'] as const)('the leader cut off from the other two (links: %s)', (mode) => {
  let oldLeader: number;
  let oldTerm: number;
  const acknowledged: string[] = [];
  let majorityJob: string;
  let beforeJob: string;
  let minorityWrite: Promise<HttpAnswer>;
  const minorityName = `minority-write-${mode}-${Date.now()}`;
  let stepDownMs: number;
  let electionMs: number;
  let newLeader: number;
  let newTerm: number;
  const majority = () => ids.filter((id) => id !== oldLeader);
  /** Roles the old leader reported while cut off (it must never claim to lead again). */
  const oldLeaderRoles = new Set<string>();

  beforeAll(async () => {
    const agreed = await untilAgreedLeader(urls(), { leaderId: 83, timeoutMs: 20_000 });
    oldLeader = agreed.leaderId;
    oldTerm = agreed.term;
    beforeJob = await submitRetrying(urlOf(81), {
      name: `before-the-partition-${mode}`,
      type: 'batch',
      config: { operation: 'multiply', factor: 2, task_count: 4, data: range(8) },
    });
    await untilJobStatus(urlOf(81), beforeJob, 'completed', 30_000);
    acknowledged.push(beforeJob);

    const t0 = Date.now();
    isolate(oldLeader, mode);
    // A client still reaches the old leader, which still believes it leads: its write is
    // appended to its own log only and must never be acknowledged.
    minorityWrite = http(
      'POST',
      `${urlOf(oldLeader)}/api/jobs`,
      { name: minorityName, type: 'batch' },
      { 'Idempotency-Key': minorityName },
      15_000,
    );
    await waitFor(
      'the cut-off leader to step down',
      async () => {
        const s = await clusterStatus(urlOf(oldLeader), 1000);
        return s && s.current_role !== 'leader';
      },
      15_000,
      20,
    );
    stepDownMs = Date.now() - t0;
    const agreedMajority = await untilAgreedLeader(majority().map(urlOf), {
      minTerm: oldTerm + 1,
      timeoutMs: 15_000,
      everyMs: 20,
    });
    electionMs = Date.now() - t0;
    newLeader = agreedMajority.leaderId;
    newTerm = agreedMajority.term;
    console.info(
      `[partition.test] (${mode}) leader ${oldLeader} cut off: stepped down after ${stepDownMs} ms; ` +
        `${newLeader} leads term ${newTerm} after ${electionMs} ms`,
    );
  });

  afterAll(() => healAll());

  it('the old leader steps down within a few election timeouts (check-quorum)', () => {
    expect(stepDownMs).toBeLessThan(5_000);
  });

  it('the majority elects a new leader in a later term', () => {
    expect(majority()).toContain(newLeader);
    expect(newTerm).toBeGreaterThan(oldTerm);
    expect(electionMs).toBeLessThan(10_000);
  });

  it('the old leader acknowledges no write: 503 no_leader (or no answer)', async () => {
    const first = await minorityWrite;
    console.info(
      `[partition.test] (${mode}) the write sent to the cut-off leader got: ${first.status} ${first.text}${first.error ?? ''}`,
    );
    expect([0, 503], `${first.status} ${first.text}`).toContain(first.status);
    if (first.status === 503) expect(first.json?.error?.code).toBe('no_leader');
    const again = await http('POST', `${urlOf(oldLeader)}/api/jobs`, { name: minorityName, type: 'batch' });
    expect(again.status, again.text).toBe(503);
    expect(again.json?.error?.code).toBe('no_leader');
  });

  it('the old leader still serves stale reads, and refuses linearizable ones', async () => {
    const stale = await http('GET', `${urlOf(oldLeader)}/api/jobs/${beforeJob}?consistency=stale`);
    expect(stale.status, stale.text).toBe(200);
    expect(stale.json.status).toBe('completed');
    const linear = await http('GET', `${urlOf(oldLeader)}/api/jobs/${beforeJob}`, undefined, {}, 10_000);
    expect(linear.status, linear.text).toBe(503);
    const s = await clusterStatus(urlOf(oldLeader));
    expect(s.current_role).not.toBe('leader');
    expect(s.leader_id).toBeNull();
    oldLeaderRoles.add(s.current_role);
  });

  it('the majority accepts writes through either of its masters', async () => {
    majorityJob = await submitRetrying(urlOf(majority()[0]!), {
      name: 'during-the-partition',
      type: 'batch',
      config: { operation: 'multiply', factor: 5, task_count: 3, data: range(6) },
    });
    const second = await submitRetrying(urlOf(majority()[1]!), {
      name: 'during-the-partition-2',
      type: 'batch',
      config: { operation: 'noop', task_count: 3 },
    });
    acknowledged.push(majorityJob, second);
    // Linearizable reads on the majority see them at once.
    for (const id of majority()) {
      const r = await http('GET', `${urlOf(id)}/api/jobs/${second}`);
      expect(r.status, r.text).toBe(200);
    }
    const s = await clusterStatus(urlOf(oldLeader));
    oldLeaderRoles.add(s.current_role);
    expect([...oldLeaderRoles]).not.toContain('leader');
  });

  describe('after healing', () => {
    let rejoined: Json;
    let majorityTerm: number;

    beforeAll(async () => {
      // The majority's leader now: it may have handed over (to its highest id) meanwhile.
      const current = await untilAgreedLeader(majority().map(urlOf), { minTerm: newTerm, timeoutMs: 10_000 });
      majorityTerm = current.term;
      healAll();
      // Observed before the highest id takes the lead back (a planned hand-over, later).
      rejoined = await waitFor(
        'the old leader to follow the majority leader in its term',
        async () => {
          const s = await clusterStatus(urlOf(oldLeader), 1000);
          if (s?.current_role === 'leader') throw new GiveUp(`the old leader leads again before following: ${s.term}`);
          return s && s.current_role === 'follower' && majority().includes(s.leader_id) && s.term >= majorityTerm
            ? s
            : undefined;
        },
        15_000,
        20,
      );
    });

    it('the old leader rejoins as a follower with the majority term', () => {
      expect(majority()).toContain(rejoined.leader_id);
      expect(rejoined.term).toBeGreaterThanOrEqual(majorityTerm);
      expect(rejoined.term).toBeGreaterThan(oldTerm);
    });

    it("its log converges with the majority's", async () => {
      const leaderCommit = (await clusterStatus(urlOf(rejoined.leader_id)))?.commit_index ?? 0;
      await untilConverged(urls(), leaderCommit, 20_000);
      // In steady state the highest id leads again.
      await untilAgreedLeader(urls(), { leaderId: 83, timeoutMs: 20_000 });
    });

    it('nothing acknowledged was lost, and the unacknowledged write appears nowhere', async () => {
      await untilConverged(urls(), 0, 20_000);
      for (const id of ids) {
        const jobs = await jobsOn(urlOf(id));
        const listed = new Set(jobs.map((j) => j.job_id));
        for (const a of acknowledged) expect(listed.has(a), `job ${a} missing on master ${id}`).toBe(true);
        expect(
          jobs.filter((j) => j.name === minorityName),
          `the minority's write on master ${id}`,
        ).toEqual([]);
      }
      const url = urlOf(majority()[0]!);
      for (const a of acknowledged) await untilJobStatus(url, a, 'completed', 60_000);
      expect((await http('GET', `${url}/api/jobs/${beforeJob}/results`)).json.results).toEqual(
        range(8).map((x) => 2 * x),
      );
      expect((await http('GET', `${url}/api/jobs/${majorityJob}/results`)).json.results).toEqual(
        range(6).map((x) => 5 * x),
      );
    });
  });
});

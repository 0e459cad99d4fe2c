// The Weir side of the benchmarks: a real cluster of child processes (1 or 3 masters,
// 2 workers) driven over its REST API, as a user would drive it.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Agent, Pool, fetch as undiciFetch, type Dispatcher } from 'undici';
import { makeCertificates } from '../src/client/dev-certs.js';
import { mintToken } from '../src/common/auth.js';
import { cpuSeconds, treeCpuSeconds } from './proc-cpu.js';
import { freePortBlock, makeTempDir, startChild, stopChild, tearDownWithThis, waitUntil, type Child } from './procs.js';
import { mapLimit } from './stats.js';

const WEIR_BIN = new URL('../../bin/weir.js', import.meta.url).pathname;

/** This module as another build of Weir has it (DIR: a checkout with dist/ built), for side-by-side runs. */
export async function benchOfBuild(dir: string): Promise<typeof import('./weir.js')> {
  const other = (await import(pathToFileURL(join(dir, 'dist', 'bench', 'weir.js')).href)) as typeof import('./weir.js');
  // Its clusters' processes and temp dirs are that build's module's to track: torn down with ours.
  tearDownWithThis(
    (await import(pathToFileURL(join(dir, 'dist', 'bench', 'procs.js')).href)) as typeof import('./procs.js'),
  );
  return other;
}

/**
 * With WEIR_BENCH_SECRET set (`latency --secret`), the clusters run with it as JWT_SECRET and
 * every request of this module carries an admin token minted from it: a cluster as one is
 * run for real, where each request's token is checked. A build that reads it says so here
 * (a side-by-side run refuses an older one, whose clusters would run open).
 */
export const SECRET_AWARE = true;
const benchSecret = (): string | undefined => process.env.WEIR_BENCH_SECRET || undefined;
let auth: { secret: string; headers: Promise<Record<string, string>> } | undefined;
const OPEN: Promise<Record<string, string>> = Promise.resolve({});

/** The headers that authenticate a request: none for an open cluster. */
function authHeaders(): Promise<Record<string, string>> {
  const secret = benchSecret();
  if (!secret) return OPEN;
  if (auth?.secret !== secret) {
    const headers = mintToken(secret, 24 * 3_600_000, 'weir-bench', { role: 'admin' }).then((t) => ({
      authorization: `Bearer ${t}`,
    }));
    auth = { secret, headers };
  }
  return auth.headers;
}

export interface JobView {
  job_id: string;
  status: string;
  progress: { total: number; completed: number };
  error?: { message: string };
}

/**
 * A keep-alive JSON client for one origin. Enough connections that 100 parked long polls
 * never queue the submits behind them.
 */
export class Api {
  private readonly pool: Pool;

  /** `ca`: the PEM of the CA a TLS cluster's certificates are verified against (a client presents none). */
  constructor(
    readonly origin: string,
    ca?: string,
  ) {
    this.pool = new Pool(origin, {
      connections: 256,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      ...(ca ? { connect: { ca } } : {}),
    });
  }

  async call<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const { status, text } = await this.send(method, path, body, 30_000, headers);
    if (status >= 300) throw new Error(`${method} ${path} → ${status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  /** The status and body, whatever the status; connection errors and timeouts throw. */
  async send(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
    timeoutMs = 30_000,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; text: string }> {
    const signed = { ...(await authHeaders()), ...headers };
    const res = await this.pool.request({
      method,
      path,
      headers: body === undefined ? signed : { ...signed, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    return { status: res.statusCode, text: await res.body.text() };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** A master process and what it takes to start it again on the same data dir. */
export interface MasterProc {
  name: string;
  /** Raft node id: the last two octets of the host, as the master derives it. */
  id: number;
  url: string;
  api: Api;
  /** For a master serving TLS: what reaches it for status checks. */
  dispatcher?: Dispatcher;
  child: Child;
  /** Starts the same master again (after a kill), on its data dir; updates `child`. */
  restart(): Child;
}

export interface WeirCluster {
  /** The leader's API (the only master, or the leader when the cluster was ready). */
  api: Api;
  masters: MasterProc[];
  workers: Child[];
  maxTasks: number;
  threads: number | undefined;
  /** Where every node keeps its data dir and log. */
  dir: string;
  stop(): Promise<void>;
}

/**
 * Each process of a cluster, with what reads the CPU seconds it has used so far: the leader
 * (the master `api` speaks to), the followers, and each worker with the executors it runs
 * tasks in.
 */
export function clusterCpu(cluster: WeirCluster): { role: string; master: boolean; read: () => number }[] {
  const leader = cluster.masters.find((m) => m.api === cluster.api)!;
  const followers = cluster.masters.filter((m) => m !== leader);
  return [
    { role: 'leader', master: true, read: () => cpuSeconds(leader.child.proc.pid!) },
    ...followers.map((m) => ({ role: `follower ${m.name}`, master: true, read: () => cpuSeconds(m.child.proc.pid!) })),
    ...cluster.workers.map((w, i) => ({
      role: `worker ${i + 1}`,
      master: false,
      read: () => treeCpuSeconds(w.proc.pid!),
    })),
  ];
}

/** How each worker is started: task slots, and threads running them. */
export interface WorkerSetting {
  maxTasks: number;
  /** The workers' --threads; left out, each worker runs one thread per slot. */
  threads?: number;
}

export const describeSetting = (s: WorkerSetting): string =>
  `max-tasks ${s.maxTasks}, threads ${s.threads ?? `${s.maxTasks} (one per slot)`}`;

export interface ClusterOptions extends WorkerSetting {
  /**
   * One loopback address per master, all on one port (default: one master on 127.0.0.1).
   * With several, they are started with `--peers` and form a Raft cluster.
   */
  masterHosts?: string[];
  /** Where the two workers listen (default: the first master's host, on the next ports). */
  workerHost?: string;
  /** Extra node flags per process ('master' or 'm<id>', 'w1', 'w2'), e.g. `--cpu-prof`. */
  nodeArgs?: (name: string) => string[];
  /**
   * Every node serves https with a certificate from a throwaway CA and verifies the others
   * against it (mutual TLS between nodes); the benchmark's client trusts the CA.
   */
  tls?: boolean;
}

/** A cluster's TLS: each node's flags, the CA for clients, and an agent trusting it. */
export interface BenchTls {
  args: (name: string) => string[];
  ca: string;
  dispatcher: Dispatcher;
}

/** Certificates for the named nodes, as `weir dev --tls` makes them (the `openssl` command). */
export function benchTls(dir: string, nodes: { name: string; host: string }[]): BenchTls {
  const certs = makeCertificates(
    join(dir, 'tls'),
    nodes.map((n) => ({ name: n.name, hosts: [n.host, 'localhost'] })),
  );
  const ca = readFileSync(certs.ca, 'utf8');
  return {
    args: (name) => {
      const n = certs.nodes[name]!;
      return ['--tls-cert', n.cert, '--tls-key', n.key, '--tls-ca', certs.ca];
    },
    ca,
    dispatcher: new Agent({ connect: { ca } }),
  };
}

/** GET with the global fetch, or through `dispatcher` (one trusting a TLS cluster's CA). */
async function get(url: string, dispatcher?: Dispatcher, init: { signal?: AbortSignal } = {}) {
  const withAuth = { ...init, headers: await authHeaders() };
  return dispatcher ? undiciFetch(url, { ...withAuth, dispatcher }) : fetch(url, withAuth);
}

/**
 * An open cluster (no JWT_SECRET) so that auth is not part of the measurement, unless
 * WEIR_BENCH_SECRET says otherwise (see SECRET_AWARE); read at each start, as the latency
 * benchmark sets WEIR_TRACE for the nodes it starts.
 */
const childEnv = () => ({ ...process.env, JWT_SECRET: benchSecret(), WEIR_TOKEN: undefined, WEIR_MASTER: undefined });

/** Starts `bin/weir.js ARGS --data-dir DIR/NAME` with its output in DIR/NAME.log. */
export function spawnWeir(dir: string, name: string, args: string[], nodeArgs: string[] = []): Child {
  mkdirSync(join(dir, name), { recursive: true });
  return startChild(name, process.execPath, [...nodeArgs, WEIR_BIN, ...args, '--data-dir', join(dir, name)], {
    logFile: join(dir, `${name}.log`),
    env: childEnv(),
  });
}

/** The id a master derives from its IPv4 address `a.b.c.d`: c*256+d, as `weir master` picks its default --id. */
export const nodeIdOf = (host: string): number => {
  const [, , c, d] = host.split('.').map(Number);
  return c! * 256 + d!;
};

/**
 * A master process on `host:port`. `peers` (every master's URL, its own included) makes it
 * found a cluster with them on an empty data dir, or join the running one.
 */
export function startMaster(
  dir: string,
  host: string,
  port: number,
  o: {
    name?: string;
    peers?: string[];
    nodeArgs?: (name: string) => string[];
    tls?: BenchTls;
    /** More `weir master` flags (`--snapshot-entries N`, …). */
    args?: string[];
  } = {},
): MasterProc {
  const name = o.name ?? `m${nodeIdOf(host)}`;
  const url = `${o.tls ? 'https' : 'http'}://${host}:${port}`;
  const args = [
    'master',
    ...['--host', host, '--port', String(port)],
    ...(o.peers ? ['--peers', o.peers.join(',')] : []),
    ...(o.tls?.args(name) ?? []),
    ...(o.args ?? []),
  ];
  const launch = () => spawnWeir(dir, name, args, o.nodeArgs?.(name));
  const m: MasterProc = {
    name,
    id: nodeIdOf(host),
    url,
    api: new Api(url, o.tls?.ca),
    ...(o.tls ? { dispatcher: o.tls.dispatcher } : {}),
    child: launch(),
    restart: () => (m.child = launch()),
  };
  return m;
}

/** The `weir worker` flags for the cluster's workers. */
function workerArgs(host: string, port: number, masters: string[], o: ClusterOptions, tls: string[]): string[] {
  return [
    'worker',
    ...['--host', host, '--port', String(port), '--master', masters.join(',')],
    ...['--max-tasks', String(o.maxTasks)],
    ...(o.threads === undefined ? [] : ['--threads', String(o.threads)]),
    ...tls,
  ];
}

/**
 * Starts the masters and two workers on free ports; resolves once there is a leader every
 * master agrees on (for several: the one the seed's highest-id rule settles on) and both
 * workers can take tasks.
 */
export async function startWeirCluster(o: ClusterOptions): Promise<WeirCluster> {
  const hosts = o.masterHosts ?? ['127.0.0.1'];
  const workerHost = o.workerHost ?? hosts[0]!;
  const dir = makeTempDir('weir-bench-');
  const port = await freePortBlock(3, [...new Set([...hosts, workerHost])]);
  const masterName = (h: string) => (hosts.length === 1 ? 'master' : `m${nodeIdOf(h)}`);
  const tls = o.tls
    ? benchTls(dir, [
        ...hosts.map((h) => ({ name: masterName(h), host: h })),
        ...['w1', 'w2'].map((name) => ({ name, host: workerHost })),
      ])
    : undefined;
  const urls = hosts.map((h) => `${tls ? 'https' : 'http'}://${h}:${port}`);
  const peers = hosts.length > 1 ? urls : undefined;
  const masters = hosts.map((h) =>
    startMaster(dir, h, port, {
      name: masterName(h),
      ...(peers ? { peers } : {}),
      ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
      ...(tls ? { tls } : {}),
    }),
  );
  const workers: Child[] = [];
  const stop = async () => {
    await Promise.all(masters.map((m) => m.api.close()));
    // Generous grace: a profiled process writes its profile on the way out.
    await Promise.all(workers.map((w) => stopChild(w, 10_000)));
    await Promise.all(masters.map((m) => stopChild(m.child, 10_000)));
    await tls?.dispatcher.close();
  };
  try {
    const alive = () => [...masters.map((m) => m.child), ...workers];
    const leader = await waitForSettledLeader(masters, 30_000, alive);
    for (const i of [1, 2]) {
      const args = workerArgs(workerHost, port + i, urls, o, tls?.args(`w${i}`) ?? []);
      workers.push(spawnWeir(dir, `w${i}`, args, o.nodeArgs?.(`w${i}`)));
    }
    const connected = () => workersConnected(workerHost, port, 2, tls?.dispatcher);
    await waitUntil('both workers to connect', connected, 20_000, alive());
    return { api: leader.api, masters, workers, maxTasks: o.maxTasks, threads: o.threads, dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A worker can take tasks once its channel to the leader is open (its /api/status says so). */
async function workersConnected(host: string, masterPort: number, n: number, tls?: Dispatcher): Promise<boolean> {
  for (let i = 1; i <= n; i++) {
    const res = await get(`${tls ? 'https' : 'http'}://${host}:${masterPort + i}/api/status`, tls);
    if (!res.ok || !((await res.json()) as { connected: boolean }).connected) return false;
  }
  return true;
}

/** The part of GET /cluster/status the benchmarks read. */
export interface ClusterStatus {
  current_node_id: number;
  current_role: 'leader' | 'follower' | 'candidate' | 'learner';
  leader_id: number | null;
  leader_address: string | null;
  term: number;
  commit_index: number;
  last_applied: number;
  nodes: { id: number; address: string; role: string; healthy: boolean }[];
}

/** One master's own view; undefined when it does not answer within `timeoutMs`. */
export async function clusterStatus(
  url: string,
  timeoutMs = 1000,
  dispatcher?: Dispatcher,
): Promise<ClusterStatus | undefined> {
  try {
    const res = await get(`${url}/cluster/status`, dispatcher, { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok ? ((await res.json()) as ClusterStatus) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Waits until every master answers, names the same leader and the leader is ready
 * (`/ready`: it has applied what it committed). With several masters it also waits for the
 * highest id to lead: the leader hands over to it once it has been healthy for two election
 * timeouts, and a hand-over in the middle of a measurement would be counted as a fault.
 * Past `preferMs` without that, any agreed leader will do.
 */
export async function waitForSettledLeader(
  masters: readonly MasterProc[],
  timeoutMs: number,
  alive: () => Child[] = () => masters.map((m) => m.child),
  preferMs = 10_000,
): Promise<MasterProc> {
  const highest = Math.max(...masters.map((m) => m.id));
  const t0 = Date.now();
  let leader: MasterProc | undefined;
  await waitUntil(
    'the masters to agree on a leader',
    async () => {
      const views = await Promise.all(masters.map((m) => clusterStatus(m.url, 1000, m.dispatcher)));
      const id = views[0]?.leader_id;
      if (!id || views.some((v) => v?.leader_id !== id)) return false;
      if (id !== highest && Date.now() - t0 < preferMs) return false;
      leader = masters.find((m) => m.id === id);
      return !!leader && (await get(`${leader.url}/ready`, leader.dispatcher)).ok;
    },
    timeoutMs,
    alive(),
  );
  return leader!;
}

export const noopJob = (name: string, taskCount: number) => ({
  name,
  type: 'batch',
  config: { operation: 'noop', task_count: taskCount },
});

/** A job not finished by then is stuck (a worker died, a task was lost), not slow. */
const JOB_TIMEOUT_MS = 60_000;

/** Long-polls until the job is finished; anything but `completed` is a failed run. */
export async function waitCompleted(api: Api, jobId: string): Promise<void> {
  for (const t0 = performance.now(); performance.now() - t0 < JOB_TIMEOUT_MS;) {
    const job = await api.call<JobView>('GET', `/api/jobs/${jobId}?wait_ms=5000`);
    if (job.status === 'completed') {
      if (job.progress.completed !== job.progress.total) throw new Error(`job ${jobId} completed with missing tasks`);
      return;
    }
    if (job.status === 'failed' || job.status === 'cancelled') {
      throw new Error(`job ${jobId} ${job.status}: ${job.error?.message ?? 'no error given'}`);
    }
  }
  throw new Error(`job ${jobId} did not finish within ${JOB_TIMEOUT_MS} ms`);
}

export interface ThroughputShape {
  jobs: number;
  tasksPerJob: number;
  inFlight: number;
}

/**
 * One throughput round: `jobs` jobs submitted with at most `inFlight` submits outstanding;
 * each job is followed by a long poll as soon as it is accepted. Returns tasks per second
 * from the first submit to the last completion seen.
 */
export async function weirThroughputRound(api: Api, shape: ThroughputShape, label: string): Promise<number> {
  const waits: Promise<void>[] = [];
  // Kept until every wait is collected, so an early failure is never an unhandled rejection.
  let failure: unknown;
  const t0 = performance.now();
  await mapLimit(
    Array.from({ length: shape.jobs }, (_, i) => i),
    shape.inFlight,
    async (i) => {
      const job = await api.call<JobView>('POST', '/api/jobs', noopJob(`${label}-${i}`, shape.tasksPerJob));
      waits.push(waitCompleted(api, job.job_id).catch((err: unknown) => void (failure ??= err)));
    },
  );
  await Promise.all(waits);
  if (failure) throw failure;
  const seconds = (performance.now() - t0) / 1000;
  return (shape.jobs * shape.tasksPerJob) / seconds;
}

/**
 * Submits a job whose answer waits for it (`?wait_ms`): one round trip for a short job; a
 * job not finished by then is followed by long polls. Anything but `completed` is a failed run.
 */
export async function submitCompleted(api: Api, body: unknown): Promise<JobView> {
  const job = await api.call<JobView>('POST', '/api/jobs?wait_ms=5000', body);
  if (job.status === 'completed' && job.progress.completed === job.progress.total) return job;
  await waitCompleted(api, job.job_id);
  return job;
}

/** One one-task job, submit → completed: a call for sampleLatencyInTurn. */
export function weirLatencyCall(api: Api): () => Promise<void> {
  let n = 0;
  return async () => {
    await submitCompleted(api, noopJob(`lat-${n++}`, 1));
  };
}

/** A SQLite database's bytes with its WAL (what a snapshot of it has to carry); 0 for a file not there. */
export function sqliteBytes(path: string): number {
  const size = (p: string) => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  };
  return size(path) + size(`${path}-wal`);
}

/** A walk through every page of `limit` of a job's results: the cursors met, the rows counted, how long it took. */
export async function walkResults(
  api: Api,
  jobId: string,
  limit: number,
): Promise<{ cursors: string[]; rows: number; ms: number }> {
  const t0 = performance.now();
  const cursors: string[] = [];
  let rows = 0;
  let cursor: string | null = null;
  do {
    const q: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const page: { results: unknown[]; next_cursor: string | null } = await api.call(
      'GET',
      `/api/jobs/${jobId}/results?limit=${limit}${q}`,
    );
    rows += page.results.length;
    cursor = page.next_cursor;
    if (cursor !== null) cursors.push(cursor);
  } while (cursor !== null);
  return { cursors, rows, ms: performance.now() - t0 };
}

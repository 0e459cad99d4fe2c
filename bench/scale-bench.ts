// Weir's scale benchmark (`npm run bench -- scale`, issue 16 item 7): one cluster of 3 real
// master processes holding 1,000,000 finished tasks, with 1,000 simulated workers heartbeating
// (bench/sim-workers.ts: the real worker protocol, many workers per process). In order:
//
//   1. fill: jobs of --job-tasks no-op tasks, one after the other, run by the simulated
//      workers until the cluster holds --tasks finished tasks; state.db, raft.db and each
//      master's RSS sampled at a quarter, half and all of them;
//   2. a 100,000-task job more (the one deleted in 4), walked to gather cursors deep into it;
//   3. latency while the workers heartbeat: p50/p99 of GET /api/jobs/ID, of a results page
//      (`?limit=100&cursor=…` deep into the big job) and of a submit, asked of the leader in turn;
//   4. DELETE of the 100,000-task job: until the leader has purged its last row;
//   5. a fourth master with an empty data dir joins: until it has caught up and votes.
//
// All along, every master's /cluster/status is polled: a term that changes is an election,
// and none should happen. Figures go to stdout as a table and to bench/results/scale-<date>.json.
//
// Options: --tasks N        finished tasks the cluster holds (default 1,000,000)
//          --workers N      simulated workers (default 1,000)
//          --fleets N       processes they are spread over (default 2)
//          --max-tasks N    slots each simulated worker registers (default 8)
//          --job-tasks N    tasks per fill job (default 50,000)
//          --big-tasks N    tasks of the job paged and deleted (default 100,000)
//          --samples N      timed calls of each kind (default 300)
//          --snapshot-entries N  the masters' --snapshot-entries (default 1,000: a million
//                           no-op tasks make only a few thousand log entries, since the leader
//                           batches a commit round's reports into one; at the masters' default
//                           of 25,000 the joiner would replay the log instead of taking the
//                           snapshot this benchmark is meant to time). 0: the masters' default.
//          --deadline-min N the run stops after N minutes with the figures so far (default 100)
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { timeCatchUp } from './cluster-bench.js';
import { runMain } from './main.js';
import { freePortBlock, makeTempDir, startChild, stopChild, waitUntil, type Child } from './procs.js';
import { machineInfo, table, writeJson, type Machine } from './report.js';
import type { FleetMessage } from './sim-workers-main.js';
import type { FleetStats } from './sim-workers.js';
import { log, percentiles, positiveInt, type Percentiles } from './stats.js';
import {
  clusterStatus,
  noopJob,
  sqliteBytes,
  startMaster,
  waitForSettledLeader,
  walkResults,
  type Api,
  type JobView,
  type MasterProc,
} from './weir.js';

/** This benchmark's addresses (the load tool's spec uses 127.0.0.130). */
const HOSTS = { masters: ['127.0.0.131', '127.0.0.132', '127.0.0.133'], joiner: '127.0.0.134' };
const TARGET_P99_MS = 50;
const TARGET_JOIN_MS = 30_000;
/** Deep cursors gathered by walking the big job in pages of this many rows. */
const WALK_PAGE = 10_000;

interface Options {
  tasks: number;
  workers: number;
  fleets: number;
  maxTasks: number;
  jobTasks: number;
  bigTasks: number;
  samples: number;
  snapshotEntries: number;
  /** The run stops by itself after this many minutes, printing what it measured. */
  deadlineMin: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    tasks: 1_000_000,
    workers: 1000,
    fleets: 2,
    maxTasks: 8,
    jobTasks: 50_000,
    bigTasks: 100_000,
    samples: 300,
    snapshotEntries: 1000,
    deadlineMin: 100,
  };
  const flags: Record<string, keyof Options> = {
    '--tasks': 'tasks',
    '--workers': 'workers',
    '--fleets': 'fleets',
    '--max-tasks': 'maxTasks',
    '--job-tasks': 'jobTasks',
    '--big-tasks': 'bigTasks',
    '--samples': 'samples',
    '--snapshot-entries': 'snapshotEntries',
    '--deadline-min': 'deadlineMin',
  };
  for (let i = 0; i < argv.length; i++) {
    const key = flags[argv[i]!];
    if (!key) throw new Error(`unknown option ${argv[i]}; known: ${Object.keys(flags).join(', ')}`);
    const flag = argv[i]!;
    const v = argv[++i];
    o[key] = key === 'snapshotEntries' && v === '0' ? 0 : positiveInt(flag, v);
  }
  if (o.jobTasks > 100_000 || o.bigTasks > 100_000) throw new Error('a job has at most 100,000 tasks');
  return o;
}

// ------------------------------------------------------------------ observation

interface Footprint {
  finished_tasks: number;
  state_db_bytes: number;
  raft_db_bytes: number;
  /** Each master's resident memory, by name. */
  rss_bytes: Record<string, number>;
  /** CPU seconds each master and each load-tool process has used since it started, by name. */
  cpu_s: Record<string, number>;
  commit_index: number;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSecondsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime: in USER_HZ (100/s)
  } catch {
    return NaN;
  }
}

function rssOf(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function footprint(
  dir: string,
  masters: readonly MasterProc[],
  leader: MasterProc,
  finished: number,
  fleets: readonly Fleet[],
) {
  const f: Footprint = {
    finished_tasks: finished,
    state_db_bytes: sqliteBytes(join(dir, leader.name, 'state.db')),
    raft_db_bytes: sqliteBytes(join(dir, leader.name, 'raft.db')),
    rss_bytes: Object.fromEntries(masters.map((m) => [m.name, rssOf(m.child.proc.pid)])),
    cpu_s: Object.fromEntries(
      [...masters.map((m) => m.child), ...fleets.map((f) => f.child)].map((c) => [c.name, cpuSecondsOf(c.proc.pid)]),
    ),
    commit_index: (await clusterStatus(leader.url))?.commit_index ?? NaN,
  };
  return f;
}

/**
 * Polls every master's /cluster/status in the background: each new term any of them reports
 * is an election (the bench starts no fault, so each is needless), each leader change noted.
 */
class TermWatch {
  readonly events: { at_s: number; node: string; what: string }[] = [];
  private readonly terms = new Set<number>();
  private readonly leaders = new Map<string, number | null>();
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = performance.now();
  unanswered = 0;

  constructor(private readonly masters: () => readonly MasterProc[]) {}

  start(): void {
    const poll = async () => {
      await Promise.all(this.masters().map((m) => this.pollOne(m)));
      this.timer = setTimeout(() => void poll(), 250);
    };
    void poll();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  get nowS(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** Elections noted between two readings of `nowS`. */
  electionsBetween(fromS: number, toS: number): number {
    return this.events.filter((e) => e.what.startsWith('term') && e.at_s >= fromS && e.at_s <= toS).length;
  }

  get maxTerm(): number {
    return Math.max(0, ...this.terms);
  }

  private async pollOne(m: MasterProc): Promise<void> {
    const s = await clusterStatus(m.url, 2000);
    if (!s) {
      this.unanswered++;
      return;
    }
    const at_s = Number(this.nowS.toFixed(2));
    // Only a term above every one seen is an election: a joining master reports term 0 (then
    // the current one) as it learns it, which the run before counted as one.
    if (this.terms.size > 0 && s.term > this.maxTerm)
      this.events.push({ at_s, node: m.name, what: `term → ${s.term}` });
    this.terms.add(s.term);
    const before = this.leaders.get(m.name);
    if (before !== undefined && before !== s.leader_id) {
      this.events.push({ at_s, node: m.name, what: `leader ${before} → ${s.leader_id}` });
    }
    this.leaders.set(m.name, s.leader_id);
  }
}

// ------------------------------------------------------------------ the simulated workers

interface Fleet {
  child: Child;
  last?: FleetStats;
  ready: Promise<FleetStats>;
}

function startFleets(dir: string, urls: string[], o: Options): Fleet[] {
  const script = fileURLToPath(new URL('./sim-workers-main.js', import.meta.url));
  return Array.from({ length: o.fleets }, (_, i) => {
    const n = Math.floor(o.workers / o.fleets) + (i < o.workers % o.fleets ? 1 : 0);
    const args = [script, '--master', urls.join(','), '--workers', String(n), '--max-tasks', String(o.maxTasks)];
    // Niced: on a real cluster the workers are other machines; here they must not take the
    // masters' CPU (two cores for three masters, the load tool and the bench).
    const child = startChild(`fleet${i}`, 'nice', ['-n', '10', process.execPath, ...args, '--label', `sim${i}`], {
      logFile: join(dir, `fleet${i}.log`),
      ipc: true,
    });
    const fleet: Fleet = { child, ready: Promise.resolve(undefined as unknown as FleetStats) };
    fleet.ready = new Promise((resolveReady, reject) => {
      child.proc.on('message', (m: FleetMessage) => {
        fleet.last = m.stats;
        if (m.type === 'ready') resolveReady(m.stats);
      });
      void child.exited.then((code) => reject(new Error(`fleet${i} exited (${code}) before it was ready`)));
    });
    return fleet;
  });
}

/** The fleets' figures summed (heartbeat latencies: the worst of the last second's). */
function fleetTotals(fleets: readonly Fleet[]) {
  type Count = { [K in keyof FleetStats]: FleetStats[K] extends number ? K : never }[keyof FleetStats];
  const sum = (k: Count) => fleets.reduce((s, f) => s + (f.last?.[k] ?? 0), 0);
  const errors: Record<string, number> = {};
  for (const f of fleets)
    for (const [k, v] of Object.entries(f.last?.heartbeat_errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
  return {
    registered: sum('registered'),
    channels_open: sum('channels_open'),
    heartbeats_ok: sum('heartbeats_ok'),
    heartbeats_failed: sum('heartbeats_failed'),
    heartbeat_errors: errors,
    registrations: sum('registrations'),
    acked: sum('acked'),
    refused_frames: sum('refused_frames'),
    rss_bytes: fleets.map((f) => f.last?.rss_bytes ?? NaN),
  };
}

/** Heartbeat round trips seen by the fleets, sampled each second: worst p99 and max of a phase. */
class HeartbeatWatch {
  p99 = 0;
  max = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly fleets: readonly Fleet[]) {}
  start(): void {
    this.p99 = this.max = 0;
    this.timer = setInterval(() => {
      for (const f of this.fleets) {
        this.p99 = Math.max(this.p99, f.last?.heartbeat_p99_ms ?? 0);
        this.max = Math.max(this.max, f.last?.heartbeat_max_ms ?? 0);
      }
    }, 1000);
  }
  stop(): { p99_worst_second_ms: number; max_ms: number } {
    clearInterval(this.timer);
    return { p99_worst_second_ms: this.p99, max_ms: this.max };
  }
}

// ------------------------------------------------------------------ jobs

/**
 * `call` again on 503 (an election: the bench reports elections, it does not stop at one)
 * and on connection errors, for up to a minute, through whichever master leads by then.
 */
async function retrying<T>(masters: readonly MasterProc[], call: (api: Api) => Promise<T>): Promise<T> {
  for (const t0 = performance.now(); ;) {
    const leader = await waitForSettledLeader(masters, 60_000, undefined, 0);
    try {
      return await call(leader.api);
    } catch (err) {
      const retriable = /→ 503|ECONNRESET|ECONNREFUSED|other side closed|Timeout/i.test((err as Error).message);
      if (!retriable || performance.now() - t0 > 60_000) throw err;
      log(`  (${(err as Error).message.split('\n')[0]!.slice(0, 120)}; retrying)`);
    }
  }
}

/** Submits a no-op job and long-polls it to `completed`; ms from submit to completed. */
async function runJob(
  masters: readonly MasterProc[],
  name: string,
  tasks: number,
): Promise<{ id: string; ms: number }> {
  const t0 = performance.now();
  // The name is the idempotency key: a submit retried after an election is not a second job.
  const job = await retrying(masters, (api) =>
    api.call<JobView>('POST', '/api/jobs', noopJob(name, tasks), { 'idempotency-key': name }),
  );
  for (;;) {
    const v = await retrying(masters, (api) => api.call<JobView>('GET', `/api/jobs/${job.job_id}?wait_ms=10000`));
    if (v.status === 'completed') return { id: job.job_id, ms: performance.now() - t0 };
    if (v.status !== 'pending' && v.status !== 'running') {
      throw new Error(`job ${job.job_id} ${v.status}: ${v.error?.message ?? 'no error given'}`);
    }
    if (performance.now() - t0 > 20 * 60_000) throw new Error(`job ${job.job_id} not done in 20 minutes`);
  }
}

/** Cursors spread over a job's results, gathered by walking it in pages of WALK_PAGE. */
const deepCursors = (api: Api, jobId: string) => walkResults(api, jobId, WALK_PAGE);

// ------------------------------------------------------------------ the figures

interface ScaleResults {
  started_at: string;
  duration_s: number;
  machine: Machine;
  load: { start: number[]; end: number[] };
  options: Options;
  fleet: {
    workers: number;
    processes: number;
    start_ms: number;
    rss_bytes: number[];
    heartbeats_ok: number;
    heartbeats_failed: number;
    heartbeat_errors: Record<string, number>;
    registrations: number;
    refused_frames: number;
  } | null;
  fill: {
    tasks: number;
    jobs: number;
    ms: number;
    tasks_per_s: number;
    job_ms: number[];
    elections: number;
    /** Per master and kind of line (stall, slow apply, compaction): how many, and the longest. */
    master_lines?: LineSummary[];
  } | null;
  footprint: Footprint[];
  big_job: { tasks: number; ms: number; walk_ms: number; cursors: number } | null;
  latency: {
    get_job: Percentiles;
    results_page: Percentiles;
    submit: Percentiles;
    heartbeats: { p99_worst_second_ms: number; max_ms: number };
    elections: number;
    terms: { before: number; after: number };
    /** The results page's time by how deep its cursor is (rows before it). */
    page_by_depth?: { rows_before: number; p50: number; max: number; samples: number }[];
    /** Calls of SLOW_CALL_MS or more, with their moment (ms since the epoch). */
    slow_calls?: TimedCall[];
    /** The masters' lines on stalls, slow applies and compactions while the calls ran. */
    master_lines?: MasterLine[];
  } | null;
  delete: {
    answer_ms: number;
    purged_ms: number | null;
    slices: number | null;
    rows: number | null;
    elections: number;
    gone: boolean;
  } | null;
  join: {
    answered_ms: number;
    caught_up_ms: number;
    voter_ms: number;
    total_ms: number;
    snapshot_installed: boolean;
    snapshot_bytes: number | null;
    elections: number;
  } | null;
  elections_total: number;
  term_events: { at_s: number; node: string; what: string }[];
  notes: string[];
}

const mb = (b: number) => (Number.isFinite(b) ? `${(b / 2 ** 20).toFixed(0)} MB` : '—');
const ms2 = (n: number | undefined | null) => (n === undefined || n === null || Number.isNaN(n) ? '—' : n.toFixed(1));
const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** The issue's targets, each with its measured value and whether it was met (— when not measured). */
function targetsOf(r: ScaleResults): string[][] {
  const verdict = (v: number | undefined | null, ok: (v: number) => boolean) =>
    v === undefined || v === null || Number.isNaN(v) ? '—' : ok(v) ? 'met' : 'MISSED';
  const p99 = (what: string, p: Percentiles | undefined) => [
    `${what} p99`,
    p ? `${ms2(p.p99)} ms` : '—',
    `< ${TARGET_P99_MS} ms`,
    verdict(p?.p99, (v) => v < TARGET_P99_MS),
  ];
  return [
    p99('GET /api/jobs/ID', r.latency?.get_job),
    p99('results page', r.latency?.results_page),
    p99('submit', r.latency?.submit),
    ['elections (whole run)', String(r.elections_total), '0', verdict(r.elections_total, (v) => v === 0)],
    [
      'elections during the delete',
      String(r.delete?.elections ?? '—'),
      '0',
      verdict(r.delete?.elections, (v) => v === 0),
    ],
    [
      'a joining master caught up and voting',
      r.join ? `${(r.join.total_ms / 1000).toFixed(1)} s` : '—',
      `< ${TARGET_JOIN_MS / 1000} s`,
      verdict(r.join?.total_ms, (v) => v < TARGET_JOIN_MS),
    ],
  ];
}

function formatReport(r: ScaleResults): string {
  const out: string[] = [];
  if (r.fill) {
    out.push(
      `Fill: ${int(r.fill.tasks)} no-op tasks in ${r.fill.jobs} jobs, run by ${int(r.options.workers)} simulated workers (${r.options.maxTasks} slots each): ${(r.fill.ms / 1000).toFixed(0)} s, ${int(r.fill.tasks_per_s)} tasks/s, ${r.fill.elections} election(s).`,
    );
  }
  if (r.footprint.length) {
    const names = Object.keys(r.footprint[0]!.rss_bytes);
    out.push(
      '',
      table([
        [
          'finished tasks',
          'state.db',
          'raft.db',
          ...names.map((n) => `RSS ${n}`),
          'commit index',
          'CPU s (masters; load tool)',
        ],
        ...r.footprint.map((f) => [
          int(f.finished_tasks),
          mb(f.state_db_bytes),
          mb(f.raft_db_bytes),
          ...names.map((n) => mb(f.rss_bytes[n] ?? NaN)),
          int(f.commit_index),
          `${names.map((n) => int(f.cpu_s[n] ?? NaN)).join(' ')}; ${Object.entries(f.cpu_s)
            .filter(([n]) => !names.includes(n))
            .map(([, v]) => int(v))
            .join(' ')}`,
        ]),
      ]),
    );
  }
  if (r.latency) {
    const row = (what: string, p: Percentiles) => [
      what,
      ms2(p.p50),
      ms2(p.p99),
      ms2(p.max),
      p.p99 < TARGET_P99_MS ? 'met' : 'MISSED',
    ];
    out.push(
      '',
      table([
        ['call (to the leader)', 'p50 ms', 'p99 ms', 'max ms', `p99 < ${TARGET_P99_MS} ms`],
        row('GET /api/jobs/ID', r.latency.get_job),
        row(`results page (limit 100, deep cursor)`, r.latency.results_page),
        row('submit (POST /api/jobs)', r.latency.submit),
      ]),
      `Heartbeats meanwhile: worst second's p99 ${ms2(r.latency.heartbeats.p99_worst_second_ms)} ms, slowest ${ms2(r.latency.heartbeats.max_ms)} ms; terms ${r.latency.terms.before} → ${r.latency.terms.after}, ${r.latency.elections} election(s).`,
    );
  }
  if (r.delete) {
    out.push(
      `DELETE of the ${int(r.options.bigTasks)}-task job: answered in ${ms2(r.delete.answer_ms)} ms, purged after ${r.delete.purged_ms === null ? '—' : `${(r.delete.purged_ms / 1000).toFixed(1)} s`} (${r.delete.slices ?? '?'} slices, ${r.delete.rows ?? '?'} rows), ${r.delete.elections} election(s); 404 afterwards: ${r.delete.gone}.`,
    );
  }
  if (r.join) {
    out.push(
      `A fourth master joined: caught up and voting after ${(r.join.total_ms / 1000).toFixed(1)} s (target < ${TARGET_JOIN_MS / 1000} s), ${r.join.snapshot_installed ? `from a snapshot of ${mb(r.join.snapshot_bytes ?? NaN)}` : 'by log replay (no snapshot)'}; ${r.join.elections} election(s).`,
    );
  }
  if (r.fleet) {
    out.push(
      `Load tool: ${int(r.fleet.workers)} workers in ${r.fleet.processes} processes (RSS ${r.fleet.rss_bytes.map(mb).join(', ')}), registered in ${(r.fleet.start_ms / 1000).toFixed(1)} s; ${int(r.fleet.heartbeats_ok)} heartbeats answered, ${int(r.fleet.heartbeats_failed)} failed ${JSON.stringify(r.fleet.heartbeat_errors)}; ${int(r.fleet.registrations)} registrations; ${r.fleet.refused_frames} refused frames.`,
    );
  }
  out.push('', table([['target', 'value', 'goal', ''], ...targetsOf(r)]), '');
  out.push(
    `Elections over the whole run: ${r.elections_total}${r.term_events.length ? ` (${r.term_events.map((e) => `${e.at_s}s ${e.node} ${e.what}`).join('; ')})` : ''}.`,
  );
  out.push(
    `Machine: ${r.machine.cpus} × ${r.machine.cpu_model}, Node ${r.machine.node}; load average ${r.load.start[0]?.toFixed(2)} at start, ${r.load.end[0]?.toFixed(2)} at end; ${(r.duration_s / 60).toFixed(1)} min.`,
  );
  out.push(...r.notes);
  return out.join('\n');
}

// ------------------------------------------------------------------ the run

async function runScaleBench(o: Options, r: ScaleResults): Promise<void> {
  const dir = makeTempDir('weir-scale-');
  const port = await freePortBlock(1, [...HOSTS.masters, HOSTS.joiner]);
  const urls = HOSTS.masters.map((h) => `http://${h}:${port}`);
  const args = o.snapshotEntries ? ['--snapshot-entries', String(o.snapshotEntries)] : [];
  // Node flags for the masters when profiling (`WEIR_SCALE_NODE_ARGS='--cpu-prof --heapsnapshot-signal=SIGUSR2'`).
  const nodeArgs = () => process.env.WEIR_SCALE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const masters = HOSTS.masters.map((h) => startMaster(dir, h, port, { peers: urls, args, nodeArgs }));
  const members = [...masters];
  const watch = new TermWatch(() => members);
  let fleets: Fleet[] = [];
  let startMs = NaN;
  try {
    let leader = await waitForSettledLeader(masters, 30_000);
    log(`3 masters up, ${leader.name} leads; starting ${o.workers} simulated workers in ${o.fleets} processes`);
    watch.start();
    const t0 = performance.now();
    fleets = startFleets(dir, urls, o);
    await Promise.all(fleets.map((f) => f.ready));
    await waitUntil(
      'every simulated channel open',
      async () => fleetTotals(fleets).channels_open === o.workers,
      60_000,
    );
    startMs = performance.now() - t0;
    log(`  ${o.workers} workers registered, channels open, after ${(startMs / 1000).toFixed(1)} s`);

    // 1. fill
    const checkpoints = [o.tasks / 4, o.tasks / 2, o.tasks].map(Math.round);
    const jobs = Math.ceil(o.tasks / o.jobTasks);
    const jobMs: number[] = [];
    let finished = 0;
    const fillFrom = watch.nowS;
    const fillFromMs = Date.now();
    const f0 = performance.now();
    for (let i = 0; i < jobs; i++) {
      const n = Math.min(o.jobTasks, o.tasks - finished);
      const before = finished;
      const { ms } = await runJob(masters, `fill-${i}`, n);
      jobMs.push(ms);
      finished += n;
      log(`  fill: ${int(finished)}/${int(o.tasks)} tasks (job of ${int(n)} in ${(ms / 1000).toFixed(1)} s)`);
      if (checkpoints.some((c) => before < c && finished >= c)) {
        r.footprint.push(await footprint(dir, masters, leader, finished, fleets));
      }
    }
    const fillMs = performance.now() - f0;
    r.fill = {
      tasks: finished,
      jobs,
      ms: fillMs,
      tasks_per_s: finished / (fillMs / 1000),
      job_ms: jobMs,
      elections: watch.electionsBetween(fillFrom, watch.nowS),
      master_lines: summarizeLines(masterLines(masters, fillFromMs, Date.now())),
    };

    // 2. the big job, to page and then delete
    leader = await waitForSettledLeader(masters, 30_000);
    const big = await runJob(masters, 'big', o.bigTasks);
    const walk = await deepCursors(leader.api, big.id);
    if (walk.rows !== o.bigTasks) r.notes.push(`The big job served ${walk.rows} rows, not ${o.bigTasks}.`);
    r.big_job = { tasks: o.bigTasks, ms: big.ms, walk_ms: walk.ms, cursors: walk.cursors.length };
    log(
      `  big job of ${int(o.bigTasks)} tasks in ${(big.ms / 1000).toFixed(1)} s; walked in ${(walk.ms / 1000).toFixed(1)} s`,
    );

    // 3. latency while the workers heartbeat
    const termBefore = watch.maxTerm;
    const latFrom = watch.nowS;
    const hb = new HeartbeatWatch(fleets);
    hb.start();
    const getJob: number[] = [];
    const page: number[] = [];
    const submit: number[] = [];
    // Every call with its moment, so that a slow one can be set beside the masters' log lines.
    const calls: TimedCall[] = [];
    const warmUp: number[] = [];
    const latFromMs = Date.now();
    const timed = async (into: number[], what: TimedCall['what'], f: () => Promise<unknown>, cursor?: number) => {
      const at = Date.now();
      const s = performance.now();
      await f();
      const ms = performance.now() - s;
      into.push(ms);
      if (into !== warmUp) calls.push({ what, at, ms, ...(cursor === undefined ? {} : { cursor }) });
    };
    const cursors = walk.cursors.length ? walk.cursors : [''];
    for (let i = 0; i < o.samples + 20; i++) {
      const keep = i >= 20; // the first 20 of each warm up
      const ci = i % cursors.length;
      const c = cursors[ci]!;
      await timed(keep ? getJob : warmUp, 'get_job', () => leader.api.call('GET', `/api/jobs/${big.id}`));
      await timed(
        keep ? page : warmUp,
        'results_page',
        () =>
          leader.api.call('GET', `/api/jobs/${big.id}/results?limit=100${c ? `&cursor=${encodeURIComponent(c)}` : ''}`),
        ci,
      );
      await timed(keep ? submit : warmUp, 'submit', () =>
        leader.api.call('POST', '/api/jobs', noopJob(`probe-${i}`, 1)),
      );
    }
    const latToMs = Date.now();
    r.latency = {
      get_job: percentiles(getJob),
      results_page: percentiles(page),
      submit: percentiles(submit),
      heartbeats: hb.stop(),
      elections: watch.electionsBetween(latFrom, watch.nowS),
      terms: { before: termBefore, after: watch.maxTerm },
      page_by_depth: pageByDepth(calls, WALK_PAGE),
      slow_calls: calls.filter((c) => c.ms >= SLOW_CALL_MS),
      master_lines: masterLines(masters, latFromMs, latToMs),
    };
    log(
      `  latency p99: job ${ms2(r.latency.get_job.p99)} ms, page ${ms2(r.latency.results_page.p99)} ms, submit ${ms2(r.latency.submit.p99)} ms`,
    );

    // 4. delete the big job
    const leaderLog = leader.child.logFile;
    const purgedBefore = purgeLines(leaderLog).length;
    const delFrom = watch.nowS;
    const d0 = performance.now();
    const del = await leader.api.send('DELETE', `/api/jobs/${big.id}`);
    const answerMs = performance.now() - d0;
    if (del.status !== 204) throw new Error(`DELETE answered ${del.status}: ${del.text}`);
    let purge: PurgeLine | undefined;
    await waitUntil('the big job purged', async () => !!(purge = purgeLines(leaderLog)[purgedBefore]), 10 * 60_000);
    const purgedMs = performance.now() - d0;
    const gone = (await leader.api.send('GET', `/api/jobs/${big.id}`)).status === 404;
    r.delete = {
      answer_ms: answerMs,
      purged_ms: purgedMs,
      slices: purge?.slices ?? null,
      rows: purge?.rows ?? null,
      elections: watch.electionsBetween(delFrom, watch.nowS),
      gone,
    };
    log(`  deleted: purged after ${(purgedMs / 1000).toFixed(1)} s`);
    r.footprint.push(await footprint(dir, masters, leader, finished, fleets));

    // 5. a master joins
    const joinFrom = watch.nowS;
    const url = `http://${HOSTS.joiner}:${port}`;
    const j0 = performance.now();
    const joiner = startMaster(dir, HOSTS.joiner, port, { peers: [...urls, url], args });
    members.push(joiner);
    const timing = await timeCatchUp(joiner, members, j0);
    const joinerLog = readFileSync(joiner.child.logFile, 'utf8');
    const snap = /"bytes":(\d+)[^\n]*installed a snapshot/.exec(joinerLog);
    r.join = {
      ...timing,
      snapshot_installed: joinerLog.includes('installed a snapshot'),
      snapshot_bytes: snap ? Number(snap[1]) : null,
      elections: watch.electionsBetween(joinFrom, watch.nowS),
    };
    log(`  joiner caught up and voting after ${(timing.total_ms / 1000).toFixed(1)} s`);
  } finally {
    watch.stop();
    const totals = fleetTotals(fleets);
    if (fleets.length) {
      r.fleet = {
        workers: o.workers,
        processes: o.fleets,
        start_ms: startMs,
        rss_bytes: totals.rss_bytes,
        heartbeats_ok: totals.heartbeats_ok,
        heartbeats_failed: totals.heartbeats_failed,
        heartbeat_errors: totals.heartbeat_errors,
        registrations: totals.registrations,
        refused_frames: totals.refused_frames,
      };
    }
    r.elections_total = watch.events.filter((e) => e.what.startsWith('term')).length;
    r.term_events = watch.events;
    await Promise.all(fleets.map((f) => stopChild(f.child)));
    await Promise.all(members.map((m) => m.api.close()));
    await Promise.all(members.map((m) => stopChild(m.child, 10_000)));
  }
}

/** A timed call of the latency phase is listed with the masters' lines at or over this. */
const SLOW_CALL_MS = 30;

interface TimedCall {
  what: 'get_job' | 'results_page' | 'submit';
  at: number;
  ms: number;
  /** The results page's cursor: the nth deep cursor of the walk. */
  cursor?: number;
}

interface MasterLine {
  master: string;
  time: number;
  msg: string;
  [field: string]: unknown;
}

/** The lines that name what held a master's loop: stalls, slow applies, long GCs, compactions. */
const NAMING_LINES = /the event loop stalled|a slow |a long garbage|compact|snapshot|vacuum|checkpoint/;

function masterLines(masters: readonly MasterProc[], from: number, to: number): MasterLine[] {
  const out: MasterLine[] = [];
  for (const m of masters) {
    for (const l of readFileSync(m.child.logFile, 'utf8').split('\n')) {
      if (!l.startsWith('{') || !NAMING_LINES.test(l)) continue;
      let line: { time?: number; msg?: string; pid?: number; hostname?: string; level?: number; name?: string };
      try {
        line = JSON.parse(l) as typeof line;
      } catch {
        continue;
      }
      if (typeof line.time !== 'number' || line.time < from || line.time > to) continue;
      const { pid: _pid, hostname: _host, level: _level, name: _name, ...rest } = line;
      out.push({ master: m.name, ...rest } as MasterLine);
    }
  }
  return out.sort((a, b) => a.time - b.time);
}

interface LineSummary {
  master: string;
  msg: string;
  count: number;
  max_ms: number;
  p50_ms: number;
}

/** How long a line says its work held the loop. */
const lineMs = (l: MasterLine): number => Number(l.ms ?? l.stalled_ms ?? 0);

function summarizeLines(lines: readonly MasterLine[]): LineSummary[] {
  const by = new Map<string, MasterLine[]>();
  for (const l of lines) {
    const k = `${l.master}\u0000${l.msg}`;
    let list = by.get(k);
    if (!list) by.set(k, (list = []));
    list.push(l);
  }
  return [...by.values()].map((list) => {
    const ms = list.map(lineMs);
    return {
      master: list[0]!.master,
      msg: list[0]!.msg,
      count: list.length,
      max_ms: Math.max(...ms),
      p50_ms: percentiles(ms).p50,
    };
  });
}

function pageByDepth(calls: readonly TimedCall[], step: number) {
  const by = new Map<number, number[]>();
  for (const c of calls) {
    if (c.what !== 'results_page' || c.cursor === undefined) continue;
    let list = by.get(c.cursor);
    if (!list) by.set(c.cursor, (list = []));
    list.push(c.ms);
  }
  return [...by]
    .sort((a, b) => a[0] - b[0])
    .map(([cursor, ms]) => {
      const p = percentiles(ms);
      return { rows_before: (cursor + 1) * step, p50: p.p50, max: p.max, samples: ms.length };
    });
}

interface PurgeLine {
  slices: number;
  rows: number;
  ms: number;
}

/** The leader's "purged a deleted job's rows" lines, in order. */
function purgeLines(logFile: string): PurgeLine[] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes("purged a deleted job's rows"))
    .map((l) => JSON.parse(l) as PurgeLine);
}

function newResults(o: Options): ScaleResults {
  return {
    started_at: new Date().toISOString(),
    duration_s: 0,
    machine: machineInfo(),
    load: { start: loadavg(), end: [] },
    options: o,
    fleet: null,
    fill: null,
    footprint: [],
    big_job: null,
    latency: null,
    delete: null,
    join: null,
    elections_total: 0,
    term_events: [],
    notes: [],
  };
}

function publish(r: ScaleResults, t0: number): void {
  r.duration_s = (performance.now() - t0) / 1000;
  r.load.end = loadavg();
  process.stdout.write(`\n${formatReport(r)}\n`);
  log(`\nfigures written to ${writeJson('scale', r.started_at, r)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const o = parseArgs(process.argv.slice(2));
  const r = newResults(o);
  const t0 = performance.now();
  runMain(
    async () => {
      try {
        await runScaleBench(o, r);
      } catch (err) {
        r.notes.push(`FAILED: ${(err as Error).message.split('\n')[0]}`);
        throw err;
      } finally {
        publish(r, t0);
      }
    },
    {
      deadlineMs: o.deadlineMin * 60_000,
      onDeadline: () => {
        r.notes.push(`Stopped at the ${o.deadlineMin}-minute deadline: figures are partial.`);
        publish(r, t0);
      },
    },
  );
}

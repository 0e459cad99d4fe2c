// Weir's cluster benchmark (`npm run bench -- cluster`, or `npm run bench -- core --cluster`
// after the core benchmark): what replicating the control plane through Raft costs and what
// it buys, on real local clusters of masters on 127.0.0.x addresses.
//
//   a. throughput: 10,000 no-op tasks through 3 masters + 2 workers, rounds alternating
//      with 1 master + 2 workers (same worker settings), so drifting load hits both alike;
//   b. elections during 60 s of full load with no fault (every node's /cluster/status,
//      polled every 200 ms), then failover: SIGKILL the leader under a steady stream of
//      small jobs and time until any survivor accepts a write; restart the killed master,
//      wait until it has caught up, repeat;
//   c. catch-up: a fourth master with an empty data dir joins a cluster holding 100,000
//      completed tasks; time from its start until it has applied the leader's commit index
//      and votes.
//
// Figures go to stdout as a table and to bench/results/cluster-<date>.json. Each part runs
// on a fresh cluster; a part that fails is noted and the next one runs.
//
// Options: --max-tasks N --threads T  the workers' settings (default: DEFAULT_SETTING)
//          --parts a,b,c              which parts to run (default: all)
//          --trials N                 failover trials (default 20)
//          --steady-s S               seconds of fault-free full load watched (default 60)
//          --catchup-tasks N          completed tasks the joiner catches up on (default 100,000)
//          --cpu-prof                 profile the masters of part a and summarise
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LoadStream, timeFailover, watchElections } from './cluster-load.js';
import {
  clusterTargets,
  formatClusterReport,
  type ClusterResults,
  type FailoverTrial,
  type JoinFigures,
  type Summary,
} from './cluster-report.js';
import { runMain } from './main.js';
import { freePortBlock, stopChild, waitUntil } from './procs.js';
import { cpuProfArgs, formatProfilesIn } from './profile-summary.js';
import { machineInfo, writeJson } from './report.js';
import { log, mapLimit, positiveInt, quantile, spread } from './stats.js';
import {
  clusterStatus,
  describeSetting,
  noopJob,
  sqliteBytes,
  startMaster,
  startWeirCluster,
  waitCompleted,
  waitForSettledLeader,
  weirThroughputRound,
  type Api,
  type JobView,
  type MasterProc,
  type ThroughputShape,
  type WeirCluster,
  type WorkerSetting,
} from './weir.js';

/** The standalone run stops by itself after this long (part b is cut short before that). */
export const CLUSTER_DEADLINE_MS = 8 * 60_000;
/** Failover trials stop starting past this point of the run, leaving time for part c. */
const TRIALS_UNTIL_MS = 5.5 * 60_000;
/**
 * Between trials, how long to wait for the restarted highest-id master to get leadership
 * back (the seed's rule) before killing whichever master leads. Under a steady stream the
 * hand-over may not come at all (see `highest_led` in the figures), so not the full 10 s.
 */
const HANDOVER_WAIT_MS = 4000;

/** The core benchmark's sweep winner on this machine (see the report); --max-tasks/--threads override. */
export const DEFAULT_SETTING: WorkerSetting = { maxTasks: 128, threads: 2 };

/** As the core benchmark: 10,000 tasks as 100 jobs of 100, at most 16 submits in flight. */
const SHAPE: ThroughputShape = { jobs: 100, tasksPerJob: 100, inFlight: 16 };
const ROUNDS = 7;
/**
 * Rounds run on each cluster before measuring, so the figures are a long-running master's.
 * A follower's hot functions run once per append, not once per task, so V8 optimizes them
 * late. Traced with --trace-opt, a follower spent 174 ms of 4 rounds compiling after 3
 * warm-up rounds (≈ 4 µs a task, 5–8% of the cluster's CPU), 61–112 ms after 10, 3–16 ms
 * after 14 and more.
 */
const WARMUP_ROUNDS = 15;

/**
 * Each part's cluster on its own addresses (ids = last octet, as the masters derive them),
 * clear of the 127.0.0.2–99 the integration tests use, so a test run beside us cannot clash.
 */
const HOSTS = {
  three: { masters: ['127.0.0.201', '127.0.0.202', '127.0.0.203'], workers: '127.0.0.200' },
  one: { masters: ['127.0.0.211'], workers: '127.0.0.210' },
  failover: { masters: ['127.0.0.231', '127.0.0.232', '127.0.0.233'], workers: '127.0.0.230' },
  catchup: { masters: ['127.0.0.221', '127.0.0.222', '127.0.0.223'], workers: '127.0.0.220' },
  joiner: '127.0.0.224',
  secondJoiner: '127.0.0.225',
};

/** Full load: as many jobs in flight as the throughput rounds keep. */
const STEADY_LOAD = { lanes: 16, tasksPerJob: 100 };
/** A steady stream of small jobs: the cluster is busy, but a kill does not strand much work. */
const FAILOVER_LOAD = { lanes: 4, tasksPerJob: 10 };
/** Jobs of the history part c builds, and how many are in flight at once. */
const HISTORY = { tasksPerJob: 1000, lanes: 8 };
/** A master compacts its log past this many applied entries (COMPACT_AFTER in raft-consensus.ts). */
const COMPACT_LOG_AFTER = 25_000;
/** Entries beyond it, so that every master has applied far enough to compact. */
const COMPACT_MARGIN = 500;

type Part = 'a' | 'b' | 'c';

export interface ClusterBenchOptions {
  setting: WorkerSetting;
  parts: Set<Part>;
  trials: number;
  steadyS: number;
  catchupTasks: number;
  cpuProf: boolean;
}

const DEFAULTS: ClusterBenchOptions = {
  setting: DEFAULT_SETTING,
  parts: new Set(['a', 'b', 'c']),
  trials: 20,
  steadyS: 60,
  catchupTasks: 100_000,
  cpuProf: false,
};

function parseArgs(argv: string[]): ClusterBenchOptions {
  const o = { ...DEFAULTS, setting: { ...DEFAULTS.setting } };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    if (a === '--max-tasks') o.setting.maxTasks = positiveInt(a, next());
    else if (a === '--threads') o.setting.threads = positiveInt(a, next());
    else if (a === '--trials') o.trials = positiveInt(a, next());
    else if (a === '--steady-s') o.steadyS = positiveInt(a, next());
    else if (a === '--catchup-tasks') o.catchupTasks = positiveInt(a, next());
    else if (a === '--cpu-prof') o.cpuProf = true;
    else if (a === '--parts') {
      const parts = (next() ?? '').split(',');
      if (!parts.every((p) => p === 'a' || p === 'b' || p === 'c')) throw new Error('--parts takes a list of a, b, c');
      o.parts = new Set(parts as Part[]);
    } else {
      throw new Error(
        `unknown option '${a}' (known: --max-tasks N, --threads T, --parts a,b,c, --trials N, --steady-s S, --catchup-tasks N, --cpu-prof)`,
      );
    }
  }
  return o;
}

const summarize = (xs: readonly number[]): Summary => {
  const sorted = [...xs].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    max: sorted[sorted.length - 1] ?? NaN,
    samples: sorted.length,
  };
};

/** The masters with `first` in front: load lanes start on the leader and move on errors. */
const leaderFirst = (masters: readonly MasterProc[], first: MasterProc) => [
  first,
  ...masters.filter((m) => m !== first),
];

// ------------------------------------------------------------------ a. throughput

async function partThroughput(o: ClusterBenchOptions, r: ClusterResults): Promise<void> {
  log(`a. throughput: 3 masters + 2 workers beside 1 master + 2 workers (${describeSetting(o.setting)})`);
  const profDir = o.cpuProf ? mkdtempSync(join(tmpdir(), 'weir-cluster-prof-')) : undefined;
  // Masters only: the question profiling answers here is what replication costs the leader.
  const nodeArgs = profDir ? (name: string) => (name.startsWith('w') ? [] : cpuProfArgs(profDir)(name)) : undefined;
  const start = (hosts: { masters: string[]; workers: string }) =>
    startWeirCluster({
      ...o.setting,
      masterHosts: hosts.masters,
      workerHost: hosts.workers,
      ...(nodeArgs ? { nodeArgs } : {}),
    });
  const three = await start(HOSTS.three);
  let one: WeirCluster | undefined;
  try {
    one = await start(HOSTS.one);
    const round = (c: WeirCluster, label: string) => weirThroughputRound(c.api, SHAPE, label);
    for (let i = 0; i < WARMUP_ROUNDS; i++) {
      await round(three, `warm${i}-3`);
      await round(one, `warm${i}-1`);
    }
    const t3: number[] = [];
    const t1: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      t3.push(await round(three, `r${i}-3`));
      t1.push(await round(one, `r${i}-1`));
      log(
        `  round ${i + 1}/${ROUNDS}: 3 masters ${Math.round(t3[i]!)} tasks/s, 1 master ${Math.round(t1[i]!)} tasks/s`,
      );
    }
    const [s3, s1] = [spread(t3), spread(t1)];
    r.throughput = {
      workload: `${(SHAPE.jobs * SHAPE.tasksPerJob).toLocaleString('en-US')} no-op tasks as ${SHAPE.jobs} jobs × ${SHAPE.tasksPerJob} (≤ ${SHAPE.inFlight} submits in flight, sent to the leader), ${ROUNDS} rounds each after ${WARMUP_ROUNDS} warm-up rounds, alternating`,
      three_masters: s3,
      one_master: s1,
      ratio: s3.median / s1.median,
    };
  } finally {
    await Promise.all([three.stop(), one?.stop()]);
  }
  if (profDir) log(formatProfilesIn(profDir));
}

// ------------------------------------------------------------------ b. elections and failover

async function partFailover(o: ClusterBenchOptions, r: ClusterResults, benchT0: number): Promise<void> {
  log('b. elections under full load, then failover of the leader under a steady stream');
  const cluster = await startWeirCluster({
    ...o.setting,
    masterHosts: HOSTS.failover.masters,
    workerHost: HOSTS.failover.workers,
  });
  try {
    await steadyWatch(cluster, o, r);
    await failoverTrials(cluster, o, r, benchT0);
  } finally {
    await cluster.stop();
  }
}

/** Full load for `steadyS` seconds with no fault: any election in that time is needless. */
async function steadyWatch(cluster: WeirCluster, o: ClusterBenchOptions, r: ClusterResults): Promise<void> {
  const leader = await waitForSettledLeader(cluster.masters, 20_000);
  const load = new LoadStream(leaderFirst(cluster.masters, leader), STEADY_LOAD, 'steady');
  load.start();
  try {
    await load.progressed(STEADY_LOAD.lanes * STEADY_LOAD.tasksPerJob, 20_000);
    log(`  watching /cluster/status of every master for ${o.steadyS} s under full load`);
    const before = load.completedTasks;
    const t0 = performance.now();
    const watch = await watchElections(cluster.masters, o.steadyS);
    const tasksPerS = (load.completedTasks - before) / ((performance.now() - t0) / 1000);
    r.steady = {
      ...watch,
      load: { ...lanesOf(STEADY_LOAD), tasks_per_s: tasksPerS, errors: load.errors },
    };
    log(
      `  ${watch.termChanges} term change(s), ${watch.leaderChanges} leader change(s), ${Math.round(tasksPerS)} tasks/s`,
    );
  } finally {
    await load.stop();
  }
}

const lanesOf = (l: { lanes: number; tasksPerJob: number }) => ({ lanes: l.lanes, tasks_per_job: l.tasksPerJob });

async function failoverTrials(
  cluster: WeirCluster,
  o: ClusterBenchOptions,
  r: ClusterResults,
  benchT0: number,
): Promise<void> {
  const leader = await waitForSettledLeader(cluster.masters, 20_000);
  const load = new LoadStream(leaderFirst(cluster.masters, leader), FAILOVER_LOAD, 'stream');
  const trials: FailoverTrial[] = [];
  const t0 = performance.now();
  load.start();
  try {
    for (let i = 0; i < o.trials; i++) {
      if (performance.now() - benchT0 > TRIALS_UNTIL_MS) {
        r.notes.push(`Failover: stopped after ${i} of ${o.trials} trials to leave time for part c.`);
        break;
      }
      const t = await failoverTrial(cluster, load);
      trials.push(t);
      log(
        `  trial ${i + 1}/${o.trials}: killed ${t.killed} (term ${t.old_term}); write accepted by ${t.accepted_by} after ${Math.round(t.write_ms)} ms, new leader after ${t.elected_ms === null ? '?' : Math.round(t.elected_ms)} ms; rejoined in ${Math.round(t.rejoin_ms)} ms`,
      );
    }
  } finally {
    const completed = load.completedTasks;
    await load.stop();
    r.failover = {
      trials,
      write_ms: summarize(trials.map((t) => t.write_ms)),
      elected_ms: summarize(trials.flatMap((t) => (t.elected_ms === null ? [] : [t.elected_ms]))),
      rejoin_ms: summarize(trials.map((t) => t.rejoin_ms)),
      load: {
        ...lanesOf(FAILOVER_LOAD),
        tasks_per_s: completed / ((performance.now() - t0) / 1000),
        errors: load.errors,
      },
    };
  }
}

/**
 * One trial: once the leader is settled and jobs are completing through it, SIGKILL it and
 * time the first write a survivor accepts; then restart it on its data dir and wait until
 * it has caught up, so that every trial starts from three healthy masters.
 */
async function failoverTrial(cluster: WeirCluster, load: LoadStream): Promise<FailoverTrial> {
  const { leader, term: oldTerm } = await leaderUnderLoad(cluster, load);
  const survivors = cluster.masters.filter((m) => m !== leader);
  const t0 = performance.now();
  leader.child.proc.kill('SIGKILL');
  const timing = await timeFailover(survivors, oldTerm, t0, 15_000);
  await leader.child.exited;
  const rejoinMs = await restartAndCatchUp(leader, cluster.masters);
  return {
    killed: leader.id,
    highest_led: leader.id === Math.max(...cluster.masters.map((m) => m.id)),
    old_term: oldTerm,
    new_term: timing.newTerm,
    accepted_by: timing.acceptedBy,
    write_ms: timing.writeMs,
    elected_ms: timing.electedMs,
    rejoin_ms: rejoinMs,
  };
}

/**
 * The settled leader once jobs are completing through it, checked again just before the
 * kill: a hand-over in between would make the trial kill a follower and time nothing.
 */
async function leaderUnderLoad(cluster: WeirCluster, load: LoadStream): Promise<{ leader: MasterProc; term: number }> {
  for (;;) {
    const leader = await waitForSettledLeader(cluster.masters, 30_000, undefined, HANDOVER_WAIT_MS);
    if (!(await load.progressed(FAILOVER_LOAD.lanes * FAILOVER_LOAD.tasksPerJob, 10_000))) {
      log('  (the job stream made no progress for 10 s before this kill)');
    }
    const s = await clusterStatus(leader.url);
    if (s?.current_role === 'leader') return { leader, term: s.term };
    log(`  (${leader.name} stopped leading before the kill; settling again)`);
  }
}

/**
 * The leader's commit index first, then `m`'s last_applied: asked in that order, `m` has
 * caught up when it has applied at least what the leader had committed a moment before —
 * under a steady stream, comparing two simultaneous readings would rarely ever agree.
 */
async function caughtUp(
  m: MasterProc,
  masters: readonly MasterProc[],
): Promise<{ answered: boolean; caught: boolean; voter: boolean }> {
  const views = await Promise.all(masters.filter((x) => x !== m).map((x) => clusterStatus(x.url)));
  const lead = views.find((v) => v?.current_role === 'leader');
  const mine = await clusterStatus(m.url);
  if (!mine) return { answered: false, caught: false, voter: false };
  if (mine.current_role === 'leader') return { answered: true, caught: true, voter: true };
  if (!lead) return { answered: true, caught: false, voter: false };
  const voter = lead.nodes.some((n) => n.id === m.id && n.role !== 'learner');
  return { answered: true, caught: mine.last_applied >= lead.commit_index, voter };
}

/** Restarts a killed master on its data dir; ms until it has caught up and votes. */
async function restartAndCatchUp(m: MasterProc, masters: readonly MasterProc[]): Promise<number> {
  const t0 = performance.now();
  m.restart();
  await waitUntil(
    `${m.name} to catch up after its restart`,
    async () => {
      const s = await caughtUp(m, masters);
      return s.caught && s.voter;
    },
    30_000,
    [m.child],
  );
  return performance.now() - t0;
}

// ------------------------------------------------------------------ c. catch-up of a joiner

async function partCatchup(o: ClusterBenchOptions, r: ClusterResults): Promise<void> {
  log(`c. catch-up: a fourth master joins a cluster holding ${o.catchupTasks.toLocaleString('en-US')} completed tasks`);
  const cluster = await startWeirCluster({
    ...o.setting,
    masterHosts: HOSTS.catchup.masters,
    workerHost: HOSTS.catchup.workers,
  });
  const members = [...cluster.masters];
  try {
    const buildTasksPerS = await buildHistory(cluster.api, o.catchupTasks);
    const leader = await waitForSettledLeader(members, 20_000);
    const history = await historyFigures(cluster, leader);
    r.catchup = {
      ...history,
      completed_tasks: o.catchupTasks,
      build_tasks_per_s: buildTasksPerS,
      join: await joinAndTime(cluster.dir, members, HOSTS.joiner),
    };
    log(`  joiner caught up and voting after ${Math.round(r.catchup.join.total_ms)} ms`);
    // The log may still hold everything (compaction starts past COMPACT_LOG_AFTER applied
    // entries); a fifth master then measures the other path, a snapshot of the state database.
    if (history.commit_index <= COMPACT_LOG_AFTER) {
      const extra = await compactLog(members);
      const now = await historyFigures(cluster, await waitForSettledLeader(members, 20_000));
      const join = await joinAndTime(cluster.dir, members, HOSTS.secondJoiner);
      r.catchup.snapshot_join = {
        ...join,
        extra_tasks: extra,
        commit_index: now.commit_index,
        state_db_bytes: now.state_db_bytes,
      };
      log(`  second joiner (log compacted) caught up and voting after ${Math.round(join.total_ms)} ms`);
    }
  } finally {
    const joiners = members.slice(cluster.masters.length);
    await Promise.all(joiners.map((j) => stopChild(j.child)));
    await Promise.all(joiners.map((j) => j.api.close()));
    await cluster.stop();
  }
}

/** The leader's log and database after the history: what a joining master has to get. */
async function historyFigures(cluster: WeirCluster, leader: MasterProc) {
  const dir = join(cluster.dir, leader.name);
  return {
    commit_index: (await clusterStatus(leader.url))?.commit_index ?? NaN,
    state_db_bytes: sqliteBytes(join(dir, 'state.db')),
    raft_db_bytes: sqliteBytes(join(dir, 'raft.db')),
  };
}

/**
 * Starts a master with an empty data dir on `host`, `--peers` naming every member and
 * itself, and times its catch-up; it stays a member (added to `members`) until the end.
 */
async function joinAndTime(dir: string, members: MasterProc[], host: string): Promise<JoinFigures> {
  const port = await freePortBlock(1, [host]);
  const url = `http://${host}:${port}`;
  log(`  starting ${url} with an empty data dir`);
  const t0 = performance.now();
  const joiner = startMaster(dir, host, port, { peers: [...members.map((m) => m.url), url] });
  members.push(joiner);
  const timing = await timeCatchUp(joiner, members, t0);
  return { ...timing, snapshot_installed: readFileSync(joiner.child.logFile, 'utf8').includes('installed a snapshot') };
}

/**
 * Runs one-task jobs until the leader has applied more than COMPACT_LOG_AFTER entries, so
 * that every master compacts its log; returns the tasks it took. One task per job keeps the
 * cluster near the history's size (each job is a few entries): with jobs of 100, entries grow
 * with how many tasks the leader batches per entry, and the snapshot with them (1 M tasks).
 */
async function compactLog(members: readonly MasterProc[]): Promise<number> {
  const leader = await waitForSettledLeader(members, 20_000);
  let tasks = 0;
  for (let batch = 0; ; batch++) {
    const s = await clusterStatus(leader.url);
    if ((s?.commit_index ?? 0) > COMPACT_LOG_AFTER + COMPACT_MARGIN) return tasks;
    await mapLimit(
      Array.from({ length: 256 }, (_, i) => i),
      16,
      async (i) => {
        const job = await leader.api.call<JobView>('POST', '/api/jobs', noopJob(`top-up-${batch}-${i}`, 1));
        await waitCompleted(leader.api, job.job_id);
      },
    );
    tasks += 256;
  }
}

/** `total` completed no-op tasks as jobs of HISTORY.tasksPerJob; returns tasks/s. */
async function buildHistory(api: Api, total: number): Promise<number> {
  const jobs = Math.ceil(total / HISTORY.tasksPerJob);
  let done = 0;
  const t0 = performance.now();
  await mapLimit(
    Array.from({ length: jobs }, (_, i) => i),
    HISTORY.lanes,
    async (i) => {
      const job = await api.call<JobView>('POST', '/api/jobs', noopJob(`history-${i}`, HISTORY.tasksPerJob));
      await waitCompleted(api, job.job_id);
      if (++done % 20 === 0) log(`  history: ${done}/${jobs} jobs completed`);
    },
  );
  return (jobs * HISTORY.tasksPerJob) / ((performance.now() - t0) / 1000);
}

/**
 * From `t0` (the joiner's spawn): when it first answers, has caught up, is a voter, and
 * both at once. `masters` includes the joiner.
 */
export async function timeCatchUp(
  joiner: MasterProc,
  masters: readonly MasterProc[],
  t0: number,
): Promise<{ answered_ms: number; caught_up_ms: number; voter_ms: number; total_ms: number }> {
  const seen: { answered?: number; caught?: number; voter?: number } = {};
  await waitUntil(
    'the joining master to catch up and become a voter',
    async () => {
      const s = await caughtUp(joiner, masters);
      const now = performance.now() - t0;
      if (s.answered) seen.answered ??= now;
      if (s.caught) seen.caught ??= now;
      if (s.voter) seen.voter ??= now;
      return s.caught && s.voter;
    },
    60_000,
    [joiner.child],
  );
  const total = performance.now() - t0;
  return {
    answered_ms: seen.answered ?? total,
    caught_up_ms: seen.caught ?? total,
    voter_ms: seen.voter ?? total,
    total_ms: total,
  };
}

// ------------------------------------------------------------------ the run

function newResults(o: ClusterBenchOptions): ClusterResults {
  return {
    started_at: new Date().toISOString(),
    duration_s: 0,
    machine: machineInfo(),
    load: { start: loadavg(), end: [] },
    workers: { max_tasks: o.setting.maxTasks, threads: o.setting.threads ?? null },
    notes: [],
    targets: [],
  };
}

/** Closes the figures (duration, load, targets), prints the table and writes the JSON. */
function publish(r: ClusterResults, t0: number): void {
  r.duration_s = (performance.now() - t0) / 1000;
  r.load.end = loadavg();
  r.targets = clusterTargets(r);
  process.stdout.write(`\n${formatClusterReport(r)}\n`);
  log(`\nfigures written to ${writeJson('cluster', r.started_at, r)}`);
}

/**
 * Runs the parts asked for, each on a fresh cluster; a part that fails is noted in the
 * figures and the next one still runs. `sink` receives the figures as they come, so a run
 * stopped at its deadline can still publish what it measured.
 */
export async function runClusterBench(
  opts: Partial<ClusterBenchOptions> = {},
  sink?: { results?: ClusterResults; t0?: number },
): Promise<ClusterResults> {
  const o: ClusterBenchOptions = { ...DEFAULTS, ...opts };
  const t0 = performance.now();
  const r = newResults(o);
  if (sink) Object.assign(sink, { results: r, t0 });
  const parts: [Part, () => Promise<void>][] = [
    ['a', () => partThroughput(o, r)],
    ['b', () => partFailover(o, r, t0)],
    ['c', () => partCatchup(o, r)],
  ];
  for (const [part, run] of parts) {
    if (!o.parts.has(part)) continue;
    try {
      await run();
    } catch (err) {
      const msg = (err as Error).stack ?? String(err);
      log(`part ${part} failed: ${msg}`);
      r.notes.push(`Part ${part} FAILED: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  publish(r, t0);
  return r;
}

// `node dist/bench/cluster-bench.js [options]`: the benchmark on its own.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const sink: { results?: ClusterResults; t0?: number } = {};
  runMain(
    async () => {
      const r = await runClusterBench(parseArgs(process.argv.slice(2)), sink);
      if (r.notes.some((n) => n.includes('FAILED'))) process.exitCode = 1;
    },
    {
      deadlineMs: CLUSTER_DEADLINE_MS,
      onDeadline: () => {
        if (!sink.results) return;
        sink.results.notes.push(`Stopped at the ${CLUSTER_DEADLINE_MS / 60_000}-minute deadline: figures are partial.`);
        publish(sink.results, sink.t0!);
      },
    },
  );
}

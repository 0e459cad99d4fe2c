// Weir's core benchmark (`npm run bench -- core`): throughput and latency of no-op batch tasks on a
// real local cluster, against BullMQ on Redis doing the same work, and against one
// in-process thread pool as the machine's ceiling. Figures go to stdout as a table and to
// bench/results/core-<date>.json.
//
// Options: --max-tasks N   skip the sweep and run the workers with --max-tasks N
//          --threads T     with --max-tasks: the workers' --threads (default: one per slot)
//          --cpu-prof      profile the Weir master and workers (node --cpu-prof) and summarise
//          --skip-bullmq   leave the peer out
//          --cluster       then run the cluster benchmark (cluster-bench.ts) with the
//                          winning worker settings
//          --tls           every Weir node serves https and verifies the others against a
//                          throwaway CA (mutual TLS between nodes; needs openssl), so that
//                          the cost of TLS can be read against a run without it
//          --against DIR   instead, Weir's throughput beside the build in DIR (a checkout with
//                          dist/ built), both clusters up, rounds in turns (throughput-pairs.ts)
//          --turns N       with --against: rounds of each (default 12)
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  REDIS_DURABLE_FLAGS,
  REDIS_FLAGS,
  bullLatencyCall,
  bullThroughputRound,
  ensureRedisServer,
  startBull,
} from './bullmq.js';
import { poolRound, startPool } from './pool.js';
import { runMain } from './main.js';
import { cpuProfArgs, formatProfilesIn } from './profile-summary.js';
import {
  formatReport,
  machineInfo,
  targetsOf,
  writeJson,
  writeResults,
  type Results,
  type SweepRow,
  type LatencyPairs,
  type SystemResult,
} from './report.js';
import {
  FIRST_CALLS,
  LATENCY_WARMUP,
  log,
  pairRatios,
  percentiles,
  positiveInt,
  sampleLatencyInTurn,
  spread,
  TURN_CALLS,
} from './stats.js';
import { CLUSTER_DEADLINE_MS, runClusterBench } from './cluster-bench.js';
import { measureThroughputPairs } from './throughput-pairs.js';
import * as weirBench from './weir.js';
import {
  describeSetting,
  startWeirCluster,
  weirLatencyCall,
  weirThroughputRound,
  type ThroughputShape,
  type WorkerSetting,
} from './weir.js';

/** 10,000 tasks as 100 jobs of 100, at most 16 submits in flight. */
const SHAPE: ThroughputShape = { jobs: 100, tasksPerJob: 100, inFlight: 16 };
const TOTAL = SHAPE.jobs * SHAPE.tasksPerJob;
const ROUNDS = 3;
const LATENCY = { samples: 1000, warmup: LATENCY_WARMUP };
/**
 * Worker settings tried by the sweep, as (--max-tasks, --threads). Slots hide the round trip
 * to the master; threads do the work, and on 2 cores a few threads beat one per slot for
 * no-op tasks. (16, 16) and (128, 128) are the old default: one thread per slot.
 */
const CANDIDATES: WorkerSetting[] = [
  { maxTasks: 16, threads: 2 },
  { maxTasks: 64, threads: 2 },
  { maxTasks: 64, threads: 4 },
  { maxTasks: 128, threads: 2 },
  { maxTasks: 16, threads: 16 },
  { maxTasks: 128, threads: 128 },
];
const SWEEP_ROUNDS = 2;
const BULL = { workers: 2, concurrency: 8 };
const POOL_THREADS = 2;
/** The whole run stops by itself after this long, whatever it is doing. */
const DEADLINE_MS = 7 * 60_000;

interface Options {
  setting?: WorkerSetting;
  cpuProf: boolean;
  skipBullmq: boolean;
  cluster: boolean;
  tls: boolean;
  against?: string;
  turns: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { cpuProf: false, skipBullmq: false, cluster: false, tls: false, turns: 12 };
  let maxTasks: number | undefined;
  let threads: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--cpu-prof') o.cpuProf = true;
    else if (a === '--skip-bullmq') o.skipBullmq = true;
    else if (a === '--cluster') o.cluster = true;
    else if (a === '--tls') o.tls = true;
    else if (a === '--max-tasks') maxTasks = positiveInt(a, argv[++i]);
    else if (a === '--threads') threads = positiveInt(a, argv[++i]);
    else if (a === '--turns') o.turns = positiveInt(a, argv[++i]);
    else if (a === '--against') {
      const dir = argv[++i];
      if (!dir) throw new Error('--against takes the directory of another build of Weir');
      o.against = dir;
    } else {
      throw new Error(
        `unknown option '${a}' (known: --max-tasks N, --threads T, --cpu-prof, --skip-bullmq, --cluster, --tls, --against DIR, --turns N)`,
      );
    }
  }
  if (threads !== undefined && maxTasks === undefined) throw new Error('--threads goes with --max-tasks');
  if (maxTasks !== undefined) o.setting = { maxTasks, ...(threads === undefined ? {} : { threads }) };
  return o;
}

/**
 * Untimed rounds before the measured ones, for every system alike: by then each has its hot
 * paths JIT-compiled and its connections and pools at size (the sweep, which only ranks
 * settings, warms up once).
 */
const WARMUP_ROUNDS = 3;

/** Throughput rounds after `warmups` untimed warm-up rounds. */
async function rounds(
  n: number,
  round: (label: string) => Promise<number>,
  what: string,
  warmups = WARMUP_ROUNDS,
): Promise<number[]> {
  for (let i = 0; i < warmups; i++) await round(`warmup${i}`);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await round(`r${i}`));
    log(`  ${what} round ${i + 1}/${n}: ${Math.round(out[i]!)} tasks/s`);
  }
  return out;
}

/**
 * Tries each (--max-tasks, --threads) on a fresh cluster and keeps the fastest (mean of its
 * rounds): more slots per worker hide the round trip to the master, while threads beyond
 * the 2 cores cost more than they give.
 */
async function sweepSettings(tls: boolean): Promise<{ best: WorkerSetting; sweep: SweepRow[] }> {
  const sweep: SweepRow[] = [];
  for (const setting of CANDIDATES) {
    log(`Weir sweep: ${describeSetting(setting)}`);
    const cluster = await startWeirCluster({ ...setting, tls });
    try {
      const runs = await rounds(SWEEP_ROUNDS, (l) => weirThroughputRound(cluster.api, SHAPE, `sweep-${l}`), 'sweep', 1);
      sweep.push({ max_tasks: setting.maxTasks, threads: setting.threads ?? null, tasks_per_s: runs });
    } finally {
      await cluster.stop();
    }
  }
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const best = sweep.reduce((a, b) => (mean(b.tasks_per_s) > mean(a.tasks_per_s) ? b : a));
  return { best: { maxTasks: best.max_tasks, ...(best.threads === null ? {} : { threads: best.threads }) }, sweep };
}

/**
 * A system through its throughput rounds, still running: its latency is taken afterwards,
 * in turn with the others' (latencyInTurn).
 */
interface Running<R> {
  result: R;
  /** One one-task job, submitted and waited for. */
  once: () => Promise<void>;
  stop: () => Promise<void>;
}

async function benchWeir(o: Options): Promise<Running<Results['weir']> & { profDir?: string }> {
  const { best: setting, sweep } = o.setting ? { best: o.setting, sweep: [] } : await sweepSettings(o.tls);
  const over = o.tls ? ', over TLS' : '';
  log(`Weir: 1 master + 2 workers, ${describeSetting(setting)}${over}`);
  const profDir = o.cpuProf ? mkdtempSync(join(tmpdir(), 'weir-bench-prof-')) : undefined;
  const cluster = await startWeirCluster({
    ...setting,
    ...(profDir ? { nodeArgs: cpuProfArgs(profDir) } : {}),
    tls: o.tls,
  });
  try {
    const runs = await rounds(ROUNDS, (l) => weirThroughputRound(cluster.api, SHAPE, l), 'Weir');
    return {
      result: {
        label: `Weir (1 master, 2 workers × ${describeSetting(setting)}${over})`,
        throughput: spread(runs),
        max_tasks: setting.maxTasks,
        threads: setting.threads ?? null,
        sweep,
        tls: o.tls,
      },
      once: weirLatencyCall(cluster.api),
      stop: () => cluster.stop(),
      ...(profDir ? { profDir } : {}),
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** BullMQ on Redis in memory, or (`durable`) with every write fsynced before it is answered. */
async function benchBullmq(durable: boolean): Promise<Running<Exclude<Results['bullmq'], { skipped: string }>>> {
  const flags = durable ? REDIS_DURABLE_FLAGS : REDIS_FLAGS;
  log(
    `BullMQ: redis-server ${flags.map((f) => f || "''").join(' ')}, ${BULL.workers} worker processes × concurrency ${BULL.concurrency}`,
  );
  const bull = await startBull({ ...BULL, durable });
  try {
    const runs = await rounds(ROUNDS, () => bullThroughputRound(bull.queue, SHAPE), 'BullMQ');
    const call = await bullLatencyCall(bull);
    return {
      result: {
        label: `BullMQ (Redis ${durable ? 'appendfsync always' : 'in memory'}, ${BULL.workers} procs × concurrency ${BULL.concurrency})`,
        throughput: spread(runs),
        redis: bull.version,
        redis_flags: flags,
      },
      once: call.once,
      stop: async () => {
        await call.close();
        await bull.stop();
      },
    };
  } catch (err) {
    await bull.stop();
    throw err;
  }
}

/**
 * Every system's one-task latency, taken in turn (sampleLatencyInTurn) once all have run
 * their throughput rounds, after the same warm-up for each; Weir's pair by pair against
 * each other system.
 */
async function latencyInTurn(systems: readonly Running<SystemResult>[]): Promise<LatencyPairs> {
  log(
    `Latency: ${LATENCY.samples} one-task jobs of each system after ${LATENCY.warmup.toLocaleString('en-US')} of warm-up, the systems in turns of ${TURN_CALLS}`,
  );
  const sampled = await sampleLatencyInTurn(
    systems.map((s) => s.once),
    LATENCY.samples,
    LATENCY.warmup,
  );
  systems.forEach((s, i) => {
    s.result.latency = percentiles(sampled[i]!.warm);
    s.result.latency_first = percentiles(sampled[i]!.first);
  });
  const weir = sampled[0]!.blocks;
  return Object.fromEntries(systems.slice(1).map((s, i) => [s.result.label, pairRatios(weir, sampled[i + 1]!.blocks)]));
}

async function benchPool(): Promise<SystemResult> {
  log(`Pool: piscina, ${POOL_THREADS} threads, in-process`);
  const pool = startPool(POOL_THREADS);
  try {
    const runs = await rounds(ROUNDS, () => poolRound(pool, TOTAL), 'pool');
    return { label: `piscina pool (${POOL_THREADS} threads, in-process)`, throughput: spread(runs) };
  } finally {
    await pool.destroy();
  }
}

interface Measured {
  weir: Results['weir'];
  bullmq: Results['bullmq'];
  bullmq_durable: Results['bullmq'];
  pool: SystemResult;
}

function assemble(m: Measured, startedAt: Date, t0: number, loadAtStart: number, latencyPairs: LatencyPairs): Results {
  const over = (b: Results['bullmq'], of: (s: SystemResult) => number | undefined) => {
    if ('skipped' in b) return null;
    const w = of(m.weir);
    const v = of(b);
    return w === undefined || v === undefined ? null : w / v;
  };
  const p50 = (s: SystemResult) => s.latency?.p50;
  const ratios = {
    weir_over_bullmq: over(m.bullmq, (s) => s.throughput.median),
    weir_over_bullmq_durable: over(m.bullmq_durable, (s) => s.throughput.median),
    weir_over_pool: m.weir.throughput.median / m.pool.throughput.median,
    p50_weir_over_bullmq: over(m.bullmq, p50),
    p50_weir_over_bullmq_durable: over(m.bullmq_durable, p50),
  };
  const results: Results = {
    started_at: startedAt.toISOString(),
    duration_s: (performance.now() - t0) / 1000,
    load: { start: loadAtStart, end: loadavg()[0]! },
    machine: machineInfo(),
    workload: {
      description: `${TOTAL.toLocaleString('en-US')} no-op tasks as ${SHAPE.jobs} jobs × ${SHAPE.tasksPerJob} tasks (≤ ${SHAPE.inFlight} submits in flight), ${ROUNDS} rounds after ${WARMUP_ROUNDS} warm-up rounds; latency: ${LATENCY.samples} one-task jobs of each system, one at a time, after ${LATENCY.warmup.toLocaleString('en-US')} of each as warm-up, the systems taking turns of ${TURN_CALLS} jobs`,
      jobs: SHAPE.jobs,
      tasks_per_job: SHAPE.tasksPerJob,
      submits_in_flight: SHAPE.inFlight,
      rounds: ROUNDS,
      latency_samples: LATENCY.samples,
      latency_warmup: LATENCY.warmup,
      latency_first: Math.min(FIRST_CALLS, LATENCY.warmup),
    },
    ...m,
    latency_pairs: latencyPairs,
    ratios,
    targets: [],
  };
  results.targets = targetsOf(results);
  return results;
}

/** Throughput beside another build, rounds in turns (`--against DIR`). */
async function pairs(o: Options, against: string): Promise<void> {
  const startedAt = new Date().toISOString();
  const setting = o.setting ?? { maxTasks: 128, threads: 2 };
  log(
    `Weir throughput beside ${against}: a cluster of each (1 master, 2 workers, ${describeSetting(setting)}), ` +
      `${o.turns} rounds of each in turns after ${WARMUP_ROUNDS} warm-up rounds`,
  );
  const f = await measureThroughputPairs(weirBench, against, {
    turns: o.turns,
    warmups: WARMUP_ROUNDS,
    shape: SHAPE,
    ...setting,
  });
  const r = f.pair_ratio;
  const tps = (xs: number[]) => `${Math.round(percentiles(xs).p50).toLocaleString('en-US')} tasks/s`;
  log(
    `this code ${tps(f.this_code)}, ${against} ${tps(f.other_code)} (medians); this / that turn by turn ` +
      `${r.p50.toFixed(2)}× (quartiles ${r.p25.toFixed(2)}–${r.p75.toFixed(2)}, geometric mean ${r.geomean.toFixed(2)}×), ` +
      `faster in ${(f.faster_share * 100).toFixed(0)}% of turns`,
  );
  log(`figures written to ${writeJson('core-pairs', startedAt, { started_at: startedAt, setting, ...f })}`);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.against !== undefined) return pairs(o, o.against);
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = loadavg()[0]!;
  // First, so that an install's output comes before any figure and a refusal is known early.
  const redis = o.skipBullmq ? { ok: false as const, reason: '--skip-bullmq' } : await ensureRedisServer();
  if (!redis.ok) log(`BullMQ will be skipped: ${redis.reason}`);
  // Each system runs its throughput rounds while the ones before it stand idle, then their
  // latencies are taken in turn, and all stop before the pool's rounds.
  const weir = await benchWeir(o);
  const running: Running<SystemResult>[] = [weir];
  let bullmq: Results['bullmq'] = { skipped: redis.ok ? '' : redis.reason };
  let bullmqDurable: Results['bullmq'] = bullmq;
  let latencyPairs: LatencyPairs;
  try {
    if (redis.ok) {
      const b = await benchBullmq(false);
      running.push(b);
      bullmq = b.result;
      const d = await benchBullmq(true);
      running.push(d);
      bullmqDurable = d.result;
    }
    latencyPairs = await latencyInTurn(running);
  } finally {
    for (const r of running) await r.stop();
  }
  if (weir.profDir) log(formatProfilesIn(weir.profDir));
  const pool = await benchPool();
  const results = assemble(
    { weir: weir.result, bullmq, bullmq_durable: bullmqDurable, pool },
    startedAt,
    t0,
    loadAtStart,
    latencyPairs,
  );
  process.stdout.write(`\n${formatReport(results)}\n`);
  log(`\nfigures written to ${writeResults(results)}`);
  if (o.cluster) await runClusterBench({ setting: settingOf(results.weir) });
}

const settingOf = (w: Results['weir']): WorkerSetting => ({
  maxTasks: w.max_tasks,
  ...(w.threads === null ? {} : { threads: w.threads }),
});

// With --cluster the cluster benchmark's own limit comes on top.
runMain(main, { deadlineMs: DEADLINE_MS + (process.argv.includes('--cluster') ? CLUSTER_DEADLINE_MS : 0) });

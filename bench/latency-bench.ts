// Weir's latency benchmark (`npm run bench -- latency`): where a one-task job's round trip
// goes. One job at a time, on one master and on three, each process of the cluster records a
// wall-clock timestamp at every step of the job's path (WEIR_TRACE, src/common/trace.ts); the
// client adds its own at submit and at completion. Prints the median and p99 of each step's
// time from the client's submit, and of the step before it to it; then the round trip of the
// SDK's run() (submit, wait, results), the one users time.
//
// Options: --samples N   timed jobs per cluster (default 300)
//          --warmup N    untimed jobs before them (default 4,000, see LATENCY_WARMUP in
//                        stats.ts); the first 500 are timed as the latency of a cluster just
//                        started
//          --masters 1|3 only that cluster (default both)
//          --gc          also trace garbage collections (WEIR_TRACE_GC), to see how many of the
//                        slowest jobs met one; observing GC slows every step a little
//          --cpu-prof    profile every process of the cluster (node --cpu-prof, sampled each
//                        100 µs) and summarise where each one spent its time: what a job
//                        costs each hop in CPU, beside what it costs in time; the profiles
//                        stay in the directory printed
//          --against DIR instead, this code and the build in DIR (a checkout with dist/ built,
//                        e.g. a worktree of main) side by side, jobs alternating between
//                        them: the ratio turn by turn (latency-pairs.ts)
//          --secret      clusters with a JWT_SECRET (a random one) and requests with tokens,
//                        as a cluster is run for real: every request's token is checked
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeirClient } from '../src/client/sdk.js';
import { runMain } from './main.js';
import { makeTempDir } from './procs.js';
import { writeJson, table } from './report.js';
import { FIRST_CALLS, LATENCY_WARMUP, log, percentiles, positiveInt, quantile } from './stats.js';
import * as weir from './weir.js';
import { noopJob, startWeirCluster, submitCompleted } from './weir.js';
import { measurePairs } from './latency-pairs.js';
import { cpuProfArgs, formatProfilesIn } from './profile-summary.js';

/** The steps of one job's path, in the order a job takes them. */
const STEPS = [
  'submit received',
  'submit persisted',
  'submit applied',
  'assign sent',
  'worker received',
  'task sent to executor',
  'task finished',
  'report sent',
  'report received',
  'completion proposed',
  'completion persisted',
  'completion applied',
  'wait answered',
  'client completed',
] as const;
type Step = (typeof STEPS)[number];

interface TraceLine {
  k: string;
  s: string;
  t: number;
  /** A garbage collection's duration, ms (`gc` lines). */
  d?: number;
  pid: string;
}

/** Clear of the addresses the integration tests and the other benchmarks use. */
const HOSTS = { 1: ['127.0.0.250'], 3: ['127.0.0.251', '127.0.0.252', '127.0.0.253'] } as const;

interface Options {
  samples: number;
  masters: (1 | 3)[];
  gc: boolean;
  cpuProf: boolean;
  warmup: number;
  against?: string;
  secret: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    samples: 300,
    masters: [1, 3],
    gc: false,
    cpuProf: false,
    warmup: LATENCY_WARMUP,
    secret: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--samples') o.samples = positiveInt(a, argv[++i]);
    else if (a === '--warmup') o.warmup = positiveInt(a, argv[++i]);
    else if (a === '--masters') {
      const n = Number(argv[++i]);
      if (n !== 1 && n !== 3) throw new Error('--masters takes 1 or 3');
      o.masters = [n];
    } else if (a === '--gc') o.gc = true;
    else if (a === '--cpu-prof') o.cpuProf = true;
    else if (a === '--secret') o.secret = true;
    else if (a === '--against') {
      const dir = argv[++i];
      if (!dir) throw new Error('--against takes the directory of another build of Weir');
      o.against = dir;
    } else
      throw new Error(
        `unknown option '${a}' (known: --samples N, --warmup N, --masters 1|3, --gc, --cpu-prof, --against DIR, --secret)`,
      );
  }
  return o;
}

const wallNow = () => performance.timeOrigin + performance.now();

function readTraces(dir: string): TraceLine[] {
  const lines: TraceLine[] = [];
  for (const f of readdirSync(dir)) {
    const pid = f.replace(/\.jsonl$/, '');
    for (const l of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (l) lines.push({ ...(JSON.parse(l) as Omit<TraceLine, 'pid'>), pid });
    }
  }
  return lines.sort((a, b) => a.t - b.t);
}

/** The leader: the master whose routes took the submits. */
const leaderPidOf = (lines: readonly TraceLine[]) => lines.find((l) => l.s === 'submit received')?.pid;

/** When the process `pid` passed the consensus log's step `step` (its `log` lines), in order. */
const logTimes = (lines: readonly TraceLine[], pid: string | undefined, step: string) =>
  lines.filter((l) => l.k === 'log' && l.pid === pid && l.s === step).map((l) => l.t);

/** The first time at or after `t` in `sorted` (times, ascending, as the trace lines are). */
function firstAtOrAfter(sorted: readonly number[], t: number | undefined): number | undefined {
  if (t === undefined) return undefined;
  let [lo, hi] = [0, sorted.length];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo];
}

/**
 * Each job's step times, from its trace lines and the client's. The log's own steps carry no
 * job: with one job at a time, the leader's first write after a proposal is that proposal's.
 */
function stepTimes(lines: readonly TraceLine[], client: Map<string, { sent: number; done: number }>) {
  const byJob = new Map<string, Map<string, number>>();
  for (const l of lines) {
    if (l.k === 'log' || l.k === 'gc') continue;
    let m = byJob.get(l.k);
    if (!m) byJob.set(l.k, (m = new Map()));
    if (!m.has(l.s)) m.set(l.s, l.t);
  }
  const writes = logTimes(lines, leaderPidOf(lines), 'persisted');
  const firstAfter = (t: number | undefined) => firstAtOrAfter(writes, t);
  const out: Map<Step, number>[] = [];
  for (const [jobId, c] of client) {
    const m = byJob.get(jobId);
    if (!m) continue;
    const at = new Map<Step, number>();
    for (const s of STEPS) {
      const t = m.get(s);
      if (t !== undefined) at.set(s, t - c.sent);
    }
    const sp = firstAfter(m.get('submit received'));
    const cp = firstAfter(m.get('completion proposed'));
    if (sp !== undefined) at.set('submit persisted', sp - c.sent);
    if (cp !== undefined) at.set('completion persisted', cp - c.sent);
    at.set('client completed', c.done - c.sent);
    out.push(at);
  }
  return out;
}

/**
 * On several masters, where the completion's entry spends its time between its proposal and
 * its commit, ms after the proposal: the log's steps carry no job, so with one job at a time
 * each is the first of its kind after the proposal (a follower's, after it received the entry).
 */
function replicationSteps(
  lines: readonly TraceLine[],
  timed: ReadonlyMap<string, unknown>,
): Record<string, { p50: number; p99: number }> | undefined {
  const leaderPid = leaderPidOf(lines);
  const log = (pid: string | undefined, step: string) => logTimes(lines, pid, step);
  const followers = [...new Set(lines.filter((l) => l.s === 'append received').map((l) => l.pid))];
  if (!leaderPid || followers.length === 0) return undefined;
  const own = {
    sent: log(leaderPid, 'append sent'),
    wrote: log(leaderPid, 'persisted'),
    answer: log(leaderPid, 'ack received'),
    committed: log(leaderPid, 'committed'),
  };
  const theirs = followers.map((pid) => ({
    got: log(pid, 'append received'),
    wrote: log(pid, 'persisted'),
    answered: log(pid, 'ack sent'),
  }));
  // Each step's times, in the order the steps happen (the order they are first set in).
  const at = new Map<string, number[]>();
  for (const l of lines) {
    if (l.s !== 'completion proposed' || !timed.has(l.k)) continue;
    const t0 = l.t;
    const first = theirs
      .map((f) => ({ f, got: firstAtOrAfter(f.got, t0) }))
      .filter((x) => x.got !== undefined)
      .sort((a, b) => a.got! - b.got!)[0];
    const wrote = first && firstAtOrAfter(first.f.wrote, first.got);
    const steps: [string, number | undefined][] = [
      ['leader sent the entry', firstAtOrAfter(own.sent, t0)],
      ['first follower has it', first?.got],
      ['first follower wrote it', wrote],
      ['first follower answered', first && firstAtOrAfter(first.f.answered, wrote)],
      ['leader wrote it', firstAtOrAfter(own.wrote, t0)],
      ['leader has an answer', firstAtOrAfter(own.answer, t0)],
      ['committed', firstAtOrAfter(own.committed, t0)],
    ];
    for (const [s, t] of steps) {
      if (!at.has(s)) at.set(s, []);
      if (t !== undefined) at.get(s)!.push(t - t0);
    }
  }
  return Object.fromEntries(
    [...at].map(([s, v]) => {
      const p = percentiles(v);
      return [s, { p50: p.p50, p99: p.p99 }];
    }),
  );
}

function stepTable(jobs: Map<Step, number>[]): { rows: string[][]; figures: Record<string, unknown> } {
  const rows: string[][] = [];
  const figures: Record<string, unknown> = {};
  let prev: Step | undefined;
  for (const s of STEPS) {
    const at = jobs.map((j) => j.get(s)).filter((x): x is number => x !== undefined);
    if (at.length === 0) continue;
    const gaps = prev ? jobs.flatMap((j) => (j.has(s) && j.has(prev!) ? [j.get(s)! - j.get(prev!)!] : [])) : at;
    const a = percentiles(at);
    const g = percentiles(gaps);
    figures[s] = { at_p50: a.p50, at_p99: a.p99, step_p50: g.p50, step_p99: g.p99, samples: at.length };
    rows.push([s, a.p50.toFixed(2), a.p99.toFixed(2), g.p50.toFixed(3), g.p99.toFixed(3)]);
    prev = s;
  }
  return { rows, figures };
}

/**
 * Where the slowest jobs lost their time: for the jobs at or above the p95 round trip, each
 * step's mean excess over that step's median, largest first — a tail spread over every step
 * (the machine's run queue) reads differently from one step's outliers (an fsync, a timer).
 */
function tailSteps(jobs: Map<Step, number>[]): { step: Step; excess_ms: number; share: number }[] {
  const total = (j: Map<Step, number>) => j.get('client completed') ?? 0;
  const cut = quantile(
    jobs.map(total).sort((a, b) => a - b),
    0.95,
  );
  const slow = jobs.filter((j) => total(j) >= cut);
  const gap = (j: Map<Step, number>, i: number) => {
    const s = STEPS[i]!;
    const p = STEPS.slice(0, i).findLast((x) => j.has(x));
    return j.has(s) ? j.get(s)! - (p ? j.get(p)! : 0) : undefined;
  };
  const out = STEPS.map((step, i) => {
    const all = jobs.map((j) => gap(j, i)).filter((x): x is number => x !== undefined);
    const med = quantile(
      [...all].sort((a, b) => a - b),
      0.5,
    );
    const ex = slow.map((j) => gap(j, i)).filter((x): x is number => x !== undefined);
    return { step, excess_ms: ex.length ? ex.reduce((a, x) => a + x - med, 0) / ex.length : 0 };
  });
  const sum = out.reduce((a, x) => a + Math.max(0, x.excess_ms), 0) || 1;
  return out.map((x) => ({ ...x, share: Math.max(0, x.excess_ms) / sum })).sort((a, b) => b.excess_ms - a.excess_ms);
}

/**
 * Garbage collection in any of the cluster's processes during a job's round trip: the mean
 * pause time inside the window of the slowest 5% of jobs, and of the others.
 */
function gcInJobs(lines: readonly TraceLine[], client: Map<string, { sent: number; done: number }>) {
  const gcs = lines.filter((l) => l.k === 'gc');
  const windows = [...client.values()].sort((a, b) => a.done - a.sent - (b.done - b.sent));
  const cut = Math.floor(windows.length * 0.95);
  const pause = (w: { sent: number; done: number }) =>
    gcs.reduce((a, g) => a + (g.t < w.done && g.t + (g.d ?? 0) > w.sent ? (g.d ?? 0) : 0), 0);
  const mean = (ws: { sent: number; done: number }[]) => ws.reduce((a, w) => a + pause(w), 0) / (ws.length || 1);
  return {
    gc_ms_in_slowest_5pct: mean(windows.slice(cut)),
    gc_ms_in_others: mean(windows.slice(0, cut)),
    slowest_with_gc: windows.slice(cut).filter((w) => pause(w) > 0).length,
    slowest: windows.length - cut,
  };
}

/**
 * CPU time of each process of the cluster, and of this one (the client), over the timed jobs
 * (the bench's trace points included): with one job at a time, a sum over the processes above
 * what the machine's cores give in a job's time is a floor no change of the critical path goes
 * below.
 */
class CpuPerJob {
  private readonly parts: { role: string; read: () => number }[];
  private before: number[] = [];

  constructor(cluster: weir.WeirCluster) {
    this.parts = [
      ...weir.clusterCpu(cluster),
      {
        role: 'client',
        read: () => {
          const u = process.cpuUsage();
          return (u.user + u.system) / 1e6;
        },
      },
    ];
  }

  start(): void {
    this.before = this.parts.map((p) => p.read());
  }

  /** Milliseconds of CPU a job, by process, their total, and the machine's cores. */
  stop(jobs: number): { by_process_ms: Record<string, number>; total_ms: number; cores: number } {
    const by = this.parts.map((p, i) => [p.role, ((p.read() - this.before[i]!) * 1000) / jobs] as const);
    const total = by.reduce((n, [, ms]) => n + ms, 0);
    return {
      by_process_ms: Object.fromEntries(by.map(([r, ms]) => [r, round3(ms)])),
      total_ms: round3(total),
      cores: availableParallelism(),
    };
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

async function measure(masters: 1 | 3, o: Options) {
  const traceDir = makeTempDir('weir-trace-');
  process.env.WEIR_TRACE = traceDir;
  if (o.gc) process.env.WEIR_TRACE_GC = '1';
  const hosts = HOSTS[masters];
  // Kept after the run, for a closer look (`node dist/bench/profile-summary.js FILE`, DevTools).
  const profDir = o.cpuProf ? mkdtempSync(join(tmpdir(), 'weir-latency-prof-')) : undefined;
  const cluster = await startWeirCluster({
    maxTasks: 16,
    threads: 2,
    masterHosts: [...hosts],
    workerHost: hosts[0],
    ...(profDir ? { nodeArgs: (name: string) => [...cpuProfArgs(profDir)(name), '--cpu-prof-interval=100'] } : {}),
  });
  delete process.env.WEIR_TRACE;
  delete process.env.WEIR_TRACE_GC;
  const client = new Map<string, { sent: number; done: number }>();
  const sdk = new WeirClient({ masters: [cluster.api.origin] });
  try {
    const warmup = o.warmup;
    const first: number[] = [];
    const cpu = new CpuPerJob(cluster);
    for (let i = 0; i < warmup + o.samples; i++) {
      if (i === warmup) cpu.start();
      // The submit's answer waits for the job (`?wait_ms`): one round trip, not a submit and a poll.
      const sent = wallNow();
      const job = await submitCompleted(cluster.api, noopJob(`lat-${i}`, 1));
      if (i >= warmup) client.set(job.job_id, { sent, done: wallNow() });
      else if (i < FIRST_CALLS) first.push(wallNow() - sent);
    }
    const cpuPerJob = cpu.stop(o.samples);
    // run()'s own part (the SDK's client, the results page) warms up as long: after a tenth
    // as many, run() took 2.25 ms p50 where submit → completed took 1.76; after as many, 1.90.
    const run: number[] = [];
    for (let i = 0; i < warmup + o.samples; i++) {
      const t0 = performance.now();
      const r = await sdk.run({ name: `run-${i}`, config: { operation: 'noop', task_count: 1 } });
      if (r.job.status !== 'completed') throw new Error(`run() ended ${r.job.status}`);
      if (i >= warmup) run.push(performance.now() - t0);
    }
    return {
      run: percentiles(run),
      first: percentiles(first),
      cpuPerJob,
      traceDir,
      profDir,
      client,
      stop: cluster.stop,
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  } finally {
    await sdk.close();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  if (o.secret) {
    // The clusters' secret (bench/weir.ts), and the SDK's: it mints its tokens from JWT_SECRET.
    const secret = randomBytes(32).toString('hex');
    process.env.WEIR_BENCH_SECRET = secret;
    process.env.JWT_SECRET = secret;
    log('every cluster runs with a JWT_SECRET, and every request carries a token (--secret)');
  }
  const figures: Record<string, unknown> = {};
  if (o.against !== undefined) return pairs(o, o.against, startedAt);
  for (const masters of o.masters) {
    log(`Weir latency: ${masters} master(s), 2 workers, ${o.samples} one-task jobs one at a time`);
    const r = await measure(masters, o);
    // The nodes write their traces as they stop.
    await r.stop();
    const traces = readTraces(r.traceDir);
    const jobs = stepTimes(traces, r.client);
    const gc = gcInJobs(traces, r.client);
    const { rows, figures: steps } = stepTable(jobs);
    if (r.profDir) {
      log(formatProfilesIn(r.profDir));
      log(`the profiles are kept in ${r.profDir}`);
    }
    const total = jobs.map((j) => j.get('client completed')!).sort((a, b) => a - b);
    log(
      `\n${masters} master(s): submit → completed p50 ${quantile(total, 0.5).toFixed(2)} ms, p99 ${quantile(total, 0.99).toFixed(2)} ms` +
        ` (${jobs.length} jobs after ${o.warmup.toLocaleString('en-US')} warm-up); run() (submit, wait, results) p50 ${r.run.p50.toFixed(2)} ms, p99 ${r.run.p99.toFixed(2)} ms` +
        `\nthe first ${r.first.samples} jobs after the cluster started: p50 ${r.first.p50.toFixed(2)} ms, p99 ${r.first.p99.toFixed(2)} ms`,
    );
    log(table([['step', 'at p50 ms', 'at p99 ms', 'step p50 ms', 'step p99 ms'], ...rows], 1));
    const replication = masters > 1 ? replicationSteps(traces, r.client) : undefined;
    if (replication) {
      log(
        "the completion's entry, from its proposal (ms; each step the first of its kind after it):\n" +
          table(
            [
              ['step', 'p50 ms', 'p99 ms'],
              ...Object.entries(replication).map(([s, p]) => [s, p.p50.toFixed(2), p.p99.toFixed(2)]),
            ],
            1,
          ),
      );
    }
    const c = r.cpuPerJob;
    log(
      `CPU a job: ${Object.entries(c.by_process_ms)
        .map(([role, ms]) => `${role} ${ms.toFixed(2)}`)
        .join(', ')} ms; ${c.total_ms.toFixed(2)} ms in all, on ${c.cores} cores: ` +
        `${(c.total_ms / c.cores).toFixed(2)} ms of a job's time if every core worked all of it`,
    );
    const tail = tailSteps(jobs);
    log(
      `slowest 5%: mean excess over each step's median — ${tail
        .slice(0, 5)
        .map((t) => `${t.step} ${t.excess_ms.toFixed(2)} ms (${(t.share * 100).toFixed(0)}%)`)
        .join(', ')}`,
    );
    if (o.gc)
      log(
        `garbage collection: ${gc.slowest_with_gc} of the ${gc.slowest} slowest jobs overlap one, ` +
          `${gc.gc_ms_in_slowest_5pct.toFixed(2)} ms of pauses in each on average (others ${gc.gc_ms_in_others.toFixed(2)} ms)`,
      );
    figures[`${masters}_master${masters > 1 ? 's' : ''}`] = {
      submit_to_completed: percentiles(total),
      first_jobs: r.first,
      run: r.run,
      cpu_per_job: c,
      steps,
      ...(replication ? { replication } : {}),
      tail_excess: tail,
      ...(o.gc ? { gc } : {}),
    };
  }
  log(
    '\n"at": time from the client sending the submit; "step": from the step above. One job at a time; ' +
      "the log's writes are the leader's first after the proposal. Times across processes are wall-clock on one machine.",
  );
  log(
    `figures written to ${writeJson('latency', startedAt, { started_at: startedAt, samples: o.samples, warmup: o.warmup, secret: o.secret, ...figures })}`,
  );
}

async function pairs(o: Options, against: string, startedAt: string): Promise<void> {
  const figures: Record<string, unknown> = {};
  for (const masters of o.masters) {
    log(
      `Weir latency side by side with ${against}: ${masters} master(s) each, ${o.samples} one-task jobs of each, in turns`,
    );
    const f = await measurePairs(weir, masters, HOSTS[masters], o.samples, o.warmup, against);
    const ms = (p: { p50: number; p99: number }) => `p50 ${p.p50.toFixed(2)} ms, p99 ${p.p99.toFixed(2)} ms`;
    log(
      `${masters} master(s): this code ${ms(f.this_code)}; ${against} ${ms(f.other_code)}; ` +
        `this / that turn by turn ${f.pair_ratio.p50.toFixed(2)}× (quartiles ${f.pair_ratio.p25.toFixed(2)}–${f.pair_ratio.p75.toFixed(2)}), ` +
        `faster in ${(f.faster_share * 100).toFixed(0)}% of turns`,
    );
    const c = f.cpu_per_job;
    const r = (x: { all: number; min: number; max: number }) =>
      `${x.all.toFixed(2)}× (quarters ${x.min.toFixed(2)}–${x.max.toFixed(2)})`;
    log(
      `${masters} master(s), CPU a job in those turns: masters this ${c.this_code.masters_ms.toFixed(2)} ms, that ` +
        `${c.other_code.masters_ms.toFixed(2)} ms, ${r(c.masters_ratio)}; workers with executors this ` +
        `${c.this_code.workers_ms.toFixed(2)} ms, that ${c.other_code.workers_ms.toFixed(2)} ms, ${r(c.workers_ratio)}`,
    );
    log(
      `${masters} master(s), run(): this code ${ms(f.run.this_code)}; ${against} ${ms(f.run.other_code)}; ` +
        `this / that turn by turn ${f.run.pair_ratio.p50.toFixed(2)}× (quartiles ${f.run.pair_ratio.p25.toFixed(2)}–${f.run.pair_ratio.p75.toFixed(2)}), ` +
        `faster in ${(f.run.faster_share * 100).toFixed(0)}% of turns`,
    );
    figures[`${masters}_master${masters > 1 ? 's' : ''}`] = f;
  }
  log(
    `figures written to ${writeJson('latency-pairs', startedAt, { started_at: startedAt, samples: o.samples, secret: o.secret, ...figures })}`,
  );
}

runMain(main, { deadlineMs: 15 * 60_000 });

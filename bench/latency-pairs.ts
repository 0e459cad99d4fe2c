// The latency benchmark's side-by-side mode (`npm run bench -- latency --against DIR`): a
// cluster of this code and one of another build (DIR: a checkout of Weir with dist/ built,
// such as a worktree of main) run at once, and one-task jobs go to each in turns of 50, the
// side going first alternating. On a machine shared with other work the load drifts by
// several times within a minute; turns of one round meet the same load, so the ratio of their
// medians says what the code changed where two runs one after the other mostly say how the
// load moved. Then the same for the SDK's run() (submit, wait, results), each side through
// its own build's SDK.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Sdk from '../src/client/sdk.js';
import { pairRatios, percentiles, sampleLatencyInTurn } from './stats.js';
import type * as Weir from './weir.js';

/** Clear of the addresses the integration tests and the other benchmarks use (this: HOSTS in latency-bench.ts). */
const OTHER_HOSTS = { 1: ['127.0.0.254'], 3: ['127.0.0.247', '127.0.0.248', '127.0.0.249'] } as const;

export interface Paired {
  this_code: ReturnType<typeof percentiles>;
  other_code: ReturnType<typeof percentiles>;
  /** This code's time over the other's, turn by turn (the medians of turns of the same round): the quartiles. */
  pair_ratio: { p25: number; p50: number; p75: number };
  /** How many turns this code won. */
  faster_share: number;
}

/** CPU a job (ms) of one side's processes over its timed turns. */
export interface SideCpu {
  masters_ms: number;
  /** The workers with their executors. */
  workers_ms: number;
}

/** Each side's CPU a job over the timed submit → completed turns, and this side's over the other's. */
export interface PairedCpu {
  this_code: SideCpu;
  other_code: SideCpu;
  /** Masters' CPU, this over that: over all timed turns, and the least and most of its four quarters. */
  masters_ratio: { all: number; min: number; max: number };
  workers_ratio: { all: number; min: number; max: number };
}

/** Submit → completed pairs, and run() pairs. */
export interface PairedFigures extends Paired {
  against: string;
  cpu_per_job: PairedCpu;
  run: Paired;
}

/**
 * Each side's CPU through its own turns, read from /proc as a turn starts and ends (outside
 * its timed calls): with both clusters up, the CPU a change saves is told apart from how the
 * machine's speed moved, as the latencies of the same turns are. The other side idles
 * meanwhile; its timers' few ticks count to neither.
 */
class CpuInTurns {
  private readonly started: SideCpu[] = [];
  private readonly turns: SideCpu[][];

  private readonly processes: ReturnType<typeof Weir.clusterCpu>[];

  constructor(weir: typeof Weir, sides: readonly Weir.WeirCluster[]) {
    this.processes = sides.map((c) => weir.clusterCpu(c));
    this.turns = sides.map(() => []);
  }

  private read(i: number): SideCpu {
    const now = { masters_ms: 0, workers_ms: 0 };
    for (const p of this.processes[i]!) now[p.master ? 'masters_ms' : 'workers_ms'] += 1000 * p.read();
    return now;
  }

  readonly onTurn = (i: number, edge: 'start' | 'end', timed: boolean): void => {
    if (!timed) return;
    const now = this.read(i);
    if (edge === 'start') this.started[i] = now;
    else {
      const from = this.started[i]!;
      this.turns[i]!.push({
        masters_ms: now.masters_ms - from.masters_ms,
        workers_ms: now.workers_ms - from.workers_ms,
      });
    }
  };

  figures(jobs: number): PairedCpu {
    const [mine, theirs] = this.turns as [SideCpu[], SideCpu[]];
    const total = (ts: SideCpu[], k: keyof SideCpu) => ts.reduce((a, t) => a + t[k], 0);
    const perJob = (ts: SideCpu[]): SideCpu => ({
      masters_ms: total(ts, 'masters_ms') / jobs,
      workers_ms: total(ts, 'workers_ms') / jobs,
    });
    // Quarters, not turns: a turn's CPU is read in ticks of 10 ms, a tenth of a turn's.
    const ratio = (k: keyof SideCpu) => {
      const q = Math.max(1, Math.floor(mine.length / 4));
      const quarters: number[] = [];
      for (let a = 0; a + q <= mine.length; a += q) {
        quarters.push(total(mine.slice(a, a + q), k) / total(theirs.slice(a, a + q), k));
      }
      return { all: total(mine, k) / total(theirs, k), min: Math.min(...quarters), max: Math.max(...quarters) };
    };
    return {
      this_code: perJob(mine),
      other_code: perJob(theirs),
      masters_ratio: ratio('masters_ms'),
      workers_ratio: ratio('workers_ms'),
    };
  }
}

/**
 * `samples` jobs of each side after `warmup` untimed ones, the sides taking turns of
 * TURN_CALLS jobs (sampleLatencyInTurn): job by job, each side's processes sat idle through
 * the other's job, and both ran ~2× their figure alone. The ratio is of the turns' medians.
 */
async function timePairs(
  samples: number,
  warmup: number,
  mine: () => Promise<unknown>,
  theirs: () => Promise<unknown>,
  onTurn?: (side: number, edge: 'start' | 'end', timed: boolean) => void,
): Promise<Paired> {
  const [m, t] = await sampleLatencyInTurn(
    [
      async () => {
        await mine();
      },
      async () => {
        await theirs();
      },
    ],
    samples,
    warmup,
    undefined,
    onTurn,
  );
  return {
    this_code: percentiles(m!.warm),
    other_code: percentiles(t!.warm),
    pair_ratio: pairRatios(m!.blocks, t!.blocks),
    faster_share: m!.blocks.filter((x, i) => x < t!.blocks[i]!).length / (m!.blocks.length || 1),
  };
}

export async function measurePairs(
  weir: typeof Weir,
  masters: 1 | 3,
  hosts: readonly string[],
  samples: number,
  warmup: number,
  againstDir: string,
): Promise<PairedFigures> {
  const other = await weir.benchOfBuild(againstDir);
  if (process.env.WEIR_BENCH_SECRET && !('SECRET_AWARE' in other)) {
    throw new Error(
      `--secret: the build in ${againstDir} predates it, and its cluster would run open; compare with --secret against a build that has it, or without --secret`,
    );
  }
  const otherSdk = (await import(
    pathToFileURL(join(againstDir, 'dist', 'src', 'client', 'sdk.js')).href
  )) as typeof Sdk;
  const mySdk = (await import('../src/client/sdk.js')) as typeof Sdk;
  const start = (w: typeof Weir, h: readonly string[]) =>
    w.startWeirCluster({ maxTasks: 16, threads: 2, masterHosts: [...h], workerHost: h[0] });
  const mine = await start(weir, hosts);
  let theirs: Weir.WeirCluster | undefined;
  const clients: Sdk.WeirClient[] = [];
  try {
    theirs = await start(other, OTHER_HOSTS[masters]);
    let n = 0;
    const cpu = new CpuInTurns(weir, [mine, theirs]);
    const submits = await timePairs(
      samples,
      warmup,
      () => weir.submitCompleted(mine.api, weir.noopJob(`pair-mine-${n++}`, 1)),
      () => other.submitCompleted(theirs!.api, weir.noopJob(`pair-theirs-${n++}`, 1)),
      cpu.onTurn,
    );
    const mineClient = new mySdk.WeirClient({ masters: [mine.api.origin] });
    const theirClient = new otherSdk.WeirClient({ masters: [theirs.api.origin] });
    clients.push(mineClient, theirClient);
    const run = (c: Sdk.WeirClient) => async () => {
      const r = await c.run({ name: `run-${n++}`, config: { operation: 'noop', task_count: 1 } });
      if (r.job.status !== 'completed') throw new Error(`run() ended ${r.job.status}`);
    };
    return {
      against: againstDir,
      ...submits,
      cpu_per_job: cpu.figures(samples),
      run: await timePairs(samples, warmup, run(mineClient), run(theirClient)),
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([mine.stop(), theirs?.stop()]);
  }
}

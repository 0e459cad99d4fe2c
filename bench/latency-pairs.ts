// The latency benchmark's side-by-side mode (`npm run bench -- latency --against DIR`): a
// cluster of this code and one of another build (DIR: a checkout of Weir with dist/ built,
// such as a worktree of main) run at once, and one-task jobs go to each in turn, the order
// alternating. On a machine shared with other work the load drifts by several times within a
// minute; jobs taken in pairs meet the same load, so the ratio of each pair says what the
// code changed where two runs one after the other mostly say how the load moved.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { percentiles, quantile } from './stats.js';
import type * as Weir from './weir.js';

/** Clear of the addresses the integration tests and the other benchmarks use (this: HOSTS in latency-bench.ts). */
const OTHER_HOSTS = { 1: ['127.0.0.254'], 3: ['127.0.0.247', '127.0.0.248', '127.0.0.249'] } as const;

export interface PairedFigures {
  against: string;
  this_code: ReturnType<typeof percentiles>;
  other_code: ReturnType<typeof percentiles>;
  /** This code's time over the other's, job by job: the quartiles. */
  pair_ratio: { p25: number; p50: number; p75: number };
  /** How many pairs this code won. */
  faster_share: number;
}

export async function measurePairs(
  weir: typeof Weir,
  masters: 1 | 3,
  hosts: readonly string[],
  samples: number,
  againstDir: string,
): Promise<PairedFigures> {
  const other = (await import(pathToFileURL(join(againstDir, 'dist', 'bench', 'weir.js')).href)) as typeof Weir;
  const otherHosts = OTHER_HOSTS[masters];
  const start = (w: typeof Weir, h: readonly string[]) =>
    w.startWeirCluster({ maxTasks: 16, threads: 2, masterHosts: [...h], workerHost: h[0] });
  const mine = await start(weir, hosts);
  let theirs: Weir.WeirCluster | undefined;
  const times = { mine: [] as number[], theirs: [] as number[] };
  try {
    theirs = await start(other, otherHosts);
    const sides = [
      { key: 'mine', api: mine.api, submit: weir.submitCompleted },
      { key: 'theirs', api: theirs.api, submit: other.submitCompleted },
    ] as const;
    const warmup = Math.max(20, Math.round(samples / 10));
    for (let i = 0; i < warmup + samples; i++) {
      for (const s of i % 2 ? sides : [...sides].reverse()) {
        const t0 = performance.now();
        await s.submit(s.api, weir.noopJob(`pair-${s.key}-${i}`, 1));
        if (i >= warmup) times[s.key].push(performance.now() - t0);
      }
    }
  } finally {
    await Promise.all([mine.stop(), theirs?.stop()]);
  }
  const ratios = times.mine.map((t, i) => t / times.theirs[i]!).sort((a, b) => a - b);
  return {
    against: againstDir,
    this_code: percentiles(times.mine),
    other_code: percentiles(times.theirs),
    pair_ratio: { p25: quantile(ratios, 0.25), p50: quantile(ratios, 0.5), p75: quantile(ratios, 0.75) },
    faster_share: ratios.filter((r) => r < 1).length / (ratios.length || 1),
  };
}

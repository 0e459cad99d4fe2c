// The core benchmark's side-by-side mode (`npm run bench -- core --against DIR`): a cluster of
// this code and one of another build (DIR: a checkout of Weir with dist/ built, such as a
// worktree of main) both up, their throughput rounds taken in turns, the side going first
// alternating. Two whole runs one after the other meet different machines here: fourteen
// such pairs of one change ranged 0.63–1.31× (median 0.88×) where its rounds in turns gave
// 1.00× (quartiles 0.90–1.03).
import { pairRatios } from './stats.js';
import type * as Weir from './weir.js';

/** Clear of the addresses the integration tests and the other benchmarks use. */
const HOSTS = { mine: '127.0.0.236', theirs: '127.0.0.237' } as const;

export interface ThroughputPairs {
  against: string;
  /** Tasks per second of each round. */
  this_code: number[];
  other_code: number[];
  /** This code's rounds over the other's, turn by turn: the quartiles, and the geometric mean. */
  pair_ratio: { p25: number; p50: number; p75: number; geomean: number };
  /** How many turns this code won. */
  faster_share: number;
}

export async function measureThroughputPairs(
  weir: typeof Weir,
  againstDir: string,
  o: { turns: number; warmups: number; shape: Weir.ThroughputShape; maxTasks: number; threads?: number },
): Promise<ThroughputPairs> {
  const other = await weir.benchOfBuild(againstDir);
  const start = (w: typeof Weir, host: string) =>
    w.startWeirCluster({
      maxTasks: o.maxTasks,
      ...(o.threads === undefined ? {} : { threads: o.threads }),
      masterHosts: [host],
      workerHost: host,
    });
  const mine = await start(weir, HOSTS.mine);
  let theirs: Weir.WeirCluster | undefined;
  try {
    theirs = await start(other, HOSTS.theirs);
    const sides = [
      (label: string) => weir.weirThroughputRound(mine.api, o.shape, `mine-${label}`),
      (label: string) => other.weirThroughputRound(theirs!.api, o.shape, `theirs-${label}`),
    ];
    for (let i = 0; i < o.warmups; i++) for (const round of sides) await round(`warmup${i}`);
    const m: number[] = [];
    const t: number[] = [];
    for (let turn = 0; turn < o.turns; turn++) {
      // Who goes first alternates: a round after the other's meets what it left (its WAL
      // checkpoint, its garbage) as often on either side.
      const order = turn % 2 === 0 ? [0, 1] : [1, 0];
      for (const side of order) (side === 0 ? m : t).push(await sides[side]!(`t${turn}`));
    }
    const logRatios = m.map((x, i) => Math.log(x / t[i]!));
    return {
      against: againstDir,
      this_code: m,
      other_code: t,
      pair_ratio: {
        ...pairRatios(m, t),
        geomean: Math.exp(logRatios.reduce((a, r) => a + r, 0) / (logRatios.length || 1)),
      },
      faster_share: m.filter((x, i) => x > t[i]!).length / (m.length || 1),
    };
  } finally {
    await Promise.all([mine.stop(), theirs?.stop()]);
  }
}

// Small statistics and timing helpers shared by the benchmark's parts.

export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export interface Percentiles {
  p50: number;
  p99: number;
  mean: number;
  max: number;
  samples: number;
}

export function spread(runs: number[]): Spread {
  const sorted = [...runs].sort((a, b) => a - b);
  return { median: quantile(sorted, 0.5), min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN, runs };
}

/**
 * A distribution-free confidence interval for the median of `values` (the order statistics
 * whose ranks a Binomial(n, ½) puts around the middle): with this machine's ±20% pair to pair,
 * a median of pair ratios says little without it. Undefined with fewer than 6 values (no
 * interval reaches 95% then).
 */
export function medianInterval(
  values: readonly number[],
  confidence = 0.95,
): { low: number; high: number } | undefined {
  const n = values.length;
  const sorted = [...values].sort((a, b) => a - b);
  // P(X <= k) for X ~ Binomial(n, 1/2), summed term by term.
  let term = 2 ** -n;
  let below = 0;
  let j = 0;
  for (let k = 0; k < n; k++) {
    if (below + term > (1 - confidence) / 2) break;
    below += term;
    j = k + 1;
    term = (term * (n - k)) / (k + 1);
  }
  if (j === 0) return undefined;
  return { low: sorted[j - 1]!, high: sorted[n - j]! };
}

/** Nearest-rank quantile of an ascending array (no interpolation: a p99 is a real sample). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function percentiles(samples: readonly number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / (sorted.length || 1);
  return {
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    mean,
    max: sorted[sorted.length - 1] ?? NaN,
    samples: sorted.length,
  };
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * Untimed one-at-a-time calls before latency is sampled, for every system alike. A one-task
 * job runs each of a few hundred functions once or twice in each process on its way, and V8
 * optimizes a function only after thousands of calls: measured here one job after another
 * from a fresh start, in blocks of 500, Weir's one-master p50 went from 2.8 ms (first block)
 * to 1.6–1.7 ms from the 4,000th job on; BullMQ's from 2.3 to 1.3–1.5 ms in memory and from
 * 2.9 to 1.6–2.0 ms with appendfsync always. Throughput rounds do not warm this path up: they
 * run other functions (jobs of many tasks, submits that do not wait).
 */
export const LATENCY_WARMUP = 4000;

/** How many of the warm-up calls are timed as well: the latency of processes just started. */
export const FIRST_CALLS = 500;

export interface LatencySamples {
  /** The first FIRST_CALLS calls (fewer if the warm-up is shorter): before the JIT has caught up. */
  first: number[];
  /** The `samples` calls after the warm-up. */
  warm: number[];
}

/** Calls of one system back to back in sampleLatencyInTurn, before the next system's turn. */
export const TURN_CALLS = 50;

/**
 * The same for several systems in turn: each round makes `turn` calls of each system back to
 * back, the system going first rotating. This machine's speed drifts by a fifth within
 * minutes, so samples of one system taken after another's say as much about the drift as
 * about the systems; the turns of one round meet the same moment, and the ratio of their
 * medians (`blocks`, `pairRatios`) says what the systems differ by. Back to back within a
 * turn, as one system alone would be measured: a call right after another system's takes
 * each process out of a cold cache (both sides of a job-by-job alternation here ran ~2× their
 * figure alone).
 */
export async function sampleLatencyInTurn(
  calls: readonly (() => Promise<void>)[],
  samples: number,
  warmup: number,
  turn = TURN_CALLS,
  /** Told as each system's turn starts and ends (outside its timed calls), and whether the turn is timed. */
  onTurn?: (system: number, edge: 'start' | 'end', timed: boolean) => void,
): Promise<(LatencySamples & { blocks: number[] })[]> {
  const out = calls.map(() => ({ first: [] as number[], warm: [] as number[], blocks: [] as number[] }));
  let done = 0;
  for (let round = 0; done < warmup + samples; round++) {
    const n = Math.min(turn, warmup + samples - done);
    for (let k = 0; k < calls.length; k++) {
      const i = (round + k) % calls.length;
      const times: number[] = [];
      onTurn?.(i, 'start', done >= warmup);
      for (let j = 0; j < n; j++) {
        const t0 = performance.now();
        await calls[i]!();
        const ms = performance.now() - t0;
        const at = done + j;
        if (at >= warmup) times.push(ms);
        else if (at < FIRST_CALLS) out[i]!.first.push(ms);
      }
      onTurn?.(i, 'end', done >= warmup);
      out[i]!.warm.push(...times);
      if (times.length)
        out[i]!.blocks.push(
          quantile(
            [...times].sort((a, b) => a - b),
            0.5,
          ),
        );
    }
    done += n;
  }
  return out;
}

/** The quartiles of a[i] / b[i] over the pairs: what `a` takes for each unit of `b`, moment by moment. */
export function pairRatios(a: readonly number[], b: readonly number[]): { p25: number; p50: number; p75: number } {
  const r = a.map((x, i) => x / b[i]!).sort((x, y) => x - y);
  return { p25: quantile(r, 0.25), p50: quantile(r, 0.5), p75: quantile(r, 0.75) };
}

export const log = (text: string) => process.stderr.write(`${text}\n`);

/** A command-line option's value as a positive integer, or an error naming the flag. */
export function positiveInt(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`${flag} takes a positive integer`);
  return n;
}

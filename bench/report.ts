// The benchmark's output: a table with ratios and targets on stdout, the figures as JSON.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { Percentiles, Spread } from './stats.js';

/** The machine a benchmark ran on, as every report states it. */
export interface Machine {
  cpus: number;
  cpu_model: string;
  node: string;
  platform: string;
  memory_gb: number;
}

export function machineInfo(): Machine {
  return {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: process.platform,
    memory_gb: Math.round(totalmem() / 2 ** 30),
  };
}

export interface SystemResult {
  label: string;
  throughput: Spread;
  latency?: Percentiles;
  /** The first one-task jobs of the latency phase (stats.ts FIRST_CALLS), before its warm-up was over. */
  latency_first?: Percentiles;
}

export type LatencyPairs = Record<string, { p25: number; p50: number; p75: number }>;

export interface Results {
  started_at: string;
  duration_s: number;
  machine: Machine;
  /** 1-minute load average at start and end: other work on the machine skews every row. */
  load: { start: number; end: number };
  workload: Record<string, unknown>;
  /** `tls`: the nodes served https and verified each other (absent in runs from before the option). */
  weir: SystemResult & { max_tasks: number; threads: number | null; sweep: SweepRow[]; tls?: boolean };
  /** On an in-memory Redis. */
  bullmq: (SystemResult & { redis: string; redis_flags: string[] }) | { skipped: string };
  /** On a Redis that fsyncs every write (`appendfsync always`); absent in runs from before it. */
  bullmq_durable?: Results['bullmq'];
  pool: SystemResult;
  /** Weir's one-task latency over each other system's (by label), turn by turn in the same round (stats.ts sampleLatencyInTurn): quartiles. */
  latency_pairs?: LatencyPairs;
  ratios: {
    weir_over_bullmq: number | null;
    weir_over_pool: number;
    weir_over_bullmq_durable?: number | null;
    /** Weir's 1-task p50 over BullMQ's (lower is better). */
    p50_weir_over_bullmq?: number | null;
    p50_weir_over_bullmq_durable?: number | null;
  };
  targets: Target[];
}

/** One worker setting of the sweep; `threads` null: the worker's default, one per slot. */
export interface SweepRow {
  max_tasks: number;
  threads: number | null;
  tasks_per_s: number[];
}

export interface Target {
  what: string;
  value: number | null;
  unit: 'tasks/s' | '×' | 'ms';
  goal: string;
  met: boolean | null;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number | undefined) => (n === undefined ? '—' : n.toFixed(2));
const ratio = (n: number | null) => (n === null ? '—' : `${n.toFixed(2)}×`);

export const TARGETS = {
  weirTasksPerS: 10_000,
  weirOverBullmq: 1.0,
  p50Ms: 3,
  p99Ms: 5,
  /** Weir's 1-task p50 at most this many times BullMQ's on an in-memory Redis… */
  p50OverBullmq: 1.5,
  /** …and at most BullMQ's on a Redis that fsyncs every write (issue 18). */
  p50OverBullmqDurable: 1.0,
};

export function targetsOf(r: Pick<Results, 'weir' | 'ratios'>): Target[] {
  const t = (
    what: string,
    value: number | null | undefined,
    unit: Target['unit'],
    goal: string,
    ok: (v: number) => boolean,
  ): Target => ({
    what,
    value: value ?? null,
    unit,
    goal,
    met: value == null || Number.isNaN(value) ? null : ok(value),
  });
  return [
    t(
      'Weir throughput',
      r.weir.throughput.median,
      'tasks/s',
      `≥ ${int(TARGETS.weirTasksPerS)} tasks/s`,
      (v) => v >= TARGETS.weirTasksPerS,
    ),
    t(
      'Weir / BullMQ throughput',
      r.ratios.weir_over_bullmq,
      '×',
      `≥ ${TARGETS.weirOverBullmq.toFixed(1)}×`,
      (v) => v >= TARGETS.weirOverBullmq,
    ),
    t('Weir p50 latency', r.weir.latency?.p50, 'ms', `≤ ${TARGETS.p50Ms} ms`, (v) => v <= TARGETS.p50Ms),
    t('Weir p99 latency', r.weir.latency?.p99, 'ms', `≤ ${TARGETS.p99Ms} ms`, (v) => v <= TARGETS.p99Ms),
    t(
      'Weir / BullMQ (in memory) p50 latency',
      r.ratios.p50_weir_over_bullmq,
      '×',
      `≤ ${TARGETS.p50OverBullmq.toFixed(1)}×`,
      (v) => v <= TARGETS.p50OverBullmq,
    ),
    t(
      'Weir / BullMQ (appendfsync always) p50 latency',
      r.ratios.p50_weir_over_bullmq_durable,
      '×',
      `≤ ${TARGETS.p50OverBullmqDurable.toFixed(1)}×`,
      (v) => v <= TARGETS.p50OverBullmqDurable,
    ),
  ];
}

function formatValue(t: Target): string {
  if (t.value === null) return '—';
  if (t.unit === '×') return ratio(t.value);
  return t.unit === 'ms' ? `${ms(t.value)} ms` : `${int(t.value)} tasks/s`;
}

function systemRow(s: SystemResult): string[] {
  const t = s.throughput;
  return [s.label, int(t.median), `${int(t.min)}–${int(t.max)}`, ms(s.latency?.p50), ms(s.latency?.p99)];
}

const settingText = (maxTasks: number, threads: number | null) =>
  `--max-tasks ${maxTasks} --threads ${threads ?? `${maxTasks} (default)`}`;

export function formatReport(r: Results): string {
  const rows = [['system', 'tasks/s (median)', 'min–max (3 runs)', 'p50 ms', 'p99 ms'], systemRow(r.weir)];
  rows.push('skipped' in r.bullmq ? ['BullMQ', 'skipped', '', '', ''] : systemRow(r.bullmq));
  if (r.bullmq_durable) {
    rows.push(
      'skipped' in r.bullmq_durable ? ['BullMQ (durable)', 'skipped', '', '', ''] : systemRow(r.bullmq_durable),
    );
  }
  rows.push(systemRow(r.pool));
  const ratios = [
    ['ratio', 'value', 'target'],
    ['Weir / BullMQ throughput', ratio(r.ratios.weir_over_bullmq), `≥ ${TARGETS.weirOverBullmq.toFixed(1)}×`],
    ['Weir / BullMQ (appendfsync always) throughput', ratio(r.ratios.weir_over_bullmq_durable ?? null), ''],
    ['Weir / pool throughput', ratio(r.ratios.weir_over_pool), '(context: the machine’s ceiling)'],
  ];
  const targets = [
    ['target', 'value', 'goal', ''],
    ...r.targets.map((t) => [t.what, formatValue(t), t.goal, t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED']),
  ];
  const firstOf = (name: string, sys: Results['bullmq'] | SystemResult | undefined) =>
    sys && !('skipped' in sys) && sys.latency_first
      ? [`${name} ${ms(sys.latency_first.p50)} / ${ms(sys.latency_first.p99)} ms`]
      : [];
  const first = [
    ...firstOf('Weir', r.weir),
    ...firstOf('BullMQ in memory', r.bullmq),
    ...firstOf('BullMQ appendfsync always', r.bullmq_durable),
  ];
  const notes = [
    `Workload: ${r.workload.description as string}.`,
    ...Object.entries(r.latency_pairs ?? {}).map(
      ([label, q]) =>
        `Weir's one-task latency over ${label}'s, turn by turn (the medians of turns of the same round): ${ratio(q.p50)} (quartiles ${ratio(q.p25)}–${ratio(q.p75)}).`,
    ),
    ...(first.length
      ? [
          `Latency of the first ${r.workload.latency_first as number} jobs of each system's warm-up (p50 / p99): ${first.join('; ')}.`,
        ]
      : []),
    r.weir.sweep.length === 0
      ? `Weir ${settingText(r.weir.max_tasks, r.weir.threads)}, as given on the command line.`
      : `Weir ${settingText(r.weir.max_tasks, r.weir.threads)}: the fastest of the sweep (tasks/s per round: ${r.weir.sweep
          .map((s) => `(${s.max_tasks}, ${s.threads ?? s.max_tasks}) → ${s.tasks_per_s.map(int).join(', ')}`)
          .join('; ')}).`,
    'skipped' in r.bullmq
      ? `BullMQ skipped: ${r.bullmq.skipped}`
      : `Redis ${r.bullmq.redis} started with ${r.bullmq.redis_flags.map((f) => (f === '' ? "''" : f)).join(' ')} (no persistence: an in-memory peer)` +
        (r.bullmq_durable && !('skipped' in r.bullmq_durable)
          ? `, and with ${r.bullmq_durable.redis_flags.map((f) => (f === '' ? "''" : f)).join(' ')} (every write fsynced before it is answered, as Weir's are).`
          : '.'),
    `Machine: ${r.machine.cpus} × ${r.machine.cpu_model}, Node ${r.machine.node}. Total bench time ${r.duration_s.toFixed(0)} s.`,
    `Load average (1 min): ${r.load.start.toFixed(2)} at start, ${r.load.end.toFixed(2)} at end${
      // At the end the load is mostly the bench's own processes: only the start says who else ran.
      r.load.start > r.machine.cpus / 2
        ? ' — other processes were already busy at the start: treat these figures as low'
        : ''
    }.`,
  ];
  return [table(rows), '', table(ratios), '', table(targets), '', ...notes].join('\n');
}

/** Writes the figures to bench/results/core-<date>.json and returns the path. */
export function writeResults(r: Results): string {
  return writeJson('core', r.started_at, r);
}

/** Writes `figures` to bench/results/<prefix>-<start time>.json and returns the path. */
export function writeJson(prefix: string, startedAt: string, figures: unknown): string {
  const dir = new URL('../../bench/results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  // Date and time, so two runs on one day keep both files.
  const stamp = startedAt.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const file = new URL(`${prefix}-${stamp}.json`, dir);
  writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
  return file.pathname;
}

/** Columns padded to their widest cell: the first `leftColumns` left-aligned (labels), the rest right-aligned. */
export function table(rows: string[][], leftColumns = 1): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '))
    .join('\n');
}

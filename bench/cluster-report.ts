// The cluster benchmark's output: one table of figures against their targets on stdout,
// every figure (trials, events, sizes) as JSON in bench/results/cluster-<date>.json.
import type { ElectionWatch } from './cluster-load.js';
import { table, type Machine } from './report.js';
import type { Spread } from './stats.js';

/** Median, p90 and max of a set of durations (nearest rank, as stats.ts). */
export interface Summary {
  median: number;
  p90: number;
  max: number;
  samples: number;
}

export interface FailoverTrial {
  killed: number;
  /** Whether the killed leader was the highest id (the seed's rule had been honoured). */
  highest_led: boolean;
  old_term: number;
  new_term: number | null;
  accepted_by: number;
  write_ms: number;
  elected_ms: number | null;
  /** From the restart of the killed master to its last_applied reaching the leader's commit. */
  rejoin_ms: number;
}

export interface ClusterResults {
  started_at: string;
  duration_s: number;
  machine: Machine;
  /** os.loadavg() (1, 5, 15 min) at start and end: other work on the machine skews every figure. */
  load: { start: number[]; end: number[] };
  workers: { max_tasks: number; threads: number | null };
  throughput?: {
    workload: string;
    three_masters: Spread;
    one_master: Spread;
    ratio: number;
  };
  steady?: ElectionWatch & { load: LoadFigures };
  failover?: {
    trials: FailoverTrial[];
    write_ms: Summary;
    elected_ms: Summary;
    rejoin_ms: Summary;
    load: LoadFigures;
  };
  catchup?: {
    completed_tasks: number;
    build_tasks_per_s: number;
    commit_index: number;
    /** state.db plus its WAL on the leader once the history is built. */
    state_db_bytes: number;
    raft_db_bytes: number;
    /** The fourth master, joining at the history. */
    join: JoinFigures;
    /** A fifth master, joining once the log has been compacted (when the history left it whole). */
    snapshot_join?: JoinFigures & { extra_tasks: number; commit_index: number; state_db_bytes: number };
  };
  notes: string[];
  targets: ClusterTarget[];
}

/** Milliseconds from a joining master's start. */
export interface JoinFigures {
  answered_ms: number;
  caught_up_ms: number;
  voter_ms: number;
  total_ms: number;
  snapshot_installed: boolean;
}

export interface LoadFigures {
  lanes: number;
  tasks_per_job: number;
  tasks_per_s: number;
  errors: number;
}

export interface ClusterTarget {
  what: string;
  value: number | null;
  unit: 'tasks/s' | '×' | 'ms' | 'count';
  goal: string;
  met: boolean | null;
}

export const CLUSTER_TARGETS = {
  tasksPerS: 10_000,
  ratio: 0.7,
  failoverMedianMs: 1000,
  elections: 0,
  catchupMs: 5000,
};

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const msText = (n: number | null | undefined) => (n == null ? '—' : `${int(n)} ms`);
const summaryText = (s: Summary) => `median ${msText(s.median)}, p90 ${msText(s.p90)}, max ${msText(s.max)}`;
const spreadText = (s: Spread) => `${int(s.median)} (${int(s.min)}–${int(s.max)})`;
const loadText = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
const joinText = (j: JoinFigures) =>
  `${msText(j.answered_ms)} → ${msText(j.caught_up_ms)} → ${msText(j.voter_ms)} (${j.snapshot_installed ? 'snapshot' : 'log replay'})`;

export function clusterTargets(r: ClusterResults): ClusterTarget[] {
  const t = (
    what: string,
    value: number | undefined,
    unit: ClusterTarget['unit'],
    goal: string,
    ok: (v: number) => boolean,
  ) => ({
    what,
    value: value ?? null,
    unit,
    goal,
    met: value === undefined || Number.isNaN(value) ? null : ok(value),
  });
  const T = CLUSTER_TARGETS;
  return [
    t(
      '3-master throughput',
      r.throughput?.three_masters.median,
      'tasks/s',
      `≥ ${int(T.tasksPerS)} tasks/s`,
      (v) => v >= T.tasksPerS,
    ),
    t('3-master / 1-master throughput', r.throughput?.ratio, '×', `≥ ${T.ratio}×`, (v) => v >= T.ratio),
    t(
      'failover, kill → write accepted (median)',
      r.failover?.write_ms.median,
      'ms',
      `≤ ${int(T.failoverMedianMs)} ms`,
      (v) => v <= T.failoverMedianMs,
    ),
    t('elections under full load, no fault', r.steady?.termChanges, 'count', `${T.elections}`, (v) => v <= T.elections),
    t(
      'catch-up of a joining master',
      r.catchup?.join.total_ms,
      'ms',
      `≤ ${int(T.catchupMs)} ms`,
      (v) => v <= T.catchupMs,
    ),
    ...(r.catchup?.snapshot_join
      ? [
          t(
            'catch-up, log compacted (snapshot)',
            r.catchup.snapshot_join.total_ms,
            'ms',
            `≤ ${int(T.catchupMs)} ms`,
            (v) => v <= T.catchupMs,
          ),
        ]
      : []),
  ];
}

function targetValue(t: ClusterTarget): string {
  if (t.value === null) return '—';
  if (t.unit === '×') return `${t.value.toFixed(2)}×`;
  if (t.unit === 'ms') return msText(t.value);
  return t.unit === 'count' ? String(t.value) : `${int(t.value)} tasks/s`;
}

/** Every measured figure, one row each, with the part of the benchmark it comes from. */
function figureRows(r: ClusterResults): string[][] {
  const rows: string[][] = [['part', 'figure', 'value']];
  const a = r.throughput;
  if (a) {
    rows.push(['a', '3 masters + 2 workers, tasks/s median (min–max)', spreadText(a.three_masters)]);
    rows.push(['a', '1 master + 2 workers, tasks/s median (min–max)', spreadText(a.one_master)]);
    rows.push(['a', '3-master / 1-master', `${a.ratio.toFixed(2)}×`]);
  }
  const s = r.steady;
  if (s) {
    rows.push(['b', `elections in ${s.seconds} s of full load (term changes)`, String(s.termChanges)]);
    rows.push(['b', 'leader changes seen by a node in that time', String(s.leaderChanges)]);
    rows.push(['b', '/cluster/status unanswered within 1 s / slowest', `${s.unanswered} / ${msText(s.statusMaxMs)}`]);
    rows.push([
      'b',
      `full load: ${s.load.lanes} lanes × ${s.load.tasks_per_job}-task jobs`,
      `${int(s.load.tasks_per_s)} tasks/s`,
    ]);
  }
  const f = r.failover;
  if (f) {
    rows.push(['b', `failover: kill → write accepted (${f.write_ms.samples} trials)`, summaryText(f.write_ms)]);
    rows.push(['b', 'failover: kill → a survivor leads a newer term', summaryText(f.elected_ms)]);
    rows.push(['b', 'killed master: restart → caught up', summaryText(f.rejoin_ms)]);
    const highest = f.trials.filter((t) => t.highest_led).length;
    rows.push(['b', 'trials where the highest id led at the kill', `${highest} of ${f.trials.length}`]);
    rows.push([
      'b',
      `steady stream: ${f.load.lanes} lanes × ${f.load.tasks_per_job}-task jobs`,
      `${int(f.load.tasks_per_s)} tasks/s, ${f.load.errors} failed calls`,
    ]);
  }
  const c = r.catchup;
  if (c) {
    rows.push(['c', `history: completed tasks / commit index`, `${int(c.completed_tasks)} / ${int(c.commit_index)}`]);
    rows.push([
      'c',
      'state database (state.db + WAL) / Raft log db',
      `${mb(c.state_db_bytes)} / ${mb(c.raft_db_bytes)}`,
    ]);
    rows.push(['c', 'history built at', `${int(c.build_tasks_per_s)} tasks/s`]);
    rows.push(['c', '4th master: start → answers → caught up → voter', joinText(c.join)]);
    const sj = c.snapshot_join;
    if (sj) {
      rows.push([
        'c',
        `log compacted: +${int(sj.extra_tasks)} tasks; commit index / state database`,
        `${int(sj.commit_index)} / ${mb(sj.state_db_bytes)}`,
      ]);
      rows.push(['c', '5th master: start → answers → caught up → voter', joinText(sj)]);
    }
  }
  return rows;
}

export function formatClusterReport(r: ClusterResults): string {
  const targets = [
    ['target', 'value', 'goal', ''],
    ...r.targets.map((t) => [t.what, targetValue(t), t.goal, t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED']),
  ];
  // At the end the load is mostly the bench's own processes: only the start says who else ran.
  const busy = r.load.start[0]! > r.machine.cpus / 2;
  const notes = [
    `Workers: 2 × --max-tasks ${r.workers.max_tasks} --threads ${r.workers.threads ?? `${r.workers.max_tasks} (default)`}.`,
    ...(r.throughput ? [`Throughput workload: ${r.throughput.workload}.`] : []),
    `Machine: ${r.machine.cpus} × ${r.machine.cpu_model}, Node ${r.machine.node}. Total bench time ${r.duration_s.toFixed(0)} s.`,
    `Load average (1 / 5 / 15 min): ${loadText(r.load.start)} at start, ${loadText(r.load.end)} at end${
      busy ? ' — other processes were already busy at the start: treat these figures as pessimistic' : ''
    }.`,
    ...r.notes,
  ];
  return [table(figureRows(r), 2), '', table(targets), '', ...notes].join('\n');
}

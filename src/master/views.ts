import type { JobPlan } from '../ops/stages.js';
import type { JobRow, Queries, TaskRow, WorkerRow } from '../state/queries.js';
import { isStreamConfig, type StreamConfig } from '../protocol/stream-job.js';
import { instancesOf } from '../stream/topology.js';
import type { LiveWorker, WorkerRegistry } from './worker-registry.js';

export const iso = (ms: number | null | undefined): string | null => (ms == null ? null : new Date(ms).toISOString());

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** A figure a worker reported (unchecked: heartbeat metrics are free-form); 0 when it is no number. */
const figure = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Each stage of a multi-stage job with its tasks by status ('waiting' counts as pending). */
function stagesView(queries: Queries, row: JobRow, plan: JobPlan) {
  return plan.stages.map((st, i) => {
    const n = queries.progressInRange(row.job_id, st.first, st.count);
    const status = i < row.stage ? 'completed' : i === row.stage ? row.status : 'waiting';
    return {
      name: st.name,
      status: TERMINAL.has(row.status) && row.status !== 'completed' && i >= row.stage ? row.status : status,
      total: st.count,
      pending: (n.get('pending') ?? 0) + (n.get('waiting') ?? 0),
      running: n.get('running') ?? 0,
      completed: n.get('completed') ?? 0,
      failed: n.get('failed') ?? 0,
    };
  });
}

/** The part files a completed job wrote to `config.output`. */
function outputView(queries: Queries, row: JobRow, plan: JobPlan, path: string) {
  const last = plan.stages[plan.stages.length - 1]!;
  const parts: unknown[] = [];
  for (const t of queries.results(row.job_id, last.first, last.count)) parts.push(...t.result);
  return { path, parts };
}

/**
 * A streaming job's components, each instance with where it runs and its figures (as its
 * worker last reported them in a heartbeat).
 */
function componentsView(queries: Queries, registry: WorkerRegistry, row: JobRow, config: StreamConfig) {
  const placed = new Map(queries.streamPlacement(row.job_id).map((p) => [p.idx, p]));
  const figures = new Map<number, Record<string, unknown>>();
  for (const p of placed.values()) {
    const stream = registry.get(p.worker_id)?.metrics.stream as { job_id: string; idx: number }[] | undefined;
    for (const m of stream ?? []) if (m.job_id === row.job_id) figures.set(m.idx, m);
  }
  const all = instancesOf(config.topology);
  return [...config.topology.spouts, ...config.topology.bolts].map((c) => ({
    id: c.id,
    kind: 'type' in c ? `spout/${c.type}` : `bolt/${c.op}`,
    parallelism: c.parallelism,
    // The edges of the topology's graph (the dashboard draws it).
    ...('inputs' in c ? { inputs: c.inputs.map((i) => ({ from: i.from, grouping: i.grouping })) } : {}),
    instances: all.flatMap((inst, idx) => {
      if (inst.component !== c.id) return [];
      const p = placed.get(idx);
      const f = figures.get(idx);
      return [
        {
          index: inst.index,
          status: TERMINAL.has(row.status) ? 'stopped' : p ? 'running' : 'unplaced',
          worker_id: p?.worker_id ?? null,
          address: p?.address ?? null,
          in_per_s: figure(f?.in_per_s),
          out_per_s: figure(f?.out_per_s),
          events_in: figure(f?.events_in),
          events_out: figure(f?.events_out),
          queue_fill: figure(f?.queue_fill),
          backpressure: f?.backpressure === true,
          pending: figure(f?.pending),
          errors: figure(f?.errors),
        },
      ];
    }),
  }));
}

/**
 * A job as `GET /api/jobs/{job_id}` shows it (the public shape: rename nothing). With `queries`, a multi-stage job
 * also shows its stages, and a job writing part files lists them; with `registry` too, a
 * streaming job shows its components and instances.
 */
export function jobView(row: JobRow, queries?: Queries, registry?: WorkerRegistry) {
  const config = JSON.parse(row.config) as { operation?: string; task_count?: number; output?: { path: string } };
  const plan = row.plan ? (JSON.parse(row.plan) as JobPlan) : undefined;
  return {
    job_id: row.job_id,
    name: row.name,
    type: row.type,
    status: row.status,
    operation: config.operation,
    progress: {
      total: row.total,
      pending: row.pending,
      running: row.running,
      completed: row.completed,
      failed: row.failed,
    },
    created_at: iso(row.created_at),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    ...(queries && plan ? { stages: stagesView(queries, row, plan) } : {}),
    ...(queries && registry && isStreamConfig(config as { operation: string })
      ? { components: componentsView(queries, registry, row, config as unknown as StreamConfig) }
      : {}),
    ...(queries && plan && config.output && row.status === 'completed'
      ? { output: outputView(queries, row, plan, config.output.path) }
      : {}),
    ...(row.error ? { error: JSON.parse(row.error) as { task: number; message: string; stack?: string } } : {}),
  };
}

export function workerView(row: WorkerRow, live: LiveWorker | undefined) {
  return {
    worker_id: row.worker_id,
    address: row.address,
    status: row.status,
    max_tasks: row.max_tasks,
    active_tasks: row.status === 'dead' ? 0 : row.running,
    last_heartbeat: iso(live?.lastHeartbeat ?? null),
    registered_at: iso(row.registered_at),
    ...(row.status === 'dead' ? { dead_at: iso(row.dead_at) } : {}),
    ...(live && row.status !== 'dead' ? { metrics: live.metrics } : {}),
  };
}

/** A task as `GET /api/jobs/{job_id}/tasks` lists it (and the dashboard's stream sends it). */
export function taskView(t: TaskRow) {
  return {
    idx: t.idx,
    status: t.status,
    attempt: t.attempt,
    failures: t.failures,
    losses: t.losses,
    worker_id: t.worker_id,
    started_at: iso(t.started_at),
    finished_at: iso(t.finished_at),
    ...(t.error ? { error: JSON.parse(t.error) as unknown } : {}),
  };
}

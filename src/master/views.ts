import type { JobRow, WorkerRow } from '../state/queries.js';
import type { LiveWorker } from './worker-registry.js';

export const iso = (ms: number | null | undefined): string | null => (ms == null ? null : new Date(ms).toISOString());

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** A job as the REST API shows it (DESIGN.md section 5). */
export function jobView(row: JobRow) {
  const config = JSON.parse(row.config) as { operation?: string; task_count?: number };
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

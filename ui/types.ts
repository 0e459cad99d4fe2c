// The API's shapes as the page reads them (README "REST API"); fields the page does not use
// are left out.

export interface ClusterStatus {
  current_node_id: number;
  current_role: string;
  leader_id: number | null;
  leader_address: string | null;
  nodes: { id: number; address: string; role: string; is_leader: boolean; healthy: boolean }[];
  term: number;
  commit_index: number;
  last_applied: number;
  alarms?: string[];
}

/** One master as it reports itself (GET /api/cluster/masters), or unreachable. */
export interface MasterView {
  id: number;
  address: string;
  role: string;
  is_leader: boolean;
  healthy: boolean;
  term?: number;
  commit_index?: number;
  last_applied?: number;
  alarms?: string[];
  error?: string;
}

export interface WorkerMetrics {
  cpu_percent?: number;
  cpu_count?: number;
  memory_rss_mb?: number;
  heap_used_mb?: number;
  tasks_done?: number;
  tasks_failed?: number;
  task_rate?: number;
  avg_task_ms?: number;
  uptime_s?: number;
}

export interface Worker {
  worker_id: string;
  address: string;
  status: string;
  max_tasks: number;
  active_tasks: number;
  last_heartbeat: string | null;
  registered_at: string | null;
  metrics?: WorkerMetrics;
}

export interface Progress {
  total: number;
  pending: number;
  running: number;
  completed: number;
  failed: number;
}

export interface Stage extends Progress {
  name: string;
  status: string;
}

export interface Instance {
  index: number;
  status: string;
  worker_id: string | null;
  address: string | null;
  in_per_s: number;
  out_per_s: number;
  events_in: number;
  events_out: number;
  queue_fill: number;
  backpressure: boolean;
  pending: number;
  errors: number;
}

export interface Component {
  id: string;
  kind: string;
  parallelism: number;
  inputs?: { from: string; grouping: string }[];
  instances: Instance[];
}

export interface Job {
  job_id: string;
  name: string;
  type: 'batch' | 'streaming';
  status: string;
  operation?: string;
  progress: Progress;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  stages?: Stage[];
  components?: Component[];
  output?: { path: string; parts: unknown[] };
  error?: { task?: number; message: string; stack?: string };
}

export interface Task {
  idx: number;
  status: string;
  attempt: number;
  failures: number;
  /** Workers lost while they ran it (absent from a master of a Weir before them). */
  losses?: number;
  worker_id: string | null;
  started_at: string | null;
  finished_at: string | null;
  error?: { message?: string } | string;
}

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

import type { BatchConfig } from '../ops/batch-config.js';
import type { StreamConfig } from '../protocol/stream-job.js';
import type { TaskError, TaskRef } from '../protocol/task-ref.js';

/** What a job runs: batch tasks, or the instances of a streaming topology. */
export type JobConfig = BatchConfig | StreamConfig;

/**
 * Every change of cluster state is one of these commands, applied in log order on every
 * master. Everything that must be identical everywhere (ids, times, chosen workers) is
 * stamped into the command by the leader; apply never reads the clock or random numbers.
 * `at` is milliseconds since the epoch, as the leader saw it.
 */
export type Command =
  | RegisterWorker
  | MarkWorkerDead
  | DrainWorker
  | SubmitJob
  | AssignTasks
  | SpeculateTasks
  | CompleteTasks
  | FailTasks
  | CancelJob
  | CollectRows;

export interface RegisterWorker {
  type: 'registerWorker';
  at: number;
  worker_id: string;
  address: string;
  max_tasks: number;
}

export interface MarkWorkerDead {
  type: 'markWorkerDead';
  at: number;
  worker_id: string;
  reason: string;
}

export interface DrainWorker {
  type: 'drainWorker';
  at: number;
  worker_id: string;
}

export interface SubmitJob {
  type: 'submitJob';
  at: number;
  job_id: string;
  name: string;
  job_type: 'batch' | 'streaming';
  config: JobConfig;
  idempotency_key?: string;
}

export interface AssignTasks {
  type: 'assignTasks';
  at: number;
  assignments: (TaskRef & { worker_id: string })[];
}

/**
 * Runs a copy of each straggling task on another worker; `attempt` is the running attempt
 * the copy races (the copy is `attempt + 1`).
 */
export interface SpeculateTasks {
  type: 'speculateTasks';
  at: number;
  copies: (TaskRef & { worker_id: string })[];
}

export interface CompleteTasks {
  type: 'completeTasks';
  at: number;
  /**
   * `result_json`: the task's results, a JSON array, stored as it is; `ms`: how long the
   * task ran on its worker (absent from commands logged before workers reported it).
   */
  completions: (TaskRef & { worker_id: string; result_json: string; ms?: number })[];
}

export interface FailTasks {
  type: 'failTasks';
  at: number;
  failures: (TaskRef & { worker_id: string; error: TaskError })[];
}

/**
 * Rows a streaming job's `collect` sink delivered. A row with the key of an existing one
 * replaces it (a window that fired again); `seq` orders them for followers.
 */
export interface CollectRows {
  type: 'collectRows';
  at: number;
  job_id: string;
  rows: { key: string; value: unknown }[];
}

export interface CancelJob {
  type: 'cancelJob';
  at: number;
  job_id: string;
}

/** What applying a command produced, for the proposer (never used by apply itself). */
export type ApplyResult =
  { ok: true; [k: string]: unknown } | { ok: false; code: 'not_found' | 'conflict'; message: string };

import type { BatchConfig } from '../ops/batch-config.js';

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
  | CancelJob;

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
  job_type: 'batch';
  config: BatchConfig;
  idempotency_key?: string;
}

export interface TaskRef {
  job_id: string;
  idx: number;
  attempt: number;
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
  completions: (TaskRef & { worker_id: string; result: unknown[] })[];
}

export interface TaskError {
  message: string;
  stack?: string;
  name?: string;
  /** A reduce task could not fetch this map output: the map task re-runs (lineage). */
  fetch_failed?: { idx: number; attempt: number };
}

export interface FailTasks {
  type: 'failTasks';
  at: number;
  failures: (TaskRef & { worker_id: string; error: TaskError })[];
}

export interface CancelJob {
  type: 'cancelJob';
  at: number;
  job_id: string;
}

/** What applying a command produced, for the proposer (never used by apply itself). */
export type ApplyResult =
  { ok: true; [k: string]: unknown } | { ok: false; code: 'not_found' | 'conflict'; message: string };

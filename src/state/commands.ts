import type { BatchConfig } from '../ops/batch-config.js';
import type { StreamConfig } from '../protocol/stream-job.js';
import type { TaskError, TaskRef } from '../protocol/task-ref.js';
import type { LogLine } from '../protocol/task-log.js';

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
  | CollectRows
  | DeleteJob
  | PurgeJob
  | ForgetWorker
  | ForgetUpload
  | AppendLogs
  | SetRules
  | PruneDeletedUploads;

/**
 * The state follows the rules of `version` from this entry on (rules.ts). The leader proposes
 * it once every member has said it knows them; a version at or below the state's changes nothing.
 */
export interface SetRules {
  type: 'setRules';
  at: number;
  version: number;
}

/**
 * Forgets deleted uploads recorded before `before`, the oldest first, PURGE_SLICE_ROWS at a
 * time (from rules 3 on: rules.ts). A job submitted with such an upload's URL afterwards is
 * taken, and its tasks fail to fetch it, as for an upload that never was.
 */
export interface PruneDeletedUploads {
  type: 'pruneDeletedUploads';
  at: number;
  before: number;
}

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
  /**
   * The attempts running on it that it said it had begun (from rules 4 only those count its
   * loss); absent from a leader before rules 4.
   */
  began?: TaskRef[];
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
  /** `config.retention` in ms (0: kept for ever); absent: the cluster's --retention. */
  retention_ms?: number;
  /**
   * First attempts the leader placed on free slots as it proposed the job, assigned when the
   * entry applies as an AssignTasks would: the task then leaves after one committed entry, not two.
   */
  assignments?: { idx: number; worker_id: string }[];
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
  completions: (TaskRef & { worker_id: string; result_json: string; ms?: number; logs?: LogLine[] })[];
}

export interface FailTasks {
  type: 'failTasks';
  at: number;
  /** `logs` (of completions too): what the attempt printed, stored once per attempt. */
  failures: (TaskRef & { worker_id: string; error: TaskError; logs?: LogLine[] })[];
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

/**
 * Deletes a job (a user's DELETE, or its retention ran out): a running job is cancelled, its
 * row goes at once (404 from then on), its tasks and rows in bounded slices (see PurgeJob).
 */
export interface DeleteJob {
  type: 'deleteJob';
  at: number;
  job_id: string;
}

/** The next slice of a deleted job's rows (`seq`: the job's, as its tasks are keyed). */
export interface PurgeJob {
  type: 'purgeJob';
  at: number;
  seq: number;
}

/** Removes a dead worker's row, if it died no later than `dead_before` (its retention ran out). */
export interface ForgetWorker {
  type: 'forgetWorker';
  at: number;
  worker_id: string;
  dead_before: number;
}

/**
 * Deletes an upload no job reads (its uploader's DELETE, or one unclaimed past the retention):
 * a submit naming it is refused from this entry on, and every master removes its copy.
 */
export interface ForgetUpload {
  type: 'forgetUpload';
  at: number;
  upload_id: string;
}

/**
 * Lines a streaming job's instances printed, sent by their worker as they run (a batch task's
 * travel with its outcome instead, in completeTasks / failTasks).
 */
export interface AppendLogs {
  type: 'appendLogs';
  at: number;
  job_id: string;
  logs: { idx: number; attempt: number; lines: LogLine[] }[];
}

/** A task attempt on a worker. */
export interface RunningTask extends TaskRef {
  worker_id: string;
}

/**
 * Why a command changed nothing; the same on every master. `internal`: apply could not apply
 * it at all (recorded in `refused_commands`).
 */
export interface Refusal {
  ok: false;
  code: 'not_found' | 'conflict' | 'internal';
  message: string;
}

/** Why a job cannot read `upload`: it went with the last job that read it, or unclaimed. */
export const uploadDeletedMessage = (upload: string): string =>
  `upload ${upload} was deleted (no job read it any more); upload the file again (weir submit --input FILE)`;

/** What applying each command produced, for its proposer and the on-applied effects. */
export interface Applied {
  registerWorker: { ok: true; worker_id: string };
  /**
   * `to_stop`: attempts elsewhere that depended on the dead worker; `jobs`: jobs whose tasks it
   * ran and were put back (streaming instances among them); `failed_jobs`: jobs that failed
   * because a task of theirs had lost its worker too often (rules.ts).
   */
  markWorkerDead: { ok: true; requeued: number; to_stop: RunningTask[]; jobs: string[]; failed_jobs: string[] };
  drainWorker: { ok: true };
  /** `assigned`: those of the entry's `assignments` that took (absent when none did). */
  submitJob: { ok: true; job_id: string; duplicate: boolean; assigned?: RunningTask[] };
  assignTasks: { ok: true; assigned: RunningTask[] };
  speculateTasks: { ok: true; assigned: RunningTask[] };
  /** `to_stop`: the losers of speculative races. */
  completeTasks: {
    ok: true;
    accepted: (TaskRef & { ms?: number })[];
    at: number;
    finished_jobs: string[];
    to_stop: RunningTask[];
  };
  failTasks: { ok: true; retried: TaskRef[]; failed_jobs: string[]; to_stop: RunningTask[] };
  cancelJob: { ok: true; to_stop: RunningTask[] };
  collectRows: { ok: true; rows: number };
  /**
   * `to_stop`: attempts still running; `seq`: the job's, for the PurgeJob slices that follow
   * while `more`; `upload_id`: an upload no job reads any more (every master removes its copy).
   */
  deleteJob: { ok: true; to_stop: RunningTask[]; seq: number; more: boolean; upload_id?: string };
  purgeJob: { ok: true; more: boolean; removed: number };
  forgetUpload: { ok: true };
  forgetWorker: { ok: true; forgotten: boolean };
  appendLogs: { ok: true; lines: number };
  /** `version`: the rules the state follows now. */
  setRules: { ok: true; version: number };
  /** `more`: older records are left for the next entry. */
  pruneDeletedUploads: { ok: true; removed: number; more: boolean };
}

/** Each command's result, or why it was refused. */
export type Results = { [K in Command['type']]: Applied[K] | Refusal };

/** What applying a command of type `K` (any command by default) returns. */
export type ApplyResult<K extends Command['type'] = Command['type']> = Results[K];

import type { Database, Statement } from 'better-sqlite3';
import type {
  AppendLogs,
  ApplyResult,
  AssignTasks,
  CancelJob,
  CollectRows,
  Command,
  CompleteTasks,
  DeleteJob,
  DrainWorker,
  ForgetUpload,
  ForgetWorker,
  PurgeJob,
  FailTasks,
  MarkWorkerDead,
  RegisterWorker,
  PruneDeletedUploads,
  SetRules,
  SpeculateTasks,
  RunningTask,
  SubmitJob,
} from './commands.js';
import { uploadDeletedMessage } from './commands.js';
import { taskKey, type TaskRef } from '../protocol/task-ref.js';
import { isDataJob } from '../ops/batch-config.js';
import { rangeBoundaries } from '../ops/keys.js';
import { planStages, stageOf, type JobPlan } from '../ops/stages.js';
import { isFinalFailure, mayRetry, retryBackoffMs, workerLostError } from './retry-policy.js';
import {
  FIRST_RULES,
  LOSSES_COUNT_FROM,
  LOSSES_NEED_A_START_FROM,
  MAX_WORKER_LOSSES,
  PRUNES_DELETED_UPLOADS_FROM,
} from './rules.js';
import { RESULTS_CAP_BYTES, ResultRows, rowsFrom } from './result-rows.js';
import { TaskLogWriter } from './task-logs.js';
import { UPLOAD_ID, uploadIdOfUrl } from '../common/ids.js';

/**
 * Rows one deleteJob or purgeJob removes at most (5–10 ms of apply here, measured): a job of
 * a million tasks goes in two hundred commands, none holding the state machine (and with it
 * the Raft loop) for long.
 */
export const PURGE_SLICE_ROWS = 5_000;

/** A running task's attempts: `alt_*` is the original when a speculative copy races it. */
interface Attempts {
  job_id: string;
  seq: number;
  idx: number;
  attempt: number;
  worker_id: string;
  alt_attempt: number | null;
  alt_worker_id: string | null;
}

/** The attempts of a running task other than `attempt`. */
function otherAttempts(t: Attempts, attempt: number | null): RunningTask[] {
  const all = [{ job_id: t.job_id, idx: t.idx, attempt: t.attempt, worker_id: t.worker_id }];
  if (t.alt_attempt !== null && t.alt_worker_id !== null) {
    all.push({ job_id: t.job_id, idx: t.idx, attempt: t.alt_attempt, worker_id: t.alt_worker_id });
  }
  return all.filter((a) => a.attempt !== attempt);
}

/**
 * The attempts a lost worker said it had begun, by key. Absent, none: a leader that knows rules 4
 * always names them, so a command without is one a leader cannot have sent under them.
 */
function beganKeys(began: unknown): Set<string> {
  if (began === undefined) return new Set();
  if (!Array.isArray(began) || began.length > MAX_BEGAN || !began.every(isRef)) {
    throw new TypeError(`began ${JSON.stringify(began)?.slice(0, 200)} is not a list of attempts`);
  }
  return new Set(began.map(taskKey));
}

/** Attempts a MarkWorkerDead names at most: those running on one worker. */
const MAX_BEGAN = 1_000_000;

const isRef = (r: unknown): r is TaskRef =>
  typeof r === 'object' &&
  r !== null &&
  typeof (r as TaskRef).job_id === 'string' &&
  Number.isSafeInteger((r as TaskRef).idx) &&
  Number.isSafeInteger((r as TaskRef).attempt);

interface Counters {
  pending: number;
  running: number;
  completed: number;
  failed: number;
  /** Bytes of results stored (result_bytes), written with the counters: no statement of its own. */
  bytes: number;
}

const zero = (): Counters => ({ pending: 0, running: 0, completed: 0, failed: 0, bytes: 0 });

/** What apply needs of a job to find and create its tasks' rows (tasks are keyed by seq). */
interface JobKey {
  seq: number;
  status: string;
  total: number;
  created_at: number;
  untouched_from: number;
  /** Keyed jobs: the first task whose results go into result_rows; null for list results. */
  rows_from: number | null;
  /** Bytes of results stored so far, against RESULTS_CAP_BYTES. */
  result_bytes: number;
}

/**
 * The deterministic state transition function: `apply(command)` against the state database,
 * inside the transaction the caller opened. Same commands in the same order → same database
 * on every master. Expected refusals are results, not exceptions, so one bad command never
 * rolls back a batch.
 */
export class Applier {
  private readonly s: ReturnType<typeof prepare>;
  private readonly rows: ResultRows;
  private readonly logs: TaskLogWriter;
  /** Counter deltas per job, flushed once per command rather than once per task. */
  private deltas = new Map<string, Counters>();
  /** Jobs the current command completed (their workers may drop the job's map outputs). */
  private finished: string[] = [];
  /** Jobs the current command touched, by id: looked up once per job per command. */
  private jobs = new Map<string, JobKey | undefined>();

  constructor(private readonly db: Database) {
    this.s = prepare(db);
    this.rows = new ResultRows(db);
    this.logs = new TaskLogWriter(db);
  }

  /** Forgets what a command that threw half-way left behind (its writes are rolled back). */
  reset(): void {
    this.deltas.clear();
    this.finished = [];
    this.jobs.clear();
  }

  apply(cmd: Command): ApplyResult {
    this.jobs.clear();
    switch (cmd.type) {
      case 'registerWorker':
        return this.registerWorker(cmd);
      case 'markWorkerDead':
        return this.markWorkerDead(cmd);
      case 'drainWorker':
        return this.drainWorker(cmd);
      case 'submitJob':
        return this.submitJob(cmd);
      case 'assignTasks':
        return this.withCounters(() => this.assignTasks(cmd));
      case 'speculateTasks':
        return this.speculateTasks(cmd);
      case 'completeTasks':
        return this.withCounters(() => this.completeTasks(cmd));
      case 'failTasks':
        return this.withCounters(() => this.failTasks(cmd));
      case 'cancelJob':
        return this.cancelJob(cmd);
      case 'collectRows':
        return this.collectRows(cmd);
      case 'deleteJob':
        return this.deleteJob(cmd);
      case 'purgeJob':
        return this.purgeJob(cmd);
      case 'forgetWorker':
        return this.forgetWorker(cmd);
      case 'forgetUpload':
        return this.forgetUpload(cmd);
      case 'appendLogs':
        return this.appendLogs(cmd);
      case 'setRules':
        return this.setRules(cmd);
      case 'pruneDeletedUploads':
        return this.pruneDeletedUploads(cmd);
      default:
        throw new Error(`unknown command type ${JSON.stringify((cmd as { type?: unknown }).type)}`);
    }
  }

  private registerWorker(cmd: RegisterWorker): ApplyResult<'registerWorker'> {
    this.s.insertWorker.run(cmd.worker_id, cmd.address, cmd.max_tasks, cmd.at);
    return { ok: true, worker_id: cmd.worker_id };
  }

  private markWorkerDead(cmd: MarkWorkerDead): ApplyResult<'markWorkerDead'> {
    const w = this.s.getWorker.get(cmd.worker_id) as { status: string } | undefined;
    if (!w || w.status === 'dead') return { ok: true, requeued: 0, to_stop: [], jobs: [], failed_jobs: [] };
    this.s.setWorkerDead.run(cmd.at, cmd.reason, cmd.worker_id);
    // A lost worker never uses up a task's retries (its failures stay); from rules 2 on it is
    // counted in the task's losses, and a batch task that has lost MAX_WORKER_LOSSES fails.
    // Not a worker that was draining (stopped on purpose, its tasks cut when its wait ran out);
    // from rules 4, only against the tasks it said it had begun.
    const rules = this.rules();
    const counted = rules >= LOSSES_COUNT_FROM && w.status !== 'draining';
    const began = rules >= LOSSES_NEED_A_START_FROM ? beganKeys(cmd.began) : undefined;
    const running = this.s.runningOnWorker.all(cmd.worker_id, cmd.worker_id) as (Attempts & {
      type: string;
      losses: number;
    })[];
    return this.withCounters(() => {
      const toStop: RunningTask[] = [];
      const requeued: Attempts[] = [];
      const failedJobs = new Set<string>();
      for (const t of running) {
        // Failed by a task before this one, in this entry: its tasks are all over already.
        if (failedJobs.has(t.job_id)) continue;
        if (t.alt_worker_id === cmd.worker_id) {
          // The original of a speculative race lost with its worker: the race goes on with the
          // copy (a lost copy ends it, as a failed one does, for the numbers' sake).
          this.s.survive.run(0, null, cmd.at, t.attempt, t.worker_id, t.seq, t.idx);
          continue;
        }
        toStop.push(...otherAttempts(t, t.attempt));
        // A streaming instance runs for as long as its job: every worker it ever ran on may be
        // restarted under it, so its losses say nothing about it. Nor does a speculative copy's
        // lost worker say anything of the task: its original was running elsewhere.
        const lost =
          counted && t.type === 'batch' && t.alt_worker_id === null && (began?.has(taskKey(t)) ?? true) ? 1 : 0;
        if (t.losses + lost >= MAX_WORKER_LOSSES) {
          const error = workerLostError(t.losses + lost, cmd.worker_id, cmd.reason);
          this.s.loseTask.run(lost, cmd.at, JSON.stringify(error), t.seq, t.idx);
          this.delta(t.job_id, { running: -1, failed: 1 });
          const jobError = JSON.stringify({ task: t.idx, attempts: t.attempt, ...error });
          toStop.push(...this.finishJob(t.job_id, 'failed', cmd.at, jobError));
          failedJobs.add(t.job_id);
          continue;
        }
        this.s.requeue.run(cmd.at, null, lost, t.seq, t.idx);
        this.delta(t.job_id, { running: -1, pending: 1 });
        requeued.push(t);
      }
      toStop.push(...this.rerunLostMapOutputs(cmd.worker_id, cmd.at));
      return {
        ok: true,
        requeued: requeued.filter((t) => !failedJobs.has(t.job_id)).length,
        to_stop: toStop,
        jobs: [...new Set(requeued.map((t) => t.job_id))].filter((j) => !failedJobs.has(j)),
        failed_jobs: [...failedJobs],
      };
    });
  }

  /** The rules this state is applied by (rules.ts): read where a rule decides, not per command. */
  private rules(): number {
    return (this.s.getMeta.get('rules_version') as { value: number } | undefined)?.value ?? FIRST_RULES;
  }

  private setRules(cmd: SetRules): ApplyResult<'setRules'> {
    if (!Number.isSafeInteger(cmd.version) || cmd.version < FIRST_RULES) {
      throw new TypeError(`rules version ${JSON.stringify(cmd.version)} is not a positive integer`);
    }
    // Rules never go back: a state applied by newer ones cannot be read as if it had not been.
    const version = Math.max(this.rules(), cmd.version);
    this.s.setMeta.run(version, 'rules_version');
    return { ok: true, version };
  }

  private pruneDeletedUploads(cmd: PruneDeletedUploads): ApplyResult<'pruneDeletedUploads'> {
    const rules = this.rules();
    if (rules < PRUNES_DELETED_UPLOADS_FROM) {
      return {
        ok: false,
        code: 'conflict',
        message: `pruning deleted uploads needs rules ${PRUNES_DELETED_UPLOADS_FROM}; this state follows rules ${rules}`,
      };
    }
    if (!Number.isSafeInteger(cmd.before)) throw new TypeError(`before ${JSON.stringify(cmd.before)} is no time`);
    const removed = this.s.pruneDeletedUploads.run(cmd.before, PURGE_SLICE_ROWS).changes;
    return { ok: true, removed, more: removed === PURGE_SLICE_ROWS };
  }

  private drainWorker(cmd: DrainWorker): ApplyResult<'drainWorker'> {
    this.s.setWorkerDraining.run(cmd.worker_id);
    return { ok: true };
  }

  private submitJob(cmd: SubmitJob): ApplyResult<'submitJob'> {
    if (cmd.idempotency_key) {
      const existing = this.s.jobByKey.get(cmd.idempotency_key) as
        { job_id: string; name: string; type: string; config: string } | undefined;
      if (existing) {
        // A retry is the same submit; another one under the same key would be answered with a
        // job that is not the one asked for.
        if (
          existing.name === cmd.name &&
          existing.type === cmd.job_type &&
          existing.config === JSON.stringify(cmd.config)
        )
          return { ok: true, job_id: existing.job_id, duplicate: true };
        return {
          ok: false,
          code: 'conflict',
          message: `the Idempotency-Key was used for another submit (job ${existing.job_id}); a new job needs a new key`,
        };
      }
    }
    const upload = uploadIdOfUrl((cmd.config as { input?: { url?: unknown } }).input?.url);
    // Looked at again where the order is decided: the route looked before proposing, and a
    // delete applied in between may have taken the upload with the last job that read it.
    if (upload !== undefined && this.s.deletedUpload.get(upload) !== undefined) {
      return { ok: false, code: 'not_found', message: uploadDeletedMessage(upload) };
    }
    const seq = (this.s.getMeta.get('job_seq') as { value: number }).value + 1;
    this.s.setMeta.run(seq, 'job_seq');
    const stages = isDataJob(cmd.config) ? planStages(cmd.config) : undefined;
    const n = stages ? stages.reduce((k, st) => k + st.count, 0) : cmd.config.task_count;
    // Only the first stage is runnable; the others wait for the stage before them. A job of
    // one stage gets its tasks' rows as they are assigned (see untouched_from in schema.ts).
    const runnable = stages ? stages[0]!.count : n;
    const lazy = runnable === n;
    const rowsFromIdx = rowsFrom(cmd.config);
    this.s.insertJob.run(
      cmd.job_id,
      seq,
      cmd.name,
      cmd.job_type,
      JSON.stringify(cmd.config),
      cmd.idempotency_key ?? null,
      cmd.at,
      cmd.config.max_retries,
      n,
      n,
      stages ? JSON.stringify({ stages } satisfies JobPlan) : null,
      lazy ? 0 : n,
      rowsFromIdx,
    );
    // What jobOf would read back, for this command's own assignments (assignOnSubmit).
    this.jobs.set(cmd.job_id, {
      seq,
      status: 'pending',
      total: n,
      created_at: cmd.at,
      untouched_from: lazy ? 0 : n,
      rows_from: rowsFromIdx,
      result_bytes: 0,
    });
    if (upload !== undefined || cmd.retention_ms !== undefined) {
      this.s.setJobLifecycle.run(upload ?? null, cmd.retention_ms ?? null, seq);
    }
    if (!lazy) {
      this.s.insertTasks.run({ first: 0, end: runnable, status: 'pending', at: cmd.at, seq });
      this.s.insertTasks.run({ first: runnable, end: n, status: 'waiting', at: cmd.at, seq });
    }
    return { ok: true, job_id: cmd.job_id, duplicate: false, ...this.assignOnSubmit(cmd, runnable) };
  }

  /** The submit entry's own assignments, checked as an AssignTasks entry's are. */
  private assignOnSubmit(cmd: SubmitJob, runnable: number): { assigned?: RunningTask[] } {
    const first = (cmd.assignments ?? []).filter((a) => Number.isSafeInteger(a.idx) && a.idx < runnable);
    if (first.length === 0) return {};
    const assignments = first.map((a) => ({ job_id: cmd.job_id, idx: a.idx, attempt: 1, worker_id: a.worker_id }));
    const r = this.withCounters(() => this.assignTasks({ type: 'assignTasks', at: cmd.at, assignments }));
    return r.ok && r.assigned.length ? { assigned: r.assigned } : {};
  }

  private assignTasks(cmd: AssignTasks): ApplyResult<'assignTasks'> {
    const assigned: RunningTask[] = [];
    const live = new Map<string, boolean>();
    const touched = new Set<JobKey>();
    for (const a of cmd.assignments) {
      let ok = live.get(a.worker_id);
      if (ok === undefined) {
        const w = this.s.getWorker.get(a.worker_id) as { status: string } | undefined;
        ok = w?.status === 'active';
        live.set(a.worker_id, ok);
      }
      const job = this.jobOf(a.job_id);
      // Only the leader proposes assignments; still, an index that is not one must not reach
      // the row inserts below (a string would make the range insert endless on every master).
      if (!ok || !job || !Number.isSafeInteger(a.idx) || a.idx < 0) continue;
      if (a.idx < job.untouched_from) {
        if (this.s.assign.run(a.worker_id, cmd.at, job.seq, a.idx, a.attempt).changes === 0) continue;
      } else {
        // The task's first assignment gives it its row. Tasks it skips over get theirs now,
        // still pending, so that untouched_from keeps meaning "no row from here on".
        if (a.attempt !== 1 || a.idx >= job.total || (job.status !== 'pending' && job.status !== 'running')) continue;
        if (a.idx > job.untouched_from) {
          const skipped = {
            first: job.untouched_from,
            end: a.idx,
            status: 'pending',
            at: job.created_at,
            seq: job.seq,
          };
          this.s.insertTasks.run(skipped);
        }
        this.s.insertRunning.run(job.seq, a.idx, a.worker_id, job.created_at, cmd.at);
        job.untouched_from = a.idx + 1;
        touched.add(job);
      }
      if (!this.deltas.has(a.job_id)) this.s.startJob.run(cmd.at, a.job_id); // once per job
      this.delta(a.job_id, { pending: -1, running: 1 });
      assigned.push(a);
    }
    for (const job of touched) this.s.setUntouched.run(job.untouched_from, job.seq);
    return { ok: true, assigned };
  }

  private speculateTasks(cmd: SpeculateTasks): ApplyResult<'speculateTasks'> {
    const assigned: RunningTask[] = [];
    for (const c of cmd.copies) {
      const w = this.s.getWorker.get(c.worker_id) as { status: string } | undefined;
      const job = this.jobOf(c.job_id);
      if (w?.status !== 'active' || !job) continue;
      if (this.s.speculate.run(c.worker_id, job.seq, c.idx, c.attempt, c.worker_id).changes === 0) continue;
      assigned.push({ job_id: c.job_id, idx: c.idx, attempt: c.attempt + 1, worker_id: c.worker_id });
    }
    return { ok: true, assigned };
  }

  private completeTasks(cmd: CompleteTasks): ApplyResult<'completeTasks'> {
    const accepted: (TaskRef & { ms?: number })[] = [];
    const toStop: RunningTask[] = [];
    for (const c of cmd.completions) {
      const job = this.jobOf(c.job_id);
      if (job === undefined) continue;
      const seq = job.seq;
      // What it printed is kept whatever became of its outcome (a stale attempt's too).
      if (c.logs) this.logs.addOnce(seq, c.idx, c.attempt, c.logs);
      // First completion from the live attempt wins; stale or repeated reports change nothing,
      // nor does a report from a worker the log does not name for that attempt (the leader
      // sends tasks out before their assignment commits; one that never did may have run).
      // A keyed job's final results are kept in result_rows alone (written below), not twice.
      const indexed = job.rows_from !== null && c.idx >= job.rows_from;
      const kept = indexed ? null : c.result_json;
      if (this.s.complete.run(cmd.at, kept, seq, c.idx, c.attempt, c.worker_id).changes === 0) {
        // Raced by a speculative copy: either attempt may win; the other one stops.
        const t = this.s.runningCopy.get(seq, c.idx, c.attempt, c.worker_id, c.attempt, c.worker_id) as
          Attempts | undefined;
        if (!t) continue;
        this.s.completeCopy.run(cmd.at, kept, c.attempt, c.worker_id, seq, c.idx);
        toStop.push(...otherAttempts(t, c.attempt));
      }
      const bytes = Buffer.byteLength(c.result_json);
      job.result_bytes += bytes;
      this.delta(c.job_id, { bytes });
      if (job.result_bytes > RESULTS_CAP_BYTES) {
        toStop.push(...this.failOverCap(c.job_id, seq, c.idx, job.result_bytes, cmd.at));
        continue;
      }
      if (indexed) this.rows.add(seq, c.idx, c.result_json);
      this.delta(c.job_id, { running: -1, completed: 1 });
      accepted.push({ job_id: c.job_id, idx: c.idx, attempt: c.attempt, ...(c.ms === undefined ? {} : { ms: c.ms }) });
    }
    for (const jobId of new Set(accepted.map((a) => a.job_id))) this.advanceStages(jobId, cmd.at);
    this.flushCounters();
    return { ok: true, accepted, at: cmd.at, finished_jobs: this.takeFinished(), to_stop: toStop };
  }

  /**
   * A completion that takes the job's stored results over the cap fails the job: its results
   * are not kept, and the message says how to write big results (to files, config.output).
   */
  private failOverCap(jobId: string, seq: number, idx: number, bytes: number, at: number): RunningTask[] {
    const capMiB = RESULTS_CAP_BYTES / (1024 * 1024);
    const message =
      `the job's results reached the ${capMiB} MiB cap on stored results (task ${idx} took them to ${bytes} bytes); ` +
      `write big results to files instead: config.output {"path": "/a/dir/every/worker/can/write"} (with a reduce stage)`;
    const error = JSON.stringify({ message, name: 'results_too_large' });
    this.s.overCap.run(at, error, seq, idx);
    this.delta(jobId, { running: -1, failed: 1 });
    const toStop = this.finishJob(
      jobId,
      'failed',
      at,
      JSON.stringify({ task: idx, message, name: 'results_too_large' }),
    );
    this.finished.push(jobId);
    return toStop;
  }

  private failTasks(cmd: FailTasks): ApplyResult<'failTasks'> {
    const retried: TaskRef[] = [];
    const failedJobs: string[] = [];
    const toStop: RunningTask[] = [];
    for (const f of cmd.failures) {
      const seq = this.jobOf(f.job_id)?.seq;
      if (seq === undefined) continue;
      if (f.logs) this.logs.addOnce(seq, f.idx, f.attempt, f.logs);
      const row = this.s.runningTaskWithJob.get(seq, f.idx, f.attempt, f.worker_id, f.attempt, f.worker_id) as
        (Attempts & { failures: number; max_retries: number }) | undefined;
      if (!row) continue;
      const others = otherAttempts(row, f.attempt);
      if (f.error.fetch_failed && this.isShuffleRead(f.job_id, f.idx, f.error.fetch_failed.idx)) {
        // Not the reduce task's fault: the map output it needed is gone (lineage, not a retry).
        toStop.push(...others, ...this.onFetchFailed(f, f.error.fetch_failed, cmd.at));
        retried.push(f);
        continue;
      }
      const failures = row.failures + 1;
      const error = JSON.stringify(f.error);
      // A path or right the worker refuses stays refused: another attempt would only be refused again.
      const retry = mayRetry(failures, row.max_retries) && !isFinalFailure(f.error);
      const copy = others[0];
      if (retry && copy && copy.attempt > f.attempt) {
        // An original that fails while its speculative copy runs: the race goes on with the
        // copy, charged this failure. Stopping a healthy attempt to start another sent the task
        // where it may fail again (a worker with a full disk fails every attempt, and so always
        // has a free slot). A failed copy ends the race instead, as below: the original, with
        // the lower number, would carry on, and the next attempt reuse the copy's number.
        this.s.survive.run(1, error, cmd.at, copy.attempt, copy.worker_id, seq, f.idx);
        continue;
      }
      // Past its retries, or refused for good, the task ends as a whole: the other attempt stops.
      toStop.push(...others);
      if (retry) {
        this.s.retry.run(cmd.at + retryBackoffMs(failures), error, seq, f.idx);
        this.delta(f.job_id, { running: -1, pending: 1 });
        retried.push(f);
        continue;
      }
      this.s.failTask.run(cmd.at, error, seq, f.idx);
      this.delta(f.job_id, { running: -1, failed: 1 });
      const jobError = JSON.stringify({ task: f.idx, attempts: failures, ...f.error });
      toStop.push(...this.finishJob(f.job_id, 'failed', cmd.at, jobError));
      failedJobs.push(f.job_id);
    }
    return { ok: true, retried, failed_jobs: failedJobs, to_stop: toStop };
  }

  private collectRows(cmd: CollectRows): ApplyResult<'collectRows'> {
    const job = this.s.getJob.get(cmd.job_id) as { status: string } | undefined;
    if (!job) return { ok: false, code: 'not_found', message: `no job with id '${cmd.job_id}'` };
    // Rows of a cancelled job are still kept: the sink delivered them before it stopped.
    let seq = (this.s.getMeta.get('row_seq') as { value: number }).value;
    for (const r of cmd.rows) this.s.upsertRow.run(cmd.job_id, r.key, ++seq, JSON.stringify(r.value));
    this.s.setMeta.run(seq, 'row_seq');
    return { ok: true, rows: cmd.rows.length };
  }

  private cancelJob(cmd: CancelJob): ApplyResult<'cancelJob'> {
    const job = this.s.getJob.get(cmd.job_id) as { status: string } | undefined;
    if (!job) return { ok: false, code: 'not_found', message: `no job with id '${cmd.job_id}'` };
    if (job.status !== 'pending' && job.status !== 'running') {
      return { ok: false, code: 'conflict', message: `job '${cmd.job_id}' is already ${job.status}` };
    }
    const toStop = this.withCounters(() => this.finishJob(cmd.job_id, 'cancelled', cmd.at, null));
    return { ok: true, to_stop: toStop };
  }

  /**
   * The job's row goes now (every read answers 404 from this entry on); its tasks and rows
   * follow in slices, this command's first. A running job's attempts are stopped; its tasks'
   * rows are not rewritten as cancelled (they are about to go).
   */
  private deleteJob(cmd: DeleteJob): ApplyResult<'deleteJob'> {
    const job = this.s.jobLifecycle.get(cmd.job_id) as
      { seq: number; status: string; upload_id: string | null } | undefined;
    if (!job) return { ok: false, code: 'not_found', message: `no job with id '${cmd.job_id}'` };
    let toStop: RunningTask[] = [];
    if (job.status === 'pending' || job.status === 'running') {
      toStop = (this.s.runningOfDeleted.all(job.seq, job.seq) as Omit<RunningTask, 'job_id'>[]).map((t) => ({
        job_id: cmd.job_id,
        ...t,
      }));
      // Their slots are free at once: the scheduler counts running rows.
      this.s.cancelRunning.run(cmd.at, job.seq);
    }
    this.s.deleteJob.run(cmd.job_id);
    this.s.insertPurging.run(job.seq, cmd.job_id);
    let upload: string | undefined;
    if (job.upload_id && this.s.uploadReader.get(job.upload_id) === undefined) {
      upload = job.upload_id;
      this.s.insertDeletedUpload.run(upload, cmd.at);
    }
    const { more } = this.purgeSlice(job.seq, cmd.job_id);
    return { ok: true, to_stop: toStop, seq: job.seq, more, ...(upload ? { upload_id: upload } : {}) };
  }

  private purgeJob(cmd: PurgeJob): ApplyResult<'purgeJob'> {
    const p = this.s.getPurging.get(cmd.seq) as { job_id: string } | undefined;
    // Already done (a slice proposed twice, by an old leader and a new one): nothing to do.
    if (!p) return { ok: true, more: false, removed: 0 };
    return { ok: true, ...this.purgeSlice(cmd.seq, p.job_id) };
  }

  /**
   * Removes up to PURGE_SLICE_ROWS of a deleted job's rows (tasks, indexed result rows, stream
   * rows); the job is purged once none are left.
   */
  private purgeSlice(seq: number, jobId: string): { more: boolean; removed: number } {
    let budget = PURGE_SLICE_ROWS;
    const last = this.s.taskSliceEnd.get(seq, budget - 1) as { idx: number } | undefined;
    budget -= (last ? this.s.deleteTasksUpTo.run(seq, last.idx) : this.s.deleteTasks.run(seq)).changes;
    if (budget > 0) budget -= this.s.deleteResultRows.run(seq, seq, budget).changes;
    if (budget > 0) budget -= this.s.deleteStreamRows.run(jobId, jobId, budget).changes;
    if (budget > 0) budget -= this.logs.deleteSlice(seq, budget);
    // A slice that used its whole budget may have left rows: the next one finds out.
    const more = budget === 0;
    if (!more) this.s.deletePurging.run(seq);
    return { more, removed: PURGE_SLICE_ROWS - budget };
  }

  private appendLogs(cmd: AppendLogs): ApplyResult<'appendLogs'> {
    const job = this.jobOf(cmd.job_id);
    if (!job) return { ok: false, code: 'not_found', message: `no job with id '${cmd.job_id}'` };
    let lines = 0;
    for (const l of cmd.logs) {
      this.logs.add(job.seq, l.idx, l.attempt, l.lines);
      lines += l.lines.length;
    }
    return { ok: true, lines };
  }

  private forgetWorker(cmd: ForgetWorker): ApplyResult<'forgetWorker'> {
    const r = this.s.forgetWorker.run(cmd.worker_id, cmd.dead_before);
    return { ok: true, forgotten: r.changes > 0 };
  }

  private forgetUpload(cmd: ForgetUpload): ApplyResult<'forgetUpload'> {
    const id = cmd.upload_id;
    if (typeof id !== 'string' || !UPLOAD_ID.test(id) || !Number.isSafeInteger(cmd.at)) {
      return { ok: false, code: 'not_found', message: `'${String(id)}' is no upload id, or the command no time` };
    }
    const reader = this.s.uploadReaderJob.get(id) as { job_id: string } | undefined;
    if (reader) {
      return {
        ok: false,
        code: 'conflict',
        message: `job ${reader.job_id} reads upload ${id}: delete the jobs that read it, and it goes with the last one`,
      };
    }
    this.s.insertDeletedUpload.run(id, cmd.at);
    return { ok: true };
  }

  /** Moves a multi-stage job to its next stage(s) once every task of the current one completed. */
  private advanceStages(jobId: string, at: number): void {
    const job = this.s.jobPlan.get(jobId) as
      { seq: number; plan: string | null; stage: number; status: string } | undefined;
    if (!job?.plan || (job.status !== 'running' && job.status !== 'pending')) return;
    const plan = JSON.parse(job.plan) as JobPlan;
    let stage = job.stage;
    for (; stage < plan.stages.length - 1; stage++) {
      const st = plan.stages[stage]!;
      if ((this.s.unfinishedInRange.get(job.seq, st.first, st.first + st.count - 1) as { n: number }).n > 0) break;
      if (st.name === 'sample') {
        const keys: unknown[] = [];
        for (const r of this.s.resultsInRange.all(job.seq, st.first, st.first + st.count - 1) as { result: string }[]) {
          keys.push(...(JSON.parse(r.result) as unknown[]));
        }
        plan.boundaries = rangeBoundaries(keys, plan.stages[plan.stages.length - 1]!.count);
        this.s.setPlan.run(JSON.stringify(plan), jobId);
      }
      const next = plan.stages[stage + 1]!;
      this.s.activate.run(at, job.seq, next.first, next.first + next.count - 1);
    }
    if (stage !== job.stage) this.s.setStage.run(stage, jobId);
  }

  /**
   * A dead worker took its map outputs with it: completed map tasks whose output a later
   * stage still needs run again, and that stage waits for them (lineage, as Spark re-runs
   * lost shuffle outputs). Returns tasks to stop: consumers that were running.
   */
  private rerunLostMapOutputs(workerId: string, at: number): RunningTask[] {
    const toStop: RunningTask[] = [];
    for (const job of this.s.stagedActiveJobs.all() as { job_id: string; seq: number; plan: string }[]) {
      const plan = JSON.parse(job.plan) as JobPlan;
      plan.stages.forEach((st, s) => {
        if (st.name !== 'map' || s === plan.stages.length - 1) return;
        const consumer = plan.stages[s + 1]!;
        const left = this.s.unfinishedInRange.get(job.seq, consumer.first, consumer.first + consumer.count - 1);
        if ((left as { n: number }).n === 0) return;
        const lost = this.s.completedOnWorkerInRange.all(job.seq, st.first, st.first + st.count - 1, workerId);
        if (lost.length === 0) return;
        for (const t of lost as { idx: number }[]) this.invalidate(job.job_id, job.seq, t.idx, at);
        toStop.push(...this.rewind(job.job_id, job.seq, plan, s));
      });
    }
    return toStop;
  }

  private onFetchFailed(f: RunningTask, lost: { idx: number; attempt: number }, at: number): RunningTask[] {
    const job = this.s.jobPlan.get(f.job_id) as { seq: number; plan: string | null; stage: number };
    const plan = job.plan ? (JSON.parse(job.plan) as JobPlan) : undefined;
    const map = this.s.taskState.get(job.seq, lost.idx) as { status: string; attempt: number } | undefined;
    if (plan && map?.status === 'completed' && map.attempt === lost.attempt) {
      this.invalidate(f.job_id, job.seq, lost.idx, at);
      return this.rewind(f.job_id, job.seq, plan, stageOf(plan.stages, lost.idx).stage);
    }
    // That output was already replaced: run again with the new locations.
    this.s.retryAs.run('pending', at + 200, job.seq, f.idx);
    this.delta(f.job_id, { running: -1, pending: 1 });
    return [];
  }

  /**
   * Whether task `idx` reads the map outputs of the stage holding `mapIdx` — the only case
   * where a fetch failure is trusted (anything else claiming one is an ordinary failure).
   */
  private isShuffleRead(jobId: string, idx: number, mapIdx: number): boolean {
    const job = this.s.jobPlan.get(jobId) as { plan: string | null } | undefined;
    if (!job?.plan) return false;
    const { stages } = JSON.parse(job.plan) as JobPlan;
    const reader = stages.findIndex((st) => idx >= st.first && idx < st.first + st.count);
    const producer = stages[reader - 1];
    return (
      stages[reader]?.name === 'reduce' &&
      producer?.name === 'map' &&
      mapIdx >= producer.first &&
      mapIdx < producer.first + producer.count
    );
  }

  /** A completed task whose output is lost goes back to pending, as a new attempt. */
  private invalidate(jobId: string, seq: number, idx: number, at: number): void {
    // Its results go with it, and leave the cap's count: the re-run adds them back.
    const kept = this.s.resultBytes.get(seq, idx) as { bytes: number | null } | undefined;
    if (this.s.invalidate.run(at, seq, idx).changes === 0) return;
    const bytes = kept?.bytes ?? 0;
    const job = this.jobs.get(jobId);
    if (job) job.result_bytes -= bytes;
    this.delta(jobId, { completed: -1, pending: 1, bytes: -bytes });
  }

  /** The job goes back to `stage`: later stages' unfinished tasks wait (new attempts). */
  private rewind(jobId: string, seq: number, plan: JobPlan, stage: number): RunningTask[] {
    const last = plan.stages[plan.stages.length - 1]!;
    const from = plan.stages[stage + 1]!.first;
    const to = last.first + last.count - 1;
    const running = this.s.runningInRange.all(seq, from, to, seq, from, to) as Omit<RunningTask, 'job_id'>[];
    this.s.toWaiting.run(seq, from, to);
    // A task raced by a speculative copy is one running task with two attempts to stop.
    const tasks = new Set(running.map((t) => t.idx)).size;
    if (tasks) this.delta(jobId, { running: -tasks, pending: tasks });
    this.s.setStage.run(stage, jobId);
    return running.map((t) => ({ job_id: jobId, ...t }));
  }

  private takeFinished(): string[] {
    const f = this.finished;
    this.finished = [];
    return f;
  }

  /** Ends a job: its unfinished tasks are cancelled; returns those a worker is still running. */
  private finishJob(jobId: string, status: 'failed' | 'cancelled', at: number, error: string | null): RunningTask[] {
    const { seq } = this.jobOf(jobId)!;
    const running = this.s.runningOfJob.all(seq, seq) as Omit<RunningTask, 'job_id'>[];
    this.flushCounters();
    this.s.cancelTasks.run(at, seq);
    this.s.finishJob.run(status, at, error, jobId);
    this.deltas.delete(jobId);
    return running.map((t) => ({ job_id: jobId, ...t }));
  }

  private jobOf(jobId: string): JobKey | undefined {
    if (this.jobs.has(jobId)) return this.jobs.get(jobId);
    const job = this.s.jobKey.get(jobId) as JobKey | undefined;
    this.jobs.set(jobId, job);
    return job;
  }

  private delta(jobId: string, d: Partial<Counters>): void {
    let c = this.deltas.get(jobId);
    if (!c) this.deltas.set(jobId, (c = zero()));
    c.pending += d.pending ?? 0;
    c.running += d.running ?? 0;
    c.completed += d.completed ?? 0;
    c.failed += d.failed ?? 0;
    c.bytes += d.bytes ?? 0;
  }

  private withCounters<T>(fn: () => T): T {
    try {
      return fn();
    } finally {
      this.flushCounters();
    }
  }

  private flushCounters(): void {
    for (const [jobId, c] of this.deltas) {
      this.s.bumpCounters.run(c.pending, c.running, c.completed, c.failed, c.bytes, jobId);
      // The last task done completes the job (only a running job: a failed one stays failed).
      if (c.completed > 0 && this.s.completeJobIfDone.run(jobId).changes > 0) this.finished.push(jobId);
    }
    this.deltas.clear();
  }
}

function prepare(db: Database) {
  const st = (sql: string): Statement => db.prepare(sql);
  return {
    getMeta: st(`SELECT value FROM meta WHERE key = ?`),
    setMeta: st(`UPDATE meta SET value = ? WHERE key = ?`),
    insertWorker: st(
      `INSERT OR IGNORE INTO workers (worker_id, address, max_tasks, status, registered_at) VALUES (?, ?, ?, 'active', ?)`,
    ),
    getWorker: st(`SELECT status FROM workers WHERE worker_id = ?`),
    setWorkerDead: st(`UPDATE workers SET status = 'dead', dead_at = ?, dead_reason = ? WHERE worker_id = ?`),
    setWorkerDraining: st(`UPDATE workers SET status = 'draining' WHERE worker_id = ? AND status = 'active'`),
    runningOnWorker: st(
      `SELECT j.job_id, j.type, t.seq, t.idx, t.attempt, t.worker_id, t.alt_attempt, t.alt_worker_id, t.losses
         FROM tasks t JOIN jobs j ON j.seq = t.seq WHERE t.status = 'running' AND t.worker_id = ?
       UNION SELECT j.job_id, j.type, t.seq, t.idx, t.attempt, t.worker_id, t.alt_attempt, t.alt_worker_id, t.losses
         FROM tasks t JOIN jobs j ON j.seq = t.seq WHERE t.status = 'running' AND t.alt_worker_id = ?
       ORDER BY 3, 4`,
    ),
    runningOfJob: st(
      `SELECT idx, attempt, worker_id FROM tasks WHERE seq = ? AND status = 'running'
       UNION ALL SELECT idx, alt_attempt, alt_worker_id FROM tasks
        WHERE seq = ? AND status = 'running' AND alt_attempt IS NOT NULL`,
    ),
    speculate: st(
      `UPDATE tasks SET alt_attempt = attempt, alt_worker_id = worker_id, attempt = attempt + 1, worker_id = ?
       WHERE seq = ? AND idx = ? AND attempt = ? AND status = 'running' AND alt_attempt IS NULL AND worker_id != ?`,
    ),
    runningCopy: st(
      `SELECT j.job_id, t.seq, t.idx, t.attempt, t.worker_id, t.alt_attempt, t.alt_worker_id
         FROM tasks t JOIN jobs j ON j.seq = t.seq
        WHERE t.seq = ? AND t.idx = ? AND t.status = 'running' AND t.alt_attempt IS NOT NULL
          AND ((t.attempt = ? AND t.worker_id = ?) OR (t.alt_attempt = ? AND t.alt_worker_id = ?))`,
    ),
    completeCopy: st(
      `UPDATE tasks SET status = 'completed', finished_at = ?, result = ?, error = NULL, attempt = ?, worker_id = ?,
                        alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    requeue: st(
      `UPDATE tasks SET status = 'pending', attempt = attempt + 1, not_before = ?, started_at = ?,
                        losses = losses + ?, alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    loseTask: st(
      `UPDATE tasks SET status = 'failed', losses = losses + ?, finished_at = ?, error = ?,
                        alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    jobByKey: st(`SELECT job_id, name, type, config FROM jobs WHERE idempotency_key = ?`),
    getJob: st(`SELECT status FROM jobs WHERE job_id = ?`),
    jobKey: st(
      `SELECT seq, status, total, created_at, untouched_from, rows_from, result_bytes FROM jobs WHERE job_id = ?`,
    ),
    overCap: st(
      `UPDATE tasks SET status = 'failed', failures = failures + 1, finished_at = ?, error = ?, result = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    setUntouched: st(`UPDATE jobs SET untouched_from = ? WHERE seq = ?`),
    insertJob: st(
      `INSERT INTO jobs (job_id, seq, name, type, status, config, idempotency_key, created_at, max_retries,
                         total, pending, running, completed, failed, plan, untouched_from, rows_from)
       VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?)`,
    ),
    // Tasks [first, end) in one statement: a job's tasks go in at half the cost of a row each.
    insertTasks: st(
      `WITH RECURSIVE ids(idx) AS (SELECT @first WHERE @first < @end UNION ALL SELECT idx + 1 FROM ids WHERE idx + 1 < @end)
       INSERT INTO tasks (idx, status, attempt, failures, not_before, seq)
       SELECT idx, @status, 1, 0, @at, @seq FROM ids`,
    ),
    insertRunning: st(
      `INSERT INTO tasks (seq, idx, status, attempt, failures, worker_id, not_before, started_at)
       VALUES (?, ?, 'running', 1, 0, ?, ?, ?)`,
    ),
    assign: st(
      `UPDATE tasks SET status = 'running', worker_id = ?, started_at = ?
       WHERE seq = ? AND idx = ? AND attempt = ? AND status = 'pending'`,
    ),
    startJob: st(`UPDATE jobs SET status = 'running', started_at = ? WHERE job_id = ? AND status = 'pending'`),
    runningTaskWithJob: st(
      `SELECT j.job_id, t.seq, t.idx, t.attempt, t.worker_id, t.alt_attempt, t.alt_worker_id, t.failures, j.max_retries
         FROM tasks t JOIN jobs j ON j.seq = t.seq
       WHERE t.seq = ? AND t.idx = ? AND t.status = 'running'
         AND ((t.attempt = ? AND t.worker_id = ?) OR (t.alt_attempt = ? AND t.alt_worker_id = ?))`,
    ),
    complete: st(
      `UPDATE tasks SET status = 'completed', finished_at = ?, result = ?, error = NULL
       WHERE seq = ? AND idx = ? AND attempt = ? AND worker_id = ? AND status = 'running' AND alt_attempt IS NULL`,
    ),
    // The other attempt of a speculative race becomes the task's only one. A copy's lease
    // counts from the race's end at the earliest, not from the original's start (the row
    // keeps no start of its own for the copy).
    survive: st(
      `UPDATE tasks SET failures = failures + ?, error = coalesce(?, error), started_at = max(started_at, ?),
                        attempt = ?, worker_id = ?, alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    retry: st(
      `UPDATE tasks SET status = 'pending', attempt = attempt + 1, failures = failures + 1, not_before = ?, error = ?,
                        alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    failTask: st(
      `UPDATE tasks SET status = 'failed', failures = failures + 1, finished_at = ?, error = ?,
                        alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    cancelTasks: st(
      `UPDATE tasks SET status = 'cancelled', finished_at = ? WHERE seq = ? AND status IN ('pending', 'running', 'waiting')`,
    ),
    finishJob: st(`UPDATE jobs SET status = ?, finished_at = ?, error = ?, pending = 0, running = 0 WHERE job_id = ?`),
    bumpCounters: st(
      `UPDATE jobs SET pending = pending + ?, running = running + ?, completed = completed + ?, failed = failed + ?,
                       result_bytes = result_bytes + ?
       WHERE job_id = ?`,
    ),
    jobPlan: st(`SELECT seq, plan, stage, status FROM jobs WHERE job_id = ?`),
    upsertRow: st(
      `INSERT INTO stream_rows (job_id, row_key, seq, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (job_id, row_key) DO UPDATE SET seq = excluded.seq, value = excluded.value`,
    ),
    setPlan: st(`UPDATE jobs SET plan = ? WHERE job_id = ?`),
    setStage: st(`UPDATE jobs SET stage = ? WHERE job_id = ?`),
    stagedActiveJobs: st(
      `SELECT job_id, seq, plan FROM jobs WHERE plan IS NOT NULL AND status IN ('pending', 'running') ORDER BY job_id`,
    ),
    unfinishedInRange: st(
      `SELECT count(*) AS n FROM tasks WHERE seq = ? AND idx BETWEEN ? AND ? AND status != 'completed'`,
    ),
    resultsInRange: st(`SELECT result FROM tasks WHERE seq = ? AND idx BETWEEN ? AND ? ORDER BY idx`),
    completedOnWorkerInRange: st(
      `SELECT idx FROM tasks WHERE seq = ? AND idx BETWEEN ? AND ? AND status = 'completed' AND worker_id = ?
       ORDER BY idx`,
    ),
    runningInRange: st(
      `SELECT idx, attempt, worker_id FROM tasks WHERE seq = ? AND idx BETWEEN ? AND ? AND status = 'running'
       UNION ALL SELECT idx, alt_attempt, alt_worker_id FROM tasks
        WHERE seq = ? AND idx BETWEEN ? AND ? AND status = 'running' AND alt_attempt IS NOT NULL`,
    ),
    activate: st(
      `UPDATE tasks SET status = 'pending', not_before = ? WHERE seq = ? AND idx BETWEEN ? AND ? AND status = 'waiting'`,
    ),
    toWaiting: st(
      `UPDATE tasks SET status = 'waiting', attempt = attempt + 1, alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx BETWEEN ? AND ? AND status IN ('pending', 'running')`,
    ),
    invalidate: st(
      `UPDATE tasks SET status = 'pending', attempt = attempt + 1, not_before = ?, result = NULL, finished_at = NULL
       WHERE seq = ? AND idx = ? AND status = 'completed'`,
    ),
    taskState: st(`SELECT status, attempt FROM tasks WHERE seq = ? AND idx = ?`),
    resultBytes: st(
      `SELECT length(CAST(result AS BLOB)) AS bytes FROM tasks WHERE seq = ? AND idx = ? AND status = 'completed'`,
    ),
    retryAs: st(
      `UPDATE tasks SET status = ?, attempt = attempt + 1, not_before = ?, alt_attempt = NULL, alt_worker_id = NULL
       WHERE seq = ? AND idx = ?`,
    ),
    setJobLifecycle: st(`UPDATE jobs SET upload_id = ?, retention_ms = ? WHERE seq = ?`),
    jobLifecycle: st(`SELECT seq, status, upload_id FROM jobs WHERE job_id = ?`),
    // Through the index of running tasks (as many as the cluster has slots), not the job's rows
    // (a job may have a million).
    runningOfDeleted: st(
      `SELECT idx, attempt, worker_id FROM tasks INDEXED BY tasks_running WHERE status = 'running' AND seq = ?
       UNION ALL SELECT idx, alt_attempt, alt_worker_id FROM tasks INDEXED BY tasks_running
        WHERE status = 'running' AND seq = ? AND alt_attempt IS NOT NULL`,
    ),
    cancelRunning: st(
      `UPDATE tasks INDEXED BY tasks_running SET status = 'cancelled', finished_at = ? WHERE status = 'running' AND seq = ?`,
    ),
    deleteJob: st(`DELETE FROM jobs WHERE job_id = ?`),
    insertPurging: st(`INSERT OR IGNORE INTO purging (seq, job_id) VALUES (?, ?)`),
    getPurging: st(`SELECT job_id FROM purging WHERE seq = ?`),
    deletePurging: st(`DELETE FROM purging WHERE seq = ?`),
    uploadReader: st(`SELECT 1 FROM jobs WHERE upload_id = ? LIMIT 1`),
    uploadReaderJob: st(`SELECT job_id FROM jobs WHERE upload_id = ? LIMIT 1`),
    // Not OR IGNORE: that ignores a NULL time too, and the upload would go unrecorded.
    insertDeletedUpload: st(`INSERT INTO deleted_uploads (upload_id, at) VALUES (?, ?) ON CONFLICT DO NOTHING`),
    deletedUpload: st(`SELECT 1 FROM deleted_uploads WHERE upload_id = ?`),
    pruneDeletedUploads: st(
      `DELETE FROM deleted_uploads WHERE upload_id IN
         (SELECT upload_id FROM deleted_uploads WHERE at < ? ORDER BY at LIMIT ?)`,
    ),
    // The last task of the next slice (none: fewer rows than a slice are left).
    taskSliceEnd: st(`SELECT idx FROM tasks WHERE seq = ? ORDER BY idx LIMIT 1 OFFSET ?`),
    deleteTasksUpTo: st(`DELETE FROM tasks WHERE seq = ? AND idx <= ?`),
    deleteTasks: st(`DELETE FROM tasks WHERE seq = ?`),
    deleteResultRows: st(
      `DELETE FROM result_rows WHERE seq = ? AND sort_key IN
         (SELECT sort_key FROM result_rows WHERE seq = ? ORDER BY sort_key LIMIT ?)`,
    ),
    deleteStreamRows: st(
      `DELETE FROM stream_rows WHERE job_id = ? AND row_key IN
         (SELECT row_key FROM stream_rows WHERE job_id = ? ORDER BY row_key LIMIT ?)`,
    ),
    forgetWorker: st(`DELETE FROM workers WHERE worker_id = ? AND status = 'dead' AND dead_at <= ?`),
    completeJobIfDone: st(
      `UPDATE jobs SET status = 'completed', finished_at = (SELECT max(finished_at) FROM tasks WHERE tasks.seq = jobs.seq)
       WHERE job_id = ? AND status = 'running' AND completed = total`,
    ),
  };
}

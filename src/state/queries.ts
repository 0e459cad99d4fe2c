import type { Database } from 'better-sqlite3';
import type { JobConfig } from './commands.js';
import type { MapOutput } from '../protocol/task-spec.js';
import type { JobPlan } from '../ops/stages.js';
import { LOG_PAGE_SQL, type LogRow } from './task-logs.js';
import { FIRST_RULES } from './rules.js';

export interface JobRow {
  job_id: string;
  seq: number;
  name: string;
  type: string;
  status: string;
  config: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
  total: number;
  pending: number;
  running: number;
  completed: number;
  failed: number;
  plan: string | null;
  stage: number;
  /** Tasks from this index on were never assigned and have no row yet. */
  untouched_from: number;
  /** Keyed jobs: the first task whose results are in result_rows; null for list results. */
  rows_from: number | null;
  result_bytes: number;
}

/** A pending task's row: tasks are keyed by their job's seq. */
type PendingRow = Omit<PendingTask, 'job_id'> & { seq: number };

/** A job with tasks never assigned, which have no row yet: pending, first attempt, since submission. */
interface UntouchedJob {
  job_id: string;
  seq: number;
  untouched_from: number;
  total: number;
  created_at: number;
}

export interface WorkerRow {
  worker_id: string;
  address: string;
  max_tasks: number;
  status: 'active' | 'draining' | 'dead';
  registered_at: number;
  dead_at: number | null;
  running: number;
}

export interface PendingTask {
  job_id: string;
  idx: number;
  attempt: number;
  worker_id: string | null;
  not_before: number;
}

export interface StageTask {
  idx: number;
  status: 'running' | 'completed';
  attempt: number;
  worker_id: string;
  alt_attempt: number | null;
  started_at: number;
  finished_at: number | null;
}

export interface TaskRow {
  job_id: string;
  idx: number;
  status: string;
  attempt: number;
  failures: number;
  /** Workers lost while they ran it (rules.ts). */
  losses: number;
  worker_id: string | null;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
}

/**
 * Read-only questions about the state database, prepared once per database (a snapshot
 * install replaces the database; statements are prepared again on first use after it).
 */
export class Queries {
  private statements: Statements | undefined;
  private generation = -1;
  private readonly configCache = new Map<string, JobConfig>();

  private live: { generation: number; version: number; rows: readonly Omit<WorkerRow, 'running'>[] } | undefined;
  /** `live`'s rows by worker id, built when first asked for (see `liveWorker`). */
  private liveById:
    { rows: readonly Omit<WorkerRow, 'running'>[]; byId: Map<string, Omit<WorkerRow, 'running'>> } | undefined;

  /** `anyPending`'s answer and the applied index it holds for (see there). */
  private pendingMemo: { generation: number; applied: number; any: boolean } | undefined;

  constructor(
    private readonly source: { db: Database; generation: number; workersVersion?: number; lastApplied?: number },
  ) {}

  private get s(): Statements {
    if (!this.statements || this.generation !== this.source.generation) {
      this.statements = prepare(this.source.db);
      this.generation = this.source.generation;
      this.configCache.clear();
    }
    return this.statements;
  }

  job(jobId: string): JobRow | undefined {
    return this.s.job.get(jobId) as JobRow | undefined;
  }

  /** A job's config, parsed once: jobs are immutable once submitted. */
  jobConfig(jobId: string): JobConfig | undefined {
    let c = this.configCache.get(jobId);
    if (!c) {
      const row = this.job(jobId);
      if (!row) return undefined;
      c = JSON.parse(row.config) as JobConfig;
      if (this.configCache.size > 1000) this.configCache.clear();
      this.configCache.set(jobId, c);
    }
    return c;
  }

  /** A multi-stage job's stages and partition boundaries (undefined for single-stage jobs). */
  jobPlan(jobId: string): JobPlan | undefined {
    const row = this.s.plan.get(jobId) as { plan: string | null } | undefined;
    return row?.plan ? (JSON.parse(row.plan) as JobPlan) : undefined;
  }

  /** Where the completed tasks of `[first, first+count)` ran: the map outputs a reduce task fetches. */
  mapOutputs(jobId: string, first: number, count: number): MapOutput[] {
    return this.s.mapOutputs.all(jobId, first, first + count - 1) as MapOutput[];
  }

  /**
   * Task counts by status for each index range `[first, first+count)` (a job's stages). Rows
   * only: jobs in stages have every task's row from submission (see untouched_from).
   */
  progressInRange(jobId: string, first: number, count: number): Map<string, number> {
    const rows = this.s.progressInRange.all(jobId, first, first + count - 1) as { status: string; n: number }[];
    return new Map(rows.map((r) => [r.status, r.n]));
  }

  /** Newest first; `beforeSeq` is the cursor. */
  jobs(beforeSeq: number, limit: number, status?: string): JobRow[] {
    return (
      status ? this.s.jobsByStatus.all(beforeSeq, status, limit) : this.s.jobsFrom.all(beforeSeq, limit)
    ) as JobRow[];
  }

  /** Oldest first, by keyset: those registered after `after` (a worker's `[registered_at, worker_id]`). */
  workers(limit = -1, after: [number, string] = [-1, '']): WorkerRow[] {
    return this.s.workers.all(after[0], after[1], limit) as WorkerRow[];
  }

  /**
   * Workers not declared dead, without their task counts (the scheduler's hot path), kept
   * until a command changes the workers table: with 1,000 workers the query took 6 ms, and
   * the scheduler, the failure detector and the lease keeper ask many times a second (the
   * scale benchmark). Read-only for the caller. A source without `workersVersion` is read
   * every time.
   */
  liveWorkers(): readonly Omit<WorkerRow, 'running'>[] {
    const version = this.source.workersVersion;
    const s = this.s; // first: a replaced database clears what was read from the old one
    const c = this.live;
    if (version !== undefined && c && c.generation === this.generation && c.version === version) return c.rows;
    const rows = s.liveWorkers.all() as Omit<WorkerRow, 'running'>[];
    if (version !== undefined) this.live = { generation: this.generation, version, rows };
    return rows;
  }

  worker(workerId: string): Omit<WorkerRow, 'running'> | undefined {
    return this.s.worker.get(workerId) as Omit<WorkerRow, 'running'> | undefined;
  }

  /**
   * A worker not declared dead, from the same cache as `liveWorkers`: a heartbeat asks this,
   * and 1,000 workers heartbeating each second made a SQLite read apiece on the busy leader
   * (the scale benchmark). Undefined: unknown, or declared dead.
   */
  liveWorker(workerId: string): Omit<WorkerRow, 'running'> | undefined {
    const rows = this.liveWorkers();
    let c = this.liveById;
    if (c?.rows !== rows) this.liveById = c = { rows, byId: new Map(rows.map((w) => [w.worker_id, w])) };
    return c.byId.get(workerId);
  }

  runningByWorker(): Map<string, number> {
    const rows = this.s.runningByWorker.all() as { worker_id: string; n: number }[];
    return new Map(rows.map((r) => [r.worker_id, r.n]));
  }

  /**
   * Pending tasks in job order, then task order; the caller filters those still backing
   * off. Two sources: tasks with a pending row (retried or requeued ones, those of jobs in
   * stages, those an assignment skipped over), and tasks never assigned, which have no row
   * (a job's from its untouched_from on) — a job's rows come first, their indexes are lower.
   */
  *pending(limit: number): IterableIterator<PendingTask> {
    // Both iterated, not materialised: the scheduler stops as soon as it has enough.
    const rows = this.s.pending.iterate(limit) as IterableIterator<PendingRow>;
    const jobs = this.s.untouchedJobs.iterate(limit) as IterableIterator<UntouchedJob>;
    // Looked up once per job a call meets (one or two, most passes), and never kept across
    // calls: a deleted job's rows stay pending until its purge's slices remove them, and a
    // remembered id placed them (its tasks were sent, then stopped when the log refused them).
    const ids = new Map<number, string | undefined>();
    const jobIdOf = (seq: number): string | undefined => {
      if (!ids.has(seq)) ids.set(seq, (this.s.jobIdOfSeq.get(seq) as { job_id: string } | undefined)?.job_id);
      return ids.get(seq);
    };
    try {
      let row = rows.next();
      let job = jobs.next();
      for (let n = 0; n < limit && !(row.done && job.done);) {
        if (!row.done && (job.done || row.value.seq <= job.value.seq)) {
          const { seq, ...t } = row.value;
          const jobId = jobIdOf(seq);
          if (jobId !== undefined) {
            n++;
            yield { job_id: jobId, ...t };
          }
          row = rows.next();
          continue;
        }
        for (let idx = job.value.untouched_from; idx < job.value.total && n < limit; idx++, n++) {
          yield { job_id: job.value.job_id, idx, attempt: 1, worker_id: null, not_before: job.value.created_at };
        }
        job = jobs.next();
      }
    } finally {
      rows.return?.();
      jobs.return?.();
    }
  }

  /**
   * Whether any task waits for a slot: a pending task's row, or a job's tasks never assigned.
   * Only a command changes it, so the answer holds until the next is applied: the scheduler
   * asks three or four times a one-task job, and each statement outside a transaction takes
   * and releases a read lock of the WAL (two fcntl calls). A source without `lastApplied` is
   * read every time, and so is every question asked inside a transaction (mid-command).
   */
  anyPending(): boolean {
    const s = this.s; // first: a replaced database clears what was read from the old one
    const applied = this.source.lastApplied;
    const p = this.pendingMemo;
    if (applied === undefined || this.source.db.inTransaction) return s.anyPending.get() === 1;
    if (p && p.generation === this.generation && p.applied === applied) return p.any;
    const any = s.anyPending.get() === 1;
    this.pendingMemo = { generation: this.generation, applied, any };
    return any;
  }

  runningOnWorker(workerId: string): { job_id: string; idx: number; attempt: number }[] {
    return this.s.runningOnWorker.all(workerId, workerId) as { job_id: string; idx: number; attempt: number }[];
  }

  /** A streaming job's collected rows after `afterSeq`, in delivery order. */
  streamRows(jobId: string, afterSeq: number, limit: number): { seq: number; value: unknown }[] {
    const rows = this.s.streamRows.all(jobId, afterSeq, limit) as { seq: number; value: string }[];
    return rows.map((r) => ({ seq: r.seq, value: JSON.parse(r.value) as unknown }));
  }

  /** Lines a job's tasks printed after line `afterId`, in the order they were stored; `task`/`attempt` filter. */
  logLines(seq: number, f: { task?: number; attempt?: number }, afterId: number, limit: number): LogRow[] {
    if (f.task === undefined) return this.s.logsOfJob.all(seq, afterId, limit) as LogRow[];
    if (f.attempt === undefined) return this.s.logsOfTask.all(seq, f.task, afterId, limit) as LogRow[];
    return this.s.logsOfAttempt.all(seq, f.task, f.attempt, afterId, limit) as LogRow[];
  }

  /** A streaming job's running instances and where they run. */
  streamPlacement(jobId: string): { idx: number; attempt: number; address: string; worker_id: string }[] {
    return this.s.streamPlacement.all(jobId) as { idx: number; attempt: number; address: string; worker_id: string }[];
  }

  /** Jobs running now, oldest first, with their plan (multi-stage) and current stage. */
  runningJobs(): { job_id: string; plan: string | null; stage: number }[] {
    return this.s.runningJobs.all() as { job_id: string; plan: string | null; stage: number }[];
  }

  /** Running and completed tasks of `[first, first+count)` with their times: a stage's pace. */
  stageTimes(jobId: string, first: number, count: number): StageTask[] {
    return this.s.stageTimes.all(jobId, first, first + count - 1) as StageTask[];
  }

  /** Completed task results from task `fromIdx` on, in task order (each an array). */
  results(jobId: string, fromIdx: number, limit: number): { idx: number; result: unknown[] }[] {
    const rows = this.s.results.all(jobId, fromIdx, limit) as { idx: number; result: string }[];
    return rows.map((r) => ({ idx: r.idx, result: JSON.parse(r.result) as unknown[] }));
  }

  /**
   * Completed tasks' results from task `fromIdx` on, in task order, read one task at a time
   * as the caller asks for more (a page of a list job reads only the tasks it needs).
   */
  *resultsFrom(jobId: string, fromIdx: number): IterableIterator<{ idx: number; result: unknown[] }> {
    const seq = this.job(jobId)?.seq;
    if (seq === undefined) return;
    // The tasks' rows in pieces: no statement stays open between the caller's steps.
    for (let idx = fromIdx; ;) {
      const rows = this.s.resultsOfSeq.all(seq, idx, 16) as { idx: number; result: string }[];
      if (rows.length === 0) return;
      for (const r of rows) yield { idx: r.idx, result: JSON.parse(r.result) as unknown[] };
      idx = rows[rows.length - 1]!.idx + 1;
    }
  }

  /** A keyed job's result rows after sort key `after` (from the first when null), in order. */
  resultRows(seq: number, after: Buffer | null, limit: number): { sort_key: Buffer; row: string }[] {
    return (
      after === null ? this.s.resultRowsFirst.all(seq, limit) : this.s.resultRowsAfter.all(seq, after, limit)
    ) as { sort_key: Buffer; row: string }[];
  }

  /** The rows of a job's tasks at these indexes (the dashboard's moved tasks); one never assigned has none. */
  tasksAt(job: JobRow, idxs: Iterable<number>): TaskRow[] {
    const rows: TaskRow[] = [];
    for (const idx of idxs) {
      const t = this.s.taskAt.get(job.seq, idx) as Omit<TaskRow, 'job_id'> | undefined;
      if (t) rows.push({ job_id: job.job_id, ...t });
    }
    return rows;
  }

  /** A job's tasks in order, those never assigned included (they have no row of their own). */
  tasksOfJob(jobId: string, limit: number): TaskRow[] {
    const job = this.job(jobId);
    if (!job) return [];
    const rows = (this.s.tasksOfJob.all(job.seq, limit) as Omit<TaskRow, 'job_id'>[]).map((t): TaskRow => ({
      job_id: jobId,
      ...t,
    }));
    const live = job.status === 'pending' || job.status === 'running';
    for (let idx = job.untouched_from; idx < job.total && rows.length < limit; idx++) {
      rows.push({
        job_id: jobId,
        idx,
        status: live ? 'pending' : 'cancelled',
        attempt: 1,
        failures: 0,
        losses: 0,
        worker_id: null,
        started_at: null,
        finished_at: live ? null : job.finished_at,
        error: null,
      });
    }
    return rows;
  }

  /** Of these job ids, those of jobs still pending or running (deleted ones are not). */
  activeOf(jobIds: readonly string[]): Set<string> {
    const active = new Set<string>();
    for (const id of jobIds) {
      const status = this.job(id)?.status;
      if (status === 'pending' || status === 'running') active.add(id);
    }
    return active;
  }

  /** The rules the state is applied by (rules.ts). */
  rulesVersion(): number {
    return (this.s.rulesVersion.get() as { value: number } | undefined)?.value ?? FIRST_RULES;
  }

  /** Whether an upload went with the last job that read it (its copies are being removed). */
  uploadDeleted(uploadId: string): boolean {
    return this.s.deletedUpload.get(uploadId) !== undefined;
  }

  jobCountsByStatus(): Map<string, number> {
    const rows = this.s.countsByStatus.all() as { status: string; n: number }[];
    return new Map(rows.map((r) => [r.status, r.n]));
  }

  taskCountsByStatus(): Map<string, number> {
    const rows = this.s.taskCounts.all() as { status: string; n: number }[];
    return new Map(rows.map((r) => [r.status, r.n]));
  }

  /**
   * Every running attempt that holds a lease, with when its task started: the attempt a
   * speculative copy races (`alt_*`, whose start is `started_at`), else the task's one attempt.
   * The copy itself holds none: when it started is not kept (its original's lease covers the task).
   */
  /** Running attempts that started at or before `before` (all of them without it). */
  runningAttempts(before = Infinity): RunningAttempt[] {
    return this.s.runningAttempts.all(before) as RunningAttempt[];
  }
}

export interface RunningAttempt {
  job_id: string;
  idx: number;
  attempt: number;
  worker_id: string;
  started_at: number;
}

type Statements = ReturnType<typeof prepare>;

function prepare(db: Database) {
  const st = (sql: string) => db.prepare(sql);
  return {
    job: st(`SELECT * FROM jobs WHERE job_id = ?`),
    jobsFrom: st(`SELECT * FROM jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?`),
    jobsByStatus: st(`SELECT * FROM jobs WHERE seq < ? AND status = ? ORDER BY seq DESC LIMIT ?`),
    workers: st(
      `SELECT w.*, (SELECT count(*) FROM tasks t WHERE t.status = 'running' AND t.worker_id = w.worker_id)
                 + (SELECT count(*) FROM tasks t WHERE t.status = 'running' AND t.alt_worker_id = w.worker_id) AS running
         FROM workers w WHERE (w.registered_at, w.worker_id) > (?, ?)
        ORDER BY w.registered_at, w.worker_id LIMIT ?`,
    ),
    worker: st(`SELECT * FROM workers WHERE worker_id = ?`),
    liveWorkers: st(`SELECT * FROM workers WHERE status != 'dead' ORDER BY registered_at, worker_id`),
    // A speculative copy takes a slot on its worker as much as the attempt it races.
    runningByWorker: st(
      `SELECT worker_id, sum(n) AS n FROM (
         SELECT worker_id, count(*) AS n FROM tasks WHERE status = 'running' GROUP BY worker_id
         UNION ALL SELECT alt_worker_id, count(*) FROM tasks
          WHERE status = 'running' AND alt_worker_id IS NOT NULL GROUP BY alt_worker_id)
       GROUP BY worker_id`,
    ),
    pending: st(
      `SELECT seq, idx, attempt, worker_id, not_before FROM tasks WHERE status = 'pending' ORDER BY seq, idx LIMIT ?`,
    ),
    jobIdOfSeq: st(`SELECT job_id FROM jobs WHERE seq = ?`),
    runningOnWorker: st(
      `SELECT j.job_id, t.idx, t.attempt FROM tasks t JOIN jobs j ON j.seq = t.seq
        WHERE t.status = 'running' AND t.worker_id = ?
       UNION ALL SELECT j.job_id, t.idx, t.alt_attempt FROM tasks t JOIN jobs j ON j.seq = t.seq
        WHERE t.status = 'running' AND t.alt_worker_id = ?`,
    ),
    // One statement (the scheduler asks a few times a job), each side an empty partial index
    // at rest: by status, the jobs index was searched instead, through every running job's row.
    anyPending: st(
      `SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'pending')
           OR EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_untouched
                       WHERE untouched_from < total AND status IN ('pending', 'running'))`,
    ).pluck(),
    untouchedJobs: st(
      `SELECT job_id, seq, untouched_from, total, created_at FROM jobs
        WHERE untouched_from < total AND status IN ('pending', 'running') ORDER BY seq LIMIT ?`,
    ),
    streamRows: st(`SELECT seq, value FROM stream_rows WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
    logsOfJob: st(LOG_PAGE_SQL.job),
    logsOfTask: st(LOG_PAGE_SQL.task),
    logsOfAttempt: st(LOG_PAGE_SQL.attempt),
    streamPlacement: st(
      `SELECT t.idx, t.attempt, w.address, t.worker_id FROM tasks t JOIN workers w ON w.worker_id = t.worker_id
        WHERE t.seq = (SELECT seq FROM jobs WHERE job_id = ?) AND t.status = 'running' ORDER BY t.idx`,
    ),
    runningJobs: st(`SELECT job_id, plan, stage FROM jobs WHERE status = 'running' ORDER BY seq`),
    stageTimes: st(
      `SELECT idx, status, attempt, worker_id, alt_attempt, started_at, finished_at FROM tasks
        WHERE seq = (SELECT seq FROM jobs WHERE job_id = ?) AND idx BETWEEN ? AND ? AND status IN ('running', 'completed')`,
    ),
    results: st(
      `SELECT idx, result FROM tasks WHERE seq = (SELECT seq FROM jobs WHERE job_id = ?) AND idx >= ? AND status = 'completed' ORDER BY idx LIMIT ?`,
    ),
    resultsOfSeq: st(
      `SELECT idx, result FROM tasks WHERE seq = ? AND idx >= ? AND status = 'completed' ORDER BY idx LIMIT ?`,
    ),
    resultRowsFirst: st(`SELECT sort_key, row FROM result_rows WHERE seq = ? ORDER BY sort_key LIMIT ?`),
    resultRowsAfter: st(
      `SELECT sort_key, row FROM result_rows WHERE seq = ? AND sort_key > ? ORDER BY sort_key LIMIT ?`,
    ),
    tasksOfJob: st(
      `SELECT idx, status, attempt, failures, losses, worker_id, started_at, finished_at, error
         FROM tasks WHERE seq = ? ORDER BY idx LIMIT ?`,
    ),
    plan: st(`SELECT plan FROM jobs WHERE job_id = ?`),
    mapOutputs: st(
      `SELECT t.idx, t.attempt, w.address FROM tasks t JOIN workers w ON w.worker_id = t.worker_id
        WHERE t.seq = (SELECT seq FROM jobs WHERE job_id = ?) AND t.idx BETWEEN ? AND ? AND t.status = 'completed' ORDER BY t.idx`,
    ),
    progressInRange: st(
      `SELECT status, count(*) AS n FROM tasks WHERE seq = (SELECT seq FROM jobs WHERE job_id = ?) AND idx BETWEEN ? AND ? GROUP BY status`,
    ),
    rulesVersion: st(`SELECT value FROM meta WHERE key = 'rules_version'`),
    deletedUpload: st(`SELECT 1 FROM deleted_uploads WHERE upload_id = ?`),
    countsByStatus: st(`SELECT status, count(*) AS n FROM jobs GROUP BY status`),
    taskCounts: st(
      `SELECT 'pending' AS status, coalesce(sum(pending), 0) AS n FROM jobs
         UNION ALL SELECT 'running', coalesce(sum(running), 0) FROM jobs
         UNION ALL SELECT 'completed', coalesce(sum(completed), 0) FROM jobs
         UNION ALL SELECT 'failed', coalesce(sum(failed), 0) FROM jobs`,
    ),
    runningAttempts: st(
      `SELECT j.job_id, t.idx, coalesce(t.alt_attempt, t.attempt) AS attempt,
              coalesce(t.alt_worker_id, t.worker_id) AS worker_id, t.started_at
         FROM tasks t JOIN jobs j ON j.seq = t.seq
        WHERE t.status = 'running' AND t.started_at <= ?`,
    ),
    taskAt: st(
      `SELECT idx, status, attempt, failures, losses, worker_id, started_at, finished_at, error FROM tasks WHERE seq = ? AND idx = ?`,
    ),
  };
}

import type { Database, Statement } from 'better-sqlite3';
import type {
  ApplyResult,
  AssignTasks,
  CancelJob,
  Command,
  CompleteTasks,
  DrainWorker,
  FailTasks,
  MarkWorkerDead,
  RegisterWorker,
  SubmitJob,
  TaskRef,
} from './commands.js';
import { mayRetry, retryBackoffMs } from './retry-policy.js';

/** A task a worker should stop running (its job was cancelled or failed). */
export interface RunningTask extends TaskRef {
  worker_id: string;
}

interface Counters {
  pending: number;
  running: number;
  completed: number;
  failed: number;
}

const zero = (): Counters => ({ pending: 0, running: 0, completed: 0, failed: 0 });

/**
 * The deterministic state transition function: `apply(command)` against the state database,
 * inside the transaction the caller opened. Same commands in the same order → same database
 * on every master. Expected refusals are results, not exceptions, so one bad command never
 * rolls back a batch.
 */
export class Applier {
  private readonly s: ReturnType<typeof prepare>;
  /** Counter deltas per job, flushed once per command rather than once per task. */
  private deltas = new Map<string, Counters>();

  constructor(private readonly db: Database) {
    this.s = prepare(db);
  }

  apply(cmd: Command): ApplyResult {
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
      case 'completeTasks':
        return this.withCounters(() => this.completeTasks(cmd));
      case 'failTasks':
        return this.withCounters(() => this.failTasks(cmd));
      case 'cancelJob':
        return this.cancelJob(cmd);
    }
  }

  private registerWorker(cmd: RegisterWorker): ApplyResult {
    this.s.insertWorker.run(cmd.worker_id, cmd.address, cmd.max_tasks, cmd.at);
    return { ok: true, worker_id: cmd.worker_id };
  }

  private markWorkerDead(cmd: MarkWorkerDead): ApplyResult {
    const w = this.s.getWorker.get(cmd.worker_id) as { status: string } | undefined;
    if (!w || w.status === 'dead') return { ok: true, requeued: 0 };
    this.s.setWorkerDead.run(cmd.at, cmd.reason, cmd.worker_id);
    // A lost worker does not count against the task's retries: attempt moves on, failures stay.
    const running = this.s.runningOnWorker.all(cmd.worker_id) as { job_id: string; idx: number }[];
    return this.withCounters(() => {
      for (const t of running) {
        this.s.requeue.run(cmd.at, null, t.job_id, t.idx);
        this.delta(t.job_id, { running: -1, pending: 1 });
      }
      return { ok: true, requeued: running.length };
    });
  }

  private drainWorker(cmd: DrainWorker): ApplyResult {
    this.s.setWorkerDraining.run(cmd.worker_id);
    return { ok: true };
  }

  private submitJob(cmd: SubmitJob): ApplyResult {
    if (cmd.idempotency_key) {
      const existing = this.s.jobByKey.get(cmd.idempotency_key) as { job_id: string } | undefined;
      if (existing) return { ok: true, job_id: existing.job_id, duplicate: true };
    }
    const seq = (this.s.getMeta.get('job_seq') as { value: number }).value + 1;
    this.s.setMeta.run(seq, 'job_seq');
    const n = cmd.config.task_count;
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
    );
    for (let idx = 0; idx < n; idx++) this.s.insertTask.run(cmd.job_id, idx, cmd.at, seq);
    return { ok: true, job_id: cmd.job_id, duplicate: false };
  }

  private assignTasks(cmd: AssignTasks): ApplyResult {
    const assigned: RunningTask[] = [];
    const live = new Map<string, boolean>();
    for (const a of cmd.assignments) {
      let ok = live.get(a.worker_id);
      if (ok === undefined) {
        const w = this.s.getWorker.get(a.worker_id) as { status: string } | undefined;
        ok = w?.status === 'active';
        live.set(a.worker_id, ok);
      }
      if (!ok) continue;
      if (this.s.assign.run(a.worker_id, cmd.at, a.job_id, a.idx, a.attempt).changes === 0) continue;
      if (!this.deltas.has(a.job_id)) this.s.startJob.run(cmd.at, a.job_id); // once per job
      this.delta(a.job_id, { pending: -1, running: 1 });
      assigned.push(a);
    }
    return { ok: true, assigned };
  }

  private completeTasks(cmd: CompleteTasks): ApplyResult {
    const accepted: (TaskRef & { started_at: number })[] = [];
    for (const c of cmd.completions) {
      // First completion from the live attempt wins; stale or repeated reports change nothing.
      const row = this.s.complete.get(cmd.at, JSON.stringify(c.result), c.job_id, c.idx, c.attempt) as
        { started_at: number } | undefined;
      if (!row) continue;
      this.delta(c.job_id, { running: -1, completed: 1 });
      accepted.push({ job_id: c.job_id, idx: c.idx, attempt: c.attempt, started_at: row.started_at });
    }
    return { ok: true, accepted, at: cmd.at };
  }

  private failTasks(cmd: FailTasks): ApplyResult {
    const retried: TaskRef[] = [];
    const failedJobs: string[] = [];
    const toStop: RunningTask[] = [];
    for (const f of cmd.failures) {
      const row = this.s.runningTaskWithJob.get(f.job_id, f.idx, f.attempt) as
        { failures: number; max_retries: number } | undefined;
      if (!row) continue;
      const failures = row.failures + 1;
      const error = JSON.stringify(f.error);
      if (mayRetry(failures, row.max_retries)) {
        this.s.retry.run(cmd.at + retryBackoffMs(failures), error, f.job_id, f.idx);
        this.delta(f.job_id, { running: -1, pending: 1 });
        retried.push(f);
        continue;
      }
      this.s.failTask.run(cmd.at, error, f.job_id, f.idx);
      this.delta(f.job_id, { running: -1, failed: 1 });
      const jobError = JSON.stringify({ task: f.idx, attempts: failures, ...f.error });
      toStop.push(...this.finishJob(f.job_id, 'failed', cmd.at, jobError));
      failedJobs.push(f.job_id);
    }
    return { ok: true, retried, failed_jobs: failedJobs, to_stop: toStop };
  }

  private cancelJob(cmd: CancelJob): ApplyResult {
    const job = this.s.getJob.get(cmd.job_id) as { status: string } | undefined;
    if (!job) return { ok: false, code: 'not_found', message: `no job with id '${cmd.job_id}'` };
    if (job.status !== 'pending' && job.status !== 'running') {
      return { ok: false, code: 'conflict', message: `job '${cmd.job_id}' is already ${job.status}` };
    }
    const toStop = this.withCounters(() => this.finishJob(cmd.job_id, 'cancelled', cmd.at, null));
    return { ok: true, to_stop: toStop };
  }

  /** Ends a job: its unfinished tasks are cancelled; returns those a worker is still running. */
  private finishJob(jobId: string, status: 'failed' | 'cancelled', at: number, error: string | null): RunningTask[] {
    const running = this.s.runningOfJob.all(jobId) as RunningTask[];
    this.flushCounters();
    this.s.cancelTasks.run(at, jobId);
    this.s.finishJob.run(status, at, error, jobId);
    this.deltas.delete(jobId);
    return running;
  }

  private delta(jobId: string, d: Partial<Counters>): void {
    let c = this.deltas.get(jobId);
    if (!c) this.deltas.set(jobId, (c = zero()));
    c.pending += d.pending ?? 0;
    c.running += d.running ?? 0;
    c.completed += d.completed ?? 0;
    c.failed += d.failed ?? 0;
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
      this.s.bumpCounters.run(c.pending, c.running, c.completed, c.failed, jobId);
      // The last task done completes the job (only a running job: a failed one stays failed).
      if (c.completed > 0) this.s.completeJobIfDone.run(jobId);
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
    runningOnWorker: st(`SELECT job_id, idx FROM tasks WHERE status = 'running' AND worker_id = ?`),
    runningOfJob: st(`SELECT job_id, idx, attempt, worker_id FROM tasks WHERE job_id = ? AND status = 'running'`),
    requeue: st(
      `UPDATE tasks SET status = 'pending', attempt = attempt + 1, not_before = ?, started_at = ?
       WHERE job_id = ? AND idx = ?`,
    ),
    jobByKey: st(`SELECT job_id FROM jobs WHERE idempotency_key = ?`),
    getJob: st(`SELECT status FROM jobs WHERE job_id = ?`),
    insertJob: st(
      `INSERT INTO jobs (job_id, seq, name, type, status, config, idempotency_key, created_at, max_retries,
                         total, pending, running, completed, failed)
       VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, 0, 0, 0)`,
    ),
    insertTask: st(
      `INSERT INTO tasks (job_id, idx, status, attempt, failures, not_before, seq) VALUES (?, ?, 'pending', 1, 0, ?, ?)`,
    ),
    assign: st(
      `UPDATE tasks SET status = 'running', worker_id = ?, started_at = ?
       WHERE job_id = ? AND idx = ? AND attempt = ? AND status = 'pending'`,
    ),
    startJob: st(`UPDATE jobs SET status = 'running', started_at = ? WHERE job_id = ? AND status = 'pending'`),
    runningTaskWithJob: st(
      `SELECT t.failures, j.max_retries FROM tasks t JOIN jobs j ON j.job_id = t.job_id
       WHERE t.job_id = ? AND t.idx = ? AND t.attempt = ? AND t.status = 'running'`,
    ),
    complete: st(
      `UPDATE tasks SET status = 'completed', finished_at = ?, result = ?, error = NULL
       WHERE job_id = ? AND idx = ? AND attempt = ? AND status = 'running' RETURNING started_at`,
    ),
    retry: st(
      `UPDATE tasks SET status = 'pending', attempt = attempt + 1, failures = failures + 1, not_before = ?, error = ?
       WHERE job_id = ? AND idx = ?`,
    ),
    failTask: st(
      `UPDATE tasks SET status = 'failed', failures = failures + 1, finished_at = ?, error = ? WHERE job_id = ? AND idx = ?`,
    ),
    cancelTasks: st(
      `UPDATE tasks SET status = 'cancelled', finished_at = ? WHERE job_id = ? AND status IN ('pending', 'running')`,
    ),
    finishJob: st(`UPDATE jobs SET status = ?, finished_at = ?, error = ?, pending = 0, running = 0 WHERE job_id = ?`),
    bumpCounters: st(
      `UPDATE jobs SET pending = pending + ?, running = running + ?, completed = completed + ?, failed = failed + ?
       WHERE job_id = ?`,
    ),
    completeJobIfDone: st(
      `UPDATE jobs SET status = 'completed', finished_at = (SELECT max(finished_at) FROM tasks WHERE tasks.job_id = jobs.job_id)
       WHERE job_id = ? AND status = 'running' AND completed = total`,
    ),
  };
}

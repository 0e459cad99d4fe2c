import type { Applied } from '../consensus/consensus.js';
import type { Command, Results } from '../state/commands.js';

/** What changed since the last `take()`, as the dashboard's stream needs to know it. */
export interface Changes {
  /** Jobs whose row (status, progress) or tasks may have changed. */
  jobs: Set<string>;
  /** Jobs deleted (their pages and rows go). */
  gone: Set<string>;
  /** Workers joined, left, or their running tasks moved. */
  workers: boolean;
  /** Tasks moved in ways the touched jobs do not name (a worker declared dead): lists are read anew. */
  reset: boolean;
  /** Completions and failures applied, for the throughput chart (counted on every master). */
  completed: number;
  failed: number;
  /** Jobs whose tasks printed lines (their logs grew). */
  logs: Set<string>;
  /**
   * For watched jobs (a page follows them) only: the tasks that moved, by index; 'all' past
   * `maxTasks` of one job, or when the job was cancelled (its page reads its tasks again).
   */
  tasks: Map<string, Set<number> | 'all'>;
}

const empty = (): Changes => ({
  jobs: new Set(),
  gone: new Set(),
  workers: false,
  reset: false,
  completed: 0,
  failed: 0,
  logs: new Set(),
  tasks: new Map(),
});

/**
 * Folds applied entries into what changed, between two frames of the dashboard's stream: a
 * burst of 10,000 completions is a set of a few job ids and a count. Pure: no clock, no I/O.
 * Bounded: past `maxJobs` touched or deleted jobs it keeps none and says `reset` (the page
 * reads the lists again once rather than the stream carrying thousands of rows).
 */
export class LiveChanges {
  private c = empty();
  /** Jobs whose pages are open: only theirs are tracked task by task. */
  readonly watched = new Set<string>();

  constructor(
    private readonly maxJobs = 1000,
    private readonly maxTasks = 1000,
  ) {}

  /** `idx`: the task that moved, 'all' (any may have), or 'none' (the job's row or rows only). */
  private touch(jobId: string, idx: number | 'all' | 'none'): void {
    if (this.c.reset) return;
    this.c.jobs.add(jobId);
    if (this.c.jobs.size > this.maxJobs) {
      this.reset();
      return;
    }
    if (idx === 'none' || !this.watched.has(jobId)) return;
    const moved = this.c.tasks.get(jobId);
    if (moved === 'all') return;
    if (idx === 'all') {
      this.c.tasks.set(jobId, 'all');
      return;
    }
    if (!moved) this.c.tasks.set(jobId, new Set([idx]));
    else if (moved.add(idx).size > this.maxTasks) this.c.tasks.set(jobId, 'all');
  }

  /** From here on the pages read everything again: nothing need be kept job by job. */
  private reset(): void {
    this.c.reset = true;
    this.c.jobs.clear();
    this.c.gone.clear();
    this.c.logs.clear();
    this.c.tasks.clear();
  }

  private printed(jobId: string, lines: unknown[] | undefined): void {
    // Bounded by the jobs' bound: past it the page reads everything again (reset).
    if (lines?.length && !this.c.reset) this.c.logs.add(jobId);
  }

  readonly onApplied = (batch: readonly Applied<Command, Results>[]): void => {
    for (const e of batch) {
      if (!e.result.ok) continue;
      switch (e.type) {
        case 'submitJob':
        case 'cancelJob':
          // Every task of the job may have moved (placed at once, or cancelled).
          this.touch(e.command.job_id, 'all');
          this.c.workers = true;
          break;
        case 'collectRows':
          this.touch(e.command.job_id, 'none');
          break;
        case 'deleteJob':
          // Bounded as the touched jobs are: the janitor deletes jobs all day, and nothing
          // takes the changes while no page is open.
          if (!this.c.reset) {
            this.c.gone.add(e.command.job_id);
            this.c.jobs.delete(e.command.job_id);
            if (this.c.gone.size > this.maxJobs) this.reset();
          }
          this.c.workers = true;
          break;
        case 'assignTasks':
          for (const a of e.command.assignments) this.touch(a.job_id, a.idx);
          this.c.workers = true;
          break;
        case 'speculateTasks':
          for (const a of e.command.copies) this.touch(a.job_id, a.idx);
          this.c.workers = true;
          break;
        case 'completeTasks':
          for (const a of e.result.accepted) this.touch(a.job_id, a.idx);
          for (const a of e.command.completions) this.printed(a.job_id, a.logs);
          this.c.completed += e.result.accepted.length;
          this.c.workers = true;
          break;
        case 'failTasks':
          for (const f of e.command.failures) {
            this.touch(f.job_id, f.idx);
            this.printed(f.job_id, f.logs);
          }
          this.c.failed += e.command.failures.length;
          this.c.workers = true;
          break;
        case 'appendLogs':
          this.touch(e.command.job_id, 'none');
          this.printed(e.command.job_id, e.command.logs);
          break;
        case 'markWorkerDead':
          // Its tasks go back to pending in jobs the command does not name.
          this.reset();
          this.c.workers = true;
          // A task that lost one worker too many fails (one per job it fails).
          this.c.failed += e.result.failed_jobs.length;
          break;
        case 'registerWorker':
        case 'drainWorker':
        case 'forgetWorker':
          this.c.workers = true;
          break;
        case 'purgeJob':
        case 'forgetUpload':
        case 'setRules':
        case 'pruneDeletedUploads':
          break;
      }
    }
  };

  /** What changed since the last call; starts afresh. */
  take(): Changes {
    const c = this.c;
    this.c = empty();
    return c;
  }
}

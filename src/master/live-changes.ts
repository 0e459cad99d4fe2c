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
}

const empty = (): Changes => ({
  jobs: new Set(),
  gone: new Set(),
  workers: false,
  reset: false,
  completed: 0,
  failed: 0,
});

/**
 * Folds applied entries into what changed, between two frames of the dashboard's stream: a
 * burst of 10,000 completions is a set of a few job ids and a count. Pure: no clock, no I/O.
 * Bounded: past `maxJobs` touched jobs it keeps none and says `reset` (the page reads the
 * lists again once rather than the stream carrying thousands of rows).
 */
export class LiveChanges {
  private c = empty();

  constructor(private readonly maxJobs = 1000) {}

  private touch(jobId: string): void {
    if (this.c.reset) return;
    this.c.jobs.add(jobId);
    if (this.c.jobs.size > this.maxJobs) {
      this.c.jobs.clear();
      this.c.reset = true;
    }
  }

  readonly onApplied = (batch: readonly Applied<Command, Results>[]): void => {
    for (const e of batch) {
      if (!e.result.ok) continue;
      switch (e.type) {
        case 'submitJob':
        case 'cancelJob':
        case 'collectRows':
          this.touch(e.command.job_id);
          this.c.workers ||= e.type !== 'collectRows';
          break;
        case 'deleteJob':
          this.c.gone.add(e.command.job_id);
          this.c.jobs.delete(e.command.job_id);
          this.c.workers = true;
          break;
        case 'assignTasks':
          for (const a of e.command.assignments) this.touch(a.job_id);
          this.c.workers = true;
          break;
        case 'speculateTasks':
          for (const a of e.command.copies) this.touch(a.job_id);
          this.c.workers = true;
          break;
        case 'completeTasks':
          for (const a of e.result.accepted) this.touch(a.job_id);
          this.c.completed += e.result.accepted.length;
          this.c.workers = true;
          break;
        case 'failTasks':
          for (const f of e.command.failures) this.touch(f.job_id);
          this.c.failed += e.command.failures.length;
          this.c.workers = true;
          break;
        case 'appendLogs':
          this.touch(e.command.job_id);
          break;
        case 'markWorkerDead':
          // Its tasks go back to pending in jobs the command does not name.
          this.c.reset = true;
          this.c.jobs.clear();
          this.c.workers = true;
          break;
        case 'registerWorker':
        case 'drainWorker':
        case 'forgetWorker':
          this.c.workers = true;
          break;
        case 'purgeJob':
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

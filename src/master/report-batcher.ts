import { trace, tracing } from '../common/trace.js';
import { groupBy } from '../common/group-by.js';
import type { Logger } from '../common/logger.js';
import { taskKey, type TaskRef } from '../protocol/task-ref.js';
import type { TaskReport } from '../protocol/worker-channel.js';
import type { CompleteTasks, FailTasks } from '../state/commands.js';
import { onNextTurn } from '../common/next-turn.js';
import { chunked, MAX_TASKS_PER_ENTRY } from './entry-size.js';
import type { ClusterConsensus } from './cluster-log.js';
import { LOG_DROPPED_MARKER, type LogLine } from '../protocol/task-log.js';

/** Told of reports from the moment they arrive until their outcome is committed or lost. */
export interface ReportTracker {
  reported(workerId: string, keys: readonly string[]): void;
  recorded(workerId: string, keys: readonly string[]): void;
}

/** The reports of every worker gathered for one proposal, acknowledged once it is committed. */
interface Batch {
  completions: CompleteTasks['completions'];
  failures: FailTasks['failures'];
  /** Per worker: the reports to acknowledge once the batch is committed. */
  acks: Map<string, TaskRef[]>;
}

const emptyBatch = (): Batch => ({ completions: [], failures: [], acks: new Map() });

/**
 * Turns the workers' task reports into log entries — one proposal in flight at a time, the
 * reports that arrive meanwhile gathered into the next. Under load every worker's reports of
 * a commit round share one entry (one log row, one apply, one job-counter update per job
 * on every master) instead of one entry per report per worker; when idle, a report is
 * proposed at once. Group commit, as the Raft driver does for the disk.
 */
export class ReportBatcher {
  private next = emptyBatch();
  private inFlight = false;
  // Reports of one turn of the event loop go together even when nothing is in flight.
  private readonly flushSoon = onNextTurn(() => this.flush());

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly ack: (workerId: string, tasks: TaskRef[]) => void,
    private readonly log: Logger,
    private readonly tracker?: ReportTracker,
    /** Why writes that add data are refused now (the no_space alarm): task logs are dropped then. */
    private readonly noSpace: () => string | undefined = () => undefined,
  ) {}

  /**
   * `fresh`: first sent now, so each names a task that ran on that worker until just now; the
   * tracker hears of those only (a re-sent report may be committed already).
   */
  add(workerId: string, reports: TaskReport[], { fresh = true } = {}): void {
    const b = this.next;
    for (const r of reports) {
      const ref = { job_id: r.job_id, idx: r.idx, attempt: r.attempt, worker_id: workerId, ...this.logsOf(r) };
      if (r.ok) b.completions.push({ ...ref, result_json: r.result_json, ...(r.ms === undefined ? {} : { ms: r.ms }) });
      else b.failures.push({ ...ref, error: r.error });
    }
    let acks = b.acks.get(workerId);
    if (!acks) b.acks.set(workerId, (acks = []));
    for (const { job_id, idx, attempt } of reports) acks.push({ job_id, idx, attempt });
    if (fresh) this.tracker?.reported(workerId, reports.map(taskKey));
    this.queueFlush();
  }

  /**
   * A report's log lines, or under the no_space alarm one marker in their place: the outcome
   * is the cluster's own work and goes on, what the task printed is data it would add.
   */
  private logsOf(r: TaskReport): { logs?: LogLine[] } {
    if (!r.logs?.length) return {};
    if (this.noSpace() === undefined) return { logs: r.logs };
    return { logs: [{ stream: 'stderr', at: r.logs[0]!.at, text: LOG_DROPPED_MARKER }] };
  }

  private queueFlush(): void {
    if (!this.inFlight) this.flushSoon();
  }

  private flush(): void {
    const b = this.next;
    if (this.inFlight || b.acks.size === 0) return;
    this.next = emptyBatch();
    this.inFlight = true;
    const at = Date.now();
    // Each outcome stops counting as finishing once its own entry is applied (or lost).
    const recorded = (list: readonly (TaskRef & { worker_id: string })[]) => () => {
      if (!this.tracker) return;
      for (const [workerId, tasks] of groupBy(list, (t) => t.worker_id))
        this.tracker.recorded(workerId, tasks.map(taskKey));
    };
    const proposals = [];
    if (tracing) for (const c of b.completions) trace(c.job_id, 'completion proposed');
    // Entries of bounded size (entry-size.ts), proposed together: still one write of the log.
    for (const completions of chunked(b.completions, MAX_TASKS_PER_ENTRY)) {
      proposals.push(this.consensus.propose({ type: 'completeTasks', at, completions }).finally(recorded(completions)));
    }
    for (const failures of chunked(b.failures, MAX_TASKS_PER_ENTRY)) {
      proposals.push(this.consensus.propose({ type: 'failTasks', at, failures }).finally(recorded(failures)));
    }
    Promise.all(proposals)
      .then(() => {
        // Stale and duplicate reports are acknowledged too: there is nothing left to do with them.
        for (const [workerId, tasks] of b.acks) this.ack(workerId, tasks);
      })
      // Unacknowledged reports are sent again by their workers, to this leader or the next.
      .catch((err: Error) => this.log.warn({ err }, 'recording task reports failed'))
      .finally(() => {
        this.inFlight = false;
        if (this.next.acks.size) this.queueFlush();
      });
  }
}

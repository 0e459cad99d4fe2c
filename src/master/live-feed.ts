import type { Queries } from '../state/queries.js';
import type { ClusterConsensus } from './cluster-log.js';
import { LiveChanges, type Changes } from './live-changes.js';
import { jobView, taskView, workerView } from './views.js';
import type { WorkerRegistry } from './worker-registry.js';

/** The dashboard's change stream, served by the master the page is on (never forwarded to the leader). */
export const LIVE_PATH = '/api/live';

/** One point of the overview's charts: tasks completed so far (on this master's count) and running now. */
export interface Sample {
  at: number;
  completed: number;
  failed: number;
  running: number;
  pending: number;
}

/** What the dashboard's stream sends (GET /api/live); see reply-schemas' LiveFrame. */
export type Frame = Record<string, unknown> & { seq: number };

/** Who listens, and to what: the overview (no job), or one job's page. */
export interface Subscriber {
  job?: string;
  /** Who holds it (the remote address): one client may hold only so many (maxPerClient). */
  client?: string;
  /** Takes a frame; false when the reader fell behind and was let go. */
  send(frame: Frame): boolean;
  /** Ends the stream (the feed closes). */
  end(): void;
}

export interface LiveFeedOptions {
  /** How often frames go out at most (default 1000 ms): everything that changed in between is one frame. */
  everyMs?: number;
  /** Streams one master serves at once (default 100); past it, GET /api/live answers 503. */
  maxSubscribers?: number;
  /** Streams one client (remote address) holds at once (default 16); past it, 429: one cannot take them all. */
  maxPerClient?: number;
  /** Overview chart points kept (default 300: five minutes at one a second). */
  historyPoints?: number;
}

/**
 * Rows of the jobs list a frame carries at most: the newest that changed. The page shows the
 * 100 newest jobs, and a job among those that changed is among the 100 newest that changed,
 * so the unfiltered list needs no more; `jobs_more` tells a filtered one to read again.
 */
const MAX_JOB_ROWS = 100;
/** Workers a frame carries at most; past it the frame says `changed: ['workers']` (read the route). */
const MAX_WORKER_ROWS = 50;
/** Frames between two that carry the workers when no entry moved them (heartbeats move their figures). */
const WORKERS_EVERY_TICKS = 5;

/**
 * The dashboard's change stream: at most one frame a second for all the pages open on this
 * master, built once from what it applied since the last (LiveChanges) and shared by every
 * subscriber — a burst of 10,000 completions is one frame, and 50 open pages cost the reads
 * of one. Runs only while a page listens.
 */
export class LiveFeed {
  readonly changes = new LiveChanges();
  private readonly subs = new Set<Subscriber>();
  private readonly history: Sample[] = [];
  private completed = 0;
  private failed = 0;
  private last: Sample | undefined;
  private seq = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly everyMs: number;
  readonly maxSubscribers: number;
  readonly maxPerClient: number;
  private readonly perClient = new Map<string, number>();
  private readonly historyPoints: number;

  constructor(
    private readonly queries: Queries,
    private readonly consensus: ClusterConsensus,
    private readonly registry: WorkerRegistry,
    opts: LiveFeedOptions = {},
  ) {
    this.everyMs = opts.everyMs ?? 1000;
    this.maxSubscribers = opts.maxSubscribers ?? 100;
    this.maxPerClient = opts.maxPerClient ?? 16;
    this.historyPoints = opts.historyPoints ?? 300;
  }

  get size(): number {
    return this.subs.size;
  }

  /** Why a stream for `client` would be refused now: the feed is full, or that client holds its share. */
  refusal(client: string | undefined): 'full' | 'client' | undefined {
    if (this.subs.size >= this.maxSubscribers) return 'full';
    if (client !== undefined && (this.perClient.get(client) ?? 0) >= this.maxPerClient) return 'client';
    return undefined;
  }

  /** Adds a listener and sends it its first frame now; false when it is refused (see refusal). */
  subscribe(sub: Subscriber): boolean {
    if (this.refusal(sub.client)) return false;
    if (sub.client !== undefined) this.perClient.set(sub.client, (this.perClient.get(sub.client) ?? 0) + 1);
    if (this.subs.size === 0) {
      // Counters went unread while nobody listened: start from now.
      this.fold(this.changes.take());
      this.timer = setInterval(() => this.tick(), this.everyMs);
      this.timer.unref();
    }
    this.subs.add(sub);
    if (sub.job !== undefined) this.changes.watched.add(sub.job);
    const first = sub.job === undefined ? this.overview(undefined, true) : this.jobFrame(sub.job, true);
    if (first && !sub.send(first)) this.unsubscribe(sub);
    return true;
  }

  unsubscribe(sub: Subscriber): void {
    if (!this.subs.delete(sub)) return;
    if (sub.job !== undefined && ![...this.subs].some((s) => s.job === sub.job)) this.changes.watched.delete(sub.job);
    if (sub.client !== undefined) {
      const left = (this.perClient.get(sub.client) ?? 1) - 1;
      if (left > 0) this.perClient.set(sub.client, left);
      else this.perClient.delete(sub.client);
    }
    if (this.subs.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    for (const s of [...this.subs]) {
      this.unsubscribe(s);
      s.end();
    }
  }

  /** Counts what changed and reads the one figure the log's entries do not carry: tasks running and pending. */
  private fold(c: Changes): Sample {
    this.completed += c.completed;
    this.failed += c.failed;
    const moved = c.jobs.size > 0 || c.gone.size > 0 || c.reset || !this.last;
    // One read of the jobs' counters per frame, for every page at once, and none while nothing moved.
    const counts = moved ? this.queries.taskCountsByStatus() : undefined;
    const s: Sample = {
      at: Date.now(),
      completed: this.completed,
      failed: this.failed,
      running: counts ? (counts.get('running') ?? 0) : this.last!.running,
      pending: counts ? (counts.get('pending') ?? 0) : this.last!.pending,
    };
    this.last = s;
    this.history.push(s);
    if (this.history.length > this.historyPoints) this.history.shift();
    return s;
  }

  private tick(): void {
    const c = this.changes.take();
    this.fold(c);
    this.seq++;
    let overview: Frame | undefined;
    const byJob = new Map<string, Frame | undefined>();
    for (const sub of [...this.subs]) {
      let frame: Frame | undefined;
      if (sub.job === undefined) frame = overview ??= this.overview(c, false);
      else {
        const id = sub.job;
        if (!byJob.has(id)) byJob.set(id, this.touched(id, c) ? this.jobFrame(id, false, c) : undefined);
        frame = byJob.get(id);
      }
      if (frame && !sub.send(frame)) this.unsubscribe(sub);
    }
  }

  /** Whether a job's page has something new: its rows moved, or it streams (its figures come with heartbeats). */
  private touched(jobId: string, c: Changes): boolean {
    if (c.jobs.has(jobId) || c.gone.has(jobId) || c.reset) return true;
    const row = this.queries.job(jobId);
    return row?.type === 'streaming' && row.status === 'running';
  }

  private master() {
    const s = this.consensus.status();
    return { id: s.node_id, role: s.role, term: s.term, commit_index: s.commit_index, last_applied: s.last_applied };
  }

  /**
   * The overview's frame: the cluster's figures, this master's own, the jobs list's rows that
   * changed (as GET /api/jobs shows them, the newest MAX_JOB_ROWS) and the workers (as GET
   * /api/workers shows them) when they moved; `changed` names the lists to read again.
   */
  private overview(c: Changes | undefined, first: boolean): Frame {
    const s = this.last!;
    const changed: string[] = [];
    let jobs: unknown[] | undefined;
    let jobsMore = false;
    if (c?.reset) changed.push('jobs');
    else if (c?.jobs.size) {
      const rows = [];
      for (const id of c.jobs) {
        const row = this.queries.job(id);
        if (row) rows.push(row);
      }
      rows.sort((a, b) => b.seq - a.seq);
      jobsMore = rows.length > MAX_JOB_ROWS;
      jobs = rows.slice(0, MAX_JOB_ROWS).map((r) => jobView(r));
    }
    let workers: unknown[] | undefined;
    if (first || c?.workers || this.seq % WORKERS_EVERY_TICKS === 0) {
      const rows = this.queries.workers(MAX_WORKER_ROWS + 1);
      if (rows.length > MAX_WORKER_ROWS) changed.push('workers');
      else workers = rows.map((w) => workerView(w, this.registry.get(w.worker_id)));
    }
    return {
      seq: this.seq,
      at: new Date(s.at).toISOString(),
      cluster: { tasks_completed: s.completed, tasks_failed: s.failed, running: s.running, pending: s.pending },
      master: this.master(),
      changed,
      ...(jobs?.length ? { jobs } : {}),
      ...(jobsMore ? { jobs_more: true } : {}),
      ...(workers ? { workers } : {}),
      ...(c?.gone.size ? { jobs_gone: [...c.gone] } : {}),
      ...(first ? { history: this.history.map((h) => [h.at, h.completed, h.running]) } : {}),
    };
  }

  /**
   * A job's page's frame: the job as GET /api/jobs/{job_id} shows it, or `gone`; the tasks
   * that moved since the last frame (as GET …/tasks shows them), or `changed: ['job']` when
   * they are too many to send (read the tasks again); `changed: ['logs']` when its tasks printed.
   */
  private jobFrame(jobId: string, first: boolean, c?: Changes): Frame {
    const row = this.queries.job(jobId);
    const s = this.last!;
    const base = { seq: this.seq, at: new Date(s.at).toISOString() };
    if (!row || c?.gone.has(jobId)) return { ...base, job_id: jobId, gone: true };
    const changed: string[] = [];
    let tasks: unknown[] | undefined;
    if (c && !first) {
      const moved = c.tasks.get(jobId);
      if (c.reset || moved === 'all') changed.push('job');
      else if (moved) tasks = this.queries.tasksAt(row, moved).map(taskView);
      if (c.reset || c.logs.has(jobId)) changed.push('logs');
    }
    return {
      ...base,
      job_id: jobId,
      job: jobView(row, this.queries, this.registry),
      changed,
      ...(tasks?.length ? { tasks } : {}),
    };
  }
}

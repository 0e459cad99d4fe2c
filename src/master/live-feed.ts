import type { Queries } from '../state/queries.js';
import type { ClusterConsensus } from './cluster-log.js';
import { LiveChanges, type Changes } from './live-changes.js';
import { TERMINAL, jobView } from './views.js';
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

/** Rows of the jobs list a frame carries at most (the page shows 100). */
const MAX_JOB_ROWS = 100;

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
    const first = sub.job === undefined ? this.overview(undefined, true) : this.jobFrame(sub.job, true);
    if (first && !sub.send(first)) this.unsubscribe(sub);
    return true;
  }

  unsubscribe(sub: Subscriber): void {
    if (!this.subs.delete(sub)) return;
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
    return row?.type === 'streaming' && !TERMINAL.has(row.status);
  }

  private master() {
    const s = this.consensus.status();
    return { id: s.node_id, role: s.role, term: s.term, commit_index: s.commit_index, last_applied: s.last_applied };
  }

  /**
   * The overview's frame: the cluster's figures, this master's own, and the jobs list's rows
   * that changed (as GET /api/jobs shows them); `reset` asks the page to read the lists again.
   */
  private overview(c: Changes | undefined, first: boolean): Frame {
    const s = this.last!;
    const changed: string[] = [];
    let jobs: unknown[] | undefined;
    if (c) {
      if (c.workers) changed.push('workers');
      if (c.reset || c.jobs.size > MAX_JOB_ROWS) changed.push('jobs');
      else if (c.jobs.size) {
        jobs = [];
        for (const id of c.jobs) {
          const row = this.queries.job(id);
          if (row) jobs.push(jobView(row));
        }
      }
    }
    return {
      seq: this.seq,
      at: new Date(s.at).toISOString(),
      cluster: { tasks_completed: s.completed, tasks_failed: s.failed, running: s.running, pending: s.pending },
      master: this.master(),
      changed,
      ...(jobs?.length ? { jobs } : {}),
      ...(c?.gone.size ? { jobs_gone: [...c.gone] } : {}),
      ...(first ? { history: this.history.map((h) => [h.at, h.completed, h.running]) } : {}),
    };
  }

  /** A job's page's frame: the job as GET /api/jobs/{job_id} shows it, or `gone`. */
  private jobFrame(jobId: string, first: boolean, c?: Changes): Frame {
    const row = this.queries.job(jobId);
    const s = this.last!;
    const base = { seq: this.seq, at: new Date(s.at).toISOString() };
    if (!row || c?.gone.has(jobId)) return { ...base, job_id: jobId, gone: true };
    return { ...base, job_id: jobId, job: jobView(row, this.queries, this.registry), changed: first ? [] : ['job'] };
  }
}

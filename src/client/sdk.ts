import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { TokenSource } from '../common/auth.js';
import { WeirError } from '../common/errors.js';
import { HttpClient, LocalFailure } from '../common/http-client.js';
import { MAX_UPLOAD_BYTES } from '../common/ids.js';
import { renameDurably } from '../state/durable-file.js';
import type { TlsConnect } from '../common/tls.js';

export interface JobView {
  job_id: string;
  name: string;
  type: string;
  status: 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
  operation?: string;
  progress: { total: number; pending: number; running: number; completed: number; failed: number };
  /** Multi-stage jobs (map → reduce): each stage's tasks. */
  stages?: {
    name: string;
    status: string;
    total: number;
    pending: number;
    running: number;
    completed: number;
    failed: number;
  }[];
  /** Streaming jobs: each component's instances, where they run and their figures. */
  components?: {
    id: string;
    kind: string;
    parallelism: number;
    instances: {
      index: number;
      status: string;
      address: string | null;
      in_per_s: number;
      out_per_s: number;
      queue_fill: number;
      backpressure: boolean;
      pending: number;
      errors: number;
    }[];
  }[];
  /** Part files written to config.output, once the job completed. */
  output?: { path: string; parts: { part: string; records: number; bytes: number }[] };
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error?: { task: number; message: string; stack?: string; attempts?: number };
  /** Asked for with `resultsLimit`, of a completed batch job: its first results. */
  results_page?: ResultsPage;
}

/** A page of a job's results (GET /api/jobs/ID/results). */
export interface ResultsPage {
  results: unknown[];
  next_cursor: string | null;
}

export interface WorkerView {
  worker_id: string;
  address: string;
  status: 'active' | 'draining' | 'dead';
  max_tasks: number;
  active_tasks: number;
  last_heartbeat: string | null;
}

export interface ClusterStatus {
  current_node_id: number;
  current_role: string;
  leader_id: number | null;
  leader_address: string | null;
  total_nodes: number;
  nodes: { id: number; address: string; role: string; is_leader: boolean; healthy: boolean }[];
  term: number;
  commit_index: number;
  last_applied: number;
  /** `["no_space"]` while that master refuses writes that add data (absent from older masters). */
  alarms?: string[];
}

/** A line a task printed (GET /api/jobs/ID/logs). */
export interface LogLineView {
  task: number;
  attempt: number;
  stream: 'stdout' | 'stderr';
  time: string;
  text: string;
  component?: string;
  instance?: number;
}

export const TERMINAL_STATUSES = new Set(['completed', 'failed', 'cancelled']);
export const JOB_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** How long run()'s submit waits for the job before run() goes on with wait()'s polls. */
const RUN_SUBMIT_WAIT_MS = 1000;
/** Results per page read. */
export const RESULTS_PAGE = 10_000;
/** The results a waited submit asks to bring along (the masters' most: `results_limit` ≤ 1000). */
export const FIRST_RESULTS = 1000;

export interface WeirClientOptions {
  masters: string[];
  tokens?: TokenSource;
  retryForMs?: number;
  /** For https masters: the CA to verify them against (see tls.ts). */
  tls?: TlsConnect;
}

/** The typed SDK over the REST API; the CLI is a thin layer over it. */
export class WeirClient {
  readonly http: HttpClient;

  constructor(o: WeirClientOptions) {
    this.http = new HttpClient({
      urls: o.masters,
      // The CLI is the operator's tool: from JWT_SECRET it mints admin tokens.
      tokens: o.tokens ?? TokenSource.fromEnv('weir-cli', { role: 'admin' }),
      ...(o.retryForMs !== undefined ? { retryForMs: o.retryForMs } : {}),
      ...(o.tls ? { tls: o.tls } : {}),
    });
  }

  /**
   * Submits a job. With `waitMs`, the answer waits until the job finishes or that time runs
   * out (one round trip for a short job); with `resultsLimit` too, a batch job answered
   * completed brings its first results (`results_page`). A retried submit is the same job by
   * its key.
   */
  submit(
    job: { name: string; type: 'batch' | 'streaming'; config?: unknown },
    idempotencyKey: string = randomUUID(),
    waitMs = 0,
    resultsLimit?: number,
  ) {
    const params = new URLSearchParams({
      ...(waitMs > 0 ? { wait_ms: String(waitMs) } : {}),
      ...(resultsLimit !== undefined ? { results_limit: String(resultsLimit) } : {}),
    });
    const q = params.size > 0 ? `?${params}` : '';
    return this.http.post<JobView>(`/api/jobs${q}`, job, {
      headers: { 'idempotency-key': idempotencyKey },
      ...(waitMs > 0 ? { timeoutMs: waitMs + 10_000 } : {}),
    });
  }

  /**
   * Uploads a local file for a job's input; returns the URL workers read it from, once a
   * majority of the masters hold a copy (`copies`: how many did by then).
   */
  async upload(path: string): Promise<{ upload_id: string; url: string; bytes: number; copies: number }> {
    const stat = statSync(path);
    if (!stat.isFile()) throw new WeirError('bad_request', `${path} is not a file; upload a file`);
    const { size } = stat;
    // Refused by every master: said now, not after sending a gigabyte for a reset connection.
    if (size > MAX_UPLOAD_BYTES) {
      throw new WeirError(
        'payload_too_large',
        `${path} is ${(size / 1024 ** 3).toFixed(2)} GiB, over the ${MAX_UPLOAD_BYTES / 1024 ** 3} GiB an upload may be; put larger inputs where every worker can read them (config.input.path)`,
      );
    }
    return this.http.post('/api/uploads', undefined, {
      upload: { open: () => createReadStream(path), length: size },
      timeoutMs: 600_000,
    });
  }

  /** Deletes an upload no job reads (409 `conflict` while one does). */
  async deleteUpload(uploadId: string): Promise<void> {
    await this.http.call<undefined>('DELETE', `/api/uploads/${encodeURIComponent(uploadId)}`);
  }

  /**
   * Writes a backup of the cluster's state to `dest`: whole, checked (`check` throws for a
   * copy it refuses; what it returns is returned) and on the disk before it takes that name,
   * or not at all — a file already there stays as it was. Needs an admin token.
   */
  async backup<T>(dest: string, check: (path: string) => T): Promise<T> {
    const partial = `${dest}.partial`;
    try {
      await this.http.get('/api/cluster/backup', {
        timeoutMs: 600_000,
        sink: async (body) => {
          const file = createWriteStream(partial);
          let refused: Error | undefined;
          file.once('error', (err) => (refused = err));
          try {
            await pipeline(body, file);
          } catch (err) {
            // This side's disk, not the master: another master's copy would meet it too.
            if (refused) throw new LocalFailure(`cannot write ${partial}: ${refused.message}`, refused);
            throw err;
          }
        },
      });
      const checked = check(partial);
      renameDurably(partial, dest);
      return checked;
    } finally {
      // Never in place of what failed: a partial file that cannot go is only left behind.
      try {
        rmSync(partial, { force: true });
      } catch {
        // left behind
      }
    }
  }

  /** The job; with `waitMs`, answered early as soon as it finishes. */
  job(jobId: string, waitMs = 0): Promise<JobView> {
    const q = waitMs > 0 ? `?wait_ms=${waitMs}` : '';
    return this.http.get<JobView>(`/api/jobs/${encodeURIComponent(jobId)}${q}`, { timeoutMs: waitMs + 10_000 });
  }

  /** Resolves with the finished job, calling `onProgress` as it changes. */
  async wait(jobId: string, onProgress?: (job: JobView) => void): Promise<JobView> {
    for (;;) {
      const job = await this.job(jobId, 1000);
      onProgress?.(job);
      if (TERMINAL_STATUSES.has(job.status)) return job;
    }
  }

  /**
   * Submits a batch job, waits for it and gives its results: the round trip of one job. A job
   * that failed or was cancelled resolves with no results; what happened is on `job`.
   */
  async run(
    job: { name: string; config?: unknown },
    o: { idempotencyKey?: string; onProgress?: (job: JobView) => void } = {},
  ): Promise<{ job: JobView; results: unknown[] }> {
    // The submit waits as long as one poll of wait() would, and a job answered completed
    // brings its first page of results: a short job is one round trip.
    const { results_page: first, ...submitted } = await this.submit(
      { ...job, type: 'batch' },
      o.idempotencyKey,
      RUN_SUBMIT_WAIT_MS,
      FIRST_RESULTS,
    );
    o.onProgress?.(submitted);
    const done = TERMINAL_STATUSES.has(submitted.status) ? submitted : await this.wait(submitted.job_id, o.onProgress);
    const results: unknown[] = [];
    if (done.status === 'completed')
      for await (const page of this.resultsFrom(done.job_id, first)) for (const r of page) results.push(r);
    return { job: done, results };
  }

  /**
   * Every result of a completed job, from a first page already in hand (a master older than
   * `results_limit` sends none: then from the start).
   */
  async *resultsFrom(jobId: string, first: ResultsPage | undefined): AsyncGenerator<unknown[]> {
    if (!first) return yield* this.results(jobId);
    yield first.results;
    if (first.next_cursor !== null) yield* this.results(jobId, RESULTS_PAGE, first.next_cursor);
  }

  /** A page of jobs, newest first; `status`: only those in it. */
  jobs(cursor?: string, limit = 100, status?: JobStatus) {
    const q = new URLSearchParams({
      limit: String(limit),
      ...(cursor ? { cursor } : {}),
      ...(status ? { status } : {}),
    });
    return this.http.get<{ jobs: JobView[]; next_cursor: string | null }>(`/api/jobs?${q}`);
  }

  /** Every result of a completed job, page by page (from `cursor`, a page's next_cursor). */
  async *results(jobId: string, pageSize = RESULTS_PAGE, cursor: string | null = null): AsyncGenerator<unknown[]> {
    do {
      const q = new URLSearchParams({ limit: String(pageSize), ...(cursor ? { cursor } : {}) });
      const page: { results: unknown[]; next_cursor: string | null } = await this.http.get(
        `/api/jobs/${encodeURIComponent(jobId)}/results?${q}`,
      );
      yield page.results;
      cursor = page.next_cursor;
    } while (cursor);
  }

  /**
   * A streaming job's rows as they arrive: every row delivered (or re-delivered, when a
   * window fires again) after the previous poll, until the job ends or `signal` aborts.
   */
  async *follow(jobId: string, signal?: AbortSignal, intervalMs = 500): AsyncGenerator<unknown[]> {
    let cursor: string | undefined;
    while (!signal?.aborted) {
      const q = new URLSearchParams({ limit: '10000', ...(cursor ? { cursor } : {}) });
      const page: { results: unknown[]; next_cursor: string | null; follow_cursor?: string } = await this.http.get(
        `/api/jobs/${encodeURIComponent(jobId)}/results?${q}`,
      );
      if (page.results.length) yield page.results;
      cursor = page.follow_cursor ?? cursor;
      if (page.next_cursor) continue;
      const job = await this.job(jobId);
      if (job.status !== 'running' && job.status !== 'pending') return;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  /**
   * What a job's tasks printed, page by page; with `follow`, then what they print next, until
   * the job has ended (or `signal` aborts). Each poll is a request of its own, so a follow
   * outlives a master's failover.
   */
  async *logs(
    jobId: string,
    o: { task?: number; attempt?: number; follow?: boolean; signal?: AbortSignal; intervalMs?: number } = {},
  ): AsyncGenerator<LogLineView[]> {
    let cursor: string | undefined;
    const filter = {
      ...(o.task === undefined ? {} : { task: String(o.task) }),
      ...(o.attempt === undefined ? {} : { attempt: String(o.attempt) }),
    };
    while (!o.signal?.aborted) {
      // Whether it had ended before its lines are read: then they are all there.
      const ended = !o.follow || TERMINAL_STATUSES.has((await this.job(jobId)).status);
      for (;;) {
        const q = new URLSearchParams({ limit: '5000', ...filter, ...(cursor ? { cursor } : {}) });
        const page: { lines: LogLineView[]; next_cursor: string | null; follow_cursor: string } = await this.http.get(
          `/api/jobs/${encodeURIComponent(jobId)}/logs?${q}`,
        );
        if (page.lines.length) yield page.lines;
        cursor = page.follow_cursor;
        if (!page.next_cursor) break;
      }
      if (ended) return;
      await new Promise((r) => setTimeout(r, o.intervalMs ?? 500));
    }
  }

  cancel(jobId: string): Promise<JobView> {
    return this.http.post<JobView>(`/api/jobs/${encodeURIComponent(jobId)}/cancel`);
  }

  /** Deletes a job and everything it left (a running one is cancelled first). */
  async delete(jobId: string): Promise<void> {
    await this.http.call<undefined>('DELETE', `/api/jobs/${encodeURIComponent(jobId)}`);
  }

  workers() {
    return this.http.get<{ workers: WorkerView[] }>('/api/workers');
  }

  cluster() {
    return this.http.get<ClusterStatus>('/cluster/status');
  }

  /** Takes a master out of the cluster's configuration. */
  removeMaster(id: number) {
    return this.http.call<{ removed: number }>('DELETE', `/api/cluster/members/${id}`);
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

import { trace, tracing } from '../common/trace.js';
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenSource } from '../common/auth.js';
import { WeirError } from '../common/errors.js';
import { ID_PATTERN } from '../common/ids.js';
import type { HttpClient } from '../common/http-client.js';
import type { Logger } from '../common/logger.js';
import type { NodeTls } from '../common/tls.js';
import {
  CLOSE_NOT_LEADER,
  CLOSE_UNKNOWN_WORKER,
  decodeToWorker,
  encode,
  MAX_HELD_JOBS,
  type TaskAssignment,
  type TaskReport,
  type ToMaster,
  type ToWorker,
} from '../protocol/worker-channel.js';
import { taskKey, type TaskRef } from '../protocol/task-ref.js';
import type { TaskSpec } from '../protocol/task-spec.js';
import { describeError, type ExecutorPool } from './executor-pool.js';
import type { StreamRuntime } from './stream/runtime.js';
import type { WorkerStats } from './worker-stats.js';
import type { TaskTokens } from './task-tokens.js';
import { refusedFrames } from '../protocol/checked-decode.js';
import { ReconnectingSocket, wsUrl, type AfterClose } from '../common/reconnecting-socket.js';
import { onNextTurn } from '../common/next-turn.js';
import { LogCapture } from './log-capture.js';
import { jsonNestsDeeper, MAX_NESTING } from '../protocol/nesting.js';

export interface AgentOptions {
  client: HttpClient;
  tokens: TokenSource;
  /** What tasks carry to read map outputs elsewhere: good for nothing else. */
  taskTokens: TaskTokens;
  pool: ExecutorPool;
  stats: WorkerStats;
  address: string;
  maxTasks: number;
  /** Where map outputs are kept until their job is over. */
  shuffleDir: string;
  /** --allow-net: where url inputs may be (undefined: anywhere). */
  allowNet?: string[];
  /** Runs the streaming instances placed on this worker. */
  streams: StreamRuntime;
  heartbeatIntervalMs?: number;
  /** The channel speaks wss with it, and tasks reach other nodes over https. */
  tls: NodeTls | undefined;
  log: Logger;
}

interface Running {
  ref: TaskRef;
  abort: AbortController;
}

/**
 * How long after a task is handed to an executor the leader is told it began, if it still
 * runs. A worker lost sooner than this into a task is not counted against it (rules.ts): a task
 * that kills its worker takes longer than that to reach the machine's limits (its executor's
 * memory is watched every 5 ms), and the tasks over sooner cost no frame of their own. Counted
 * from the executor, not from the assignment: under load a worker's queue holds tasks for tens
 * of milliseconds. (A flood of quick tasks still sends some: those at the end of an executor's
 * chunk wait there that long — a few bytes each.) A channel down then loses nothing: the hello
 * that opens the next one names every attempt here.
 */
export const BEGAN_DELAY_MS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The worker's side of the cluster: registers, heartbeats, keeps a channel to the leader,
 * runs what it is assigned and reports every outcome until the leader acknowledges it.
 * Reports survive a master restart or failover: they are re-sent on every reconnect.
 */
export class WorkerAgent {
  workerId: string | undefined;
  private socket: ReconnectingSocket | undefined;
  private readonly running = new Map<string, Running>();
  private readonly unacked = new Map<string, { report: TaskReport; sentAt: number }>();
  private outbox: TaskReport[] = [];
  /** Reports finished in the same turn of the event loop travel in one frame. */
  private readonly flushReportsSoon = onNextTurn(() => this.flushReports());
  /** Attempts begun here that the leader has not been told of yet (see BEGAN_DELAY_MS). */
  private beganSince = new Map<string, TaskRef>();
  private beganTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private resendTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private draining = false;
  private registering: Promise<void> | undefined;
  private readonly heartbeatIntervalMs: number;

  constructor(private readonly o: AgentOptions) {
    this.heartbeatIntervalMs = o.heartbeatIntervalMs ?? 1000;
  }

  get activeTasks(): number {
    return this.running.size;
  }

  get connected(): boolean {
    return this.socket?.open ?? false;
  }

  get status(): 'active' | 'draining' {
    return this.draining ? 'draining' : 'active';
  }

  async start(): Promise<void> {
    await this.register();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatIntervalMs);
    this.resendTimer = setInterval(() => this.resendStale(), 2000);
    this.connect();
  }

  /** Registers (again); concurrent callers share one registration. */
  private register(): Promise<void> {
    this.registering ??= (async () => {
      for (let delay = 100; !this.stopped; delay = Math.min(delay * 2, 2000)) {
        try {
          const r = await this.o.client.post<{ worker_id: string }>('/api/workers/register', {
            address: this.o.address,
            max_tasks: this.o.maxTasks,
          });
          if (this.workerId) {
            this.o.log.warn({ old: this.workerId, new: r.worker_id }, 'registered again');
            this.dropOldIdentity();
          }
          this.workerId = r.worker_id;
          // Its channel, heartbeats and links now speak for this worker id alone.
          this.o.tokens.setClaims({ role: 'worker', worker_id: r.worker_id });
          // Reports of the old identity's tasks are stale now: the master re-ran those tasks.
          this.unacked.clear();
          this.o.log.info({ worker_id: r.worker_id, master: this.o.client.baseUrl }, 'registered');
          return;
        } catch (err) {
          this.o.log.warn({ err: (err as Error).message }, 'registration failed; retrying');
          await sleep(delay);
        }
      }
    })().finally(() => (this.registering = undefined));
    return this.registering;
  }

  /**
   * Registered again under a new id, this worker was declared dead under the old one: the
   * master has placed its tasks and stream instances elsewhere, and cancels and deletes now
   * name the new attempts. What still runs under the old id would run on unseen — a stream
   * instance doubling its output, a source going on after its job was cancelled — so it stops.
   */
  private dropOldIdentity(): void {
    for (const r of this.running.values()) r.abort.abort(new Error('task cancelled: its worker registered again'));
    this.running.clear();
  }

  private async heartbeat(): Promise<void> {
    if (!this.workerId || this.registering) return;
    try {
      await this.o.client.post(
        '/api/workers/heartbeat',
        {
          worker_id: this.workerId,
          status: this.status,
          active_tasks: this.running.size,
          metrics: {
            ...this.o.stats.snapshot(),
            // How many tasks run at once here: the leader's lease on an attempt allows for the
            // waves of tasks that may run before it starts (lease-policy.ts).
            executors: this.o.pool.maxThreads,
            ...(this.o.streams.instances ? { stream: this.o.streams.metrics() } : {}),
          },
          timestamp: new Date().toISOString(),
        },
        { noRetry: true, timeoutMs: Math.max(1000, this.heartbeatIntervalMs) },
      );
    } catch (err) {
      if (err instanceof WeirError && err.code === 'unknown_worker') {
        await this.register();
        this.socket?.drop();
      } else {
        this.o.log.debug({ err: (err as Error).message }, 'heartbeat failed');
      }
    }
  }

  private connect(): void {
    if (this.stopped || !this.workerId) return;
    this.socket = new ReconnectingSocket({
      url: () => wsUrl(this.o.client.baseUrl, `/api/workers/${this.workerId}/channel`),
      tokens: this.o.tokens,
      // The master closes a channel whose token expires: fresh ones go over it first.
      tokenFrame: (token) => encode({ t: 'token', token }),
      ...(this.o.tls ? { tls: this.o.tls.connect } : {}),
      maxPayload: 64 * 1024 * 1024,
      onOpen: () => {
        this.send({
          t: 'hello',
          running: [...this.running.values()].map((r) => r.ref),
          unacked: [...this.unacked.values()].map(({ report: r }) => ({
            job_id: r.job_id,
            idx: r.idx,
            attempt: r.attempt,
          })),
          holds: this.heldJobs(),
        });
        const pending = [...this.unacked.values()].map((u) => u.report);
        if (pending.length) this.send({ t: 'report', reports: pending, resent: true });
        if (this.draining) this.send({ t: 'drain' });
      },
      onMessage: (data) => {
        const d = decodeToWorker(data);
        if (d.ok) return this.onMessage(d.value);
        refusedFrames.worker_channel++;
        this.o.log.warn({ why: d.error }, 'a bad frame from the master; reconnecting');
        this.socket?.drop();
      },
      onError: (err) => this.o.log.debug({ err: err.message }, 'channel error'),
      onClose: async (code, leader): Promise<AfterClose> => {
        if (this.stopped) return 'stop';
        let next: AfterClose = 'retry';
        if (code === CLOSE_NOT_LEADER && /^https?:\/\//.test(leader)) {
          this.o.client.prefer(leader);
          next = 'retry-reset';
        } else if (code !== CLOSE_UNKNOWN_WORKER) {
          // The master went away (crash, failover): try the next one.
          this.o.client.rotate();
        }
        if (code === CLOSE_UNKNOWN_WORKER) await this.register();
        return next;
      },
    });
  }

  /**
   * Jobs this worker keeps map outputs of: the leader says which are over, so outputs of jobs
   * deleted or finished while the worker was away go too.
   */
  private heldJobs(): string[] {
    try {
      return readdirSync(this.o.shuffleDir)
        .filter((d) => ID_PATTERN.test(d))
        .slice(0, MAX_HELD_JOBS);
    } catch {
      return [];
    }
  }

  private send(msg: ToMaster): boolean {
    const socket = this.socket;
    if (!socket?.open) return false;
    return socket.send(encode(msg));
  }

  private onMessage(msg: ToWorker): void {
    switch (msg.t) {
      case 'assign':
        if (tracing) for (const a of msg.tasks) trace(a.job_id, 'worker received');
        for (const a of msg.tasks) this.runTask(a);
        return;
      case 'cancel':
        for (const ref of msg.tasks) this.running.get(taskKey(ref))?.abort.abort(new Error('task cancelled'));
        return;
      case 'ack':
        for (const ref of msg.tasks) this.unacked.delete(taskKey(ref));
        return;
      case 'placement':
        this.o.streams.placement(msg.job_id, msg.instances);
        return;
      case 'forget':
        for (const jobId of msg.job_ids) {
          this.o.pool.forgetJob(jobId);
          const dir = join(this.o.shuffleDir, jobId);
          // Most jobs leave no map outputs here, and rm's ENOENT error (a stack trace each)
          // cost 5% of a worker's CPU on quick jobs; a failed stat costs a few µs.
          if (!existsSync(dir)) continue;
          void rm(dir, { recursive: true, force: true }).catch((err: Error) =>
            this.o.log.warn({ err, job_id: jobId }, 'could not delete map outputs'),
          );
        }
        return;
    }
  }

  private runTask(a: TaskAssignment): void {
    const key = taskKey(a);
    // A re-sent assignment for a task already running or done is a duplicate.
    if (this.running.has(key) || this.unacked.has(key)) return;
    const ref = { job_id: a.job_id, idx: a.idx, attempt: a.attempt };
    const abort = new AbortController();
    this.running.set(key, { ref, abort });
    const identity = this.workerId;
    void this.execute(a, ref, abort.signal).then((report) => {
      if (this.running.get(key)?.abort === abort) this.running.delete(key);
      // A cancelled task's outcome no longer matters to anyone; nor one run under an id this
      // worker no longer has (see dropOldIdentity).
      if (abort.signal.aborted && !report.ok && /cancelled/.test(report.error.message)) return;
      if (this.workerId !== identity) return;
      this.unacked.set(key, { report, sentAt: Date.now() });
      this.outbox.push(report);
      this.flushReportsSoon();
    });
  }

  /** Runs a task to its report (never throws): its outcome, and what it printed. */
  private async execute(a: TaskAssignment, ref: TaskRef, signal: AbortSignal): Promise<TaskReport> {
    const started = performance.now();
    // What the task prints goes with its report (a stream instance's, see StreamRuntime).
    const logs = new LogCapture();
    let report: TaskReport;
    try {
      const spec = await this.withEnv(a);
      const json =
        spec.operation === 'stream'
          ? await this.o.streams.run(spec, signal)
          : await this.o.pool.run(spec, {
              timeoutMs: a.timeout_ms,
              memoryMb: a.memory_mb,
              signal,
              key: a.job_id,
              logs,
              onSent: () => this.tellBegan(ref),
            });
      trace(a.job_id, 'task finished');
      // Results are values from outside too (user code made them): bounded as a request's are,
      // or applying them would overflow the masters' stacks.
      if (jsonNestsDeeper(json, MAX_NESTING + 1)) {
        throw new Error(`the task's results nest arrays and objects more than ${MAX_NESTING} deep; flatten them`);
      }
      const ms = performance.now() - started;
      this.o.stats.taskDone(ms);
      report = { ...ref, ok: true, result_json: json, ms: Math.round(ms * 1000) / 1000 };
    } catch (err) {
      this.o.stats.taskFailed();
      report = { ...ref, ok: false, error: describeError(err) };
      // Why an attempt failed here, for an operator reading this worker's log (the master keeps
      // only a task's last failure); a cancelled attempt is no failure.
      if (!signal.aborted) this.o.log.info({ ...ref, err: report.error.message }, 'a task attempt failed');
    }
    return logs.empty ? report : { ...report, logs: logs.take() };
  }

  /**
   * A data job's task learns where this worker keeps map outputs and how to fetch others'.
   * With TLS it gets the CA to verify the other nodes against, but never this node's private
   * key: user code runs in the same thread, and its token already says who it acts for.
   */
  private async withEnv(a: TaskAssignment): Promise<TaskSpec> {
    if (a.spec.operation === 'stream' || !('job_id' in a.spec)) return a.spec;
    const auth = await this.o.taskTokens.header(a.job_id);
    const tls = this.o.tls;
    return {
      ...a.spec,
      env: {
        shuffle_dir: this.o.shuffleDir,
        masters: this.o.client.masters,
        ...(auth ? { auth } : {}),
        ...(tls ? { tls: tls.ca ? { ca: tls.ca } : {} } : {}),
        ...(this.o.allowNet ? { allow_net: this.o.allowNet } : {}),
      },
    };
  }

  /**
   * Tells the leader, BEGAN_DELAY_MS on, of the attempts begun meanwhile that still run: most
   * tasks are over by then, and their reports say more than a frame of its own would.
   */
  private tellBegan(ref: TaskRef): void {
    // Once: a task the executor had no time for in its chunk is handed to one again.
    this.beganSince.set(taskKey(ref), ref);
    this.beganTimer ??= setTimeout(() => {
      this.beganTimer = undefined;
      const tasks = [...this.beganSince].filter(([key]) => this.running.has(key)).map(([, r]) => r);
      this.beganSince.clear();
      if (tasks.length) this.send({ t: 'began', tasks });
    }, BEGAN_DELAY_MS);
  }

  private flushReports(): void {
    const reports = this.outbox;
    this.outbox = [];
    if (tracing) for (const r of reports) trace(r.job_id, 'report sent');
    if (reports.length) this.send({ t: 'report', reports });
  }

  private resendStale(): void {
    const now = Date.now();
    const stale = [];
    for (const u of this.unacked.values()) {
      if (now - u.sentAt > 2000) {
        u.sentAt = now;
        stale.push(u.report);
      }
    }
    if (stale.length) this.send({ t: 'report', reports: stale, resent: true });
  }

  /**
   * Graceful stop: take no new tasks, let running ones finish and their reports be
   * acknowledged (up to `graceMs`), then leave.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    this.send({ t: 'drain' });
    const deadline = Date.now() + graceMs;
    while ((this.running.size > 0 || this.unacked.size > 0) && Date.now() < deadline) await sleep(50);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.resendTimer);
    clearTimeout(this.beganTimer);
    for (const r of this.running.values()) r.abort.abort(new Error('worker stopping'));
    this.o.streams.close();
    this.socket?.close(1000, 'worker stopping');
  }
}

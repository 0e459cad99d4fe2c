import type { Logger } from '../common/logger.js';
import { taskKey } from '../protocol/task-ref.js';
import type { Queries } from '../state/queries.js';
import type { ClusterConsensus } from './cluster-log.js';
import { expiredLeases, LEASE_GRACE_MS, type ExpiredLease, type LeaseHolder } from './lease-policy.js';
import type { Scheduler } from './scheduler.js';
import type { WorkerRegistry } from './worker-registry.js';

/** How often the leader looks for attempts held past their lease. */
const CHECK_MS = 1000;

/**
 * The leader's watch over running attempts: one held past its lease (lease-policy.ts) is
 * failed through the log — counted against `max_retries` like a timeout, retried preferably
 * on another worker — even while its worker heartbeats: a worker alive but stuck (an executor
 * it lost track of, a channel it stopped reading) must not keep a task for ever.
 *
 * The decision is this leader's, from its clock; what the log gets is an ordinary `failTasks`
 * naming the attempt (job, idx, attempt, worker), so apply stays deterministic and a late
 * report of that attempt changes nothing (apply accepts outcomes of the running attempt only).
 */
export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private leaderSince = 0;
  /** Attempts whose expiry is being proposed (by task key), so no check proposes one twice. */
  private readonly expiring = new Set<string>();

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly queries: Queries,
    private readonly registry: WorkerRegistry,
    private readonly scheduler: Scheduler,
    private readonly log: Logger,
    private readonly graceMs = LEASE_GRACE_MS,
    /** Told how many attempts each committed expiry took back (the metric). */
    private readonly onExpired: (n: number) => void = () => undefined,
  ) {}

  /** This master leads from now: leases count from now at the earliest (see lease-policy.ts). */
  start(): void {
    this.leaderSince = Date.now();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  check(now = Date.now()): void {
    if (!this.timer || !this.consensus.isLeader()) return;
    // A lease is at least the grace, counted from the later of an attempt's start and this
    // leadership's: only attempts older than that can be over. Reading all of them each second
    // (8,000 on the scale benchmark's 1,000 workers) held the leader's loop 40-250 ms.
    if (this.leaderSince > now - this.graceMs) return;
    const attempts = [];
    for (const a of this.queries.runningAttempts(now - this.graceMs)) {
      const timeout = this.queries.jobConfig(a.job_id)?.timeout_ms ?? 0;
      const key = taskKey(a);
      // An attempt its worker reported done is over: its outcome is on its way to the log.
      if (timeout <= 0 || this.expiring.has(key) || this.registry.isFinishing(a.worker_id, key)) continue;
      attempts.push({ ...a, timeout_ms: timeout });
    }
    if (attempts.length === 0) return;
    const workers = new Map<string, LeaseHolder>();
    for (const w of this.queries.liveWorkers()) {
      const executors = this.registry.get(w.worker_id)?.metrics.executors;
      workers.set(w.worker_id, {
        max_tasks: w.max_tasks,
        executors: typeof executors === 'number' ? executors : undefined,
      });
    }
    const expired = expiredLeases(attempts, workers, now, this.leaderSince, this.graceMs);
    if (expired.length) this.expire(expired, now);
  }

  private expire(expired: ExpiredLease[], at: number): void {
    const keys = expired.map(taskKey);
    for (const k of keys) this.expiring.add(k);
    const failures = expired.map((e) => ({
      job_id: e.job_id,
      idx: e.idx,
      attempt: e.attempt,
      worker_id: e.worker_id,
      error: {
        name: 'lease_expired',
        message:
          `lease expired on worker ${e.worker_id} after ${e.held_ms} ms: attempt ${e.attempt} of task ${e.idx} ` +
          `was not reported within its lease of ${e.lease_ms} ms (timeout_ms ${e.timeout_ms} plus a grace); ` +
          'the worker may be stuck — the task runs again elsewhere',
      },
    }));
    for (const e of expired) {
      this.log.warn(
        { worker_id: e.worker_id, job_id: e.job_id, idx: e.idx, attempt: e.attempt, held_ms: e.held_ms },
        'lease expired: failing the attempt',
      );
    }
    this.consensus
      .propose({ type: 'failTasks', at, failures })
      // The expired attempt itself stops too, should its worker still be listening.
      .then(() => {
        this.onExpired(expired.length);
        this.scheduler.stopTasks(expired);
      })
      .catch((err: Error) => this.log.warn({ err }, 'expiring leases failed; the next check tries again'))
      .finally(() => {
        for (const k of keys) this.expiring.delete(k);
      });
  }
}

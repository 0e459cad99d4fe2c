/**
 * When the leader takes a running attempt back from its worker: the lease. Pure — the caller
 * supplies the attempts, the workers and the leader's clock.
 *
 * An attempt's lease is its `timeout_ms` plus a grace, counted from the later of its start (the
 * `at` of the assignment that started it, as the log has it) and the moment this master began
 * to lead. The later of the two, because `started_at` was stamped by whichever leader assigned
 * the attempt: another master's clock may be ahead of this one's, and an attempt must never
 * lose a lease it still holds (a false expiry charges a healthy task a retry). Restarting the
 * count at election costs at most one lease more for a truly stuck attempt; elections are rare.
 *
 * A worker runs its tasks in `executors` processes, and with fewer of those than task slots a
 * task waits for one there, its timeout not yet started. The lease therefore adds, for every
 * wave of tasks that may run before it (`ceil(max_tasks / executors) - 1`), the longest
 * timeout of the attempts on that worker — the most a wave can take, since the worker kills
 * whatever outlives its timeout. A worker that never said how many executors it has is taken
 * to have one (the longest lease).
 */
export interface LeasedAttempt {
  job_id: string;
  idx: number;
  attempt: number;
  worker_id: string;
  /** When the attempt started, by the clock of the leader that assigned it (ms since the epoch). */
  started_at: number;
  /** Its job's `timeout_ms`; 0 (a stream instance, which runs until its job ends) holds no lease. */
  timeout_ms: number;
}

export interface LeaseHolder {
  max_tasks: number;
  /** Executor processes the worker runs tasks in (from its heartbeats); unknown: one. */
  executors?: number | undefined;
}

export interface ExpiredLease extends LeasedAttempt {
  /** How long this master has seen the attempt held, and the lease it had. */
  held_ms: number;
  lease_ms: number;
}

/** The default grace beyond `timeout_ms`: a report's way back, an executor's start, a slow disk. */
export const LEASE_GRACE_MS = 10_000;

/** How many waves of tasks a worker may run before a newly assigned one starts. */
function wavesAhead(worker: LeaseHolder | undefined): number {
  if (!worker) return 0;
  // A figure a worker sends: anything but a positive count means one (the longest lease).
  const said = worker.executors;
  const executors = said !== undefined && Number.isFinite(said) ? Math.max(1, Math.floor(said)) : 1;
  return Math.max(0, Math.ceil(worker.max_tasks / executors) - 1);
}

/** The attempts whose lease is over at `now`, with how long they were held. */
export function expiredLeases(
  attempts: readonly LeasedAttempt[],
  workers: ReadonlyMap<string, LeaseHolder>,
  now: number,
  leaderSince: number,
  graceMs = LEASE_GRACE_MS,
): ExpiredLease[] {
  const longest = new Map<string, number>();
  for (const a of attempts) longest.set(a.worker_id, Math.max(longest.get(a.worker_id) ?? 0, a.timeout_ms));
  const expired: ExpiredLease[] = [];
  for (const a of attempts) {
    if (!(a.timeout_ms > 0)) continue;
    const leaseMs = a.timeout_ms + wavesAhead(workers.get(a.worker_id)) * longest.get(a.worker_id)! + graceMs;
    const since = Math.max(a.started_at, leaderSince);
    if (now - since > leaseMs) expired.push({ ...a, held_ms: now - since, lease_ms: leaseMs });
  }
  return expired;
}

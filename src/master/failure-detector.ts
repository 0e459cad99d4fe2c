import type { Logger } from '../common/logger.js';
import type { Queries } from '../state/queries.js';
import type { WorkerRegistry } from './worker-registry.js';
import type { ClusterConsensus } from './cluster-log.js';

/**
 * The leader's watch over workers: one that has not been heard from for `timeoutMs`, or
 * whose channel dropped, is declared dead through the log (its running tasks go back to
 * pending). A new leader first grants every live worker a full timeout, so a failover never
 * kills workers that simply had no leader to talk to.
 */
/** More than this share of the live workers silent at once: see `check`. */
const MASS_SILENCE_SHARE = 0.5;

export class FailureDetector {
  private timer: NodeJS.Timeout | undefined;
  private readonly declaring = new Set<string>();
  private readonly everyMs: number;
  /** When the previous check ran, and since when checks have come late (the loop stalling). */
  private lastCheck = 0;
  private lateSince: number | undefined;
  private massSilenceLogged = 0;

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly queries: Queries,
    private readonly registry: WorkerRegistry,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.everyMs = Math.max(50, Math.min(250, this.timeoutMs / 4));
  }

  start(): void {
    const now = Date.now();
    for (const w of this.queries.liveWorkers()) this.registry.grace(w.worker_id, now);
    this.lastCheck = now;
    this.lateSince = undefined;
    this.timer = setInterval(() => this.check(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * A check that runs late means this master's event loop stalled: the heartbeats that came
   * meanwhile wait unread in its sockets, and a timer runs before I/O on the turn after a
   * stall, so judging now would take this master's deafness for its workers' silence (the
   * scale benchmark saw a stalled leader declare hundreds of heartbeating workers dead in one
   * check). A late check judges nobody; the next one on time does, after the I/O — or, should
   * every check come late, the first one a full timeout into the lateness.
   */
  check(): void {
    if (!this.consensus.isLeader()) return;
    const now = Date.now();
    const late = now - this.lastCheck > 2 * this.everyMs;
    this.lastCheck = now;
    if (late) {
      this.lateSince ??= now;
      if (now - this.lateSince < this.timeoutMs) return;
    }
    this.lateSince = undefined;
    const workers = this.queries.liveWorkers();
    const silent: { id: string; silentFor: number }[] = [];
    for (const w of workers) {
      const live = this.registry.get(w.worker_id);
      const silentFor = now - (live?.lastSeen ?? 0);
      if (!live) this.registry.grace(w.worker_id, now);
      else if (silentFor > this.timeoutMs) silent.push({ id: w.worker_id, silentFor });
    }
    // Most workers silent at once says more about this leader (starved of CPU, cut off from
    // them) than about them: declaring them all dead makes each register again, a write
    // apiece, on the leader that could not keep up — the scale benchmark's 1,000 workers on a
    // loaded machine spiralled into tens of thousands of deaths so. Then at most one a check,
    // the longest silent first, as Kubernetes' node controller slows evictions in a zone mostly
    // down. A worker really gone is still caught: its channel drops (declared at once), and
    // the lease on each attempt it ran expires.
    let allowed = silent.length;
    if (silent.length > workers.length * MASS_SILENCE_SHARE) {
      allowed = 1;
      silent.sort((a, b) => b.silentFor - a.silentFor);
      if (now - this.massSilenceLogged > 10_000) {
        this.massSilenceLogged = now;
        this.log.warn(
          { silent: silent.length, workers: workers.length },
          'most workers look silent at once: declaring them dead one at a time, as this leader may be the one behind',
        );
      }
    }
    for (const w of silent.slice(0, allowed)) this.declareDead(w.id, `no heartbeat for ${w.silentFor} ms`);
  }

  declareDead(workerId: string, reason: string): void {
    if (this.declaring.has(workerId) || !this.consensus.isLeader()) return;
    this.declaring.add(workerId);
    this.consensus
      .propose({ type: 'markWorkerDead', at: Date.now(), worker_id: workerId, reason })
      .then((r) => {
        this.log.warn({ worker_id: workerId, reason, requeued: r.ok ? r.requeued : 0 }, 'worker declared dead');
        this.registry.forget(workerId)?.close(4404, 'declared dead');
      })
      .catch((err: Error) => this.log.warn({ err, worker_id: workerId }, 'declaring a worker dead failed'))
      .finally(() => this.declaring.delete(workerId));
  }
}

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
export class FailureDetector {
  private timer: NodeJS.Timeout | undefined;
  private readonly declaring = new Set<string>();

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly queries: Queries,
    private readonly registry: WorkerRegistry,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const now = Date.now();
    for (const w of this.queries.liveWorkers()) this.registry.grace(w.worker_id, now);
    this.timer = setInterval(() => this.check(), Math.max(50, Math.min(250, this.timeoutMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    if (!this.consensus.isLeader()) return;
    const now = Date.now();
    for (const w of this.queries.liveWorkers()) {
      const live = this.registry.get(w.worker_id);
      const silentFor = now - (live?.lastSeen ?? 0);
      if (!live) this.registry.grace(w.worker_id, now);
      else if (silentFor > this.timeoutMs) this.declareDead(w.worker_id, `no heartbeat for ${silentFor} ms`);
    }
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

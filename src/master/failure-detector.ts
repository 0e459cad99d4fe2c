import { logFailedWrite, type Logger } from '../common/logger.js';
import type { Queries } from '../state/queries.js';
import { taskKey } from '../protocol/task-ref.js';
import { AtMostEvery } from '../common/at-most-every.js';
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
  private readonly massSilence = new AtMostEvery(10_000);
  /** How late the checks have run in all, sampled at each check, oldest first (see `lagSince`). */
  private lag: { at: number; total: number }[] = [];
  private lagTotal = 0;

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
    this.lag = [{ at: now, total: this.lagTotal }];
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
    // A late check (a stall) is covered below; the lag of those on time or nearly is counted.
    this.noteLag(now, late ? 0 : now - this.lastCheck - this.everyMs);
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
      const silentFor = this.silence(now, live?.lastSeen ?? 0);
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
      this.massSilence.say(
        () =>
          this.log.warn(
            { silent: silent.length, workers: workers.length },
            'most workers look silent at once: declaring them dead one at a time, as this leader may be the one behind',
          ),
        '',
        now,
      );
    }
    for (const w of silent.slice(0, allowed)) this.declareDead(w.id, `no heartbeat for ${w.silentFor} ms`);
  }

  /**
   * A worker's silence as this leader could have noticed it: the time since it was last heard
   * from, less how late this leader's own checks ran meanwhile (those not late enough to count
   * as a stall, which `check` skips instead) — a loop that is behind reads heartbeats late by
   * about as much as its timers run late, and on a busy leader with 1,000 workers such lags,
   * each too short to count as a stall, add up over a timeout. Never less
   * than half the time, so that a leader always behind still finds the dead (in at most twice
   * the timeout).
   */
  private silence(now: number, lastSeen: number): number {
    const raw = now - lastSeen;
    return Math.max(raw - this.lagSince(lastSeen), raw / 2);
  }

  private noteLag(now: number, lateBy: number): void {
    if (lateBy > 0) this.lagTotal += lateBy;
    this.lag.push({ at: now, total: this.lagTotal });
    // Twice the timeout back is all a silence long enough to judge ever asks for.
    const horizon = now - 2 * this.timeoutMs;
    let drop = 0;
    while (drop < this.lag.length - 1 && this.lag[drop + 1]!.at <= horizon) drop++;
    if (drop > 0) this.lag.splice(0, drop);
  }

  /** How late the checks ran after `t` (the samples before it give the base). */
  private lagSince(t: number): number {
    let base = this.lag[0]?.total ?? this.lagTotal;
    for (const s of this.lag) {
      if (s.at > t) break;
      base = s.total;
    }
    return this.lagTotal - base;
  }

  declareDead(workerId: string, reason: string): void {
    if (this.declaring.has(workerId) || !this.consensus.isLeader()) return;
    this.declaring.add(workerId);
    // What it began and the log still has it run: all its loss may count against (rules.ts).
    let began = this.registry.begunOn(workerId);
    if (began.length) {
      const running = new Set(this.queries.runningOnWorker(workerId).map(taskKey));
      began = began.filter((t) => running.has(taskKey(t)));
    }
    this.consensus
      .propose({ type: 'markWorkerDead', at: Date.now(), worker_id: workerId, reason, began })
      .then((r) => {
        this.log.warn({ worker_id: workerId, reason, requeued: r.ok ? r.requeued : 0 }, 'worker declared dead');
        this.registry.forget(workerId)?.close(4404, 'declared dead');
      })
      .catch((err: Error) => logFailedWrite(this.log, err, { worker_id: workerId }, 'declaring a worker dead'))
      .finally(() => this.declaring.delete(workerId));
  }
}

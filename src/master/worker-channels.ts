import { trace, tracing } from '../common/trace.js';
import type { WebSocket } from 'ws';
import { logFailedWrite, type Logger } from '../common/logger.js';
import { taskKey } from '../protocol/task-ref.js';
import { SocketToken, countedOutcomes, type TokenAuthority } from '../common/socket-token.js';
import {
  CLOSE_NOT_LEADER,
  CLOSE_REPLACED,
  CLOSE_UNKNOWN_WORKER,
  decodeToMaster,
  type ToMaster,
} from '../protocol/worker-channel.js';
import type { Queries } from '../state/queries.js';
import { ReportBatcher } from './report-batcher.js';
import type { FailureDetector } from './failure-detector.js';
import type { Scheduler } from './scheduler.js';
import type { WorkerRegistry } from './worker-registry.js';
import { refusedFrames } from '../protocol/checked-decode.js';
import type { ClusterConsensus } from './cluster-log.js';

/** Fresh tokens taken and refused on worker channels, and channels closed as their token expired. */
export const channelTokens = { renewed: 0, refused: 0, expired: 0 };

/** Attempts workers said they had begun (in `began` frames: those still running a moment on). */
export const tasksBegun = { count: 0 };

/**
 * The leader's end of each worker's channel: accepts reports (acknowledged once their
 * outcome is committed), reconciles what a reconnecting worker runs against the log, and
 * turns a dropped connection into a dead worker.
 */
export class WorkerChannels {
  private closing = false;
  private readonly reports: ReportBatcher;
  /** The no_space alarm's reason, once the master has its monitor (task logs are dropped under it). */
  noSpace: () => string | undefined = () => undefined;

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly queries: Queries,
    private readonly registry: WorkerRegistry,
    private readonly scheduler: Scheduler,
    private readonly detector: FailureDetector,
    private readonly log: Logger,
  ) {
    this.reports = new ReportBatcher(
      consensus,
      (workerId, tasks) => registry.ack(workerId, tasks),
      log,
      registry,
      () => this.noSpace(),
    );
  }

  /** `authority`: how the token the channel opened with is renewed (absent on an open cluster). */
  accept(workerId: string, socket: WebSocket, authority?: TokenAuthority): void {
    if (!this.consensus.isLeader()) {
      // The reason carries the leader's URL, so the worker goes straight there.
      socket.close(CLOSE_NOT_LEADER, this.consensus.leaderUrl() ?? '');
      return;
    }
    if (!this.queries.liveWorker(workerId)) {
      socket.close(CLOSE_UNKNOWN_WORKER, 'unknown worker; register again');
      return;
    }
    this.registry.attach(workerId, socket, Date.now())?.close(CLOSE_REPLACED, 'replaced by a newer connection');
    // A worker sends a fresh token before its last expires; one that does not loses the channel.
    const token = new SocketToken(
      authority,
      socket,
      countedOutcomes(channelTokens, this.log, 'a worker channel', { worker_id: workerId }),
    );
    socket.on('message', (data: Buffer) => {
      const d = decodeToMaster(data);
      if (!d.ok) {
        // Nothing of it reaches the log; the worker reconnects (and is declared dead meanwhile).
        refusedFrames.worker_channel++;
        this.log.warn({ worker_id: workerId, why: d.error }, 'a bad frame on a worker channel; closing it');
        socket.close(1007, 'bad frame');
        return;
      }
      this.registry.grace(workerId, Date.now());
      if (d.value.t === 'token') return token.renew(d.value.token);
      this.onMessage(workerId, d.value);
    });
    socket.on('close', () => {
      token.stop();
      if (this.registry.detach(workerId, socket) && !this.closing) {
        this.detector.declareDead(workerId, 'connection lost');
      }
    });
    socket.on('error', (err) => this.log.debug({ err, worker_id: workerId }, 'worker channel error'));
    this.scheduler.kick();
  }

  private onMessage(workerId: string, msg: Exclude<ToMaster, { t: 'token' }>): void {
    switch (msg.t) {
      case 'hello':
        return this.reconcile(workerId, msg);
      case 'report':
        if (tracing) for (const r of msg.reports) trace(r.job_id, 'report received');
        this.reports.add(workerId, msg.reports, { fresh: msg.resent !== true });
        // Their slots are free now, not once the outcomes are committed.
        return this.scheduler.kick();
      case 'began':
        tasksBegun.count += msg.tasks.length;
        return this.registry.began(workerId, msg.tasks);
      case 'drain':
        void this.consensus
          .propose({ type: 'drainWorker', at: Date.now(), worker_id: workerId })
          .catch((err: Error) => logFailedWrite(this.log, err, { worker_id: workerId }, 'draining a worker'));
        return;
    }
  }

  /**
   * Re-sends assignments the log says this worker runs but the worker does not know of, and
   * tells it which of the jobs it keeps map outputs of, or runs tasks of, are over (deleted or
   * finished while it was away: the broadcast then did not reach it).
   */
  private reconcile(workerId: string, hello: Extract<ToMaster, { t: 'hello' }>): void {
    this.registry.began(workerId, hello.running, true);
    if (hello.holds?.length) {
      const active = this.queries.activeOf(hello.holds);
      const over = hello.holds.filter((id) => !active.has(id));
      if (over.length) this.registry.send(workerId, { t: 'forget', job_ids: over });
    }
    // Attempts of jobs that ended (or were deleted) while it was away: nobody waits for them.
    const active = this.queries.activeOf([...new Set(hello.running.map((t) => t.job_id))]);
    const orphans = hello.running.filter((t) => !active.has(t.job_id));
    if (orphans.length) this.registry.send(workerId, { t: 'cancel', tasks: orphans });
    const known = new Set([...hello.running, ...hello.unacked].map(taskKey));
    const missing = this.queries
      .runningOnWorker(workerId)
      .filter((t) => !known.has(taskKey(t)))
      .map((t) => ({ ...t, worker_id: workerId }));
    if (missing.length > 0) {
      this.log.info({ worker_id: workerId, tasks: missing.length }, 're-sending assignments after reconnect');
      this.scheduler.dispatch(missing);
    }
  }

  /**
   * Leadership moved: every worker reconnects to the new leader (named in the reason). Each
   * socket is detached before it is closed: its 'close' comes only once the worker answers
   * the close frame, and should this master lead again by then (a hand-over back to the
   * highest id, 1–2 s later), that late close must not read as a lost connection — the scale
   * benchmark saw a master regain leadership and declare all 1,000 workers dead at once.
   */
  dropAll(): void {
    for (const w of this.registry.all()) {
      const socket = w.socket;
      if (!socket) continue;
      this.registry.detach(w.worker_id, socket);
      socket.close(CLOSE_NOT_LEADER, this.consensus.leaderUrl() ?? '');
    }
  }

  close(): void {
    this.closing = true;
    for (const w of this.registry.all()) {
      // Reports committed in the last moments are acknowledged, not sent again to the next leader.
      this.registry.flushAcks(w.worker_id);
      w.socket?.close(1001, 'master shutting down');
    }
  }
}

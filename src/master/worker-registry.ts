import type { WebSocket } from 'ws';
import { taskKey, type TaskRef } from '../protocol/task-ref.js';
import { encode, type ToWorker } from '../protocol/worker-channel.js';

/**
 * How long an acknowledgement waits for a frame to go with. A worker sends a report again
 * after 2 s without one; until then it only holds the report in memory.
 */
export const ACK_DELAY_MS = 20;

/** Begun attempts the leader holds for one worker at most (a worker runs max_tasks at once). */
export const MAX_BEGUN = 10_000;

export interface LiveWorker {
  worker_id: string;
  /** When the leader last heard from it (heartbeat or channel frame); soft state. */
  lastSeen: number;
  lastHeartbeat: number | null;
  activeTasks: number;
  metrics: Record<string, unknown>;
  socket?: WebSocket;
}

/**
 * The leader's soft state about workers: heartbeat times, reported load and metrics, and
 * the open channel to each. Never logged; rebuilt from the workers' next heartbeats and
 * reconnections after a restart or failover.
 */
export class WorkerRegistry {
  private readonly workers = new Map<string, LiveWorker>();
  /** Per worker, tasks it reported done whose outcome is not committed yet (by task key). */
  private readonly finishing = new Map<string, Set<string>>();
  /** Per worker, reports whose outcome is committed, to acknowledge with its next frame. */
  private readonly heldAcks = new Map<string, TaskRef[]>();
  /** Per worker, attempts it said it had begun and has not reported yet (by task key). */
  private readonly begun = new Map<string, Map<string, TaskRef>>();
  private ackTimer: NodeJS.Timeout | undefined;

  get(workerId: string): LiveWorker | undefined {
    return this.workers.get(workerId);
  }

  private entry(workerId: string, now: number): LiveWorker {
    let w = this.workers.get(workerId);
    if (!w) {
      w = { worker_id: workerId, lastSeen: now, lastHeartbeat: null, activeTasks: 0, metrics: {} };
      this.workers.set(workerId, w);
    }
    return w;
  }

  /** Gives a worker the benefit of the doubt from `now` (a new leader, a new registration). */
  grace(workerId: string, now: number): void {
    this.entry(workerId, now).lastSeen = now;
  }

  heartbeat(workerId: string, now: number, activeTasks: number, metrics: Record<string, unknown>): void {
    const w = this.entry(workerId, now);
    w.lastSeen = now;
    w.lastHeartbeat = now;
    w.activeTasks = activeTasks;
    w.metrics = metrics;
  }

  /** Attaches a channel; returns the one it replaces, if any. */
  attach(workerId: string, socket: WebSocket, now: number): WebSocket | undefined {
    const w = this.entry(workerId, now);
    const old = w.socket;
    w.socket = socket;
    w.lastSeen = now;
    return old;
  }

  /**
   * Detaches `socket` if it is still the worker's channel; says whether it was. Its held
   * acknowledgements go out first if it is still open (a master stepping down detaches the
   * channels it then closes); on a channel already lost the worker sends those reports again.
   */
  detach(workerId: string, socket: WebSocket): boolean {
    const w = this.workers.get(workerId);
    if (!w || w.socket !== socket) return false;
    this.flushAcks(workerId);
    w.socket = undefined;
    return true;
  }

  connected(workerId: string): boolean {
    return this.workers.get(workerId)?.socket?.readyState === 1;
  }

  send(workerId: string, msg: ToWorker): boolean {
    const s = this.workers.get(workerId)?.socket;
    if (!s || s.readyState !== 1) return false;
    s.send(encode(msg));
    // After the message: a worker reads an assignment before the acknowledgements behind it.
    this.flushAcks(workerId);
    return true;
  }

  /**
   * Acknowledges reports whose outcome is committed: with the next frame that goes to the
   * worker anyway, or on their own within ACK_DELAY_MS. A frame of their own costs a socket
   * write here and a wake-up there (a seventh message for a one-task job, beside the six on
   * its way); behind an assignment that goes anyway they cost a few bytes.
   */
  ack(workerId: string, tasks: readonly TaskRef[]): void {
    let held = this.heldAcks.get(workerId);
    if (!held) this.heldAcks.set(workerId, (held = []));
    // One at a time: spreading a long list throws (a worker's report frames are not bounded).
    for (const t of tasks) held.push(t);
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      for (const id of [...this.heldAcks.keys()]) this.flushAcks(id);
    }, ACK_DELAY_MS);
    this.ackTimer.unref();
  }

  /** Sends the worker's held acknowledgements now if its channel is open; drops them otherwise. */
  flushAcks(workerId: string): void {
    const acks = this.heldAcks.get(workerId);
    if (!acks) return;
    this.heldAcks.delete(workerId);
    if (this.heldAcks.size === 0) this.stopAckTimer();
    const s = this.workers.get(workerId)?.socket;
    if (s?.readyState === 1) s.send(encode({ t: 'ack', tasks: acks }));
  }

  private stopAckTimer(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  /** Sends to every connected worker. */
  broadcast(msg: ToWorker): void {
    const frame = encode(msg);
    for (const w of this.workers.values()) if (w.socket?.readyState === 1) w.socket.send(frame);
  }

  /**
   * A worker reported these tasks done: their slots are free on the worker already, though
   * the log still says they run until their outcome commits (see `finishingOn`).
   */
  reported(workerId: string, keys: readonly string[]): void {
    const begun = this.begun.get(workerId);
    if (begun) for (const k of keys) begun.delete(k);
    let set = this.finishing.get(workerId);
    if (!set) this.finishing.set(workerId, (set = new Set()));
    for (const k of keys) set.add(k);
  }

  /** Their outcome is committed (or its proposal failed, and the worker will report again). */
  recorded(workerId: string, keys: readonly string[]): void {
    const set = this.finishing.get(workerId);
    if (!set) return;
    for (const k of keys) set.delete(k);
    if (set.size === 0) this.finishing.delete(workerId);
  }

  /**
   * How many tasks this worker reported done (first sends only) whose outcome is not yet
   * committed: the log still counts them as running there.
   */
  finishingOn(workerId: string): number {
    return this.finishing.get(workerId)?.size ?? 0;
  }

  /** Whether this worker reported the attempt `key` done, its outcome not committed yet. */
  isFinishing(workerId: string, key: string): boolean {
    return this.finishing.get(workerId)?.has(key) ?? false;
  }

  /**
   * The worker began these attempts (`fresh`: it runs these and no others — its hello). Held for
   * its loss to count against them (rules.ts); at most MAX_BEGUN a worker, the oldest dropped
   * first, as a worker that claims more is not one the limit is for.
   */
  began(workerId: string, tasks: readonly TaskRef[], fresh = false): void {
    let set = this.begun.get(workerId);
    if (!set || fresh) this.begun.set(workerId, (set = new Map()));
    for (const t of tasks) {
      set.set(taskKey(t), { job_id: t.job_id, idx: t.idx, attempt: t.attempt });
      if (set.size > MAX_BEGUN) set.delete(set.keys().next().value!);
    }
  }

  /** Attempts the worker said it had begun and not yet reported. */
  begunOn(workerId: string): TaskRef[] {
    return [...(this.begun.get(workerId)?.values() ?? [])];
  }

  forget(workerId: string): WebSocket | undefined {
    const w = this.workers.get(workerId);
    this.workers.delete(workerId);
    this.begun.delete(workerId);
    this.finishing.delete(workerId);
    this.heldAcks.delete(workerId);
    return w?.socket;
  }

  all(): LiveWorker[] {
    return [...this.workers.values()];
  }
}

// A fleet of simulated workers for the scale benchmark: many workers in one process, each
// speaking the real worker protocol to the masters — it registers (POST /api/workers/register),
// mints its own worker token when the cluster has a JWT_SECRET, heartbeats over its own HTTP
// client, keeps its own channel WebSocket (msgpack frames, the codec of src/protocol), takes the
// tasks it is assigned and reports them done, re-sending each report until it is acknowledged.
// What it does not do is run anything: a `noop` task's result is its index, as a real worker's
// is; a `sleep` task waits its `ms`; any other task fails with a message saying so. That makes
// the masters' side of a thousand workers measurable on a machine that could not host them.
import { WeirError } from '../src/common/errors.js';
import { TokenSource } from '../src/common/auth.js';
import { HttpClient } from '../src/common/http-client.js';
import { onNextTurn } from '../src/common/next-turn.js';
import { ReconnectingSocket, wsUrl, type AfterClose } from '../src/common/reconnecting-socket.js';
import { taskKey, type TaskRef } from '../src/protocol/task-ref.js';
import {
  CLOSE_NOT_LEADER,
  CLOSE_UNKNOWN_WORKER,
  decodeToWorker,
  encode,
  type TaskAssignment,
  type TaskReport,
  type ToMaster,
  type ToWorker,
} from '../src/protocol/worker-channel.js';

export interface SimFleetOptions {
  /** Every master's URL; each worker follows the leader among them, as a real worker does. */
  masters: string[];
  workers: number;
  /** The slots each worker registers with (`max_tasks`). */
  maxTasks: number;
  /** Default 1000, a real worker's interval. */
  heartbeatMs?: number;
  /** The cluster's JWT_SECRET; each worker then mints its own `worker` token. */
  secret?: string;
  /** What each worker registers as its address: `${label}-${n}` (nothing connects to it). */
  label?: string;
  /** Registrations in flight at once while the fleet starts. Default 32. */
  registerConcurrency?: number;
}

/** The fleet's figures, summed over its workers. */
export interface FleetStats {
  workers: number;
  registered: number;
  channels_open: number;
  heartbeats_ok: number;
  heartbeats_failed: number;
  heartbeat_errors: Record<string, number>;
  /** Heartbeats answered since the last `stats()`: slowest, and p99 (ms). */
  heartbeat_max_ms: number;
  heartbeat_p99_ms: number;
  registrations: number;
  assigned: number;
  reported: number;
  acked: number;
  refused_frames: number;
  rss_bytes: number;
}

/** What reports the master has not acknowledged yet are re-sent after (as the real agent does). */
const RESEND_AFTER_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counters every worker of a fleet adds to. */
class Tally {
  registered = 0;
  registrations = 0;
  heartbeatsOk = 0;
  heartbeatsFailed = 0;
  /** Failed heartbeats by what failed them: an error code, or the client's error name. */
  heartbeatErrors: Record<string, number> = {};
  assigned = 0;
  reported = 0;
  acked = 0;
  refusedFrames = 0;
  heartbeatMs: number[] = [];
}

/**
 * One simulated worker: the state the real agent keeps (its id, its unacknowledged reports),
 * none of its executors.
 */
class SimWorker {
  workerId: string | undefined;
  private socket: ReconnectingSocket | undefined;
  private readonly client: HttpClient;
  private readonly tokens: TokenSource;
  private readonly unacked = new Map<string, { report: TaskReport; sentAt: number }>();
  /** `sleep` tasks still waiting, so a `cancel` can stop them. */
  private readonly sleeping = new Map<string, NodeJS.Timeout>();
  private outbox: TaskReport[] = [];
  private readonly flushSoon = onNextTurn(() => this.flush());
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private resendTimer: NodeJS.Timeout | undefined;
  private registering: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly o: Required<Omit<SimFleetOptions, 'secret'>> & { secret?: string },
    private readonly address: string,
    private readonly tally: Tally,
  ) {
    this.tokens = new TokenSource(o.secret, undefined, `sim-${address}`, { role: 'worker' });
    // Its own client, so its own keep-alive connection: the leader serves a thousand of them.
    this.client = new HttpClient({ urls: o.masters, tokens: this.tokens, timeoutMs: 10_000 });
  }

  get open(): boolean {
    return this.socket?.open ?? false;
  }

  async start(firstHeartbeatInMs: number): Promise<void> {
    await this.register();
    this.tally.registered++;
    // Spread over the interval, as workers started at different times are.
    setTimeout(() => {
      if (this.stopped) return;
      void this.heartbeat();
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.o.heartbeatMs);
    }, firstHeartbeatInMs);
    this.resendTimer = setInterval(() => this.resendStale(), RESEND_AFTER_MS);
    this.connect();
  }

  private register(): Promise<void> {
    this.registering ??= (async () => {
      for (let delay = 100; !this.stopped; delay = Math.min(delay * 2, 2000)) {
        try {
          const r = await this.client.post<{ worker_id: string }>('/api/workers/register', {
            address: this.address,
            max_tasks: this.o.maxTasks,
          });
          this.tally.registrations++;
          this.workerId = r.worker_id;
          this.tokens.setClaims({ role: 'worker', worker_id: r.worker_id });
          // The old identity's tasks were handed to others: their reports are stale.
          this.unacked.clear();
          return;
        } catch {
          await sleep(delay);
        }
      }
    })().finally(() => (this.registering = undefined));
    return this.registering;
  }

  private async heartbeat(): Promise<void> {
    if (!this.workerId || this.registering || this.stopped) return;
    const t0 = performance.now();
    try {
      await this.client.post(
        '/api/workers/heartbeat',
        {
          worker_id: this.workerId,
          status: 'active',
          active_tasks: this.sleeping.size,
          metrics: { executors: this.o.maxTasks, simulated: true },
          timestamp: new Date().toISOString(),
        },
        { noRetry: true, timeoutMs: Math.max(1000, this.o.heartbeatMs) },
      );
      this.tally.heartbeatsOk++;
      this.tally.heartbeatMs.push(performance.now() - t0);
    } catch (err) {
      this.tally.heartbeatsFailed++;
      const why = err instanceof WeirError ? err.code : (err as Error).name;
      this.tally.heartbeatErrors[why] = (this.tally.heartbeatErrors[why] ?? 0) + 1;
      // Otherwise (not the leader, unreachable, too slow) the client has moved on to the next
      // master already, as a real worker's does.
      if (err instanceof WeirError && err.code === 'unknown_worker') {
        await this.register();
        this.socket?.drop();
      }
    }
  }

  private connect(): void {
    this.socket = new ReconnectingSocket({
      url: () => wsUrl(this.client.baseUrl, `/api/workers/${this.workerId}/channel`),
      tokens: this.tokens,
      maxPayload: 64 * 1024 * 1024,
      onOpen: () => {
        const unacked = [...this.unacked.values()].map((u) => u.report);
        this.send({
          t: 'hello',
          running: [...this.sleeping.keys()].map(refOfKey),
          unacked: unacked.map((r) => ({ job_id: r.job_id, idx: r.idx, attempt: r.attempt })),
          holds: [],
        });
        if (unacked.length) this.send({ t: 'report', reports: unacked, resent: true });
      },
      onMessage: (data) => {
        const d = decodeToWorker(data);
        if (d.ok) return this.onMessage(d.value);
        this.tally.refusedFrames++;
        this.socket?.drop();
      },
      onClose: async (code, reason): Promise<AfterClose> => {
        if (this.stopped) return 'stop';
        if (code === CLOSE_NOT_LEADER && /^https?:\/\//.test(reason)) {
          this.client.prefer(reason);
          return 'retry-reset';
        }
        if (code === CLOSE_UNKNOWN_WORKER) await this.register();
        else this.client.rotate();
        return 'retry';
      },
    });
  }

  private onMessage(msg: ToWorker): void {
    switch (msg.t) {
      case 'assign':
        this.tally.assigned += msg.tasks.length;
        for (const a of msg.tasks) this.take(a);
        return;
      case 'ack':
        for (const ref of msg.tasks) if (this.unacked.delete(taskKey(ref))) this.tally.acked++;
        return;
      case 'cancel':
        for (const ref of msg.tasks) {
          const key = taskKey(ref);
          clearTimeout(this.sleeping.get(key));
          this.sleeping.delete(key);
        }
        return;
      case 'forget':
      case 'placement':
        return; // no map outputs kept, no stream instances run
    }
  }

  private take(a: TaskAssignment): void {
    const key = taskKey(a);
    if (this.unacked.has(key) || this.sleeping.has(key)) return; // a re-sent assignment
    const ref = { job_id: a.job_id, idx: a.idx, attempt: a.attempt };
    const spec = a.spec as { operation: string; params?: { ms?: unknown } };
    if (spec.operation === 'noop') return this.done({ ...ref, ok: true, result_json: `[${a.idx}]`, ms: 0 });
    if (spec.operation === 'sleep' && typeof spec.params?.ms === 'number') {
      const ms = spec.params.ms;
      this.sleeping.set(
        key,
        setTimeout(() => {
          this.sleeping.delete(key);
          this.done({ ...ref, ok: true, result_json: `[${a.idx}]`, ms });
        }, ms),
      );
      return;
    }
    this.done({
      ...ref,
      ok: false,
      error: { message: `a simulated worker runs noop and sleep tasks only, not '${spec.operation}'` },
    });
  }

  private done(report: TaskReport): void {
    this.unacked.set(taskKey(report), { report, sentAt: Date.now() });
    this.outbox.push(report);
    this.flushSoon();
  }

  /** Reports finished in one turn travel in one frame, as the real agent sends them. */
  private flush(): void {
    const reports = this.outbox;
    this.outbox = [];
    if (reports.length && this.send({ t: 'report', reports })) this.tally.reported += reports.length;
  }

  private resendStale(): void {
    const now = Date.now();
    const stale: TaskReport[] = [];
    for (const u of this.unacked.values()) {
      if (now - u.sentAt > RESEND_AFTER_MS) {
        u.sentAt = now;
        stale.push(u.report);
      }
    }
    if (stale.length) this.send({ t: 'report', reports: stale, resent: true });
  }

  private send(msg: ToMaster): boolean {
    return this.socket?.open ? this.socket.send(encode(msg)) : false;
  }

  /** Stops heartbeating and closes its channel; a second call does nothing. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.resendTimer);
    for (const t of this.sleeping.values()) clearTimeout(t);
    this.socket?.close(1000, 'simulated worker stopping');
    await this.client.close();
  }
}

function refOfKey(key: string): TaskRef {
  const [job_id, idx, attempt] = key.split(':');
  return { job_id: job_id!, idx: Number(idx), attempt: Number(attempt) };
}

/** Many simulated workers in this process; `start()` resolves once every one is registered. */
export class SimWorkerFleet {
  private readonly tally = new Tally();
  private readonly members: SimWorker[];
  private readonly o: Required<Omit<SimFleetOptions, 'secret'>> & { secret?: string };

  constructor(options: SimFleetOptions) {
    if (options.masters.length === 0) throw new Error('the fleet needs at least one master URL');
    if (!(Number.isInteger(options.workers) && options.workers > 0)) throw new Error('workers: a positive integer');
    this.o = {
      heartbeatMs: 1000,
      label: 'sim',
      registerConcurrency: 32,
      ...options,
    };
    this.members = Array.from(
      { length: this.o.workers },
      (_, i) => new SimWorker(this.o, `${this.o.label}-${i}`, this.tally),
    );
  }

  /** The ids of the registered workers (for checks against GET /api/workers). */
  get workerIds(): string[] {
    return this.members.flatMap((w) => (w.workerId ? [w.workerId] : []));
  }

  async start(): Promise<void> {
    let next = 0;
    const lane = async () => {
      while (next < this.members.length) {
        const w = this.members[next++]!;
        await w.start(Math.random() * this.o.heartbeatMs);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.registerConcurrency, this.members.length) }, lane));
  }

  /** The figures so far; heartbeat latencies are those since the previous call. */
  stats(): FleetStats {
    const t = this.tally;
    const lat = t.heartbeatMs.sort((a, b) => a - b);
    t.heartbeatMs = [];
    return {
      workers: this.members.length,
      registered: t.registered,
      channels_open: this.members.filter((w) => w.open).length,
      heartbeats_ok: t.heartbeatsOk,
      heartbeats_failed: t.heartbeatsFailed,
      heartbeat_errors: { ...t.heartbeatErrors },
      heartbeat_max_ms: lat[lat.length - 1] ?? 0,
      heartbeat_p99_ms: lat[Math.max(0, Math.ceil(lat.length * 0.99) - 1)] ?? 0,
      registrations: t.registrations,
      assigned: t.assigned,
      reported: t.reported,
      acked: t.acked,
      refused_frames: t.refusedFrames,
      rss_bytes: process.memoryUsage.rss(),
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((w) => w.stop()));
  }
}

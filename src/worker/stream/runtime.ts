import type { WebSocket } from 'ws';
import type { TokenSource } from '../../common/auth.js';
import { WeirError } from '../../common/errors.js';
import type { HttpClient } from '../../common/http-client.js';
import type { NodeTls } from '../../common/tls.js';
import type { Logger } from '../../common/logger.js';
import { createHash } from 'node:crypto';
import { checkOutcome, halve, type ApplyOutcome, type FnOp } from '../../stream/apply-fn.js';
import {
  MAX_APPLY_OUTPUT_CHARS,
  MODULE_UNKNOWN,
  OUTPUT_LIMIT,
  outputRefusal,
  outputTooLarge,
  type StreamApplySpec,
} from './stream-apply.js';
import type { RunLimits } from '../executor-pool.js';
import { LogCapture } from '../log-capture.js';
import type { LogLine } from '../../protocol/task-log.js';
import type { TupleId } from '../../stream/acker.js';
import { EdgeRouter } from '../../stream/grouping.js';
import type { StreamConfig } from '../../protocol/stream-job.js';
import type { PlacedInstance, StreamTaskSpec } from '../../protocol/task-spec.js';
import type { ComponentSpec } from '../../protocol/stream-job.js';
import { consumersOf, instancesOf } from '../../stream/topology.js';
import type { AckItem, Tuple } from '../../protocol/stream-link.js';
import {
  BATCH,
  CollectSink,
  FileSink,
  FileSpout,
  FnBolt,
  GeneratorSpout,
  HttpSink,
  HttpSpout,
  INBOX_CAPACITY,
  WindowBolt,
  tupleIds,
  type Instance,
  type InstanceHost,
} from './instances.js';
import { namedError, type TaskRights } from '../executor-rules.js';
import { InLink, OutLink } from './links.js';
import type { TokenAuthority } from '../../common/socket-token.js';
import { onNextTurn } from '../../common/next-turn.js';
import { jsonNestsDeeper, MAX_NESTING } from '../../protocol/nesting.js';
import { holdsProtoKey } from '../../protocol/json-values.js';

/** An outcome's own levels (batches of outputs) around the values user code returned. */
const OUTCOME_NESTING = MAX_NESTING + 4;

/** How often instances' timers run: window firing (latency), replays, sink retries. */
const TICK_MS = 10;
/** How often what stream instances printed goes to the masters. */
const LOG_FLUSH_MS = 1000;
/** How long tuples wait for an instance that has not started on this worker yet. */
const PARK_MS = 10_000;
/** How long a saturated http source makes a POST wait for room before answering 429. */
export const INGEST_WAIT_MS = 5000;
/** A function's memory when its job's config predates config.memory_mb for streams. */
const DEFAULT_MEMORY_MB = 256;

/** Where user functions run: the worker's executor pool. */
export interface StreamExecutors {
  run(spec: StreamApplySpec, limits: RunLimits): Promise<string>;
}

export interface InstanceMetrics {
  job_id: string;
  idx: number;
  component: string;
  index: number;
  events_in: number;
  events_out: number;
  in_per_s: number;
  out_per_s: number;
  queue: number;
  queue_fill: number;
  backpressure: boolean;
  pending: number;
  errors: number;
  late: number;
}

/** The instances of one streaming job that run on this worker, and their routing. */
class JobRuntime implements InstanceHost {
  readonly local = new Map<number, Instance>();
  private placement = new Map<number, { attempt: number; address: string }>();
  private readonly components: { spec: ComponentSpec; index: number }[];
  private readonly first = new Map<string, number>();
  private loading: Promise<void> | undefined;
  private readonly moduleKey: string | undefined;
  /** Why each instance here stopped, told to its task: set while the instance runs. */
  private readonly failers = new Map<number, (err: Error) => void>();
  private readonly limits: RunLimits;
  /** What each instance here printed since its lines last went to the masters (LOG_FLUSH_MS). */
  private readonly logs = new Map<number, { attempt: number; capture: LogCapture }>();
  private logsSentAt = Date.now();
  private readonly timer: NodeJS.Timeout;
  readonly ackTimeoutMs: number;
  readonly maxPending: number;
  readonly rights: TaskRights | undefined;

  constructor(
    readonly jobId: string,
    private readonly config: StreamConfig,
    private readonly rt: StreamRuntime,
  ) {
    this.ackTimeoutMs = config.ack_timeout_ms;
    this.maxPending = config.max_pending;
    this.rights = rt.rights;
    if (config.module !== undefined) this.moduleKey = createHash('sha256').update(config.module).digest('base64url');
    // An apply that outlives the ack timeout is worthless: its sources have replayed its tuples.
    this.limits = {
      timeoutMs: config.ack_timeout_ms,
      memoryMb: config.memory_mb || DEFAULT_MEMORY_MB,
      key: `stream:${jobId}`,
    };
    const byId = new Map<string, ComponentSpec>(
      [...config.topology.spouts, ...config.topology.bolts].map((c) => [c.id, c]),
    );
    this.components = instancesOf(config.topology).map(({ component, index }, idx) => {
      if (index === 0) this.first.set(component, idx);
      return { spec: byId.get(component)!, index };
    });
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /**
   * The job's module, loaded once in an executor before its instances start (so one that does
   * not load fails its instances at once, as a task); every instance that starts here waits
   * for the same load.
   */
  load(): Promise<void> {
    this.loading ??= this.moduleKey
      ? this.runApply({ op: 'map', batches: [] }).then(
          () => undefined,
          (err: unknown) => {
            this.loading = undefined; // the next instance (a retry) tries again
            // Every instance that starts waits for this load, sources without user code too:
            // said as what it is, not as the instance's own timeout.
            if ((err as Error).name !== 'TaskTimeoutError') throw err;
            const named = new Error(
              `the job's module did not finish loading (${(err as Error).message}): its top-level code must finish — an await that never settles, or a loop, holds every instance`,
            );
            named.name = (err as Error).name;
            throw named;
          },
        )
      : Promise.resolve();
    return this.loading;
  }

  /** Sends one apply message; an executor that lacks the module gets it with its source. */
  private async runApply(a: Pick<StreamApplySpec, 'fn' | 'op' | 'batches'>, logs?: LogCapture): Promise<string> {
    const env = this.config.env;
    const spec: StreamApplySpec = {
      operation: 'stream_apply',
      job_id: this.jobId,
      module_key: this.moduleKey!,
      ...a,
      ...(env ? { user_env: env } : {}),
    };
    const limits = logs ? { ...this.limits, logs } : this.limits;
    try {
      return await this.rt.executors.run(spec, limits);
    } catch (err) {
      if ((err as Error).name !== MODULE_UNKNOWN) throw err;
      return this.rt.executors.run({ ...spec, module: this.config.module! }, limits);
    }
  }

  /**
   * Applies `fn` to the batches. An outcome too large to take in one turn of this worker's loop
   * is asked for again in halves, down to a single event: only an event that alone makes too
   * much fails its instance.
   */
  async apply(fn: string, op: FnOp, batches: Record<string, unknown>[][], from?: Instance): Promise<ApplyOutcome> {
    try {
      return await this.applyOnce(fn, op, batches, from);
    } catch (err) {
      const halves = (err as Error).name === OUTPUT_LIMIT ? halve(batches) : undefined;
      if (!halves) throw err;
      const a = await this.apply(fn, op, halves.parts[0], from);
      return halves.join(a, await this.apply(fn, op, halves.parts[1], from));
    }
  }

  private async applyOnce(
    fn: string,
    op: FnOp,
    batches: Record<string, unknown>[][],
    from?: Instance,
  ): Promise<ApplyOutcome> {
    if (!this.moduleKey) throw new TypeError(`the job has no module to take '${fn}' from`);
    const json = await this.runApply({ fn, op, batches }, from && this.logsOf(from));
    // Checked here too: the executor's own check runs beside user code, which may undo it.
    if (json.length > MAX_APPLY_OUTPUT_CHARS) throw namedError(OUTPUT_LIMIT, outputTooLarge(fn, batches, json.length));
    // What user code hands back is bounded as a request's body is: deeper, no frame would carry it.
    if (jsonNestsDeeper(json, OUTCOME_NESTING))
      throw new Error(
        `'${fn}' returned a value that nests arrays and objects more than ${MAX_NESTING} deep; flatten it`,
      );
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      value = undefined;
    }
    // msgpack renames the key between workers: the event would differ by where it went.
    if (holdsProtoKey(value, json)) throw new Error(`'${fn}' returned an object with a key __proto__; rename it`);
    const outcome = checkOutcome(value, op, batches);
    if (!outcome) throw new Error(`the executor running '${fn}' answered something that is not its outcome`);
    const refused = outputRefusal(fn, batches, outcome);
    if (refused) throw namedError(OUTPUT_LIMIT, refused);
    return outcome;
  }

  /** Where an instance's lines are kept until they are sent: one capture (one cap) per attempt. */
  private logsOf(inst: Instance): LogCapture {
    let l = this.logs.get(inst.idx);
    if (!l || l.attempt !== inst.attempt)
      this.logs.set(inst.idx, (l = { attempt: inst.attempt, capture: new LogCapture() }));
    return l.capture;
  }

  /**
   * Sends what instances printed to the masters (all of this job's instances here in one
   * request); `only`: that instance's alone, and it is forgotten (it stopped). Lines whose
   * request fails are lost: a log is worth neither a retry loop nor unbounded memory.
   */
  private sendLogs(only?: number): void {
    this.logsSentAt = Date.now();
    const instances = [];
    for (const [idx, l] of this.logs) {
      if (only !== undefined && idx !== only) continue;
      if (!l.capture.empty) instances.push({ idx, attempt: l.attempt, lines: l.capture.take() });
      if (only !== undefined) this.logs.delete(idx);
    }
    if (instances.length) this.rt.sendLogs(this.jobId, instances);
  }

  /** An instance that cannot go on: it stops here, and its task fails (the master retries it). */
  fail(inst: Instance, err: Error): void {
    if (this.local.get(inst.idx) !== inst) return;
    const failer = this.failers.get(inst.idx);
    this.stopInstance(inst.idx);
    const { spec, index } = this.componentOf(inst.idx);
    this.rt.log.warn(
      { job_id: this.jobId, idx: inst.idx, attempt: inst.attempt, err: err.message },
      'a stream instance failed',
    );
    const named = new Error(`${err.message} (in component '${spec.id}', instance ${index})`);
    named.name = err.name;
    failer?.(named);
  }

  /** Tells instance `idx`'s task why it stopped, if it fails. */
  onFailure(idx: number, failer: (err: Error) => void): void {
    this.failers.set(idx, failer);
  }

  setPlacement(instances: readonly PlacedInstance[]): void {
    this.placement = new Map(instances.map((p) => [p.idx, { attempt: p.attempt, address: p.address }]));
    this.wake();
  }

  start(idx: number, attempt: number): Instance {
    const { spec, index } = this.components[idx]!;
    const now = Date.now();
    let inst: Instance;
    if ('type' in spec) {
      if (spec.type === 'generator') inst = new GeneratorSpout(idx, attempt, spec, index, this, now);
      else if (spec.type === 'http') inst = new HttpSpout(idx, attempt, spec, index, this);
      else inst = new FileSpout(idx, attempt, spec, index, this);
    } else {
      const ctor = {
        map: FnBolt,
        filter: FnBolt,
        flat_map: FnBolt,
        window: WindowBolt,
        collect: CollectSink,
        file: FileSink,
        http: HttpSink,
      }[spec.op];
      inst = new ctor(idx, attempt, spec, index, this);
    }
    // Each instance routes with its own round-robin cursor per edge.
    const targets = new Set<number>();
    for (const { bolt, input } of consumersOf(this.config.topology, spec.id)) {
      const base = this.first.get(bolt.id)!;
      inst.routers.push({ router: new EdgeRouter(input, bolt.parallelism, index), base });
      for (let i = 0; i < bolt.parallelism; i++) targets.add(base + i);
    }
    inst.targets = [...targets];
    this.local.set(idx, inst);
    this.placement.set(idx, { attempt, address: this.rt.address });
    this.wake();
    return inst;
  }

  stopInstance(idx: number): void {
    const inst = this.local.get(idx);
    if (!inst) return;
    inst.stop();
    this.sendLogs(idx);
    this.local.delete(idx);
    this.failers.delete(idx);
    for (const t of inst.inbox) t.release?.();
  }

  addresses(): string[] {
    return [...this.placement.values()].map((p) => p.address);
  }

  get empty(): boolean {
    return this.local.size === 0;
  }

  close(): void {
    clearInterval(this.timer);
    for (const idx of [...this.local.keys()]) this.stopInstance(idx);
  }

  // ------------------------------------------------------------ InstanceHost

  emit(from: Instance, events: Record<string, unknown>[], o: number, a: number, r: number): TupleId {
    // Every route first: if one throws (a key with no JSON), nothing was sent.
    const parts: [number, Record<string, unknown>[]][] = [];
    for (const { router, base } of from.routers) {
      for (const [target, part] of router.split(events)) {
        // No tuple over BATCH events, so buffers counted in tuples stay bounded in events.
        if (part.length <= BATCH) parts.push([base + target, part]);
        else for (let i = 0; i < part.length; i += BATCH) parts.push([base + target, part.slice(i, i + BATCH)]);
      }
    }
    let hi = 0;
    let lo = 0;
    for (const [to, e] of parts) {
      const id = tupleIds.next();
      hi ^= id.hi;
      lo ^= id.lo;
      this.deliver(to, { e, o, a, r, h: id.hi, l: id.lo });
    }
    return { hi: hi >>> 0, lo: lo >>> 0 };
  }

  canEmit(from: Instance): boolean {
    for (const idx of from.targets) {
      const local = this.local.get(idx);
      if (local) {
        if (local.inbox.length >= INBOX_CAPACITY) return false;
        continue;
      }
      const p = this.placement.get(idx);
      // Not placed (its worker died): wait for the master to place it again.
      if (!p || p.address === this.rt.address) return false;
      if (this.rt.link(p.address).full(this.jobId, idx)) return false;
    }
    return true;
  }

  /**
   * Whether a tuple for instance `to` can be handed on now: the instance runs here, or runs
   * (as far as this worker knows) on another worker.
   */
  accepts(to: number): boolean {
    if (this.local.has(to)) return true;
    const p = this.placement.get(to);
    return p !== undefined && p.address !== this.rt.address;
  }

  /** Hands a tuple to its instance here, or to the worker it runs on; `release` frees link credit. */
  deliver(to: number, tuple: Tuple, release?: () => void): void {
    const local = this.local.get(to);
    if (local) {
      local.inbox.push(release ? { tuple, release } : { tuple });
      this.wake();
      return;
    }
    release?.();
    const p = this.placement.get(to);
    // Nowhere to go: dropped, and replayed by its source after the ack timeout.
    if (!p || p.address === this.rt.address) return;
    this.rt.link(p.address).send(this.jobId, to, tuple);
  }

  ack(o: number, a: number, r: number, h: number, l: number): void {
    const local = this.local.get(o);
    if (local) {
      if (local.attempt === a) local.onAck(r, h, l);
      return;
    }
    const p = this.placement.get(o);
    if (p && p.attempt === a && p.address !== this.rt.address) this.rt.link(p.address).ack(this.jobId, [o, a, r, h, l]);
  }

  onAcks(acks: AckItem[]): void {
    for (const [o, a, r, h, l] of acks) {
      const inst = this.local.get(o);
      if (inst && inst.attempt === a) inst.onAck(r, h, l);
    }
  }

  collect(rows: { key: string; value: unknown }[]): Promise<void> {
    return this.rt.collect(this.jobId, rows);
  }

  readonly wake = onNextTurn(() => this.pump());

  private pump(): void {
    const now = Date.now();
    let more = false;
    for (const inst of this.local.values()) {
      try {
        if (inst.step(now)) more = true;
      } catch (err) {
        this.rt.log.warn({ err, job_id: this.jobId, idx: inst.idx }, 'a stream instance failed a step');
      }
    }
    if (more) this.wake();
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.logsSentAt >= LOG_FLUSH_MS) this.sendLogs();
    for (const inst of this.local.values()) {
      try {
        inst.tick(now);
      } catch (err) {
        this.rt.log.warn({ err, job_id: this.jobId, idx: inst.idx }, 'a stream instance failed a tick');
      }
    }
    this.wake();
  }

  componentOf(idx: number): { spec: ComponentSpec; index: number } {
    return this.components[idx]!;
  }
}

export interface StreamRuntimeOptions {
  address: string;
  /** Instances (tasks) this worker runs at once: --max-tasks. */
  maxTasks: number;
  /** Where the job's user functions run. */
  executors: StreamExecutors;
  /** What file spouts and sinks may read and write, and http sinks reach. */
  rights?: TaskRights;
  tokens: TokenSource;
  client: HttpClient;
  /** Links to other workers speak wss with it. */
  tls?: NodeTls | undefined;
  log: Logger;
}

/**
 * Everything streaming on one worker: the instances the master placed here (grouped by
 * job), the links to other workers, ingestion for http sources, and per-instance figures.
 */
export class StreamRuntime {
  readonly rights: TaskRights | undefined;
  private readonly jobs = new Map<string, JobRuntime>();
  private readonly links = new Map<string, OutLink>();
  private readonly seen = new Map<string, { at: number; in: number; out: number }>();
  /**
   * Tuples from other workers for instances that have not started here yet (their
   * assignment is still on its way from the master): held, with their link credit, until the
   * instance starts or PARK_MS passes (then dropped: the sources replay them).
   */
  private parked: { job: string; to: number; tuple: Tuple; release: () => void; at: number }[] = [];
  private readonly parkTimer = setInterval(() => this.unpark(), 1000).unref();
  /** `job:idx` of the instances waiting here for their job's module to load. */
  private readonly starting = new Map<string, number>();
  readonly address: string;
  readonly log: Logger;
  readonly executors: StreamExecutors;

  constructor(private readonly o: StreamRuntimeOptions) {
    this.address = o.address;
    this.executors = o.executors;
    this.rights = o.rights;
    this.log = o.log;
  }

  /** Runs one instance until the master stops it (`signal`); never resolves on its own. */
  async run(spec: StreamTaskSpec, signal: AbortSignal): Promise<never> {
    let job = this.jobs.get(spec.job_id);
    if (!job) {
      job = new JobRuntime(spec.job_id, spec.config, this);
      this.jobs.set(spec.job_id, job);
    }
    // Instances arriving together start once the module is in (the first one loads it).
    const key = `${spec.job_id}:${spec.idx}`;
    this.starting.set(key, (this.starting.get(key) ?? 0) + 1);
    try {
      await job.load();
    } catch (err) {
      if (job.empty) {
        job.close();
        this.jobs.delete(spec.job_id);
      }
      throw err;
    } finally {
      // Two attempts of one instance may load at once (one stopping, one starting).
      const n = this.starting.get(key)! - 1;
      if (n === 0) this.starting.delete(key);
      else this.starting.set(key, n);
    }
    job.setPlacement(spec.placement.filter((p) => p.idx !== spec.idx));
    job.start(spec.idx, spec.attempt);
    this.unpark();
    this.log.info({ job_id: spec.job_id, idx: spec.idx, attempt: spec.attempt }, 'stream instance started');
    const j = job;
    return new Promise((_resolve, reject) => {
      const end = (err: Error) => {
        signal.removeEventListener('abort', stop);
        j.stopInstance(spec.idx);
        if (j.empty) {
          j.close();
          if (this.jobs.get(spec.job_id) === j) this.jobs.delete(spec.job_id);
        }
        reject(err);
      };
      const stop = () => end(signal.reason instanceof Error ? signal.reason : new Error('task cancelled'));
      if (signal.aborted) stop();
      else {
        signal.addEventListener('abort', stop, { once: true });
        j.onFailure(spec.idx, end);
      }
    });
  }

  /** Where every instance of a job runs now (the master tells us whenever it changes). */
  placement(jobId: string, instances: readonly PlacedInstance[]): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    // Our own instances are where they are; the master's view may lag by a message.
    job.setPlacement([
      ...instances.filter((p) => !job.local.has(p.idx)),
      ...[...job.local.values()].map((i) => ({ idx: i.idx, attempt: i.attempt, address: this.address })),
    ]);
    // Links to workers no instance runs on any more only hold tuples nobody will take.
    const used = new Set([...this.jobs.values()].flatMap((j) => j.addresses()));
    for (const [address, link] of this.links) {
      if (!used.has(address)) {
        link.close();
        this.links.delete(address);
      }
    }
  }

  link(address: string): OutLink {
    let l = this.links.get(address);
    if (!l) {
      l = new OutLink(address, this.o.tokens, this.o.tls, this.log, () => {
        for (const j of this.jobs.values()) j.wake();
      });
      this.links.set(address, l);
    }
    return l;
  }

  /**
   * A link another worker opened to this one: `version`, the link protocol it asked for;
   * `authority`, how its token is renewed (absent on an open cluster).
   */
  accept(socket: WebSocket, version: number, authority?: TokenAuthority): void {
    new InLink(
      socket,
      version,
      this.o.maxTasks,
      (job, to, tuple, release) => {
        const j = this.jobs.get(job);
        if (j?.accepts(to)) j.deliver(to, tuple, release);
        else this.parked.push({ job, to, tuple, release, at: Date.now() });
      },
      (job, acks) => this.jobs.get(job)?.onAcks(acks),
      authority,
      this.log,
    );
  }

  /** Hands on parked tuples whose instance runs now; drops those parked too long. */
  private unpark(): void {
    if (this.parked.length === 0) return;
    const now = Date.now();
    const still: typeof this.parked = [];
    for (const p of this.parked) {
      const j = this.jobs.get(p.job);
      if (j?.accepts(p.to)) j.deliver(p.to, p.tuple, p.release);
      else if (now - p.at >= PARK_MS) p.release();
      else still.push(p);
    }
    this.parked = still;
  }

  /** Events for an http source instance; resolves once they are all fully processed. */
  async ingest(jobId: string, idx: number, events: Record<string, unknown>[]): Promise<void> {
    const job = this.jobs.get(jobId);
    const inst = job?.local.get(idx);
    if (!job || !(inst instanceof HttpSpout)) {
      if (this.starting.has(`${jobId}:${idx}`)) {
        throw new WeirError(
          'unavailable',
          `instance ${idx} of job '${jobId}' is starting on ${this.address}: the job's module is still loading (its top-level code runs first)`,
        );
      }
      throw new WeirError('not_found', `instance ${idx} of job '${jobId}' is not an http source on this worker`);
    }
    const deadline = Date.now() + INGEST_WAIT_MS;
    // Saturated: wait for room (an empty source always takes a request, however large).
    while (inst.pending + inst.queued > 0 && inst.pending + inst.queued + events.length > job.maxPending) {
      if (Date.now() >= deadline) throw new WeirError('unavailable', 'the topology is saturated; retry later', 429);
      await new Promise((r) => setTimeout(r, 20));
    }
    // A stopped instance refuses (and the master sends the events to where it runs now).
    return inst.ingest(events);
  }

  /** Lines streaming instances printed, to the masters (best effort: see JobRuntime.sendLogs). */
  sendLogs(jobId: string, instances: { idx: number; attempt: number; lines: LogLine[] }[]): void {
    this.o.client
      .post(`/api/jobs/${jobId}/logs`, { instances }, { timeoutMs: 10_000 })
      .catch((err: Error) =>
        this.log.debug({ err: err.message, job_id: jobId }, 'could not send stream instance logs'),
      );
  }

  collect(jobId: string, rows: { key: string; value: unknown }[]): Promise<void> {
    return this.o.client.post(`/api/jobs/${jobId}/rows`, { rows }, { timeoutMs: 10_000 }).then(() => undefined);
  }

  /** Per-instance figures; rates are since the previous call. */
  metrics(): InstanceMetrics[] {
    const now = Date.now();
    const out: InstanceMetrics[] = [];
    for (const [jobId, job] of this.jobs) {
      for (const inst of job.local.values()) {
        const key = `${jobId}:${inst.idx}:${inst.attempt}`;
        const last = this.seen.get(key);
        const dt = last ? Math.max(1, now - last.at) / 1000 : 1;
        const { spec, index } = job.componentOf(inst.idx);
        const queue = inst.inbox.length;
        out.push({
          job_id: jobId,
          idx: inst.idx,
          component: spec.id,
          index,
          events_in: inst.stats.in,
          events_out: inst.stats.out,
          in_per_s: last ? Math.round((inst.stats.in - last.in) / dt) : 0,
          out_per_s: last ? Math.round((inst.stats.out - last.out) / dt) : 0,
          queue,
          queue_fill: queue / INBOX_CAPACITY,
          backpressure: inst.backpressured,
          pending: inst.pending,
          errors: inst.stats.errors,
          late: inst.stats.late,
        });
        this.seen.set(key, { at: now, in: inst.stats.in, out: inst.stats.out });
      }
    }
    if (this.seen.size > 10_000) this.seen.clear();
    return out;
  }

  get instances(): number {
    let n = 0;
    for (const j of this.jobs.values()) n += j.local.size;
    return n;
  }

  close(): void {
    clearInterval(this.parkTimer);
    for (const p of this.parked) p.release();
    this.parked = [];
    for (const j of this.jobs.values()) j.close();
    this.jobs.clear();
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }
}

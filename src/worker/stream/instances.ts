import { open, appendFile, type FileHandle } from 'node:fs/promises';
import { Acker, TupleIdSource, type TupleId } from '../../stream/acker.js';
import { EventGenerator } from '../../stream/generator.js';
import { EdgeRouter } from '../../stream/grouping.js';
import type { BoltSpec, ComponentSpec, SpoutSpec } from '../../stream/topology.js';
import { WindowOperator } from '../../stream/window.js';
import type { Tuple } from './frames.js';

/** Tuples an instance buffers before its producers pause. */
export const INBOX_CAPACITY = 8192;
/** Tuples a bolt takes from its inbox per step, so one busy instance cannot starve the others. */
const STEP = 1024;

/** What an instance needs from the job runtime around it. */
export interface InstanceHost {
  readonly jobId: string;
  readonly ackTimeoutMs: number;
  readonly maxPending: number;
  /** Sends `event` along every edge leaving `from`; returns the XOR of the new tuples' ids. */
  emit(from: Instance, event: Record<string, unknown>, o: number, a: number, r: number): TupleId;
  /** Whether every instance `from` sends to has room. */
  canEmit(from: Instance): boolean;
  /** XORs `h`,`l` into root `r` of instance `o` (incarnation `a`), wherever it runs. */
  ack(o: number, a: number, r: number, h: number, l: number): void;
  /** A user function of the job's module. */
  fn(name: string): (event: Record<string, unknown>) => unknown;
  /** Sends a collect sink's rows to the masters; resolves once they are committed. */
  collect(rows: { key: string; value: unknown }[]): Promise<void>;
  wake(): void;
}

export interface InstanceStats {
  in: number;
  out: number;
  errors: number;
  blocked: number;
  late: number;
}

interface Inbound {
  tuple: Tuple;
  release?: () => void;
}

/** One instance of a spout or bolt on this worker: an inbox, a step function, a tick. */
export abstract class Instance {
  readonly inbox: Inbound[] = [];
  readonly stats: InstanceStats = { in: 0, out: 0, errors: 0, blocked: 0, late: 0 };
  backpressured = false;
  routers: { router: EdgeRouter; base: number }[] = [];
  /** Every instance this one sends to (global indexes), for backpressure checks. */
  targets: number[] = [];
  protected readonly acker = new Acker<unknown>();
  private nextRoot = 1;

  constructor(
    readonly idx: number,
    readonly attempt: number,
    readonly spec: ComponentSpec,
    readonly index: number,
    protected readonly host: InstanceHost,
  ) {}

  /** Does some work; returns whether it has more to do right away. */
  abstract step(now: number): boolean;

  /** Timers: window firing, replays of expired roots, sink flushes. */
  tick(now: number): void {
    for (const root of this.acker.expire(now, this.host.ackTimeoutMs)) this.expired(root.spout, now);
  }

  /** A root this instance owns was fully processed. */
  protected completed(_pending: unknown): void {}

  /** A root this instance owns timed out: replay it. */
  protected expired(_pending: unknown, _now: number): void {}

  get pending(): number {
    return this.acker.pending;
  }

  onAck(r: number, h: number, l: number): void {
    const done = this.acker.update(String(r), { hi: h, lo: l });
    if (done) this.completed(done.spout);
  }

  /** Emits a new root owned by this instance; `pending` comes back on completion or expiry. */
  protected emitRoot(event: Record<string, unknown>, pending: unknown, now: number): void {
    const r = this.nextRoot++;
    const x = this.host.emit(this, event, this.idx, this.attempt, r);
    this.stats.out++;
    if ((x.hi | x.lo) === 0) return this.completed(pending); // nobody consumes it
    const done = this.acker.track(String(r), pending, now, x);
    if (done) this.completed(done.spout);
  }

  /** Acks an input tuple, with the XOR of the children emitted on it (Storm's rule: one update). */
  protected ackInput(t: Tuple, children: TupleId = ZERO): void {
    this.host.ack(t.o, t.a, t.r, (t.h ^ children.hi) >>> 0, (t.l ^ children.lo) >>> 0);
  }

  /** Stops: whatever waits on this instance is told so. */
  stop(): void {}
}

const ZERO: TupleId = { hi: 0, lo: 0 };

// ---------------------------------------------------------------- spouts

abstract class Spout extends Instance {
  /** Up to `max` new source events, each with what comes back when its root completes or expires. */
  protected abstract take(now: number, max: number): { event: Record<string, unknown>; pending: unknown }[];

  protected room(): number {
    return Math.min(STEP, this.host.maxPending - this.acker.pending);
  }

  step(now: number): boolean {
    const room = this.room();
    if (room <= 0) return false;
    if (!this.host.canEmit(this)) {
      this.stats.blocked++;
      this.backpressured = true;
      return false;
    }
    this.backpressured = false;
    const items = this.take(now, room);
    for (const { event, pending } of items) this.emitRoot(event, pending, now);
    return items.length === room;
  }

  protected override expired(pending: unknown, now: number): void {
    // A new root for the same event: stray acks for the old one cannot complete it.
    this.emitRoot(pending as Record<string, unknown>, pending, now);
  }
}

export class GeneratorSpout extends Spout {
  private readonly gen: EventGenerator;

  constructor(idx: number, attempt: number, spec: SpoutSpec, index: number, host: InstanceHost, now: number) {
    super(idx, attempt, spec, index, host);
    this.gen = new EventGenerator(spec as Extract<SpoutSpec, { type: 'generator' }>, index, now);
  }

  protected take(now: number, max: number) {
    return this.gen.take(now, max).map((e) => ({ event: e as unknown as Record<string, unknown>, pending: e }));
  }

  override step(now: number): boolean {
    return super.step(now) && !this.gen.done;
  }
}

interface Ingested {
  remaining: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Events POSTed to the job: each request is answered once all its events are fully processed. */
export class HttpSpout extends Spout {
  private readonly queue: { event: Record<string, unknown>; batch: Ingested }[] = [];

  get queued(): number {
    return this.queue.length;
  }

  ingest(events: Record<string, unknown>[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const batch = { remaining: events.length, resolve, reject };
      for (const event of events) this.queue.push({ event, batch });
      this.host.wake();
    });
  }

  protected take(_now: number, max: number) {
    return this.queue.splice(0, max).map((q) => ({ event: q.event, pending: q }));
  }

  override step(now: number): boolean {
    if (this.queue.length === 0) return false;
    super.step(now);
    return this.queue.length > 0;
  }

  protected override completed(pending: unknown): void {
    const q = pending as { batch: Ingested };
    if (--q.batch.remaining === 0) q.batch.resolve();
  }

  protected override expired(pending: unknown, now: number): void {
    const q = pending as { event: Record<string, unknown>; batch: Ingested };
    this.emitRoot(q.event, q, now);
  }

  override stop(): void {
    const err = new Error('the stream instance stopped; send the events again');
    for (const q of this.queue) q.batch.reject(err);
    this.queue.length = 0;
  }
}

/** Lines of a file from an offset: `{line}` events, or the parsed objects of JSON lines. */
export class FileSpout extends Spout {
  private file: FileHandle | undefined;
  private position: number;
  private rest = '';
  private eof = false;
  private reading = false;
  private buffered: Record<string, unknown>[] = [];

  constructor(idx: number, attempt: number, spec: SpoutSpec, index: number, host: InstanceHost) {
    super(idx, attempt, spec, index, host);
    this.position = (spec as Extract<SpoutSpec, { type: 'file' }>).offset;
  }

  private get fileSpec() {
    return this.spec as Extract<SpoutSpec, { type: 'file' }>;
  }

  private async fill(): Promise<void> {
    if (this.reading || this.eof) return;
    this.reading = true;
    try {
      this.file ??= await open(this.fileSpec.path, 'r');
      const buf = Buffer.allocUnsafe(256 * 1024);
      const { bytesRead } = await this.file.read(buf, 0, buf.length, this.position);
      this.position += bytesRead;
      let text = this.rest + buf.subarray(0, bytesRead).toString('utf8');
      if (bytesRead === 0) {
        this.eof = true;
        text += '\n';
      }
      const lines = text.split('\n');
      this.rest = lines.pop() ?? '';
      for (const raw of lines) {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        if (line === '') continue;
        if (this.fileSpec.format === 'lines') this.buffered.push({ line });
        else {
          try {
            this.buffered.push(JSON.parse(line) as Record<string, unknown>);
          } catch {
            this.stats.errors++;
          }
        }
      }
    } catch {
      this.stats.errors++;
      this.eof = true;
    } finally {
      this.reading = false;
      this.host.wake();
    }
  }

  protected take(_now: number, max: number) {
    if (this.buffered.length < max) void this.fill();
    return this.buffered.splice(0, max).map((event) => ({ event, pending: event }));
  }

  override step(now: number): boolean {
    if (this.buffered.length === 0) {
      void this.fill();
      return false;
    }
    return super.step(now);
  }

  override stop(): void {
    void this.file?.close();
  }
}

// ---------------------------------------------------------------- bolts

abstract class Bolt extends Instance {
  protected abstract process(t: Tuple, now: number): void;

  step(now: number): boolean {
    if (this.inbox.length === 0) return false;
    if (!this.host.canEmit(this)) {
      this.stats.blocked++;
      this.backpressured = true;
      return false;
    }
    this.backpressured = false;
    const n = Math.min(STEP, this.inbox.length);
    const batch = this.inbox.splice(0, n);
    for (const { tuple, release } of batch) {
      release?.();
      this.stats.in++;
      try {
        this.process(tuple, now);
      } catch {
        // A function that throws on an event drops that event (counted), rather than
        // replaying it forever.
        this.stats.errors++;
        this.ackInput(tuple);
      }
    }
    return this.inbox.length > 0;
  }
}

/** map, filter and flat_map with the module's functions. */
export class FnBolt extends Bolt {
  private readonly f: (event: Record<string, unknown>) => unknown;

  constructor(idx: number, attempt: number, spec: BoltSpec, index: number, host: InstanceHost) {
    super(idx, attempt, spec, index, host);
    this.f = host.fn((spec as { fn: string }).fn);
  }

  protected process(t: Tuple): void {
    const out = this.f(t.v);
    let hi = 0;
    let lo = 0;
    const send = (e: unknown) => {
      if (e === null || typeof e !== 'object') return;
      const x = this.host.emit(this, e as Record<string, unknown>, t.o, t.a, t.r);
      hi ^= x.hi;
      lo ^= x.lo;
      this.stats.out++;
    };
    switch ((this.spec as BoltSpec).op) {
      case 'map':
        send(out);
        break;
      case 'filter':
        if (out) send(t.v);
        break;
      default:
        if (out && typeof (out as Iterable<unknown>)[Symbol.iterator] === 'function') {
          for (const e of out as Iterable<unknown>) send(e);
        }
    }
    this.ackInput(t, { hi: hi >>> 0, lo: lo >>> 0 });
  }
}

interface HeldAck {
  o: number;
  a: number;
  r: number;
  h: number;
  l: number;
}

/**
 * A keyed window. Its inputs are acknowledged only once the window holding them fired and
 * its result was fully processed downstream (the result is a root this instance owns), so
 * a lost window is rebuilt by the sources' replays.
 */
export class WindowBolt extends Bolt {
  private readonly win: WindowOperator<HeldAck>;

  constructor(idx: number, attempt: number, spec: BoltSpec, index: number, host: InstanceHost) {
    super(idx, attempt, spec, index, host);
    this.win = new WindowOperator<HeldAck>(spec as Extract<BoltSpec, { op: 'window' }>);
  }

  get held(): number {
    return this.win.heldEvents;
  }

  protected process(t: Tuple, now: number): void {
    const outcome = this.win.add(t.v, now, { o: t.o, a: t.a, r: t.r, h: t.h, l: t.l });
    if (outcome !== 'held') {
      this.stats.late++;
      this.ackInput(t);
    }
  }

  override tick(now: number): void {
    super.tick(now);
    for (const f of this.win.advance(now)) {
      this.emitRoot(f.result as unknown as Record<string, unknown>, f, now);
    }
  }

  protected override completed(pending: unknown): void {
    for (const a of (pending as { acks: HeldAck[] }).acks) this.host.ack(a.o, a.a, a.r, a.h, a.l);
  }

  protected override expired(pending: unknown, now: number): void {
    const f = pending as { result: Record<string, unknown> };
    this.emitRoot(f.result, pending, now);
  }
}

/** Sinks buffer what they receive and acknowledge it once it is delivered. */
abstract class Sink extends Bolt {
  protected buffer: Tuple[] = [];
  private flushing = false;
  private failures = 0;
  private nextTry = 0;

  protected process(t: Tuple): void {
    this.buffer.push(t);
  }

  override step(now: number): boolean {
    // A sink emits nothing: its backpressure is its own delivery.
    if (this.buffer.length >= INBOX_CAPACITY) return false;
    const more = super.step(now);
    if (this.buffer.length >= 1000) this.flush(now);
    return more;
  }

  protected abstract deliver(tuples: Tuple[]): Promise<void>;

  override tick(now: number): void {
    super.tick(now);
    this.flush(now);
  }

  private flush(now: number): void {
    if (this.flushing || this.buffer.length === 0 || now < this.nextTry) return;
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = true;
    this.deliver(batch)
      .then(
        () => {
          this.failures = 0;
          for (const t of batch) this.ackInput(t);
        },
        () => {
          // Kept and tried again, backing off; the sources replay if it takes too long.
          this.failures++;
          this.nextTry = Date.now() + Math.min(5000, 100 * 2 ** this.failures);
          this.buffer = batch.concat(this.buffer);
          this.stats.errors++;
        },
      )
      .finally(() => {
        this.flushing = false;
        this.host.wake();
      });
  }
}

/** A collect row's key: a window's key and bounds (a re-fired window replaces its row), or the tuple. */
function rowKey(t: Tuple): string {
  const v = t.v;
  if ('window_start' in v && 'window_end' in v && 'key' in v) {
    return JSON.stringify([v.key, v.window_start, v.window_end]);
  }
  return `${t.o}.${t.a}.${t.r}.${t.h}.${t.l}`;
}

export class CollectSink extends Sink {
  protected deliver(tuples: Tuple[]): Promise<void> {
    return this.host.collect(tuples.map((t) => ({ key: rowKey(t), value: t.v })));
  }
}

export class FileSink extends Sink {
  protected deliver(tuples: Tuple[]): Promise<void> {
    const spec = this.spec as Extract<BoltSpec, { op: 'file' }>;
    const path = spec.parallelism > 1 ? `${spec.path}-${this.index}` : spec.path;
    return appendFile(path, tuples.map((t) => `${JSON.stringify(t.v)}\n`).join(''));
  }
}

export class HttpSink extends Sink {
  protected async deliver(tuples: Tuple[]): Promise<void> {
    const spec = this.spec as Extract<BoltSpec, { op: 'http' }>;
    const res = await fetch(spec.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(tuples.map((t) => t.v)),
      signal: AbortSignal.timeout(10_000),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`${spec.url} answered ${res.status}`);
  }
}

export const tupleIds = new TupleIdSource(Math.random);

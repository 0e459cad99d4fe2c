import { open, appendFile, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isUnder, netAllowed, PERMISSION_DENIED, type TaskRights } from '../executor-rules.js';
import { Acker, TupleIdSource, type TupleId } from '../../stream/acker.js';
import { EventGenerator } from '../../stream/generator.js';
import { EdgeRouter } from '../../stream/grouping.js';
import type { BoltSpec, ComponentSpec, SpoutSpec } from '../../protocol/stream-job.js';
import { WindowOperator } from '../../stream/window.js';
import { TUPLE_EVENTS, type Tuple } from '../../protocol/stream-link.js';
import type { ApplyOutcome, FnOp } from '../../stream/apply-fn.js';
import { jsonNestsDeeper, tooDeep } from '../../protocol/nesting.js';

/** Tuples (batches) an instance buffers before its producers pause. */
export const INBOX_CAPACITY = 64;
/** Events in one batch, at most: a spout's batch (one root), and every tuple on an edge. */
export const BATCH = TUPLE_EVENTS;
/** Tuples a bolt takes from its inbox per step, so one busy instance cannot starve the others. */
const STEP_TUPLES = 4;

/** What an instance needs from the job runtime around it. */
export interface InstanceHost {
  readonly jobId: string;
  readonly ackTimeoutMs: number;
  readonly maxPending: number;
  /** The worker's --allow-read/--allow-write/--allow-net; undefined: no bounds. */
  readonly rights?: TaskRights | undefined;
  /** Sends `events` along every edge leaving `from`; returns the XOR of the new tuples' ids. */
  emit(from: Instance, events: Record<string, unknown>[], o: number, a: number, r: number): TupleId;
  /** Whether every instance `from` sends to has room. */
  canEmit(from: Instance): boolean;
  /** XORs `h`,`l` into root `r` of instance `o` (incarnation `a`), wherever it runs. */
  ack(o: number, a: number, r: number, h: number, l: number): void;
  /**
   * Applies the module's function `fn` to batches of events in an executor process; rejects
   * when the function cannot be run there at all (its process ended, its module does not
   * load, a refused path, a timeout).
   */
  apply(fn: string, op: FnOp, batches: Record<string, unknown>[][], from?: Instance): Promise<ApplyOutcome>;
  /** `inst` cannot go on: it stops, and its task fails with `err` (the master places it again). */
  fail(inst: Instance, err: Error): void;
  /** Sends a collect sink's rows to the masters; resolves once they are committed. */
  collect(rows: { key: string; value: unknown }[]): Promise<void>;
  wake(): void;
}

/** Events in and out, and what went wrong with some of them. */
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

/** A root this instance owns: what it gets back on completion or expiry, and its size. */
interface OwnedRoot {
  pending: unknown;
  events: number;
}

/** One instance of a spout or bolt on this worker: an inbox, a step function, a tick. */
export abstract class Instance {
  readonly inbox: Inbound[] = [];
  readonly stats: InstanceStats = { in: 0, out: 0, errors: 0, blocked: 0, late: 0 };
  backpressured = false;
  routers: { router: EdgeRouter; base: number }[] = [];
  /** Every instance this one sends to (global indexes), for backpressure checks. */
  targets: number[] = [];
  private readonly acker = new Acker<OwnedRoot>();
  private nextRoot = 1;
  private pendingEvents = 0;

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
    for (const { spout: root } of this.acker.expire(now, this.host.ackTimeoutMs)) {
      this.pendingEvents -= root.events;
      this.expired(root.pending, now);
    }
  }

  /** A root this instance owns was fully processed. */
  protected completed(_pending: unknown): void {}

  /** A root this instance owns timed out: replay it. */
  protected expired(_pending: unknown, _now: number): void {}

  /** Events of roots this instance owns that are not yet fully processed. */
  get pending(): number {
    return this.pendingEvents;
  }

  onAck(r: number, h: number, l: number): void {
    const done = this.acker.update(String(r), { hi: h, lo: l });
    if (done) this.finish(done.spout);
  }

  /** Emits `events` as a new root owned by this instance; `pending` comes back on completion or expiry. */
  protected emitRoot(events: Record<string, unknown>[], pending: unknown, now: number): void {
    const r = this.nextRoot++;
    const x = this.host.emit(this, events, this.idx, this.attempt, r);
    this.stats.out += events.length;
    if ((x.hi | x.lo) === 0) return this.completed(pending); // nobody consumes it
    this.pendingEvents += events.length;
    const done = this.acker.track(String(r), { pending, events: events.length }, now, x);
    if (done) this.finish(done.spout);
  }

  private finish(root: OwnedRoot): void {
    this.pendingEvents -= root.events;
    this.completed(root.pending);
  }

  /** Acks an input tuple, with the XOR of the children emitted on it (Storm's rule: one update). */
  protected ackInput(t: Tuple, children: TupleId = ZERO): void {
    this.host.ack(t.o, t.a, t.r, (t.h ^ children.hi) >>> 0, (t.l ^ children.lo) >>> 0);
  }

  /** Stops: whatever waits on this instance is told so. */
  stop(): void {}
}

const ZERO: TupleId = { hi: 0, lo: 0 };

/** A queue taken from the front in batches without shifting the rest each time. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  take(max: number): T[] {
    const out = this.items.slice(this.head, this.head + max);
    this.head += out.length;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  clear(): T[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}

// ---------------------------------------------------------------- spouts

/** A batch of source events, and what its root gets back on completion or expiry. */
interface SourceBatch {
  events: Record<string, unknown>[];
  pending: unknown;
}

abstract class Spout extends Instance {
  /**
   * Expired roots waiting to go again, first in the next step that may emit: sent at once,
   * replays went out past a full inbox or link — a stall's replays every ack timeout, piling
   * up in buffers that bound everything else.
   */
  private readonly replays: SourceBatch[] = [];
  /** Their events, still counted as pending: a spout waiting to replay takes no new events for them. */
  private replaying = 0;

  /** Up to `max` new source events as one batch. */
  protected abstract take(now: number, max: number): SourceBatch;

  /** The events of a batch whose root expired, to emit again. */
  protected abstract replay(pending: unknown): Record<string, unknown>[];

  override get pending(): number {
    return super.pending + this.replaying;
  }

  /** Whether an expired batch waits to go again: a step is due even with nothing new to take. */
  protected get replayDue(): boolean {
    return this.replays.length > 0;
  }

  step(now: number): boolean {
    const room = Math.min(BATCH, this.host.maxPending - this.pending);
    if (room <= 0 && !this.replayDue) return false;
    if (!this.host.canEmit(this)) {
      this.stats.blocked++;
      this.backpressured = true;
      return false;
    }
    this.backpressured = false;
    const again = this.replays.shift();
    if (again) {
      this.replaying -= again.events.length;
      // A new root for the same events: stray acks for the old one cannot complete it.
      this.emitRoot(again.events, again.pending, now);
      return true;
    }
    const batch = this.take(now, room);
    if (batch.events.length > 0) this.emitRoot(batch.events, batch.pending, now);
    return batch.events.length === room;
  }

  protected override expired(pending: unknown): void {
    const events = this.replay(pending);
    this.replays.push({ events, pending });
    this.replaying += events.length;
  }
}

export class GeneratorSpout extends Spout {
  private readonly gen: EventGenerator;

  constructor(idx: number, attempt: number, spec: SpoutSpec, index: number, host: InstanceHost, now: number) {
    super(idx, attempt, spec, index, host);
    this.gen = new EventGenerator(spec as Extract<SpoutSpec, { type: 'generator' }>, index, now);
  }

  protected take(now: number, max: number): SourceBatch {
    const events = this.gen.take(now, max);
    return {
      events: events as unknown as Record<string, unknown>[],
      pending: events.length ? { seq: events[0]!.seq, n: events.length, ts: events[0]!.ts } : undefined,
    };
  }

  protected replay(pending: unknown): Record<string, unknown>[] {
    return this.gen.replay(pending as { seq: number; n: number; ts: number }) as unknown as Record<string, unknown>[];
  }

  override step(now: number): boolean {
    return super.step(now) && (!this.gen.done || this.replayDue);
  }
}

interface Ingested {
  remaining: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

type Queued = { event: Record<string, unknown>; request: Ingested };

/** Events POSTed to the job: each request is answered once all its events are fully processed. */
export class HttpSpout extends Spout {
  private readonly queue = new Fifo<Queued>();
  /** Requests not answered yet: each is settled exactly once. */
  private readonly open = new Set<Ingested>();
  private stopped = false;

  get queued(): number {
    return this.queue.length;
  }

  ingest(events: Record<string, unknown>[]): Promise<void> {
    if (this.stopped) return Promise.reject(stoppedError());
    if (events.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const request: Ingested = { remaining: events.length, resolve, reject };
      this.open.add(request);
      for (const event of events) this.queue.push({ event, request });
      this.host.wake();
    });
  }

  protected take(_now: number, max: number): SourceBatch {
    const items = this.queue.take(max);
    return { events: items.map((q) => q.event), pending: items };
  }

  protected replay(pending: unknown): Record<string, unknown>[] {
    return (pending as Queued[]).map((q) => q.event);
  }

  override step(now: number): boolean {
    if (this.queue.length === 0 && !this.replayDue) return false;
    // More right away only if it could emit: blocked, it waits for a wake-up.
    return super.step(now) && (this.queue.length > 0 || this.replayDue);
  }

  protected override completed(pending: unknown): void {
    for (const q of pending as Queued[]) {
      if (--q.request.remaining === 0 && this.open.delete(q.request)) q.request.resolve();
    }
  }

  override stop(): void {
    this.stopped = true;
    // In the queue or in flight: the sender must send them again (to the instance placed anew).
    const err = stoppedError();
    for (const r of this.open) r.reject(err);
    this.open.clear();
    this.queue.clear();
  }
}

/** File spouts and sinks run in the worker itself: the roots are checked here, by path. */
function checkPath(path: string, roots: readonly string[] | undefined, flag: string): void {
  if (roots && !roots.some((r) => isUnder(resolve(path), r))) {
    throw new Error(`${PERMISSION_DENIED}: ${path} is outside ${flag}`);
  }
}

const stoppedError = () => new Error('the stream instance stopped; send the events again');

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
      checkPath(this.fileSpec.path, this.host.rights?.read, '--allow-read');
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
            // A line nested deeper than an event may be counts as a bad one (no frame would carry it).
            if (jsonNestsDeeper(line)) throw new Error(tooDeep('the line'));
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

  protected take(_now: number, max: number): SourceBatch {
    if (this.buffered.length < max) void this.fill();
    const events = this.buffered.splice(0, max);
    return { events, pending: events };
  }

  protected replay(pending: unknown): Record<string, unknown>[] {
    return pending as Record<string, unknown>[];
  }

  override step(now: number): boolean {
    if (this.buffered.length === 0 && !this.replayDue) {
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
  /** Processes one tuple and acks it; should not throw (a throw drops the tuple, counted). */
  protected abstract process(t: Tuple, now: number): void;

  step(now: number): boolean {
    if (this.inbox.length === 0) return false;
    if (!this.host.canEmit(this)) {
      this.stats.blocked++;
      this.backpressured = true;
      return false;
    }
    this.backpressured = false;
    const taken = this.inbox.splice(0, STEP_TUPLES);
    // Out of the inbox: their buffer space (link credits) is free, whatever happens next.
    for (const { release } of taken) release?.();
    for (const { tuple } of taken) {
      this.stats.in += tuple.e.length;
      try {
        this.process(tuple, now);
      } catch {
        this.stats.errors++;
        this.ackInput(tuple);
      }
    }
    return this.inbox.length > 0;
  }
}

/** Events a map, filter or flat_map bolt sends to its executor in one message, at most. */
export const APPLY_EVENTS = 4 * BATCH;

/**
 * map, filter and flat_map with the module's functions, which run in an executor process
 * (see stream-apply.ts). One message of input tuples at a time is out there: meanwhile the
 * bolt takes nothing more (its inbox fills and its producers pause), and the tuples are
 * acked only once their outputs are emitted. When the function cannot run at all (its
 * process died, a refused path) the instance fails and those tuples are never acked: their
 * sources replay them.
 */
export class FnBolt extends Bolt {
  private readonly fn: string;
  private readonly op: FnOp;
  /** A message is out at the executor. */
  private busy = false;
  private stopped = false;

  constructor(idx: number, attempt: number, spec: BoltSpec, index: number, host: InstanceHost) {
    super(idx, attempt, spec, index, host);
    this.fn = (spec as { fn: string }).fn;
    this.op = (spec as { op: FnOp }).op;
  }

  override step(_now: number): boolean {
    if (this.busy || this.stopped || this.inbox.length === 0) return false;
    if (!this.host.canEmit(this)) {
      this.stats.blocked++;
      this.backpressured = true;
      return false;
    }
    this.backpressured = false;
    let n = 0;
    let events = 0;
    while (n < this.inbox.length && (n === 0 || events + this.inbox[n]!.tuple.e.length <= APPLY_EVENTS)) {
      events += this.inbox[n++]!.tuple.e.length;
    }
    const taken = this.inbox.splice(0, n);
    // Out of the inbox: their buffer space (link credits) is free, whatever happens next.
    for (const { release } of taken) release?.();
    const tuples = taken.map((t) => t.tuple);
    this.stats.in += events;
    this.busy = true;
    this.host
      .apply(
        this.fn,
        this.op,
        tuples.map((t) => t.e),
        this,
      )
      .then(
        (outcome) => {
          if (this.stopped) return;
          this.busy = false;
          this.emitOutcome(tuples, outcome);
          this.host.wake();
        },
        (err: unknown) => {
          if (this.stopped) return;
          this.host.fail(this, err instanceof Error ? err : new Error(String(err)));
        },
      )
      // Nothing here may become an unhandled rejection: that would end the worker.
      .catch((err: unknown) => {
        if (!this.stopped) this.host.fail(this, err instanceof Error ? err : new Error(String(err)));
      });
    return false;
  }

  /** Emits each tuple's outputs and acks it with them (Storm's rule: one update per input). */
  private emitOutcome(tuples: Tuple[], o: ApplyOutcome): void {
    // A function that throws on an event drops that event (counted), rather than
    // replaying its batch forever.
    this.stats.errors += o.errors;
    tuples.forEach((t, i) => {
      const out = o.op === 'filter' ? o.keep[i]!.map((j) => t.e[j]!) : o.out[i]!;
      let children = ZERO;
      try {
        if (out.length) children = this.host.emit(this, out, t.o, t.a, t.r);
        this.stats.out += out.length;
      } catch {
        // Events that cannot be routed (a fields grouping over a value with no JSON) are
        // dropped, counted; nothing of them left, so the input is acked on its own.
        this.stats.errors += out.length;
      }
      this.ackInput(t, children);
    });
  }

  protected process(): void {
    throw new Error('a function bolt sends its tuples to its executor (step), never one by one');
  }

  override stop(): void {
    this.stopped = true;
  }
}

/** An input batch a window holds: acked once every pane holding some of its events fired and its result was processed. */
interface HeldBatch {
  t: Tuple;
  refs: number;
}

/**
 * A keyed window. Its inputs are acknowledged only once the windows holding them fired and
 * their results were fully processed downstream (the results are a root this instance
 * owns), so a lost window is rebuilt by the sources' replays.
 */
export class WindowBolt extends Bolt {
  private readonly win: WindowOperator<HeldBatch>;

  constructor(idx: number, attempt: number, spec: BoltSpec, index: number, host: InstanceHost) {
    super(idx, attempt, spec, index, host);
    this.win = new WindowOperator<HeldBatch>(spec as Extract<BoltSpec, { op: 'window' }>);
  }

  protected process(t: Tuple, now: number): void {
    // One reference while the batch is being added, one per pane that holds it.
    const held: HeldBatch = { t, refs: 1 };
    for (const e of t.e) {
      try {
        const r = this.win.add(e, now, held);
        if (r.outcome === 'held') held.refs += r.newHolds;
        else this.stats.late++;
      } catch {
        this.stats.errors++; // a key with no JSON (a BigInt, a cycle): dropped, counted
      }
    }
    this.release(held);
  }

  private release(held: HeldBatch): void {
    if (--held.refs === 0) this.ackInput(held.t);
  }

  override tick(now: number): void {
    super.tick(now);
    const fired = this.win.advance(now);
    if (fired.length === 0) return;
    const results = fired.map((f) => f.result as unknown as Record<string, unknown>);
    this.emitRoot(results, { results, held: fired.flatMap((f) => f.acks) }, now);
  }

  protected override completed(pending: unknown): void {
    for (const h of (pending as { held: HeldBatch[] }).held) this.release(h);
  }

  protected override expired(pending: unknown, now: number): void {
    this.emitRoot((pending as { results: Record<string, unknown>[] }).results, pending, now);
  }
}

/** Events a sink buffers before it stops taking more; at most this many go in one delivery. */
const SINK_BUFFER = 16_384;
const MAX_DELIVERY = 8192;

/** A delivery the receiver refused for what it is (a 4xx): trying it again cannot help. */
class RefusedDelivery extends Error {}

/**
 * Sinks buffer what they receive and acknowledge it once it is delivered. A delivery starts
 * as soon as there is something to deliver and none is under way, so what arrives during
 * one goes out together in the next: batches grow with the load (up to MAX_DELIVERY events),
 * never wait for a timer. A failed delivery is tried again, backing off; a refused one is
 * dropped and counted, since sending it again would be refused again and hold up the rest.
 */
abstract class Sink extends Bolt {
  private buffer: Tuple[] = [];
  private buffered = 0;
  private flushing = false;
  private failures = 0;
  private nextTry = 0;

  protected process(t: Tuple): void {
    this.buffer.push(t);
    this.buffered += t.e.length;
  }

  override step(now: number): boolean {
    // A sink emits nothing: its backpressure is its own delivery.
    if (this.buffered >= SINK_BUFFER) return false;
    const more = super.step(now);
    this.flush(now);
    return more;
  }

  protected abstract deliver(tuples: Tuple[]): Promise<void>;

  /**
   * An event as JSON, or undefined — counted as an error and dropped — for one that has none
   * (a BigInt a peer's link frame carried, a cycle): written as it is, it would fail the
   * whole delivery again at every try and hold up the sink for good.
   */
  protected jsonOf(v: unknown): string | undefined {
    try {
      return JSON.stringify(v);
    } catch {
      this.stats.errors++;
      return undefined;
    }
  }

  /** The events of `tuples` that have JSON, as JSON. */
  protected jsonEvents(tuples: Tuple[]): string[] {
    const out: string[] = [];
    for (const t of tuples) {
      for (const v of t.e) {
        const json = this.jsonOf(v);
        if (json !== undefined) out.push(json);
      }
    }
    return out;
  }

  override tick(now: number): void {
    super.tick(now);
    this.flush(now);
  }

  private flush(now: number): void {
    if (this.flushing || this.buffer.length === 0 || now < this.nextTry) return;
    let n = 0;
    let events = 0;
    while (n < this.buffer.length && (n === 0 || events + this.buffer[n]!.e.length <= MAX_DELIVERY)) {
      events += this.buffer[n++]!.e.length;
    }
    const batch = this.buffer.splice(0, n);
    this.buffered -= events;
    this.flushing = true;
    const done = () => {
      this.failures = 0;
      for (const t of batch) this.ackInput(t);
    };
    // A delivery that throws before its first await must not leave the sink flushing for ever.
    new Promise<void>((resolve) => resolve(this.deliver(batch)))
      .then(done, (err: unknown) => {
        if (err instanceof RefusedDelivery) {
          this.stats.errors += events;
          return done();
        }
        // Kept and tried again, backing off; the sources replay if it takes too long.
        this.failures++;
        this.nextTry = Date.now() + Math.min(5000, 100 * 2 ** this.failures);
        this.buffer = batch.concat(this.buffer);
        this.buffered += events;
        this.stats.errors++;
      })
      .finally(() => {
        this.flushing = false;
        this.host.wake();
      });
  }
}

/**
 * A collect row's key: a window's key and bounds (a re-fired window replaces its row), or
 * the event's place in its tuple.
 */
function rowKey(t: Tuple, v: Record<string, unknown>, i: number): string {
  if ('window_start' in v && 'window_end' in v && 'key' in v) {
    return JSON.stringify([v.key, v.window_start, v.window_end]);
  }
  return `${t.o}.${t.a}.${t.r}.${t.h}.${t.l}.${i}`;
}

/** A collect POST stays well inside the masters' 16 MiB body limit. */
const MAX_COLLECT_BYTES = 8 * 1024 * 1024;

export class CollectSink extends Sink {
  protected async deliver(tuples: Tuple[]): Promise<void> {
    let chunk: { key: string; value: unknown }[] = [];
    let bytes = 0;
    for (const t of tuples) {
      for (let i = 0; i < t.e.length; i++) {
        const key = this.keyOf(t, i);
        if (key === undefined) continue;
        const row = { key, value: t.e[i] };
        const size = this.jsonOf(row)?.length;
        if (size === undefined) continue;
        if (size > MAX_COLLECT_BYTES) throw new RefusedDelivery('a row larger than a collect request may carry');
        if (bytes + size > MAX_COLLECT_BYTES) {
          await this.send(chunk);
          chunk = [];
          bytes = 0;
        }
        chunk.push(row);
        bytes += size;
      }
    }
    if (chunk.length) await this.send(chunk);
  }

  /** A row's key, or undefined (counted) for a window's whose key has no JSON. */
  private keyOf(t: Tuple, i: number): string | undefined {
    try {
      return rowKey(t, t.e[i]!, i);
    } catch {
      this.stats.errors++;
      return undefined;
    }
  }

  private async send(rows: { key: string; value: unknown }[]): Promise<void> {
    try {
      await this.host.collect(rows);
    } catch (err) {
      const status = (err as { status?: number }).status ?? 0;
      throw refusedOr(status, err);
    }
  }
}

/** A 4xx other than 408 and 429 says the request itself is wrong: never worth repeating. */
function refusedOr(status: number, err: unknown): unknown {
  return status >= 400 && status < 500 && status !== 408 && status !== 429
    ? new RefusedDelivery(`refused with ${status}: ${(err as Error).message}`)
    : err;
}

export class FileSink extends Sink {
  protected deliver(tuples: Tuple[]): Promise<void> {
    const spec = this.spec as Extract<BoltSpec, { op: 'file' }>;
    const path = spec.parallelism > 1 ? `${spec.path}-${this.index}` : spec.path;
    try {
      checkPath(path, this.host.rights?.write, '--allow-write');
    } catch (err) {
      return Promise.reject(new RefusedDelivery((err as Error).message));
    }
    const lines = this.jsonEvents(tuples);
    return lines.length === 0 ? Promise.resolve() : appendFile(path, `${lines.join('\n')}\n`);
  }
}

export class HttpSink extends Sink {
  protected async deliver(tuples: Tuple[]): Promise<void> {
    const spec = this.spec as Extract<BoltSpec, { op: 'http' }>;
    if (!netAllowed(spec.url, this.host.rights?.net)) {
      throw new RefusedDelivery(`${PERMISSION_DENIED}: ${spec.url} is outside --allow-net`);
    }
    const events = this.jsonEvents(tuples);
    if (events.length === 0) return;
    const res = await fetch(spec.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `[${events.join(',')}]`,
      signal: AbortSignal.timeout(10_000),
    });
    await res.body?.cancel();
    if (!res.ok) throw refusedOr(res.status, new Error(`${spec.url} answered ${res.status}`));
  }
}

export const tupleIds = new TupleIdSource(Math.random);

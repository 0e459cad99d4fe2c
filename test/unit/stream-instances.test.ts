// Stream instances against a host that records what they send and routes acks back: when
// batches are acknowledged, what sinks deliver, and how requests to an http source settle.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TupleId } from '../../src/stream/acker.js';
import type { BoltSpec, SpoutSpec } from '../../src/protocol/stream-job.js';
import type { Tuple } from '../../src/protocol/stream-link.js';
import { applyFn, type ApplyOutcome, type FnOp } from '../../src/stream/apply-fn.js';
import { waitFor } from '../helpers/wait.js';
import {
  CollectSink,
  FileSink,
  FnBolt,
  HttpSpout,
  WindowBolt,
  tupleIds,
  type Instance,
  type InstanceHost,
} from '../../src/worker/stream/instances.js';

/** One downstream consumer per emit; acks go to the instance that owns the root. */
class Host implements InstanceHost {
  jobId = 'job';
  ackTimeoutMs = 1000;
  maxPending = 100_000;
  sent: { from: number; tuple: Tuple }[] = [];
  acked: { o: number; r: number }[] = [];
  owners = new Map<number, Instance>();
  collected: number[] = [];
  collectResult: () => Promise<void> = () => Promise.resolve();
  f: (e: Record<string, unknown>) => unknown = (e) => e;

  emit(from: Instance, events: Record<string, unknown>[], o: number, a: number, r: number): TupleId {
    // A value with no JSON cannot be routed by fields: as the runtime does, nothing is sent.
    JSON.stringify(events);
    const id = tupleIds.next();
    this.sent.push({ from: from.idx, tuple: { e: events, o, a, r, h: id.hi, l: id.lo } });
    return id;
  }
  /** Whether every target has room (false: full inboxes or links downstream). */
  room = true;
  canEmit(): boolean {
    return this.room;
  }
  ack(o: number, a: number, r: number, h: number, l: number): void {
    this.acked.push({ o, r });
    this.owners.get(o)?.onAck(r, h, l);
  }
  /** Answers of apply messages held back (the executor is still at work) until resolved. */
  holdApplies = false;
  held: (() => void)[] = [];
  failed: { idx: number; err: Error }[] = [];
  applyError: Error | undefined;
  apply(_fn: string, op: FnOp, batches: Record<string, unknown>[][]): Promise<ApplyOutcome> {
    const answer = () =>
      this.applyError ? Promise.reject(this.applyError) : Promise.resolve(applyFn((e) => this.f(e), op, batches));
    if (!this.holdApplies) return answer();
    return new Promise((resolve, reject) => this.held.push(() => void answer().then(resolve, reject)));
  }
  fail(inst: Instance, err: Error): void {
    this.failed.push({ idx: inst.idx, err });
  }
  collect(rows: { key: string; value: unknown }[]): Promise<void> {
    this.collected.push(rows.length);
    return this.collectResult();
  }
  wake(): void {}

  /** Downstream finishes everything `from` sent so far. */
  finish(from: number): void {
    const done = this.sent.filter((s) => s.from === from);
    this.sent = this.sent.filter((s) => s.from !== from);
    for (const { tuple: t } of done) this.ack(t.o, t.a, t.r, t.h, t.l);
  }

  /** Roots of source instance `o` that were acked. */
  ackedRoots(o: number): number[] {
    return this.acked.filter((a) => a.o === o).map((a) => a.r);
  }
}

/** A tuple from source instance 0, root `r`. */
const input = (r: number, e: Record<string, unknown>[]): Tuple => ({ e, o: 0, a: 1, r, h: 0xabc + r, l: 0xdef });

const eventTimeWindow = (type: 'tumbling' | 'sliding', size: number, slide = size): BoltSpec =>
  ({
    id: 'w',
    op: 'window',
    aggregate: 'count',
    key: 'k',
    window: { type, size_ms: size, slide_ms: slide, time_field: 't', allowed_lateness_ms: 0 },
    parallelism: 1,
    inputs: [{ from: 's', grouping: 'global' }],
  }) as BoltSpec;

function windowBolt(spec: BoltSpec, host: Host): WindowBolt {
  const w = new WindowBolt(5, 1, spec, 0, host);
  host.owners.set(5, w);
  return w;
}

const feed = (i: Instance, t: Tuple, now = 0) => {
  i.inbox.push({ tuple: t });
  i.step(now);
};

describe('a window bolt acknowledges a batch', () => {
  it('only once every window holding its events fired and each result was processed', () => {
    const host = new Host();
    const w = windowBolt(eventTimeWindow('tumbling', 100), host);
    feed(
      w,
      input(1, [
        { k: 'a', t: 10 },
        { k: 'b', t: 150 },
      ]),
    );
    feed(w, input(2, [{ k: 'a', t: 120 }])); // the watermark (120) closes [0, 100)
    w.tick(0);
    host.finish(5); // the result of [0, 100) is processed
    expect(host.ackedRoots(0)).toEqual([]); // root 1 still has an event in [100, 200)
    feed(w, input(3, [{ k: 'c', t: 250 }])); // closes [100, 200)
    w.tick(0);
    expect(host.ackedRoots(0)).toEqual([]); // fired, but its result is not processed yet
    host.finish(5);
    expect(host.ackedRoots(0).sort()).toEqual([1, 2]);
  });

  it('in sliding windows, only after the last pane holding it, not the last window, is done', () => {
    const host = new Host();
    const w = windowBolt(eventTimeWindow('sliding', 200, 100), host);
    feed(w, input(1, [{ k: 'a', t: 150 }])); // in [0, 200) and [100, 300)
    feed(w, input(2, [{ k: 'a', t: 210 }])); // closes [0, 200)
    w.tick(0);
    const first = host.sent.splice(0); // the result of [0, 200) is still on its way
    feed(w, input(3, [{ k: 'a', t: 310 }])); // closes [100, 300)
    w.tick(0);
    host.finish(5);
    expect(host.ackedRoots(0)).not.toContain(1);
    host.sent.push(...first);
    host.finish(5);
    expect(host.ackedRoots(0)).toContain(1);
  });

  it('at once when every event in it is late, and keeps count of them', () => {
    const host = new Host();
    const w = windowBolt(eventTimeWindow('tumbling', 100), host);
    feed(w, input(1, [{ k: 'a', t: 500 }]));
    feed(
      w,
      input(2, [
        { k: 'a', t: 10 },
        { k: 'b', t: 20 },
      ]),
    );
    expect(host.ackedRoots(0)).toEqual([2]);
    expect(w.stats.late).toBe(2);
  });
});

const settled = () => new Promise((r) => setImmediate(r));
const fnBolt = (host: Host, op: FnOp = 'map') =>
  new FnBolt(3, 1, { id: 'm', op, fn: 'f', parallelism: 1, inputs: [] } as BoltSpec, 0, host);

describe('a function bolt (its function runs in an executor)', () => {
  it('sends its inbox in one message, takes nothing more while it is out, and acks each input with its outputs', async () => {
    const host = new Host();
    host.holdApplies = true;
    host.f = (e) => ({ twice: (e.r as number) * 2 });
    const m = fnBolt(host);
    for (let r = 1; r <= 3; r++) m.inbox.push({ tuple: input(r, [{ r }]) });
    m.step(0);
    expect(host.held).toHaveLength(1);
    m.inbox.push({ tuple: input(4, [{ r: 4 }]) });
    expect(m.step(0)).toBe(false); // busy: not re-entered
    expect(host.held).toHaveLength(1);
    expect(host.ackedRoots(0)).toEqual([]); // nothing acked before its outputs are emitted
    host.held.shift()!();
    await settled();
    expect(host.sent.map((s) => s.tuple.e)).toEqual([[{ twice: 2 }], [{ twice: 4 }], [{ twice: 6 }]]);
    expect(host.ackedRoots(0)).toEqual([1, 2, 3]);
    m.step(0); // free again: the next message goes
    expect(host.held).toHaveLength(1);
  });

  it('keeps what a filter keeps, by index, and counts events the function threw on', async () => {
    const host = new Host();
    host.f = (e) => {
      if (e.r === 2) throw new Error('no');
      return (e.r as number) % 2 === 1;
    };
    const m = fnBolt(host, 'filter');
    m.inbox.push({ tuple: input(1, [{ r: 1 }, { r: 2 }, { r: 3 }, { r: 4 }]) });
    m.step(0);
    await settled();
    expect(host.sent.map((s) => s.tuple.e)).toEqual([[{ r: 1 }, { r: 3 }]]);
    expect(m.stats.errors).toBe(1);
    expect(host.ackedRoots(0)).toEqual([1]);
  });

  it('fails its instance when the function cannot run at all, and acks none of the inputs it sent', async () => {
    const host = new Host();
    host.applyError = new Error("the task's process exited with code 3");
    const m = fnBolt(host);
    m.inbox.push({ tuple: input(1, [{ r: 1 }]) });
    m.step(0);
    await settled();
    expect(host.failed.map((f) => [f.idx, f.err.message])).toEqual([[3, "the task's process exited with code 3"]]);
    expect(host.ackedRoots(0)).toEqual([]);
  });

  it('once stopped, ignores the answer of the message it had out', async () => {
    const host = new Host();
    host.holdApplies = true;
    const m = fnBolt(host);
    m.inbox.push({ tuple: input(1, [{ r: 1 }]) });
    m.step(0);
    m.stop();
    host.held.shift()!();
    await settled();
    expect(host.sent).toEqual([]);
    expect(host.ackedRoots(0)).toEqual([]);
  });
});

describe('a bolt whose output cannot be routed', () => {
  it('drops those events (counted), acks its inputs, and frees every tuple it took', async () => {
    const host = new Host();
    host.f = (e) => ({ ...e, n: 1n }); // a BigInt has no JSON
    const m = new FnBolt(3, 1, { id: 'm', op: 'map', fn: 'f', parallelism: 1, inputs: [] } as BoltSpec, 0, host);
    let released = 0;
    for (let r = 1; r <= 4; r++) m.inbox.push({ tuple: input(r, [{ r }]), release: () => released++ });
    m.step(0);
    expect(released).toBe(4);
    await settled();
    expect(host.ackedRoots(0)).toEqual([1, 2, 3, 4]);
    expect(m.stats.errors).toBe(4);
  });
});

describe('a sink', () => {
  const collect = (host: Host) =>
    new CollectSink(7, 1, { id: 'out', op: 'collect', parallelism: 1, inputs: [] } as BoltSpec, 0, host);
  const settle = () => new Promise((r) => setTimeout(r, 0));

  it('delivers at most 8192 events at a time, however much it holds', async () => {
    const host = new Host();
    const s = collect(host);
    let release = () => {};
    host.collectResult = () => new Promise<void>((r) => (release = r));
    const batch = (r: number) =>
      input(
        r,
        Array.from({ length: 1024 }, (_, i) => ({ r, i })),
      );
    for (let r = 1; r <= 20; r++) s.inbox.push({ tuple: batch(r) });
    for (let i = 0; i < 5; i++) s.step(0);
    expect(host.collected).toEqual([4096]); // the first step's tuples went out; the rest waits for them
    for (let i = 0; i < 2; i++) {
      release();
      await settle();
      s.tick(0);
    }
    expect(host.collected).toEqual([4096, 8192, 8192]);
  });

  it('keeps a failed delivery and acks it once, when it gets through', async () => {
    const host = new Host();
    const s = collect(host);
    host.collectResult = () => Promise.reject(Object.assign(new Error('no leader'), { status: 503 }));
    feed(s, input(1, [{ x: 1 }]));
    await settle();
    expect(host.ackedRoots(0)).toEqual([]);
    host.collectResult = () => Promise.resolve();
    s.tick(Date.now() + 10_000);
    await settle();
    expect(host.ackedRoots(0)).toEqual([1]);
    expect(host.collected).toEqual([1, 1]);
  });

  it('drops, counts and acks a delivery the receiver refuses (a 4xx), rather than retry it for ever', async () => {
    const host = new Host();
    const s = collect(host);
    host.collectResult = () => Promise.reject(Object.assign(new Error('too many rows'), { status: 400 }));
    feed(s, input(1, [{ x: 1 }, { x: 2 }]));
    await settle();
    expect(host.ackedRoots(0)).toEqual([1]);
    expect(s.stats.errors).toBe(2);
  });

  // A peer's link frame may carry a BigInt (msgpack has 64-bit integers, JSON has none). The
  // delivery threw on it each try, and the sink retried it for ever, holding up every later event.
  it('delivers the events that have JSON and drops, counts and acks one that has none', async () => {
    const host = new Host();
    const s = collect(host);
    const sent: unknown[] = [];
    host.collect = (rows) => (sent.push(...rows.map((r) => r.value)), Promise.resolve());
    feed(s, input(1, [{ x: 1 }, { x: 2n }, { x: 3 }]));
    await settle();
    expect(sent).toEqual([{ x: 1 }, { x: 3 }]);
    expect(s.stats.errors).toBe(1);
    expect(host.ackedRoots(0)).toEqual([1]);
    feed(s, input(2, [{ x: 4 }]));
    await settle();
    expect(sent).toEqual([{ x: 1 }, { x: 3 }, { x: 4 }]);
  });

  it('a file sink too, whose write would otherwise throw before it began and leave it flushing for good', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-sink-'));
    try {
      const host = new Host();
      const path = join(dir, 'out.jsonl');
      const s = new FileSink(7, 1, { id: 'out', op: 'file', path, parallelism: 1, inputs: [] } as BoltSpec, 0, host);
      feed(s, input(1, [{ x: 1n }, { x: 2 }]));
      await waitFor('the first batch acked', () => host.ackedRoots(0).length === 1, 5000, 5);
      feed(s, input(2, [{ x: 3 }]));
      await waitFor('the second batch acked', () => host.ackedRoots(0).length === 2, 5000, 5);
      expect(readFileSync(path, 'utf8')).toBe('{"x":2}\n{"x":3}\n');
      expect(s.stats.errors).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an http source', () => {
  const spout = (host: Host) => {
    const s = new HttpSpout(0, 1, { id: 'in', type: 'http', parallelism: 1 } as SpoutSpec, 0, host);
    host.owners.set(0, s);
    return s;
  };

  it('answers a request once, after every batch holding its events was processed', async () => {
    const host = new Host();
    const s = spout(host);
    let answered = 0;
    const request = s.ingest(Array.from({ length: 1500 }, (_, i) => ({ i }))).then(() => answered++);
    s.step(0);
    s.step(0); // two batches: 1024 and 476 events
    expect(host.sent.map((x) => x.tuple.e.length)).toEqual([1024, 476]);
    expect(s.pending).toBe(1500);
    const [first] = host.sent.splice(0, 1);
    host.ack(first!.tuple.o, first!.tuple.a, first!.tuple.r, first!.tuple.h, first!.tuple.l);
    await Promise.resolve();
    expect(answered).toBe(0);
    host.finish(0);
    await request;
    expect(answered).toBe(1);
    expect(s.pending).toBe(0);
  });

  it('replays a batch not processed in time as a new root, then answers', async () => {
    const host = new Host();
    const s = spout(host);
    const request = s.ingest([{ i: 1 }]);
    s.step(0);
    host.sent.splice(0); // lost
    s.tick(host.ackTimeoutMs + 1);
    s.step(host.ackTimeoutMs + 1);
    expect(host.sent).toHaveLength(1);
    expect(host.sent[0]!.tuple.r).toBe(2);
    expect(s.pending).toBe(1);
    host.finish(0);
    await expect(request).resolves.toBeUndefined();
  });

  // A stall downstream (a deadlock, a slow sink) expired roots every ack timeout, and each
  // replay went out past the full inboxes and links: a worker's memory grew with every timeout.
  it('replays an expired batch only once its targets have room, before any new event, still counting it pending', () => {
    const host = new Host();
    const s = spout(host);
    void s.ingest([{ i: 1 }]);
    s.step(0);
    host.sent.splice(0); // stuck downstream
    host.room = false;
    void s.ingest([{ i: 2 }]);
    s.tick(host.ackTimeoutMs + 1);
    for (let i = 0; i < 3; i++) s.step(host.ackTimeoutMs + 1);
    expect(host.sent).toEqual([]);
    expect(s.pending).toBe(1);
    host.room = true;
    s.step(host.ackTimeoutMs + 2);
    expect(host.sent.map((x) => x.tuple.e)).toEqual([[{ i: 1 }]]);
    s.step(host.ackTimeoutMs + 2);
    expect(host.sent.map((x) => x.tuple.e)).toEqual([[{ i: 1 }], [{ i: 2 }]]);
    expect(s.pending).toBe(2);
  });

  it('when stopped, refuses the requests in flight and any new one: the sender sends them again', async () => {
    const host = new Host();
    const s = spout(host);
    const inFlight = s.ingest([{ i: 1 }]);
    s.step(0);
    const queued = s.ingest([{ i: 2 }]);
    s.stop();
    await expect(inFlight).rejects.toThrow(/send the events again/);
    await expect(queued).rejects.toThrow(/send the events again/);
    await expect(s.ingest([{ i: 3 }])).rejects.toThrow(/send the events again/);
  });
});

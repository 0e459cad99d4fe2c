import type { SpoutSpec } from '../protocol/stream-job.js';

export type GeneratorSpec = Extract<SpoutSpec, { type: 'generator' }>;

export interface GeneratedEvent {
  seq: number;
  key: string;
  value: 1;
  /** Processing time at emission, so `time_field: "ts"` gives event-time windows over synthetic load. */
  ts: number;
}

/**
 * The events one instance of a generator spout owes, paced by the clock it is given.
 * Instance `i` of `p` emits `seq = i, i + p, i + 2p, …` (below `count` when bounded), so the
 * instances together emit each seq once without talking to each other; each runs at
 * `rate / p` events/s. Pure: the caller passes the time, and decides when to ask again.
 */
export class EventGenerator {
  private emitted = 0;
  /** How many seqs this instance owns in total; Infinity when unbounded. */
  private readonly total: number;

  constructor(
    private readonly spec: GeneratorSpec,
    private readonly instance: number,
    private readonly startMs: number,
  ) {
    const p = spec.parallelism;
    this.total = spec.count === undefined ? Infinity : Math.max(0, Math.ceil((spec.count - instance) / p));
  }

  get done(): boolean {
    return this.emitted >= this.total;
  }

  /**
   * Up to `max` events due by `nowMs`. Pacing counts from the start, not from the last call,
   * so a slow caller catches up instead of drifting below the rate.
   */
  take(nowMs: number, max: number): GeneratedEvent[] {
    const { rate, parallelism } = this.spec;
    // The first event is due at once; then one every parallelism/rate seconds.
    const due = rate === undefined ? Infinity : Math.floor(((nowMs - this.startMs) * rate) / parallelism / 1000) + 1;
    const n = Math.max(0, Math.min(max, due - this.emitted, this.total - this.emitted));
    const out = this.events(this.instance + this.emitted * parallelism, n, nowMs);
    this.emitted += n;
    return out;
  }

  /**
   * The `n` events from `firstSeq` on, as `take` made them at `ts`: a batch to replay is
   * three numbers, not its events.
   */
  replay(batch: { seq: number; n: number; ts: number }): GeneratedEvent[] {
    return this.events(batch.seq, batch.n, batch.ts);
  }

  private events(firstSeq: number, n: number, ts: number): GeneratedEvent[] {
    const { parallelism, keys } = this.spec;
    const out: GeneratedEvent[] = new Array<GeneratedEvent>(n);
    for (let j = 0; j < n; j++) {
      const seq = firstSeq + j * parallelism;
      out[j] = { seq, key: `k${seq % keys}`, value: 1, ts };
    }
    return out;
  }
}

import type { WindowParams } from '../protocol/stream-job.js';

// Keyed tumbling and sliding windows for one instance of a window bolt. Pure: the caller
// passes the time to `add` and `advance`, and does the acking and emitting.
//
// Windows are aligned to the epoch: tumbling windows are [n*size, (n+1)*size); sliding ones
// are every [n*slide, n*slide + size), so an event at t lies in the size/slide windows whose
// start is a multiple of slide in (t - size, t]. All instances and restarts agree on them.
//
// Time. Processing time uses the clock passed in (never running backwards: the operator
// keeps the largest it has seen). Event time reads `event[time_field]` (ms since the epoch,
// or an ISO string) and keeps a WATERMARK = the largest event time seen minus
// `allowed_lateness_ms`: the operator's claim that no more events older than it will come.
// The watermark is per operator instance and driven by events; but once no event has
// arrived for IDLE_MS of the clock, event time is taken to move on with the clock, so the
// last windows close when the input pauses or ends (and a source held back by its
// in-flight limit, waiting for these very windows, cannot wait for ever). `drain()` closes
// every window at once. The watermark never goes back. The lateness delays every firing by
// that much in exchange for tolerating disorder up to it; each window fires once.
//
// A window CLOSES when its end <= the watermark (event time) or the clock (processing time);
// this is decided on `add` too, so the results do not depend on how often `advance` runs.
// An event whose windows are all closed is LATE: dropped and counted. One with some windows
// still open joins those only.
//
// Acks. An event's ack id is held by every pane (window and key) it is counted in, and comes
// back with each of them when it fires: the caller acks the event once all of them did (and
// their results were processed). Events of one batch share an ack id: a pane keeps it once
// however many of them it holds; `add` says how many panes newly took it.

/** Without events for this long (of the clock), event time moves on with the clock. */
export const IDLE_MS = 1000;

export interface WindowResult {
  /** The value of the event's `key` field (`null` when missing, or when the bolt has no key). */
  key: unknown;
  window_start: number;
  window_end: number;
  /** count, sum (0 when no event had a number), or min/max/avg (null when none had one). */
  value: number | null;
}

export interface FiredWindow<A> {
  result: WindowResult;
  /** Ack ids of the events in this pane (each once), to ack once their every pane has fired. */
  acks: A[];
}

/**
 * `held`: in at least one window; `newHolds` panes took its ack id (0 when they already held
 * it, from an event before it in the same batch). `late`: every window it belongs to had
 * closed. `no_time`: no usable event time.
 */
export interface AddOutcome {
  outcome: 'held' | 'late' | 'no_time';
  newHolds: number;
}

const LATE: AddOutcome = Object.freeze({ outcome: 'late', newHolds: 0 });
const NO_TIME: AddOutcome = Object.freeze({ outcome: 'no_time', newHolds: 0 });

interface Pane<A> {
  key: unknown;
  count: number;
  /** How many events had a finite number in `field`; sum/min/max/avg are over those. */
  numeric: number;
  sum: number;
  min: number;
  max: number;
  acks: A[];
  /** Events (with or without an ack id) whose last window this is. */
  lastOf: number;
}

/**
 * The panes of one window, in the order their keys arrived: keyed by the key itself when it
 * is a primitive (a Map tells 1 from '1'), else by one token per JSON text.
 */
interface Panes<A> {
  byKey: Map<unknown, Pane<A>>;
  tokens: Map<string, object>;
}

export class WindowOperator<A = string> {
  /** Window start -> key -> pane. */
  private readonly windows = new Map<number, Panes<A>>();
  private clock = -Infinity;
  private maxEventTime = -Infinity;
  /** The clock when the last event with a usable time arrived. */
  private lastArrival = -Infinity;
  /** The watermark as it stood before the last arrival: it never goes back. */
  private watermarkFloor = -Infinity;
  /** Set by `drain()`: windows ending at or before it are closed whatever the time says. */
  private drainedTo = -Infinity;
  private panes = 0;
  private held = 0;
  readonly stats = { late: 0, no_time: 0, not_numeric: 0 };

  constructor(private readonly spec: WindowParams) {}

  /** Open (window, key) panes. */
  get openWindows(): number {
    return this.panes;
  }

  /** Events in at least one open window. */
  get heldEvents(): number {
    return this.held;
  }

  /** -Infinity until an event with a time arrives; always -Infinity for processing time. */
  get watermark(): number {
    if (this.spec.window.time_field === undefined) return -Infinity;
    const byEvents = this.maxEventTime - this.spec.window.allowed_lateness_ms;
    const idle = this.lastArrival === -Infinity ? 0 : this.clock - this.lastArrival - IDLE_MS;
    return Math.max(this.watermarkFloor, idle > 0 ? byEvents + idle : byEvents);
  }

  /**
   * Puts `event` in its windows. The caller acks at once what is not `held` (a late event
   * replayed would be late again); a held event's `ackId` comes back from `advance`.
   */
  add(event: Record<string, unknown>, nowMs: number, ackId?: A): AddOutcome {
    this.clock = Math.max(this.clock, nowMs);
    const { size_ms: size, slide_ms: slide, time_field } = this.spec.window;
    let t = this.clock;
    if (time_field !== undefined) {
      const et = eventTime(event[time_field]);
      if (et === undefined) {
        this.stats.no_time++;
        return NO_TIME;
      }
      t = et;
      // An arrival ends an idle stretch; what the watermark reached meanwhile stays.
      this.watermarkFloor = this.watermark;
      this.lastArrival = this.clock;
      this.maxEventTime = Math.max(this.maxEventTime, t);
    }
    const horizon = this.horizon();
    const lastStart = Math.floor(t / slide) * slide;
    if (lastStart + size <= horizon) {
      this.stats.late++;
      return LATE;
    }
    const keyValue = this.spec.key === undefined ? null : (event[this.spec.key] ?? null);
    const x = this.spec.field === undefined ? undefined : event[this.spec.field];
    const num = typeof x === 'number' && Number.isFinite(x) ? x : undefined;
    if (this.spec.field !== undefined && num === undefined) this.stats.not_numeric++;
    let newHolds = 0;
    for (let start = lastStart; start > t - size && start + size > horizon; start -= slide) {
      const pane = this.paneOf(start, keyValue);
      pane.count++;
      if (num !== undefined) {
        pane.numeric++;
        pane.sum += num;
        pane.min = Math.min(pane.min, num);
        pane.max = Math.max(pane.max, num);
      }
      if (start === lastStart) pane.lastOf++;
      if (ackId !== undefined && pane.acks[pane.acks.length - 1] !== ackId) {
        pane.acks.push(ackId);
        newHolds++;
      }
    }
    this.held++;
    return { outcome: 'held', newHolds };
  }

  /** Fires, in order of window end, every window closed by `nowMs` (or by the watermark). */
  advance(nowMs: number): FiredWindow<A>[] {
    this.clock = Math.max(this.clock, nowMs);
    return this.fire(this.horizon());
  }

  /** Fires every open window now: the end of a bounded stream. Later events for them are late. */
  drain(): FiredWindow<A>[] {
    let lastEnd = -Infinity;
    for (const start of this.windows.keys()) lastEnd = Math.max(lastEnd, start + this.spec.window.size_ms);
    this.drainedTo = Math.max(this.drainedTo, lastEnd);
    return this.fire(Infinity);
  }

  private horizon(): number {
    const time = this.spec.window.time_field === undefined ? this.clock : this.watermark;
    return Math.max(time, this.drainedTo);
  }

  private paneOf(start: number, key: unknown): Pane<A> {
    let panes = this.windows.get(start);
    if (!panes) {
      panes = { byKey: new Map(), tokens: new Map() };
      this.windows.set(start, panes);
    }
    let k = key;
    if (key !== null && typeof key === 'object') {
      const json = JSON.stringify(key);
      k = panes.tokens.get(json);
      if (!k) panes.tokens.set(json, (k = {}));
    }
    let pane = panes.byKey.get(k);
    if (!pane) {
      pane = { key, count: 0, numeric: 0, sum: 0, min: Infinity, max: -Infinity, acks: [], lastOf: 0 };
      panes.byKey.set(k, pane);
      this.panes++;
    }
    return pane;
  }

  private fire(horizon: number): FiredWindow<A>[] {
    const size = this.spec.window.size_ms;
    const starts = [...this.windows.keys()].filter((s) => s + size <= horizon).sort((a, b) => a - b);
    const fired: FiredWindow<A>[] = [];
    for (const start of starts) {
      for (const pane of this.windows.get(start)!.byKey.values()) {
        fired.push({
          result: { key: pane.key, window_start: start, window_end: start + size, value: this.valueOf(pane) },
          acks: pane.acks,
        });
        this.held -= pane.lastOf;
        this.panes--;
      }
      this.windows.delete(start);
    }
    return fired;
  }

  private valueOf(p: Pane<A>): number | null {
    switch (this.spec.aggregate) {
      case 'count':
        return p.count;
      case 'sum':
        return p.sum;
      case 'min':
        return p.numeric ? p.min : null;
      case 'max':
        return p.numeric ? p.max : null;
      case 'avg':
        return p.numeric ? p.sum / p.numeric : null;
    }
  }
}

// Date.parse alone would also read strings such as "5" or "May 1" as dates.
const ISO_DATE = /^[+-]?\d{4,6}-\d{2}-\d{2}(?:T|$)/;

/** Event time in ms from a number of ms or an ISO 8601 string; undefined when neither. */
function eventTime(v: unknown): number | undefined {
  const t = typeof v === 'number' ? v : typeof v === 'string' && ISO_DATE.test(v) ? Date.parse(v) : NaN;
  return Number.isFinite(t) ? t : undefined;
}

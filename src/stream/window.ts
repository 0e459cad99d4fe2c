import type { WindowParams } from './topology.js';

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
// The watermark is per operator instance and driven only by events (no idle timeout), so
// with input stopped the last windows wait; `drain()` closes them at the end of a bounded
// stream. The lateness delays every firing by that much in exchange for tolerating
// disorder up to it; each window fires once.
//
// A window CLOSES when its end <= the watermark (event time) or the clock (processing time);
// this is decided on `add` too, so the results do not depend on how often `advance` runs.
// An event whose windows are all closed is LATE: dropped and counted. One with some windows
// still open joins those only.
//
// Acks. An event's ack id is held by its LAST window (largest start), which closes no
// earlier than any other window holding it, so the id comes back exactly once, when the
// event's last window fires; with sliding windows, earlier windows fire without it. Events
// of one batch share an ack id: a pane keeps it once however many of them it holds (`add`
// says 'joined' for the rest), so an id comes back once per pane that holds it.

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
  /** Ack ids of the events whose last window this is, to anchor the result on and then ack. */
  acks: A[];
}

/**
 * `held`: in at least one window, its ack id now held by a pane. `joined`: the same, but that
 * pane already held the same ack id (the event before it there carried it too). `late`:
 * every window it belongs to had closed. `no_time`: no usable event time.
 */
export type AddOutcome = 'held' | 'joined' | 'late' | 'no_time';

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

export class WindowOperator<A = string> {
  /** Window start -> key (as JSON) -> pane. */
  private readonly windows = new Map<number, Map<string, Pane<A>>>();
  private clock = -Infinity;
  private maxEventTime = -Infinity;
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
    return this.spec.window.time_field === undefined
      ? -Infinity
      : this.maxEventTime - this.spec.window.allowed_lateness_ms;
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
        return 'no_time';
      }
      t = et;
      this.maxEventTime = Math.max(this.maxEventTime, t);
    }
    const horizon = this.horizon();
    const lastStart = Math.floor(t / slide) * slide;
    if (lastStart + size <= horizon) {
      this.stats.late++;
      return 'late';
    }
    const keyValue = this.spec.key === undefined ? null : (event[this.spec.key] ?? null);
    // Strings (the usual key) by themselves; anything else by its JSON, kept apart by a prefix
    // no JSON text starts with.
    const keyJson = typeof keyValue === 'string' ? keyValue : `\u0000${JSON.stringify(keyValue)}`;
    const x = this.spec.field === undefined ? undefined : event[this.spec.field];
    const num = typeof x === 'number' && Number.isFinite(x) ? x : undefined;
    if (this.spec.field !== undefined && num === undefined) this.stats.not_numeric++;
    let outcome: AddOutcome = 'held';
    for (let start = lastStart; start > t - size && start + size > horizon; start -= slide) {
      const pane = this.paneOf(start, keyJson, keyValue);
      pane.count++;
      if (num !== undefined) {
        pane.numeric++;
        pane.sum += num;
        pane.min = Math.min(pane.min, num);
        pane.max = Math.max(pane.max, num);
      }
      if (start === lastStart) {
        pane.lastOf++;
        if (ackId !== undefined) {
          if (pane.acks.length > 0 && pane.acks[pane.acks.length - 1] === ackId) outcome = 'joined';
          else pane.acks.push(ackId);
        }
      }
    }
    this.held++;
    return outcome;
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

  private paneOf(start: number, keyJson: string, key: unknown): Pane<A> {
    let byKey = this.windows.get(start);
    if (!byKey) {
      byKey = new Map();
      this.windows.set(start, byKey);
    }
    let pane = byKey.get(keyJson);
    if (!pane) {
      pane = { key, count: 0, numeric: 0, sum: 0, min: Infinity, max: -Infinity, acks: [], lastOf: 0 };
      byKey.set(keyJson, pane);
      this.panes++;
    }
    return pane;
  }

  private fire(horizon: number): FiredWindow<A>[] {
    const size = this.spec.window.size_ms;
    const starts = [...this.windows.keys()].filter((s) => s + size <= horizon).sort((a, b) => a - b);
    const fired: FiredWindow<A>[] = [];
    for (const start of starts) {
      for (const pane of this.windows.get(start)!.values()) {
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

/**
 * A streaming job's config: the topology, the module its functions come from, and the
 * at-least-once timing. Every instance of every component is one task of the job, placed
 * on a worker by the scheduler and re-placed (through the log) when its worker dies. Workers
 * receive it whole with each instance's task; it was checked and defaulted at submission.
 */
export interface StreamConfig {
  operation: 'stream';
  topology: Topology;
  module?: string;
  /** config.env: the whole process.env of the module's functions. */
  env?: Record<string, string>;
  /** A source event not fully processed within this is replayed. */
  ack_timeout_ms: number;
  /**
   * Source events in flight per spout instance; beyond it the source waits (backpressure).
   * A window holds its input until it fires, so this bounds a windowed stream's rate to
   * about max_pending / window size per spout instance.
   */
  max_pending: number;
  /** One task per instance. */
  task_count: number;
  max_retries: number;
  timeout_ms: number;
  /** Of each executor process the module's functions run in (0 in jobs older than it: 256). */
  memory_mb: number;
}

export const isStreamConfig = (c: { operation: string }): c is StreamConfig => c.operation === 'stream';

export const SPOUT_TYPES = ['http', 'generator', 'file'] as const;
export const BOLT_OPS = ['map', 'filter', 'flat_map', 'window', 'collect', 'file', 'http'] as const;
export const GROUPINGS = ['shuffle', 'fields', 'all', 'global'] as const;
export const AGGREGATES = ['count', 'sum', 'min', 'max', 'avg'] as const;
export const WINDOW_TYPES = ['tumbling', 'sliding'] as const;
export const FILE_FORMATS = ['lines', 'jsonl'] as const;

export type SpoutType = (typeof SPOUT_TYPES)[number];
export type BoltOp = (typeof BOLT_OPS)[number];
export type Grouping = (typeof GROUPINGS)[number];
export type Aggregate = (typeof AGGREGATES)[number];

/** `fields` is present exactly when the grouping is `fields`, and is never empty. */
export type BoltInput =
  { from: string; grouping: 'shuffle' | 'all' | 'global' } | { from: string; grouping: 'fields'; fields: string[] };

export type SpoutSpec = { id: string; parallelism: number } & (
  | { type: 'http' }
  /**
   * Synthetic load: event `seq` is `{seq, key: "k" + (seq % keys), value: 1, ts}` (see
   * stream/generator.ts). `rate` is events/s for the whole spout, absent = as fast as credits
   * allow; `count` is the total for the whole spout, absent = unbounded.
   */
  | { type: 'generator'; rate?: number; count?: number; keys: number }
  /** Reads one file in order from byte `offset`; `lines` gives `{line}` events, `jsonl` the parsed objects. */
  | { type: 'file'; path: string; offset: number; format: (typeof FILE_FORMATS)[number] }
);

export interface WindowTiming {
  type: (typeof WINDOW_TYPES)[number];
  size_ms: number;
  /** Equal to `size_ms` for tumbling windows; divides `size_ms` for sliding ones. */
  slide_ms: number;
  /** Event time when present (a number of ms or an ISO string in each event); processing time otherwise. */
  time_field?: string;
  /** 0 unless `time_field` is set. */
  allowed_lateness_ms: number;
}

export interface WindowParams {
  aggregate: Aggregate;
  /** Present for every aggregate except `count`, which counts events. */
  field?: string;
  /** The event field whose value keys the window; absent = one global key (`null`). */
  key?: string;
  window: WindowTiming;
}

export type BoltSpec = { id: string; parallelism: number; inputs: BoltInput[] } & (
  | { op: 'map' | 'filter' | 'flat_map'; fn: string }
  | ({ op: 'window' } & WindowParams)
  | { op: 'collect' }
  | { op: 'file'; path: string }
  | { op: 'http'; url: string }
);

export type ComponentSpec = SpoutSpec | BoltSpec;

/** Spouts in the order given; bolts in topological order (every bolt after all its inputs). */
export interface Topology {
  spouts: SpoutSpec[];
  bolts: BoltSpec[];
}

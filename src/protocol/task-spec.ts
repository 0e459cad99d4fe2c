import type { StreamConfig } from './stream-job.js';

/** A task of a built-in list job (multiply, noop, sleep). */
export interface ListTaskSpec {
  operation: 'multiply' | 'noop' | 'sleep';
  params: Record<string, unknown>;
  input: unknown;
  idx: number;
}

/** Operations over data: user code and the built-in jobs, all on the map → reduce machinery. */
export const DATA_OPERATIONS = ['map', 'wordcount', 'grep', 'sort', 'sum', 'avg', 'pi'] as const;
export type DataOperation = (typeof DATA_OPERATIONS)[number];

export const INPUT_FORMATS = ['lines', 'jsonl', 'csv'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

/** Where a job's input is: a path every worker sees, or a URL whose server answers range requests. */
export type InputSpec = ({ path: string; url?: never } | { url: string; path?: never }) & { format: InputFormat };

/** How a task reaches other nodes of a cluster serving https. */
export interface TaskTls {
  /** The cluster's CA in PEM (`--tls-ca`). */
  ca?: string;
}

/** A map output a reduce task reads: which task attempt wrote it, on which worker. */
export interface MapOutput {
  idx: number;
  attempt: number;
  address: string;
}

/** One task of a data job, as a worker thread runs it. */
export interface DataTaskSpec {
  operation: DataOperation;
  idx: number;
  job_id: string;
  attempt: number;
  stage: 'map' | 'sample' | 'reduce';
  /** The task's index within its stage: its input split, or its reduce partition. */
  part: number;
  module?: string;
  params: Record<string, unknown>;
  /** Inline records of this split, or the input file with the number of splits. */
  records?: unknown[];
  input?: { spec: InputSpec; splits: number };
  reduce_tasks: number;
  combine: boolean;
  partitioner: 'hash' | 'range';
  boundaries?: unknown[];
  results: 'rows' | 'values';
  output?: { path: string };
  maps?: MapOutput[];
  /** config.env: the task's whole process.env. */
  user_env?: Record<string, string>;
  /** Set by the worker: where it keeps map outputs, and a token for fetching other workers'. */
  env?: {
    shuffle_dir: string;
    auth?: string;
    /** The masters the worker knows: each holds a copy of uploaded inputs. */
    masters?: string[];
    /** Present when the cluster serves https: other nodes are verified against `ca` (else the default store). */
    tls?: TaskTls;
    /** The worker's --allow-net entries (HOST or HOST:PORT): where url inputs may be; absent: anywhere. */
    allow_net?: string[];
  };
}

/** Where an instance runs now (its task's current attempt and worker). */
export interface PlacedInstance {
  idx: number;
  attempt: number;
  address: string;
}

/** What a worker gets to run one instance of a topology. */
export interface StreamTaskSpec {
  operation: 'stream';
  job_id: string;
  idx: number;
  attempt: number;
  config: StreamConfig;
  placement: PlacedInstance[];
}

/** What one task gets: enough to run without the job's config (which may be large). */
export type TaskSpec = ListTaskSpec | DataTaskSpec | StreamTaskSpec;

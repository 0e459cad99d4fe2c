import { badRequest, WeirError } from '../common/errors.js';
import { BUILTIN_JOBS, type BuiltinJob } from './builtin-jobs.js';
import {
  DATA_OPERATIONS,
  INPUT_FORMATS,
  type DataOperation,
  type InputFormat,
  type InputSpec,
} from '../protocol/task-spec.js';
import { checkUserModule } from '../common/user-module.js';
import { checkUserEnv } from '../common/user-env.js';
import { unknownField } from '../common/closest-name.js';

export const OPERATIONS = ['multiply', 'noop', 'sleep', ...DATA_OPERATIONS] as const;
export type Operation = (typeof OPERATIONS)[number];

export const MAX_TASK_COUNT = 100_000;
export const MAX_REDUCE_TASKS = 10_000;
/** Map outputs a shuffle may make: one file per map task per reduce task. */
export const MAX_SHUFFLE_FILES = 1_000_000;

/** Per-job limits and retry policy, public config fields; every one has a default. */
export interface TaskLimits {
  max_retries: number;
  timeout_ms: number;
  memory_mb: number;
}

/** A task's process, its baseline included, needs about 40 MiB before any user code runs. */
export const MIN_MEMORY_MB = 64;

export const DEFAULT_LIMITS: TaskLimits = { max_retries: 3, timeout_ms: 60_000, memory_mb: 256 };

/**
 * A job over records: a map over input splits, optionally combined on the map side and
 * shuffled by key into `reduce_tasks` reduce tasks (0: map only). `module` is the user's
 * source; built-ins name their functions by `operation` and take `params`.
 */
export interface DataJobFields {
  operation: DataOperation;
  module?: string;
  params: Record<string, unknown>;
  task_count: number;
  reduce_tasks: number;
  combine: boolean;
  partitioner: 'hash' | 'range';
  /** rows: `{key, value}` pairs; values: the reduce's values alone (sort). */
  results: 'rows' | 'values';
  output?: { path: string };
  data?: unknown[];
  input?: InputSpec;
  /** Stragglers get a copy on another worker; the first to finish wins. */
  speculation: boolean;
  /** The whole of `process.env` in the job's tasks: nothing of the worker's reaches them. */
  env?: Record<string, string>;
}

export type BatchConfig = TaskLimits & { task_count: number } & (
    | { operation: 'multiply'; factor: number; data?: number[] }
    | { operation: 'noop' }
    | { operation: 'sleep'; ms: number }
    | DataJobFields
  );

export type DataJobConfig = Extract<BatchConfig, { operation: DataOperation }>;

export const isDataJob = (c: { operation: string }): c is DataJobConfig =>
  (DATA_OPERATIONS as readonly string[]).includes(c.operation);

type Raw = Record<string, unknown>;

function integer(raw: Raw, field: string, min: number, max: number, fallback?: number): number {
  const v = raw[field];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw badRequest(`config.${field} must be an integer from ${min} to ${max}; got ${JSON.stringify(v)}`);
  }
  return v;
}

function limitsOf(raw: Raw): TaskLimits {
  return {
    max_retries: integer(raw, 'max_retries', 0, 100, DEFAULT_LIMITS.max_retries),
    timeout_ms: integer(raw, 'timeout_ms', 1, 86_400_000, DEFAULT_LIMITS.timeout_ms),
    memory_mb: integer(raw, 'memory_mb', MIN_MEMORY_MB, 65_536, DEFAULT_LIMITS.memory_mb),
  };
}

/**
 * Checks a batch job's config and fills its defaults. A job with no config is a single
 * `noop` task. Refuses, with a message naming the field, anything it cannot run.
 */
export function normalizeBatchConfig(input: unknown): BatchConfig {
  if (input === undefined || input === null) return { operation: 'noop', task_count: 1, ...DEFAULT_LIMITS };
  if (typeof input !== 'object' || Array.isArray(input)) throw badRequest('config must be a JSON object');
  const raw = input as Raw;
  const operation = raw.operation ?? (raw.module !== undefined ? 'map' : 'noop');
  if (typeof operation !== 'string' || !(OPERATIONS as readonly string[]).includes(operation)) {
    throw badRequest(`unknown operation ${JSON.stringify(operation)}; choose one of: ${OPERATIONS.join(', ')}`);
  }
  refuseUnknownFields(raw, operation as Operation);
  const limits = limitsOf(raw);
  switch (operation as Operation) {
    case 'multiply': {
      const factor = raw.factor ?? 1;
      if (typeof factor !== 'number' || !Number.isFinite(factor)) {
        throw badRequest(`config.factor must be a finite number; got ${JSON.stringify(raw.factor)}`);
      }
      let data: number[] | undefined;
      if (raw.data !== undefined) {
        if (!Array.isArray(raw.data) || raw.data.length === 0) {
          throw badRequest('config.data must be a non-empty array of numbers');
        }
        const bad = raw.data.findIndex((x) => typeof x !== 'number' || !Number.isFinite(x));
        if (bad >= 0) throw badRequest(`config.data[${bad}] is not a finite number`);
        data = raw.data as number[];
      }
      const max = data ? Math.min(data.length, MAX_TASK_COUNT) : MAX_TASK_COUNT;
      const task_count = integer(raw, 'task_count', 1, max, 1);
      return { operation: 'multiply', factor, task_count, ...(data ? { data } : {}), ...limits };
    }
    case 'noop':
      return { operation: 'noop', task_count: integer(raw, 'task_count', 1, MAX_TASK_COUNT, 1), ...limits };
    case 'sleep':
      return {
        operation: 'sleep',
        ms: integer(raw, 'ms', 0, 86_400_000, 1000),
        task_count: integer(raw, 'task_count', 1, MAX_TASK_COUNT, 1),
        ...limits,
      };
    default:
      return { ...dataJobOf(operation as DataOperation, raw), ...limits };
  }
}

/** Fields of every batch job's config (`retention` is read, and taken out, before these). */
const COMMON_FIELDS = ['operation', 'task_count', 'max_retries', 'timeout_ms', 'memory_mb', 'retention'];
/** Fields of a job over records, besides its operation's own. */
const DATA_FIELDS = ['module', 'data', 'input', 'reduce_tasks', 'output', 'combine', 'speculation', 'env'];
const OWN_FIELDS: Record<Exclude<Operation, DataOperation>, readonly string[]> = {
  multiply: ['factor', 'data'],
  noop: [],
  sleep: ['ms'],
};

/**
 * A field the job would not read is refused rather than ignored: `factr` for `factor` ran a
 * job with the default factor, and a job without `operation` or `module` ran as `noop`,
 * ignoring its `data`.
 */
function refuseUnknownFields(raw: Raw, operation: Operation): void {
  const own = isDataJob({ operation })
    ? [...DATA_FIELDS, ...(operation === 'map' ? [] : BUILTIN_JOBS[operation as Exclude<DataOperation, 'map'>].fields)]
    : OWN_FIELDS[operation as Exclude<Operation, DataOperation>];
  const known = [...COMMON_FIELDS, ...own];
  const found = unknownField(raw, known);
  if (found === undefined) return;
  const { field: unknown, guess } = found;
  const implied =
    raw.operation === undefined && operation === 'noop'
      ? ' (a config with neither operation nor module runs noop: name an operation, or give a module)'
      : '';
  throw badRequest(
    `config.${unknown} is not a field of a '${operation}' job${guess ? `: did you mean '${guess}'?` : ''}${implied}; ` +
      `its fields are ${known.join(', ')}`,
  );
}

function dataJobOf(operation: DataOperation, raw: Raw): Omit<DataJobFields, never> {
  let exports: ReadonlySet<string>;
  let module: string | undefined;
  let params: Record<string, unknown> = {};
  let builtin: BuiltinJob | undefined;
  if (operation === 'map') {
    const checked = checkUserModule(raw.module, ['map']);
    module = checked.source;
    exports = checked.exports;
  } else {
    if (raw.module !== undefined) {
      throw badRequest(`config.module is for user code (operation "map"); '${operation}' is built in`);
    }
    builtin = BUILTIN_JOBS[operation];
    params = builtin.params(raw);
    exports = new Set(['map', ...(builtin.combine ? ['combine'] : []), ...(builtin.reduce ? ['reduce'] : [])]);
  }

  const source = sourceOf(raw, builtin?.needsInput ?? true);
  const records = source.data?.length;
  const task_count = integer(raw, 'task_count', 1, Math.min(records ?? MAX_TASK_COUNT, MAX_TASK_COUNT), 1);
  const partitioner = builtin?.partitioner ?? 'hash';
  let reduce_tasks = 0;
  if (exports.has('reduce')) {
    reduce_tasks = reduceTasksOf(raw, task_count, partitioner);
  } else if (raw.reduce_tasks !== undefined) {
    throw badRequest('config.reduce_tasks needs a reduce stage: the module must export reduce(key, values, emit)');
  }
  const output = outputOf(raw.output);
  if (output && !reduce_tasks) throw badRequest('config.output needs a reduce stage (part files are written by it)');
  const combine = raw.combine === undefined ? exports.has('combine') : raw.combine === true;
  if (raw.speculation !== undefined && typeof raw.speculation !== 'boolean') {
    throw badRequest('config.speculation must be true or false');
  }
  if (combine && !exports.has('combine')) throw badRequest('config.combine is true but the module exports no combine');
  const env = checkUserEnv(raw.env);
  return {
    operation,
    ...(module !== undefined ? { module } : {}),
    params,
    task_count,
    reduce_tasks,
    combine,
    partitioner,
    results: builtin?.results ?? 'rows',
    speculation: raw.speculation !== false,
    ...(output ? { output } : {}),
    ...(env ? { env } : {}),
    ...source,
  };
}

/**
 * The reduce tasks of a job, bounded: each is a task the masters track, and the shuffle
 * writes one file per map task per reduce task, so their product is bounded too.
 */
function reduceTasksOf(raw: Raw, taskCount: number, partitioner: 'hash' | 'range'): number {
  const v = raw.reduce_tasks;
  // A range partitioner defaults to one reduce task per map task, within both bounds.
  if (v === undefined) {
    if (partitioner !== 'range') return 1;
    return Math.max(1, Math.min(taskCount, MAX_REDUCE_TASKS, Math.floor(MAX_SHUFFLE_FILES / taskCount)));
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw badRequest(`config.reduce_tasks must be an integer from 1 to ${MAX_REDUCE_TASKS}; got ${JSON.stringify(v)}`);
  }
  if (v > MAX_REDUCE_TASKS) {
    throw badRequest(
      `config.reduce_tasks is ${v}, over the limit of ${MAX_REDUCE_TASKS}; ask for fewer reduce tasks ` +
        `(each one handles more keys) — the partitions need not be small`,
    );
  }
  if (taskCount * v > MAX_SHUFFLE_FILES) {
    throw badRequest(
      `config.task_count × config.reduce_tasks is ${taskCount} × ${v} = ${taskCount * v} map output files, over the ` +
        `limit of ${MAX_SHUFFLE_FILES}; use fewer map tasks (larger splits) or fewer reduce tasks`,
    );
  }
  return v;
}

const invalid = (message: string): WeirError => new WeirError('validation_failed', message);

/**
 * A path a task reads or writes, as the masters can judge it: absolute, and without `..` (a
 * worker's --allow-read and --allow-write judge the rest where the task runs).
 */
function checkTaskPath(path: string, field: string): void {
  if (path.split('/').includes('..')) throw invalid(`${field} must not contain '..'; got ${JSON.stringify(path)}`);
  if (path.includes('\0')) throw invalid(`${field} must not contain a NUL byte`);
}

function sourceOf(raw: Raw, needsInput: boolean): { data?: unknown[]; input?: InputSpec } {
  if (raw.input !== undefined) {
    if (raw.data !== undefined) throw badRequest('give either config.data or config.input, not both');
    return { input: inputOf(raw.input) };
  }
  if (raw.data !== undefined) {
    if (!Array.isArray(raw.data) || raw.data.length === 0) throw badRequest('config.data must be a non-empty array');
    return { data: raw.data as unknown[] };
  }
  if (needsInput) {
    throw badRequest('config.data must be a non-empty array of records, or config.input a file to read');
  }
  return {};
}

/**
 * An input the workers read themselves, split into `task_count` byte ranges on record
 * boundaries: a path every worker sees (a shared or replicated filesystem), or an http(s)
 * URL whose server answers range requests.
 */
function inputOf(raw: unknown): InputSpec {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badRequest('config.input must be an object like {"path": "/data/in.txt", "format": "lines"}');
  }
  const { path, url, format } = raw as Record<string, unknown>;
  const f = format ?? 'lines';
  if (typeof f !== 'string' || !(INPUT_FORMATS as readonly string[]).includes(f)) {
    throw badRequest(`config.input.format must be one of: ${INPUT_FORMATS.join(', ')}; got ${JSON.stringify(f)}`);
  }
  if (url !== undefined) {
    if (path !== undefined) throw badRequest('give either config.input.path or config.input.url, not both');
    if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/.test(url)) {
      throw badRequest('config.input.url must be an http:// or https:// URL');
    }
    return { url, format: f as InputFormat };
  }
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw invalid('config.input.path must be an absolute path that every worker can read (or give config.input.url)');
  }
  checkTaskPath(path, 'config.input.path');
  return { path, format: f as InputFormat };
}

function outputOf(raw: unknown): { path: string } | undefined {
  if (raw === undefined) return undefined;
  const path = (raw as { path?: unknown } | null)?.path;
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw invalid('config.output must be {"path": "/absolute/dir"}, a directory every worker can write');
  }
  checkTaskPath(path, 'config.output.path');
  return { path };
}

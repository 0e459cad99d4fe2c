import { badRequest } from '../common/errors.js';
import { INPUT_FORMATS, type InputFormat, type InputSpec } from './input-split.js';
import { checkUserModule } from './user-module.js';

export const OPERATIONS = ['multiply', 'noop', 'sleep', 'map'] as const;
export type Operation = (typeof OPERATIONS)[number];

export const MAX_TASK_COUNT = 100_000;

/** Per-job limits and retry policy; every field has a default (DESIGN.md section 5). */
export interface TaskLimits {
  max_retries: number;
  timeout_ms: number;
  memory_mb: number;
}

export const DEFAULT_LIMITS: TaskLimits = { max_retries: 3, timeout_ms: 60_000, memory_mb: 256 };

export type BatchConfig = TaskLimits & { task_count: number } & (
    | { operation: 'multiply'; factor: number; data?: number[] }
    | { operation: 'noop' }
    | { operation: 'sleep'; ms: number }
    /** User code: the module's `map(record, emit)` over `data` or an input file, map stage only for now. */
    | ({ operation: 'map'; module: string } & ({ data: unknown[]; input?: never } | { input: InputSpec; data?: never }))
  );

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
    memory_mb: integer(raw, 'memory_mb', 16, 65_536, DEFAULT_LIMITS.memory_mb),
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
    case 'map': {
      if (raw.reduce_tasks !== undefined)
        throw badRequest('reduce stages are not supported yet; the module runs its map stage only');
      const module = checkUserModule(raw.module, ['map']);
      if (raw.input !== undefined) {
        if (raw.data !== undefined) throw badRequest('give either config.data or config.input, not both');
        const input = inputOf(raw.input);
        const task_count = integer(raw, 'task_count', 1, MAX_TASK_COUNT, 1);
        return { operation: 'map', module, input, task_count, ...limits };
      }
      if (!Array.isArray(raw.data) || raw.data.length === 0) {
        throw badRequest(
          'config.data must be a non-empty array of records (or config.input a file) for the module to map',
        );
      }
      const task_count = integer(raw, 'task_count', 1, Math.min(raw.data.length, MAX_TASK_COUNT), 1);
      return { operation: 'map', module, data: raw.data as unknown[], task_count, ...limits };
    }
  }
}

/**
 * An input file the workers read themselves, split into `task_count` byte ranges on record
 * boundaries. The path must be one every worker sees (a shared or replicated filesystem).
 */
function inputOf(raw: unknown): InputSpec {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badRequest('config.input must be an object like {"path": "/data/in.txt", "format": "lines"}');
  }
  const { path, url, format } = raw as Record<string, unknown>;
  if (url !== undefined) throw badRequest('config.input.url is not supported yet; use config.input.path');
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw badRequest('config.input.path must be an absolute path that every worker can read');
  }
  const f = format ?? 'lines';
  if (typeof f !== 'string' || !(INPUT_FORMATS as readonly string[]).includes(f)) {
    throw badRequest(`config.input.format must be one of: ${INPUT_FORMATS.join(', ')} (csv is not supported yet)`);
  }
  return { path, format: f as InputFormat };
}

import { badRequest } from '../common/errors.js';
import { mulberry32 } from '../common/mulberry32.js';
import type { DataOperation } from '../protocol/task-spec.js';

export type Emit = (key: unknown, value: unknown) => void;

/** The functions of a job's stages: the user's module exports, or a built-in's. */
export interface JobFunctions {
  map(record: unknown, emit: Emit): unknown;
  combine?(key: unknown, values: unknown[], emit: Emit): unknown;
  reduce?(key: unknown, values: unknown[], emit: Emit): unknown;
  /** A whole split at once, for built-ins that combine inside the map (wordcount): it emits each key once, so no combine runs after it. */
  mapSplit?(records: readonly unknown[], emit: Emit): void;
}

/** A job Weir ships, run on the same map → shuffle → reduce machinery as user code. */
export interface BuiltinJob {
  /** Checks and normalizes the job's own fields at submission (messages name the field). */
  params(raw: Record<string, unknown>): Record<string, unknown>;
  /** The config fields `params` reads (any other field of the job's own is refused). */
  fields: readonly string[];
  functions(params: Record<string, unknown>): JobFunctions;
  combine: boolean;
  reduce: boolean;
  /** false: without input, each map task gets one record, its own index (pi). */
  needsInput: boolean;
  partitioner?: 'range';
  results?: 'values';
}

const tokens = (line: unknown): string[] =>
  String(line)
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w !== '');

const sumValues = (key: unknown, values: unknown[], emit: Emit) => {
  let n = 0;
  for (const v of values) n += v as number;
  emit(key, n);
};

/** Sums `[sum, count]` pairs, the partial aggregate of sum and avg. */
const sumPairs = (values: unknown[]): [number, number] => {
  let s = 0;
  let c = 0;
  for (const v of values) {
    const [vs, vc] = v as [number, number];
    s += vs;
    c += vc;
  }
  return [s, c];
};

function fieldParam(raw: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const v = raw[name];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') {
    throw badRequest(`config.${name} must name a field of the records (a non-empty string)`);
  }
  return v;
}

const field = (record: unknown, name: string): unknown =>
  record !== null && typeof record === 'object' ? (record as Record<string, unknown>)[name] : undefined;

function aggregate(kind: 'sum' | 'avg'): BuiltinJob {
  return {
    fields: ['field', 'group_by'],
    params: (raw) => {
      const f = fieldParam(raw, 'field', true);
      const g = fieldParam(raw, 'group_by', false);
      return { field: f, ...(g ? { group_by: g } : {}) };
    },
    functions: (p) => ({
      map(record, emit) {
        const v = Number(field(record, p.field as string));
        if (!Number.isFinite(v)) return; // a record without the field, or not a number, is skipped
        emit(p.group_by ? (field(record, p.group_by as string) ?? null) : null, [v, 1]);
      },
      combine: (key, values, emit) => emit(key, sumPairs(values)),
      reduce(key, values, emit) {
        const [s, c] = sumPairs(values);
        emit(key, kind === 'sum' ? s : s / c);
      },
    }),
    combine: true,
    reduce: true,
    needsInput: true,
  };
}

export const BUILTIN_JOBS: Record<Exclude<DataOperation, 'map'>, BuiltinJob> = {
  wordcount: {
    fields: [],
    params: () => ({}),
    functions: () => ({
      map(record, emit) {
        for (const w of tokens(record)) emit(w, 1);
      },
      mapSplit(records, emit) {
        const counts = new Map<string, number>();
        for (const r of records) for (const w of tokens(r)) counts.set(w, (counts.get(w) ?? 0) + 1);
        for (const [w, n] of counts) emit(w, n);
      },
      combine: sumValues,
      reduce: sumValues,
    }),
    combine: true,
    reduce: true,
    needsInput: true,
  },
  grep: {
    // As Hadoop's Grep example: the count of every match of a regular expression.
    fields: ['pattern', 'flags'],
    params: (raw) => {
      if (typeof raw.pattern !== 'string' || raw.pattern === '') {
        throw badRequest('config.pattern must be a regular expression (a non-empty string)');
      }
      const flags = raw.flags ?? '';
      if (typeof flags !== 'string' || !/^[imsu]*$/.test(flags)) {
        throw badRequest('config.flags may hold only the regular expression flags i, m, s and u');
      }
      try {
        new RegExp(raw.pattern, flags);
      } catch (err) {
        throw badRequest(`config.pattern is not a valid regular expression: ${(err as Error).message}`);
      }
      return { pattern: raw.pattern, flags };
    },
    functions: (p) => {
      const re = new RegExp(p.pattern as string, `${p.flags as string}g`);
      return {
        map(record, emit) {
          for (const m of String(record).matchAll(re)) emit(m[0], 1);
        },
        combine: sumValues,
        reduce: sumValues,
      };
    },
    combine: true,
    reduce: true,
    needsInput: true,
  },
  sort: {
    // Total order: range partitions by sampled boundaries, each reduce sorts its own keys.
    fields: ['field'],
    params: (raw) => {
      const f = fieldParam(raw, 'field', false);
      return f ? { field: f } : {};
    },
    functions: (p) => ({
      map(record, emit) {
        // A line is its own key; its value is left out so the shuffle does not carry it twice.
        if (p.field) emit(field(record, p.field as string) ?? null, record);
        else emit(record, null);
      },
      reduce(key, values, emit) {
        for (const v of values) emit(key, v === null ? key : v);
      },
    }),
    combine: false,
    reduce: true,
    needsInput: true,
    partitioner: 'range',
    results: 'values',
  },
  sum: aggregate('sum'),
  avg: aggregate('avg'),
  pi: {
    fields: ['samples'],
    params: (raw) => {
      const s = raw.samples ?? 1_000_000;
      if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > 1_000_000_000) {
        throw badRequest(`config.samples must be an integer from 1 to 1000000000; got ${JSON.stringify(s)}`);
      }
      return { samples: s };
    },
    functions: (p) => ({
      map(record, emit) {
        const n = p.samples as number;
        // Seeded by the task: a re-run pi task draws the same points.
        const random = mulberry32(0x9e3779b9 ^ Number(record));
        let inside = 0;
        for (let i = 0; i < n; i++) {
          const x = random();
          const y = random();
          if (x * x + y * y <= 1) inside++;
        }
        emit('pi', [inside, n]);
      },
      combine: (key, values, emit) => emit(key, sumPairs(values)),
      reduce(key, values, emit) {
        const [inside, n] = sumPairs(values);
        emit(key, (4 * inside) / n);
      },
    }),
    combine: true,
    reduce: true,
    needsInput: false,
  },
};

import { badRequest } from '../common/errors.js';
import {
  AGGREGATES,
  BOLT_OPS,
  FILE_FORMATS,
  GROUPINGS,
  SPOUT_TYPES,
  WINDOW_TYPES,
  type BoltInput,
  type BoltSpec,
  type ComponentSpec,
  type SpoutSpec,
  type Topology,
  type WindowParams,
} from '../protocol/stream-job.js';

// `config.topology` of a streaming job, checked once at submission and returned as a
// trusted, fully defaulted structure; its types are in protocol/, since every worker running
// an instance receives it. Pure: no I/O.

export const SINK_OPS = ['collect', 'file', 'http'] as const;
/** The fields of every event a window bolt emits; a fields grouping downstream must use these. */
export const WINDOW_OUTPUT_FIELDS = ['key', 'window_start', 'window_end', 'value'] as const;

export const MAX_PARALLELISM = 256;
/** Components (spouts and bolts) of one topology, and their instances in all. */
export const MAX_COMPONENTS = 256;
export const MAX_INSTANCES = 4096;
/** Windows one event falls in (size_ms / slide_ms): each is a pane kept per key. */
export const MAX_WINDOWS_PER_EVENT = 1000;
export const MAX_WINDOW_MS = 86_400_000;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export type SinkOp = (typeof SINK_OPS)[number];

export const isSink = (bolt: BoltSpec): boolean => (SINK_OPS as readonly string[]).includes(bolt.op);

/** Every instance of every component, spouts first, bolts in topological order. */
export function instancesOf(topology: Topology): { component: string; index: number }[] {
  return [...topology.spouts, ...topology.bolts].flatMap((c) =>
    Array.from({ length: c.parallelism }, (_, index) => ({ component: c.id, index })),
  );
}

/** The edges leaving component `id`: each bolt that reads it, with how it reads it. */
export function consumersOf(topology: Topology, id: string): { bolt: BoltSpec; input: BoltInput }[] {
  return topology.bolts.flatMap((bolt) => bolt.inputs.filter((i) => i.from === id).map((input) => ({ bolt, input })));
}

type Raw = Record<string, unknown>;

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const oneOf = <T extends string>(list: readonly T[], v: unknown): v is T =>
  typeof v === 'string' && (list as readonly string[]).includes(v);

/** Builds errors that say where the fault is: `config.topology bolt 'count': window.size_ms …`. */
class Place {
  constructor(readonly where: string) {}

  fault(message: string): Error {
    return badRequest(`config.topology${this.where ? ` ${this.where}` : ''}: ${message}`);
  }

  /** Typos such as `paralelism` would otherwise silently become defaults. */
  onlyKeys(raw: Raw, allowed: readonly string[], prefix = ''): void {
    const unknown = Object.keys(raw).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) {
      throw this.fault(
        `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${prefix}${k}'`).join(', ')}; ` +
          `allowed here: ${allowed.map((k) => prefix + k).join(', ')}`,
      );
    }
  }

  integer(raw: Raw, field: string, min: number, max: number, fallback?: number, prefix = ''): number {
    const v = raw[field];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw this.fault(`${prefix}${field} must be an integer from ${min} to ${max}; got ${show(v)}`);
    }
    return v;
  }

  string(raw: Raw, field: string, prefix = ''): string {
    const v = raw[field];
    if (typeof v !== 'string' || v === '')
      throw this.fault(`${prefix}${field} must be a non-empty string; got ${show(v)}`);
    return v;
  }

  optionalString(raw: Raw, field: string, prefix = ''): string | undefined {
    return raw[field] === undefined ? undefined : this.string(raw, field, prefix);
  }

  choice<T extends string>(raw: Raw, field: string, list: readonly T[], fallback?: T, prefix = ''): T {
    const v = raw[field] ?? fallback;
    if (!oneOf(list, v)) throw this.fault(`${prefix}${field} must be one of: ${list.join(', ')}; got ${show(v)}`);
    return v;
  }

  absolutePath(raw: Raw): string {
    const path = raw.path;
    if (typeof path !== 'string' || !path.startsWith('/')) {
      throw this.fault(`path must be an absolute path every worker can reach; got ${show(path)}`);
    }
    return path;
  }
}

/**
 * Checks `config.topology` and fills its defaults. Refuses, naming the component and field,
 * anything the runtime could not run: unknown types and ops, bad parameters, duplicate ids,
 * inputs from unknown components or from sinks, bolts without inputs, spouts with inputs,
 * and cycles. When `moduleExports` (the names the job's module exports) is given, every
 * `fn` must be one of them.
 */
export function normalizeTopology(raw: unknown, moduleExports?: readonly string[]): Topology {
  const top = new Place('');
  if (!isObject(raw)) {
    throw badRequest('config.topology must be an object like {"spouts": [...], "bolts": [...]}');
  }
  top.onlyKeys(raw, ['spouts', 'bolts']);
  if (!Array.isArray(raw.spouts) || raw.spouts.length === 0) {
    throw badRequest('config.topology.spouts must be a non-empty array; a topology needs at least one spout');
  }
  if (raw.bolts !== undefined && !Array.isArray(raw.bolts)) {
    throw badRequest('config.topology.bolts must be an array');
  }
  const rawBolts: unknown[] = raw.bolts ?? [];
  if (raw.spouts.length + rawBolts.length > MAX_COMPONENTS) {
    throw badRequest(
      `config.topology has ${raw.spouts.length + rawBolts.length} spouts and bolts; at most ${MAX_COMPONENTS}: split it into several jobs`,
    );
  }

  const seen = new Set<string>();
  const idOf = (c: unknown, where: string): string => {
    if (!isObject(c)) throw badRequest(`config.topology.${where} must be an object`);
    if (typeof c.id !== 'string' || !ID.test(c.id)) {
      throw badRequest(`config.topology.${where}.id must match ${ID.source}; got ${show(c.id)}`);
    }
    if (seen.has(c.id)) {
      throw badRequest(`config.topology: id '${c.id}' is used twice; ids must be unique across spouts and bolts`);
    }
    seen.add(c.id);
    return c.id;
  };
  const spoutIds = raw.spouts.map((s, i) => idOf(s, `spouts[${i}]`));
  const boltIds = rawBolts.map((b, i) => idOf(b, `bolts[${i}]`));

  const spouts = (raw.spouts as Raw[]).map((s, i) => spoutOf(s, new Place(`spout '${spoutIds[i]}'`)));
  const bolts = (rawBolts as Raw[]).map((b, i) => boltOf(b, new Place(`bolt '${boltIds[i]}'`), moduleExports));

  const byId = new Map<string, ComponentSpec>([...spouts, ...bolts].map((c) => [c.id, c]));
  for (const bolt of bolts) checkInputs(bolt, byId);
  // Each instance is a task holding a worker's slot for as long as the job runs.
  const instances = [...spouts, ...bolts].reduce((n, c) => n + c.parallelism, 0);
  if (instances > MAX_INSTANCES) {
    throw badRequest(
      `config.topology has ${instances} instances (the sum of its parallelisms); at most ${MAX_INSTANCES}: lower some parallelism`,
    );
  }
  return { spouts, bolts: topologicalOrder(bolts) };
}

function spoutOf(raw: Raw, at: Place): SpoutSpec {
  if (raw.inputs !== undefined) throw at.fault('a spout cannot have inputs; events enter the topology at spouts');
  const type = at.choice(raw, 'type', SPOUT_TYPES);
  const id = raw.id as string;
  const parallelism = at.integer(raw, 'parallelism', 1, MAX_PARALLELISM, 1);
  const common = ['id', 'type', 'parallelism'];
  switch (type) {
    case 'http':
      at.onlyKeys(raw, common);
      return { id, parallelism, type };
    case 'generator': {
      at.onlyKeys(raw, [...common, 'rate', 'count', 'keys']);
      const rate = raw.rate;
      if (rate !== undefined && (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0)) {
        throw at.fault(`rate must be a positive number of events per second (omit it for no limit); got ${show(rate)}`);
      }
      const count = raw.count === undefined ? undefined : at.integer(raw, 'count', 1, Number.MAX_SAFE_INTEGER);
      const keys = at.integer(raw, 'keys', 1, 1_000_000_000, 1);
      return {
        id,
        parallelism,
        type,
        ...(rate !== undefined ? { rate } : {}),
        ...(count !== undefined ? { count } : {}),
        keys,
      };
    }
    case 'file': {
      at.onlyKeys(raw, [...common, 'path', 'offset', 'format']);
      // Several readers of one growing file would each need a byte range that does not
      // exist yet; one reader keeps the file's order and its offset is the whole checkpoint.
      if (parallelism !== 1)
        throw at.fault(`a file spout reads its file in order; parallelism must be 1, got ${parallelism}`);
      return {
        id,
        parallelism,
        type,
        path: at.absolutePath(raw),
        offset: at.integer(raw, 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
        format: at.choice(raw, 'format', FILE_FORMATS, 'lines'),
      };
    }
  }
}

function boltOf(raw: Raw, at: Place, moduleExports: readonly string[] | undefined): BoltSpec {
  const op = at.choice(raw, 'op', BOLT_OPS);
  const id = raw.id as string;
  const parallelism = at.integer(raw, 'parallelism', 1, MAX_PARALLELISM, 1);
  const inputs = inputsOf(raw.inputs, at);
  const base = { id, parallelism, inputs };
  const common = ['id', 'op', 'parallelism', 'inputs'];
  switch (op) {
    case 'map':
    case 'filter':
    case 'flat_map': {
      at.onlyKeys(raw, [...common, 'fn']);
      const fn = at.string(raw, 'fn');
      if (moduleExports && !moduleExports.includes(fn)) {
        throw at.fault(
          `fn '${fn}' is not an export of config.module; it exports ${
            moduleExports.length ? moduleExports.map((e) => `'${e}'`).join(', ') : 'nothing'
          }`,
        );
      }
      return { ...base, op, fn };
    }
    case 'window':
      at.onlyKeys(raw, [...common, 'aggregate', 'field', 'key', 'window']);
      return { ...base, op, ...windowOf(raw, at) };
    case 'collect':
      at.onlyKeys(raw, common);
      return { ...base, op };
    case 'file':
      at.onlyKeys(raw, [...common, 'path']);
      return { ...base, op, path: at.absolutePath(raw) };
    case 'http': {
      at.onlyKeys(raw, [...common, 'url']);
      const url = raw.url;
      let ok = false;
      try {
        ok = typeof url === 'string' && ['http:', 'https:'].includes(new URL(url).protocol);
      } catch {
        ok = false;
      }
      if (!ok) throw at.fault(`url must be an http:// or https:// URL; got ${show(url)}`);
      return { ...base, op, url: url as string };
    }
  }
}

function inputsOf(raw: unknown, at: Place): BoltInput[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw at.fault('inputs must be a non-empty array like [{"from": "<component id>", "grouping": "shuffle"}]');
  }
  return raw.map((input: unknown, i): BoltInput => {
    const prefix = `inputs[${i}].`;
    if (!isObject(input)) throw at.fault(`${prefix.slice(0, -1)} must be an object`);
    at.onlyKeys(input, ['from', 'grouping', 'fields'], prefix);
    const from = at.string(input, 'from', prefix);
    const grouping = at.choice(input, 'grouping', GROUPINGS, undefined, prefix);
    if (grouping !== 'fields') {
      if (input.fields !== undefined) throw at.fault(`${prefix}fields applies only to the fields grouping`);
      return { from, grouping };
    }
    const fields = input.fields;
    if (!Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === 'string' && f !== '')) {
      throw at.fault(`${prefix}fields must be a non-empty array of field names for the fields grouping`);
    }
    return { from, grouping, fields: [...(fields as string[])] };
  });
}

function windowOf(raw: Raw, at: Place): WindowParams {
  const aggregate = at.choice(raw, 'aggregate', AGGREGATES);
  if (aggregate === 'count' && raw.field !== undefined) {
    throw at.fault('field does not apply to aggregate count, which counts events; remove it');
  }
  const field = aggregate === 'count' ? undefined : at.string(raw, 'field');
  const key = at.optionalString(raw, 'key');
  const w = raw.window;
  if (!isObject(w)) throw at.fault('window must be an object like {"type": "tumbling", "size_ms": 1000}');
  at.onlyKeys(w, ['type', 'size_ms', 'slide_ms', 'time_field', 'allowed_lateness_ms'], 'window.');
  const type = at.choice(w, 'type', WINDOW_TYPES, undefined, 'window.');
  const size_ms = at.integer(w, 'size_ms', 1, MAX_WINDOW_MS, undefined, 'window.');
  let slide_ms = size_ms;
  if (type === 'sliding') {
    slide_ms = at.integer(w, 'slide_ms', 1, size_ms, undefined, 'window.');
    // Divisibility makes every event fall in exactly size/slide windows and keeps window
    // boundaries aligned across keys, instances and restarts.
    if (size_ms % slide_ms !== 0)
      throw at.fault(`window.slide_ms (${slide_ms}) must divide window.size_ms (${size_ms})`);
    // Each event is added to every window it falls in, a pane per key each.
    if (size_ms / slide_ms > MAX_WINDOWS_PER_EVENT)
      throw at.fault(
        `window.size_ms / window.slide_ms is ${size_ms / slide_ms}: each event would fall in that many windows; at most ${MAX_WINDOWS_PER_EVENT} (make slide_ms at least ${Math.ceil(size_ms / MAX_WINDOWS_PER_EVENT)})`,
      );
  } else if (w.slide_ms !== undefined) {
    throw at.fault('window.slide_ms applies only to sliding windows');
  }
  const time_field = at.optionalString(w, 'time_field', 'window.');
  if (time_field === undefined && w.allowed_lateness_ms !== undefined) {
    throw at.fault('window.allowed_lateness_ms needs window.time_field: processing-time windows have no late events');
  }
  const allowed_lateness_ms = at.integer(w, 'allowed_lateness_ms', 0, MAX_WINDOW_MS, 0, 'window.');
  return {
    aggregate,
    ...(field !== undefined ? { field } : {}),
    ...(key !== undefined ? { key } : {}),
    window: { type, size_ms, slide_ms, ...(time_field !== undefined ? { time_field } : {}), allowed_lateness_ms },
  };
}

function checkInputs(bolt: BoltSpec, byId: Map<string, ComponentSpec>): void {
  const at = new Place(`bolt '${bolt.id}'`);
  const seen = new Set<string>();
  bolt.inputs.forEach((input, i) => {
    const source = byId.get(input.from);
    if (!source) {
      throw at.fault(
        `inputs[${i}].from '${input.from}' is not a spout or bolt of this topology (known: ${[...byId.keys()].join(', ')})`,
      );
    }
    if (seen.has(input.from)) throw at.fault(`inputs[${i}] reads '${input.from}' a second time`);
    seen.add(input.from);
    if ('op' in source && isSink(source)) {
      throw at.fault(`inputs[${i}].from '${input.from}' is a ${source.op} sink, which emits nothing`);
    }
    if ('op' in source && source.op === 'window' && input.grouping === 'fields') {
      const bad = input.fields.find((f) => !(WINDOW_OUTPUT_FIELDS as readonly string[]).includes(f));
      if (bad !== undefined) {
        throw at.fault(
          `inputs[${i}].fields names '${bad}', but window '${input.from}' emits only ${WINDOW_OUTPUT_FIELDS.join(', ')}`,
        );
      }
    }
    // A key counted in two instances gives two partial rows that replace each other in
    // `collect`; so each key must reach exactly one instance.
    if (bolt.op === 'window' && bolt.parallelism > 1) {
      const keyed = bolt.key !== undefined && input.grouping === 'fields' && sameFields(input.fields, [bolt.key]);
      if (!keyed && input.grouping !== 'global') {
        throw at.fault(
          `a window with parallelism ${bolt.parallelism} must receive inputs[${i}] ('${input.from}') by ` +
            (bolt.key !== undefined ? `fields grouping on ["${bolt.key}"] or ` : '') +
            `global grouping, so each key is aggregated in one instance; got ${input.grouping}` +
            (input.grouping === 'fields' ? ` on ${JSON.stringify(input.fields)}` : ''),
        );
      }
    }
  });
}

const sameFields = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((f, i) => f === b[i]);

/**
 * Orders bolts so each comes after everything it reads, keeping the given order among
 * independent bolts (so the result is the same for the same config). What cannot be placed
 * sits on or behind a cycle, which is reported as a path in the direction events flow.
 */
function topologicalOrder(bolts: BoltSpec[]): BoltSpec[] {
  const boltIds = new Set(bolts.map((b) => b.id));
  const placed = new Set<string>();
  const ordered: BoltSpec[] = [];
  let rest = bolts;
  while (rest.length > 0) {
    const ready = rest.filter((b) => b.inputs.every((i) => !boltIds.has(i.from) || placed.has(i.from)));
    if (ready.length === 0) throw badRequest(`config.topology has a cycle: ${cyclePath(rest, placed)}`);
    for (const b of ready) {
      placed.add(b.id);
      ordered.push(b);
    }
    rest = rest.filter((b) => !placed.has(b.id));
  }
  return ordered;
}

/** Every unplaced bolt reads some unplaced bolt, so walking upstream must revisit one. */
function cyclePath(unplaced: BoltSpec[], placed: Set<string>): string {
  const byId = new Map(unplaced.map((b) => [b.id, b]));
  const walk: string[] = [];
  let at = unplaced[0]!;
  while (!walk.includes(at.id)) {
    walk.push(at.id);
    const upstream = at.inputs.find((i) => byId.has(i.from) && !placed.has(i.from))!;
    at = byId.get(upstream.from)!;
  }
  const cycle = walk.slice(walk.indexOf(at.id)).reverse();
  // Start the path at the member declared first, so the message does not depend on the walk.
  const declared = unplaced.map((b) => b.id);
  const first = cycle.indexOf(declared.find((id) => cycle.includes(id))!);
  const path = [...cycle.slice(first), ...cycle.slice(0, first)];
  return [...path, path[0]].join(' -> ');
}

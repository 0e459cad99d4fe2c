// A streaming job's user functions run in executor processes, like batch tasks: this is the
// message a bolt sends ("apply function F to these batches of events") and the executor's
// side of it. The module travels by key: an executor that has not seen it yet says so, and
// the bolt sends it once more with its source (a module may be 1 MiB; batches are many).
import { applyFn, type ApplyOutcome, type FnOp, type StreamEvent } from '../../stream/apply-fn.js';
import { loadUserModule } from '../tasks/load-module.js';
import { namedError, permissionMessage } from '../executor-rules.js';
import type { TaskSpec } from '../../protocol/task-spec.js';

export interface StreamApplySpec {
  operation: 'stream_apply';
  /** The streaming job whose code this is: an executor that ran it runs no other job's. */
  job_id: string;
  /** A digest of the module's source: what the executor caches its loaded module by. */
  module_key: string;
  /** The source, sent only after an executor answered MODULE_UNKNOWN. */
  module?: string;
  /** The export to call; absent: only load the module (an instance checks it loads at start). */
  fn?: string;
  op: FnOp;
  batches: StreamEvent[][];
  /** config.env: the function's whole process.env. */
  user_env?: Record<string, string>;
}

/**
 * What one apply message may hand back (its input is at most a bolt's batches, 4,096 events):
 * the worker parses, checks and routes it in one turn of its event loop, which a function
 * returning millions of events held for seconds — its heartbeats with it.
 */
export const MAX_APPLY_OUTPUT_EVENTS = 65_536;
export const MAX_APPLY_OUTPUT_CHARS = 16 * 1024 * 1024;
/** An outcome over those bounds: the worker applies the batches again in halves, down to one event. */
export const OUTPUT_LIMIT = 'output_limit';

/** The executor does not hold the module yet: send it again with `module`. */
export const MODULE_UNKNOWN = 'module_unknown';

/** Modules an executor keeps loaded, by key (a worker runs few streaming jobs at once). */
const MAX_MODULES = 32;
const modules = new Map<string, Promise<Record<string, unknown>>>();

function moduleOf(spec: StreamApplySpec): Promise<Record<string, unknown>> {
  let m = modules.get(spec.module_key);
  if (!m) {
    if (spec.module === undefined) throw namedError(MODULE_UNKNOWN, `module ${spec.module_key} is not loaded here`);
    m = loadUserModule(spec.module);
    // A module that failed to load is tried again by the next message that brings it.
    m.catch(() => modules.delete(spec.module_key));
    if (modules.size >= MAX_MODULES) modules.delete(modules.keys().next().value!);
    modules.set(spec.module_key, m);
  }
  return m;
}

/** Runs one apply message inside an executor; its answer is ApplyOutcome as JSON text. */
export async function runStreamApply(spec: StreamApplySpec): Promise<string> {
  const fns = await moduleOf(spec);
  if (spec.fn === undefined) return 'null';
  const f = fns[spec.fn];
  if (typeof f !== 'function') throw new TypeError(`the job's module has no function export '${spec.fn}'`);
  const outcome = await applyFn(
    f as (e: StreamEvent) => unknown,
    spec.op,
    spec.batches,
    (err) => permissionMessage(err) !== undefined,
  );
  // Said here, before it crosses to the worker; the worker checks again (this is user code's process).
  const refused = outputRefusal(spec.fn ?? '', spec.batches, outcome);
  if (refused) throw namedError(OUTPUT_LIMIT, refused);
  const json = outcomeJson(outcome);
  if (json.length > MAX_APPLY_OUTPUT_CHARS)
    throw namedError(OUTPUT_LIMIT, outputTooLarge(spec.fn ?? '', spec.batches, json.length));
  return json;
}

/** Why an outcome has too many events to take at once, or undefined. */
export function outputRefusal(fn: string, batches: StreamEvent[][], outcome: ApplyOutcome): string | undefined {
  const outputs = outcome.op === 'filter' ? 0 : outcome.out.reduce((n, b) => n + b.length, 0);
  if (outputs <= MAX_APPLY_OUTPUT_EVENTS) return undefined;
  const inputs = batches.reduce((n, b) => n + b.length, 0);
  return `'${fn}' returned ${outputs} events for ${inputs}; at most ${MAX_APPLY_OUTPUT_EVENTS} for one event of input: emit fewer per event`;
}

export function outputTooLarge(fn: string, batches: StreamEvent[][], chars: number): string {
  const inputs = batches.reduce((n, b) => n + b.length, 0);
  return `'${fn}' returned ${(chars / 1048576).toFixed(1)} MiB of events for ${inputs}; at most ${MAX_APPLY_OUTPUT_CHARS / 1048576} MiB for one event of input: emit smaller events`;
}

/**
 * The outcome as JSON. An event with no JSON (a BigInt, a cycle) cannot leave the process:
 * it is dropped and counted, like an event the function threw on; the rest go on.
 */
function outcomeJson(o: ApplyOutcome): string {
  try {
    return JSON.stringify(o);
  } catch {
    if (o.op === 'filter') throw new TypeError('a filter outcome has no JSON'); // numbers only: unreachable
    let errors = o.errors;
    const out = o.out.map((events) =>
      events.filter((e) => {
        try {
          JSON.stringify(e);
          return true;
        } catch {
          errors++;
          return false;
        }
      }),
    );
    return JSON.stringify({ ...o, out, errors });
  }
}

/** Everything an executor process runs: a task, or a bolt's batches. */
export type ExecutorSpec = TaskSpec | StreamApplySpec;

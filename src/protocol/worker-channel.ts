import { Type } from '@sinclair/typebox';
import { checkedDecoder, type Decoded } from './checked-decode.js';
import { jsonNestsDeeper, MAX_NESTING } from './nesting.js';
import { newCodec } from './msgpack.js';
import { TaskErrorSchema, TaskRefSchema, WireId, type TaskError, type TaskRef } from './task-ref.js';
import type { PlacedInstance, TaskSpec } from './task-spec.js';
import type { LogLine } from './task-log.js';
import { LogLinesSchema } from './task-log-schema.js';
import { TokenFrameSchema, type TokenFrame } from './token-frame.js';

/**
 * Messages on the persistent channel between the leader and a worker (a WebSocket carrying
 * msgpack frames). Assignments and cancellations flow down; reports flow up and are
 * acknowledged only once their outcome is committed, so a worker re-sends every report it
 * holds until it sees the ack — across master restarts and failovers.
 */
export interface TaskAssignment extends TaskRef {
  spec: TaskSpec;
  timeout_ms: number;
  memory_mb: number;
}

/**
 * `logs`: what the attempt printed (task-log.ts), absent when nothing.
 * `result_json`: the task's results, a JSON array as the task thread wrote it; `ms`: how long
 * it ran here, from assignment received to result.
 */
export type TaskReport = TaskRef & { logs?: LogLine[] } & (
    { ok: true; result_json: string; ms?: number } | { ok: false; error: TaskError }
  );

export type ToWorker =
  | { t: 'assign'; tasks: TaskAssignment[] }
  | { t: 'cancel'; tasks: TaskRef[] }
  | { t: 'ack'; tasks: TaskRef[] }
  /** These jobs are over: what the worker keeps for them (map outputs) may go. */
  | { t: 'forget'; job_ids: string[] }
  /** Where a streaming job's instances run now. */
  | { t: 'placement'; job_id: string; instances: PlacedInstance[] };

export type ToMaster =
  /**
   * First frame after connecting: what the worker runs and what it still has to report;
   * `holds`: jobs it keeps map outputs of (the leader answers with `forget` for those over).
   */
  | { t: 'hello'; running: TaskRef[]; unacked: TaskRef[]; holds?: string[] }
  /**
   * `resent`: reports sent before (after a reconnect, or unacknowledged for long); they may
   * be committed already, so the leader does not count their slots free again.
   */
  | { t: 'report'; reports: TaskReport[]; resent?: true }
  /**
   * These assignments have begun here (sent for those still running a moment after they were
   * handed to an executor):
   * were this worker lost now, the loss would count against them (rules.ts, rules 4).
   */
  | { t: 'began'; tasks: TaskRef[] }
  | { t: 'drain' }
  | TokenFrame;

/** Jobs a hello names at most as holding map outputs of (the rest wait for the next hello). */
export const MAX_HELD_JOBS = 10_000;

/** Close codes a master uses on the channel. */
export const CLOSE_UNKNOWN_WORKER = 4404;
export const CLOSE_REPLACED = 4409;
export const CLOSE_NOT_LEADER = 4503;

const packr = newCodec();

export const encode = (msg: ToWorker | ToMaster): Buffer => packr.pack(msg);

const Refs = Type.Array(TaskRefSchema);
const Logs = Type.Object({ logs: Type.Optional(LogLinesSchema) });
const ReportSchema = Type.Union([
  Type.Intersect([
    TaskRefSchema,
    Logs,
    Type.Object({ ok: Type.Literal(true), result_json: Type.String(), ms: Type.Optional(Type.Number({ minimum: 0 })) }),
  ]),
  Type.Intersect([TaskRefSchema, Logs, Type.Object({ ok: Type.Literal(false), error: TaskErrorSchema })]),
]);

/** What a worker may send its master: every field a command is made of, checked. */
const ToMasterSchema = Type.Union([
  Type.Object({
    t: Type.Literal('hello'),
    running: Refs,
    unacked: Refs,
    holds: Type.Optional(Type.Array(WireId, { maxItems: MAX_HELD_JOBS })),
  }),
  Type.Object({
    t: Type.Literal('report'),
    reports: Type.Array(ReportSchema),
    resent: Type.Optional(Type.Literal(true)),
  }),
  Type.Object({ t: Type.Literal('began'), tasks: Refs }),
  Type.Object({ t: Type.Literal('drain') }),
  TokenFrameSchema,
]);

/**
 * What the leader sends a worker. A task's spec is checked by what runs it (a bad one fails
 * that task, not the worker), so here it need only be an object.
 */
const ToWorkerSchema = Type.Union([
  Type.Object({
    t: Type.Literal('assign'),
    tasks: Type.Array(
      Type.Intersect([
        TaskRefSchema,
        Type.Object({
          spec: Type.Object({ operation: Type.String() }),
          // 0 for a stream instance: it runs until its job ends, within the worker's memory.
          timeout_ms: Type.Integer({ minimum: 0 }),
          memory_mb: Type.Integer({ minimum: 0 }),
        }),
      ]),
    ),
  }),
  Type.Object({ t: Type.Union([Type.Literal('cancel'), Type.Literal('ack')]), tasks: Refs }),
  Type.Object({ t: Type.Literal('forget'), job_ids: Type.Array(WireId) }),
  Type.Object({
    t: Type.Literal('placement'),
    job_id: WireId,
    instances: Type.Array(
      Type.Object({ idx: Type.Integer({ minimum: 0 }), attempt: Type.Integer({ minimum: 0 }), address: Type.String() }),
    ),
  }),
]);

const decodeChecked = checkedDecoder<ToMaster>(packr, ToMasterSchema);

const isJsonArray = (text: string): boolean => {
  try {
    return Array.isArray(JSON.parse(text));
  } catch {
    return false;
  }
};

/**
 * A frame from a worker, checked; a task's results must be the JSON array the masters store
 * as it is, and parse whenever they serve it.
 */
export function decodeToMaster(bytes: Buffer): Decoded<ToMaster> {
  const d = decodeChecked(bytes);
  if (!d.ok || d.value.t !== 'report') return d;
  for (const [i, r] of d.value.reports.entries()) {
    if (!r.ok) continue;
    // Before it is parsed (JSON.parse recurses), and before apply writes its rows out again.
    if (jsonNestsDeeper(r.result_json, MAX_NESTING + 1))
      return {
        ok: false,
        error: `/reports/${i}/result_json: its results nest arrays and objects more than ${MAX_NESTING} deep`,
      };
    if (!isJsonArray(r.result_json)) return { ok: false, error: `/reports/${i}/result_json: not a JSON array` };
  }
  return d;
}
export const decodeToWorker = checkedDecoder<ToWorker>(packr, ToWorkerSchema);

import { newCodec } from './msgpack.js';
import type { TaskError, TaskRef } from './task-ref.js';
import type { PlacedInstance, TaskSpec } from './task-spec.js';

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
 * `result_json`: the task's results, a JSON array as the task thread wrote it; `ms`: how long
 * it ran here, from assignment received to result.
 */
export type TaskReport = TaskRef & ({ ok: true; result_json: string; ms?: number } | { ok: false; error: TaskError });

export type ToWorker =
  | { t: 'assign'; tasks: TaskAssignment[] }
  | { t: 'cancel'; tasks: TaskRef[] }
  | { t: 'ack'; tasks: TaskRef[] }
  /** These jobs are over: what the worker keeps for them (map outputs) may go. */
  | { t: 'forget'; job_ids: string[] }
  /** Where a streaming job's instances run now. */
  | { t: 'placement'; job_id: string; instances: PlacedInstance[] };

export type ToMaster =
  /** First frame after connecting: what the worker runs and what it still has to report. */
  | { t: 'hello'; running: TaskRef[]; unacked: TaskRef[] }
  /**
   * `resent`: reports sent before (after a reconnect, or unacknowledged for long); they may
   * be committed already, so the leader does not count their slots free again.
   */
  | { t: 'report'; reports: TaskReport[]; resent?: true }
  | { t: 'drain' };

/** Close codes a master uses on the channel. */
export const CLOSE_UNKNOWN_WORKER = 4404;
export const CLOSE_REPLACED = 4409;
export const CLOSE_NOT_LEADER = 4503;

const packr = newCodec();

export const encode = (msg: ToWorker | ToMaster): Buffer => packr.pack(msg);
export const decode = <T extends ToWorker | ToMaster>(data: Buffer): T => packr.unpack(data) as T;

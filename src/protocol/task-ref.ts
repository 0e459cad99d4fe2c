import { Type } from '@sinclair/typebox';

/** One attempt of one task, as the worker channel, the log's commands and the state database name it. */
export interface TaskRef {
  job_id: string;
  idx: number;
  attempt: number;
}

export interface TaskError {
  message: string;
  stack?: string;
  name?: string;
  /** A reduce task could not fetch this map output: the map task re-runs (lineage). */
  fetch_failed?: { idx: number; attempt: number };
}

export const taskKey = (t: TaskRef): string => `${t.job_id}:${t.idx}:${t.attempt}`;

/** An id on the wire: short, and safe in a URL path and a file name. */
export const WireId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export const TaskRefSchema = Type.Object({
  job_id: WireId,
  idx: Count,
  attempt: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
});

export const TaskErrorSchema = Type.Object({
  message: Type.String(),
  stack: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  fetch_failed: Type.Optional(Type.Object({ idx: Count, attempt: Count })),
});

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

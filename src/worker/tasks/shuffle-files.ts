import { join } from 'node:path';

/**
 * Where a map task's output partitions live on its worker's disk, and the URL other
 * workers fetch them from. One directory per task attempt, so a re-run never mixes with
 * the output of an earlier attempt.
 */
export const mapOutputDir = (root: string, jobId: string, idx: number, attempt: number): string =>
  join(root, jobId, `${idx}.${attempt}`);

export const partitionFile = (dir: string, partition: number): string => join(dir, `${partition}.bin`);

export const shuffleUrl = (
  scheme: 'http' | 'https',
  address: string,
  jobId: string,
  idx: number,
  attempt: number,
  partition: number,
): string => `${scheme}://${address}/api/shuffle/${jobId}/${idx}.${attempt}/${partition}`;

/** A reduce task could not read a map output: the map task must run again (lineage). */
export class FetchFailedError extends Error {
  constructor(
    readonly mapIdx: number,
    readonly mapAttempt: number,
    detail: string,
  ) {
    super(`fetch failed: map task ${mapIdx} attempt ${mapAttempt}: ${detail}`);
    this.name = 'FetchFailedError';
  }
}

/** Recovers which map output was lost from a FetchFailedError that crossed a thread boundary. */
export function fetchFailureOf(err: { name?: string; message: string }): { idx: number; attempt: number } | undefined {
  if (err.name !== 'FetchFailedError') return undefined;
  const m = /^fetch failed: map task (\d+) attempt (\d+):/.exec(err.message);
  return m ? { idx: Number(m[1]), attempt: Number(m[2]) } : undefined;
}

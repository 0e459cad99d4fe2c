/** Backoff before the n-th retry of a task (n ≥ 1): 200 ms, 400 ms, 800 ms … capped at 10 s. */
export function retryBackoffMs(failures: number): number {
  return Math.min(200 * 2 ** Math.max(0, failures - 1), 10_000);
}

/** Whether a task that has failed `failures` times (this one included) may run again. */
export function mayRetry(failures: number, maxRetries: number): boolean {
  return failures <= maxRetries;
}

/** Failures no retry can mend: a task refused a path or a right by its worker. */
export const isFinalFailure = (error: { name?: string }): boolean => error.name === 'permission_denied';

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

/** The name of the error a task fails with once it has lost MAX_WORKER_LOSSES workers (rules.ts). */
export const WORKER_LOST = 'worker_lost';

/** A task's failure for the workers lost while it ran: how many, the last one and why. */
export function workerLostError(losses: number, workerId: string, reason: string): { name: string; message: string } {
  return {
    name: WORKER_LOST,
    message:
      `${WORKER_LOST}: ${losses} workers were lost while they ran this task (the last, ${workerId}: ${reason}); ` +
      `it is not placed on another: look in its code for what could end a worker's process ` +
      `(memory the machine ran out of, a process or signal outside what tasks may use)`,
  };
}

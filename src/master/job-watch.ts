import { trace } from '../common/trace.js';

/**
 * Long-poll support: callers wait for a job to end, woken once an applied batch may have
 * ended it (or on timeout), instead of polling the database in a loop.
 */
export class JobWatch {
  private readonly waiters = new Map<string, Set<() => void>>();

  /** Resolves when `jobId` may have ended, or after `timeoutMs`. */
  wait(jobId: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(jobId);
      if (!set) this.waiters.set(jobId, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(jobId) === set) this.waiters.delete(jobId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      set.add(done);
    });
  }

  notify(jobId: string): void {
    trace(jobId, 'completion applied');
    const set = this.waiters.get(jobId);
    if (set) for (const done of [...set]) done();
  }

  close(): void {
    for (const jobId of [...this.waiters.keys()]) this.notify(jobId);
  }
}

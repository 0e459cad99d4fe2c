import { trace } from '../common/trace.js';
import type { Departure } from './client-gone.js';

/**
 * Long polls woken per turn of the event loop. One apply can end a job thousands of clients
 * wait on (or thousands of jobs a client each): each woken poll builds its answer (the view, and
 * with `results_limit` a page of results) before the loop moves on, so a burst is answered a
 * slice a turn, with sockets read and timers (Raft's heartbeats among them) fired in between,
 * not in one run that holds the leader's loop for all of them.
 */
export const WAKE_PER_TURN = 64;

/**
 * Long-poll support: callers wait for a job to end, woken once an applied batch may have
 * ended it (or on timeout), instead of polling the database in a loop.
 */
export class JobWatch {
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Waiters to wake, in the order their jobs ended, beyond this turn's slice. */
  private due: (() => void)[] = [];
  private sliceQueued = false;

  /** Requests waiting now (for /metrics). */
  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  /**
   * Resolves when `jobId` may have ended, after `timeoutMs`, or once the client that asked
   * leaves (`gone`: nothing holds its place until the timeout then).
   */
  wait(jobId: string, timeoutMs: number, gone?: Departure): Promise<void> {
    return new Promise((resolve) => {
      if (gone?.left) return resolve();
      let set = this.waiters.get(jobId);
      if (!set) this.waiters.set(jobId, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        stopListening?.();
        set.delete(done);
        if (set.size === 0 && this.waiters.get(jobId) === set) this.waiters.delete(jobId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      // Told later, never from inside onLeave: a client gone already did not get this far.
      const stopListening = gone?.onLeave(done);
      set.add(done);
    });
  }

  notify(jobId: string): void {
    trace(jobId, 'completion applied');
    const set = this.waiters.get(jobId);
    if (!set) return;
    for (const done of set) this.due.push(done);
    if (!this.sliceQueued) this.wakeSlice();
  }

  /** Wakes a slice of the due waiters now, and the rest on later turns (see WAKE_PER_TURN). */
  private wakeSlice(): void {
    // A waiter already woken (by its timeout) is woken again harmlessly: done() is idempotent.
    const slice = this.due.length <= WAKE_PER_TURN ? this.due : this.due.slice(0, WAKE_PER_TURN);
    this.due = slice === this.due ? [] : this.due.slice(WAKE_PER_TURN);
    for (const done of slice) done();
    if (this.due.length === 0) return;
    this.sliceQueued = true;
    // Queued from a callback of this turn, an immediate runs on the next turn, after its I/O.
    setImmediate(() => {
      this.sliceQueued = false;
      this.wakeSlice();
    });
  }

  close(): void {
    for (const jobId of [...this.waiters.keys()]) this.notify(jobId);
  }
}

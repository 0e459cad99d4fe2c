// Long polls parked on jobs, woken by the apply that ended them (JobWatch): one waiter at once,
// a burst a slice per turn of the event loop (Node runs an immediate queued during a turn on the
// next one, after that turn's timers and I/O), not thousands of answers in one run.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Departure } from '../../src/master/client-gone.js';
import { JobWatch, WAKE_PER_TURN } from '../../src/master/job-watch.js';

/** A client that may leave, told as `clientDeparture` tells of one; and how many listen. */
function aClient() {
  const events = new EventEmitter();
  let left = false;
  const departure: Departure = {
    get left() {
      return left;
    },
    onLeave(fn) {
      events.once('leave', fn);
      return () => events.removeListener('leave', fn);
    },
  };
  const leave = () => {
    left = true;
    events.emit('leave');
  };
  return { departure, leave, listening: () => events.listenerCount('leave') };
}

const flushMicrotasks = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};
const nextTurn = () => new Promise((r) => setImmediate(r));

describe('JobWatch', () => {
  it('wakes a lone waiter in the turn of the apply that ended its job', async () => {
    const watch = new JobWatch();
    let woken = false;
    void watch.wait('job-a', 60_000).then(() => (woken = true));
    watch.notify('job-a');
    await flushMicrotasks();
    expect(woken).toBe(true);
  });

  it('lets a waiter go once its client has gone, and keeps the others', async () => {
    const watch = new JobWatch();
    const client = aClient();
    let left = false;
    void watch.wait('job-a', 60_000, client.departure).then(() => (left = true));
    void watch.wait('job-a', 60_000);
    expect(watch.waiting).toBe(2);
    client.leave();
    await flushMicrotasks();
    expect(left).toBe(true);
    expect(watch.waiting).toBe(1);
    // A client already gone does not wait at all.
    await watch.wait('job-b', 60_000, client.departure);
    expect(watch.waiting).toBe(1);
  });

  it('stops listening for a client once its wait is over (a long poll waits again and again)', async () => {
    const watch = new JobWatch();
    const client = aClient();
    const waited = watch.wait('job-a', 60_000, client.departure);
    expect(client.listening()).toBe(1);
    watch.notify('job-a');
    await waited;
    expect(client.listening()).toBe(0);
    await watch.wait('job-b', 10, client.departure);
    expect(client.listening()).toBe(0);
  });

  it('wakes a burst a slice per turn, and every waiter in the end', async () => {
    const watch = new JobWatch();
    const n = WAKE_PER_TURN * 3 + 5;
    let woken = 0;
    for (let i = 0; i < n; i++) void watch.wait(i % 2 ? 'job-a' : 'job-b', 60_000).then(() => woken++);
    watch.notify('job-a');
    watch.notify('job-b');
    await flushMicrotasks();
    expect(woken).toBe(WAKE_PER_TURN);
    const seen = [woken];
    while (woken < n) {
      await nextTurn();
      await flushMicrotasks();
      seen.push(woken);
    }
    expect(seen.at(-1)).toBe(n);
    for (let i = 1; i < seen.length; i++) expect(seen[i]! - seen[i - 1]!).toBeLessThanOrEqual(WAKE_PER_TURN);
  });

  it('wakes no waiter twice and forgets the jobs it woke', async () => {
    const watch = new JobWatch();
    let woken = 0;
    const waits = Array.from({ length: 10 }, () => watch.wait('job-a', 60_000).then(() => woken++));
    watch.notify('job-a');
    watch.notify('job-a');
    await Promise.all(waits);
    expect(woken).toBe(10);
    // A later wait on the job parks anew rather than resolving from the old burst.
    let again = false;
    void watch.wait('job-a', 60_000).then(() => (again = true));
    await nextTurn();
    await flushMicrotasks();
    expect(again).toBe(false);
    watch.close();
    await flushMicrotasks();
    expect(again).toBe(true);
  });

  it('a waiter whose wait ran out is answered by its timeout, not left parked', async () => {
    const watch = new JobWatch();
    const t0 = performance.now();
    await watch.wait('job-never', 20);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(15);
  });
});

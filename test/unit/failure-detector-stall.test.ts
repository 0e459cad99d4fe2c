// The leader's failure detector and its own event loop: a stall of the leader is not silence
// of its workers. After a stall the detector's timer runs before the heartbeats that waited in
// the sockets are read, so that check must not judge (the scale benchmark saw a stalled leader
// declare hundreds of heartbeating workers dead at once); a worker that really went silent is
// still declared dead.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/common/logger.js';
import type { ClusterConsensus } from '../../src/master/cluster-log.js';
import { FailureDetector } from '../../src/master/failure-detector.js';
import { WorkerRegistry } from '../../src/master/worker-registry.js';
import type { Queries } from '../../src/state/queries.js';

const TIMEOUT_MS = 3000;
const EVERY_MS = 250; // the detector checks every timeout/4, at most every 250 ms

function setUp(workers: string[]) {
  const dead: string[] = [];
  const consensus = {
    isLeader: () => true,
    propose: (cmd: { worker_id: string }) => {
      dead.push(cmd.worker_id);
      return Promise.resolve({ ok: true, requeued: 0 });
    },
  } as unknown as ClusterConsensus;
  const queries = { liveWorkers: () => workers.map((worker_id) => ({ worker_id })) } as unknown as Queries;
  const registry = new WorkerRegistry();
  const log = { warn: () => undefined } as unknown as Logger;
  const detector = new FailureDetector(consensus, queries, registry, TIMEOUT_MS, log);
  return { detector, registry, dead };
}

/** Every worker heartbeats at `now`. */
const heartbeat = (registry: WorkerRegistry, ids: string[]) => {
  for (const id of ids) registry.heartbeat(id, Date.now(), 0, {});
};

beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
afterEach(() => vi.useRealTimers());

describe('the failure detector when its own event loop stalls', () => {
  it('judges nobody on the check that comes late, and nobody who heartbeated meanwhile on the next', () => {
    const t = setUp(['w-1', 'w-2']);
    t.detector.start();
    heartbeat(t.registry, ['w-1', 'w-2']);
    vi.advanceTimersByTime(EVERY_MS);
    // The loop stalls for 4 s: the clock moves, no timer runs, no heartbeat is read.
    vi.setSystemTime(Date.now() + 4000);
    t.detector.check(); // the timer that was due, run late
    expect(t.dead).toEqual([]);
    heartbeat(t.registry, ['w-1', 'w-2']); // the heartbeats read from the sockets after it
    vi.advanceTimersByTime(EVERY_MS);
    expect(t.dead).toEqual([]);
    t.detector.stop();
  });

  it('still declares a worker dead that stopped heartbeating while the others went on', () => {
    const t = setUp(['w-1', 'w-2']);
    t.detector.start();
    for (let i = 0; i < 20; i++) {
      heartbeat(t.registry, ['w-1']);
      vi.advanceTimersByTime(EVERY_MS);
    }
    expect(t.dead).toEqual(['w-2']);
    t.detector.stop();
  });

  it('declares most workers silent at once dead one a check, the longest silent first', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `w-${i}`);
    const t = setUp(ids);
    t.detector.start();
    heartbeat(t.registry, ids);
    vi.advanceTimersByTime(EVERY_MS);
    heartbeat(t.registry, ['w-0', 'w-1']); // the rest go silent, w-9 a moment before the others
    vi.advanceTimersByTime(EVERY_MS);
    heartbeat(t.registry, ['w-0', 'w-1', 'w-2', 'w-3', 'w-4', 'w-5', 'w-6', 'w-7', 'w-8']);
    for (let elapsed = 0; elapsed <= TIMEOUT_MS; elapsed += EVERY_MS) {
      heartbeat(t.registry, ['w-0', 'w-1']);
      vi.advanceTimersByTime(EVERY_MS);
    }
    expect(t.dead).toEqual(['w-9']);
    await vi.advanceTimersByTimeAsync(0); // its death is committed
    heartbeat(t.registry, ['w-0', 'w-1']);
    vi.advanceTimersByTime(EVERY_MS);
    expect(t.dead).toHaveLength(2);
    t.detector.stop();
  });

  it('judges after a full timeout of checks that all come late, so a loop always late still finds the dead', () => {
    const t = setUp(['w-1']);
    t.detector.start();
    for (let i = 0; i < 8; i++) {
      vi.setSystemTime(Date.now() + 800); // each check 800 ms after the last: always late
      t.detector.check();
    }
    expect(t.dead).toEqual(['w-1']);
    t.detector.stop();
  });

  it('does not count against a worker the time its checks ran behind (a busy loop, not a stall)', () => {
    const t = setUp(['w-1']);
    t.detector.start();
    heartbeat(t.registry, ['w-1']);
    // Every check 450 ms after the last (200 ms behind, not late enough to be a stall): after
    // 3.15 s of clock only about 1.75 s of it was this leader's to notice a silence in.
    for (let i = 0; i < 7; i++) {
      vi.setSystemTime(Date.now() + 450);
      t.detector.check();
    }
    expect(t.dead).toEqual([]);
  });

  it('still declares a worker dead on a loop always behind, by twice the timeout at most', () => {
    const t = setUp(['w-1']);
    t.detector.start();
    heartbeat(t.registry, ['w-1']);
    for (let i = 0; i < 14; i++) {
      vi.setSystemTime(Date.now() + 450);
      t.detector.check();
    }
    expect(t.dead).toEqual(['w-1']);
  });
});

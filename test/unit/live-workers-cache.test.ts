// The live workers the scheduler, the failure detector and the lease keeper ask for many times
// a second are read once and kept until a command changes the workers table: what they get is
// always what the database says.
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Queries } from '../../src/state/queries.js';
import { StateMachine } from '../../src/state/state-machine.js';
import { stateEachTest } from '../helpers/state.js';

const state = stateEachTest('weir-live-');
const { apply } = state;
let dir: string;
let sm: StateMachine;
let q: Queries;
beforeEach(() => ({ dir, sm, q } = state));

const live = () => q.liveWorkers().map((w) => `${w.worker_id}:${w.status}`);

describe('the live workers, kept between reads', () => {
  it('follow every command that changes a worker: register, drain, death, forgetting', () => {
    expect(live()).toEqual([]);
    apply({ type: 'registerWorker', at: 1, worker_id: 'w-a', address: 'a:1', max_tasks: 2 });
    apply({ type: 'registerWorker', at: 2, worker_id: 'w-b', address: 'b:1', max_tasks: 2 });
    expect(live()).toEqual(['w-a:active', 'w-b:active']);
    expect(q.liveWorkers()).toBe(q.liveWorkers()); // one read while nothing changes
    apply({ type: 'drainWorker', at: 3, worker_id: 'w-a' });
    expect(live()).toEqual(['w-a:draining', 'w-b:active']);
    apply({ type: 'markWorkerDead', at: 4, worker_id: 'w-b', reason: 'gone' });
    expect(live()).toEqual(['w-a:draining']);
    apply({ type: 'forgetWorker', at: 5, worker_id: 'w-b', dead_before: 10 });
    expect(live()).toEqual(['w-a:draining']);
  });

  it('are read again once a snapshot replaced the database', () => {
    apply({ type: 'registerWorker', at: 1, worker_id: 'w-a', address: 'a:1', max_tasks: 2 });
    expect(live()).toEqual(['w-a:active']);
    const other = new StateMachine(join(dir, 'other.db'));
    other.applyBatch([
      {
        index: 1,
        term: 1,
        kind: 'cmd',
        data: { type: 'registerWorker', at: 1, worker_id: 'w-z', address: 'z:1', max_tasks: 1 },
      },
    ]);
    const snap = other.snapshot();
    sm.restore(snap);
    other.discard(snap);
    other.close();
    expect(live()).toEqual(['w-z:active']);
  });
});

describe('one live worker, as a heartbeat asks for it (memory only)', () => {
  it('is found while live or draining, and not once declared dead or never registered', () => {
    expect(q.liveWorker('w-a')).toBeUndefined();
    apply({ type: 'registerWorker', at: 1, worker_id: 'w-a', address: 'a:1', max_tasks: 2 });
    expect(q.liveWorker('w-a')?.status).toBe('active');
    apply({ type: 'drainWorker', at: 2, worker_id: 'w-a' });
    expect(q.liveWorker('w-a')?.status).toBe('draining');
    apply({ type: 'markWorkerDead', at: 3, worker_id: 'w-a', reason: 'gone' });
    expect(q.liveWorker('w-a')).toBeUndefined();
    expect(q.liveWorker('w-nobody')).toBeUndefined();
  });
});

// What a lost worker's loss counts against (rules.ts, rules 4): the attempts it said it had
// begun — in a `began` frame or the hello that opens its channel — that the log still has it
// run. The leader holds them in memory and names them when it declares the worker dead.
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/common/logger.js';
import type { ClusterConsensus } from '../../src/master/cluster-log.js';
import { FailureDetector } from '../../src/master/failure-detector.js';
import { MAX_BEGUN, WorkerRegistry } from '../../src/master/worker-registry.js';
import { taskKey, type TaskRef } from '../../src/protocol/task-ref.js';
import type { MarkWorkerDead } from '../../src/state/commands.js';
import type { Queries } from '../../src/state/queries.js';

const ref = (idx: number, attempt = 1, job_id = 'job-1'): TaskRef => ({ job_id, idx, attempt });

function setUp(runningInLog: TaskRef[]) {
  const proposed: MarkWorkerDead[] = [];
  const consensus = {
    isLeader: () => true,
    propose: (cmd: MarkWorkerDead) => {
      proposed.push(cmd);
      return Promise.resolve({ ok: true, requeued: 0 });
    },
  } as unknown as ClusterConsensus;
  const queries = { runningOnWorker: () => runningInLog } as unknown as Queries;
  const registry = new WorkerRegistry();
  const log = { warn: () => undefined } as unknown as Logger;
  return { detector: new FailureDetector(consensus, queries, registry, 3000, log), registry, proposed };
}

describe('the attempts a lost worker is declared dead with', () => {
  it('are those it said it began and the log still has it run, not those it reported or never took up', () => {
    const t = setUp([ref(0), ref(1), ref(2), ref(3)]);
    t.registry.began('w-1', [ref(0), ref(1)]);
    t.registry.began('w-1', [ref(2), ref(9)]); // 9: not running there (another attempt won, say)
    t.registry.reported('w-1', [taskKey(ref(1))]); // done: its report is on its way to the log
    t.detector.declareDead('w-1', 'connection lost');
    expect(t.proposed).toEqual([
      expect.objectContaining({ type: 'markWorkerDead', worker_id: 'w-1', began: [ref(0), ref(2)] }),
    ]);
  });

  it("are what its last hello named: a new channel's hello replaces what the one before told", () => {
    const t = setUp([ref(0), ref(1), ref(2)]);
    t.registry.began('w-1', [ref(0), ref(1)]);
    t.registry.began('w-1', [ref(2)], true);
    t.detector.declareDead('w-1', 'connection lost');
    expect(t.proposed[0]!.began).toEqual([ref(2)]);
  });

  it('are none for a worker that said nothing, and none of another worker’s', () => {
    const t = setUp([ref(0)]);
    t.registry.began('w-2', [ref(0)]);
    t.detector.declareDead('w-1', 'no heartbeat for 3001 ms');
    expect(t.proposed[0]!.began).toEqual([]);
  });

  it(`are held at most ${MAX_BEGUN} a worker, the oldest let go first, and forgotten with the worker`, () => {
    const t = setUp([]);
    t.registry.began(
      'w-1',
      Array.from({ length: MAX_BEGUN + 5 }, (_, i) => ref(i)),
    );
    const held = t.registry.begunOn('w-1');
    expect(held).toHaveLength(MAX_BEGUN);
    expect(held[0]).toEqual(ref(5));
    t.registry.forget('w-1');
    expect(t.registry.begunOn('w-1')).toEqual([]);
  });
});

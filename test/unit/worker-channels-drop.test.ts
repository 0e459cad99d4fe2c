// A master that loses leadership closes every worker channel; the closes complete later, when
// each worker answers. Should the master lead again by then (a hand-over back to the highest
// id comes 1–2 s after an election), those late closes are not lost connections: no worker is
// declared dead for them (the scale benchmark saw 1,000 declared dead at once).
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/common/logger.js';
import type { ClusterConsensus } from '../../src/master/cluster-log.js';
import type { FailureDetector } from '../../src/master/failure-detector.js';
import type { Scheduler } from '../../src/master/scheduler.js';
import { WorkerChannels } from '../../src/master/worker-channels.js';
import { WorkerRegistry } from '../../src/master/worker-registry.js';
import type { Queries } from '../../src/state/queries.js';

/** A socket whose close completes only when the test says the worker answered. */
class SlowClosingSocket extends EventEmitter {
  readyState = 1;
  closedWith: number | undefined;
  close(code: number): void {
    this.closedWith = code;
    this.readyState = 2;
  }
  send(): void {}
  answerClose(): void {
    this.readyState = 3;
    this.emit('close', this.closedWith, Buffer.alloc(0));
  }
}

function setUp() {
  let leader = true;
  const dead: string[] = [];
  const consensus = { isLeader: () => leader, leaderUrl: () => 'http://127.0.0.2:8080' } as unknown as ClusterConsensus;
  const queries = { liveWorker: (id: string) => ({ worker_id: id, status: 'active' }) } as unknown as Queries;
  const registry = new WorkerRegistry();
  const scheduler = { kick: () => undefined } as unknown as Scheduler;
  const detector = { declareDead: (id: string) => dead.push(id) } as unknown as FailureDetector;
  const log = { warn: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;
  const channels = new WorkerChannels(consensus, queries, registry, scheduler, detector, log);
  return { channels, registry, dead, lead: (v: boolean) => (leader = v) };
}

describe('worker channels when leadership moves', () => {
  it('a channel closed because leadership moved does not declare its worker dead when it closes late', () => {
    const t = setUp();
    const sockets = ['w-1', 'w-2'].map((id) => {
      const s = new SlowClosingSocket();
      t.channels.accept(id, s as unknown as WebSocket);
      return s;
    });
    t.lead(false);
    t.channels.dropAll();
    expect(sockets.map((s) => s.closedWith)).toEqual([4503, 4503]);
    expect(t.registry.connected('w-1')).toBe(false);
    t.lead(true); // leadership came back before the workers answered the close
    for (const s of sockets) s.answerClose();
    expect(t.dead).toEqual([]);
  });

  it('a channel that drops while this master leads still declares its worker dead', () => {
    const t = setUp();
    const s = new SlowClosingSocket();
    t.channels.accept('w-1', s as unknown as WebSocket);
    s.answerClose();
    expect(t.dead).toEqual(['w-1']);
  });
});

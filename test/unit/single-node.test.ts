import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogStore } from '../../src/consensus/log-store.js';
import { SingleNodeConsensus } from '../../src/consensus/single-node.js';
import type { Command } from '../../src/state/commands.js';
import { StateMachine } from '../../src/state/state-machine.js';

let dir: string;
const open = () => {
  const log = new LogStore(join(dir, 'raft.db'));
  const state = new StateMachine(join(dir, 'state.db'));
  return { log, state, consensus: new SingleNodeConsensus(log, state, { id: 1, address: 'http://x:1' }) };
};
const reg = (i: number): Command => ({ type: 'registerWorker', at: i, worker_id: `w${i}`, address: 'a', max_tasks: 1 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-consensus-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('a cluster of one', () => {
  it('group commit: proposals made together are appended in one batch (one fsync)', async () => {
    const { log, state, consensus } = open();
    const append = vi.spyOn(log, 'append');
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => consensus.propose(reg(i))));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(append).toHaveBeenCalledTimes(1);
    expect(state.lastApplied).toBe(100);
    log.close();
    state.close();
  });

  it('an acknowledged command survives a restart', async () => {
    const a = open();
    await a.consensus.propose(reg(1));
    a.log.close();
    a.state.close();
    const b = open();
    expect(b.state.lastApplied).toBe(1);
    expect(b.consensus.status().term).toBe(2);
    b.log.close();
    b.state.close();
  });

  it('replays entries the log holds but the state database missed (a crash between the two)', () => {
    const log = new LogStore(join(dir, 'raft.db'));
    log.append([1, 2, 3].map((i) => ({ index: i, term: 1, command: reg(i) })));
    log.close();
    const b = open();
    expect(b.state.lastApplied).toBe(3);
    expect(b.state.db.prepare('SELECT count(*) AS n FROM workers').get()).toEqual({ n: 3 });
    b.log.close();
    b.state.close();
  });

  it('reports itself as the leader of a one-node cluster', () => {
    const { log, state, consensus } = open();
    expect(consensus.status()).toMatchObject({ role: 'leader', leader_id: 1, members: [{ id: 1, healthy: true }] });
    log.close();
    state.close();
  });
});

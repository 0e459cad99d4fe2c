import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import type { Command } from '../../src/state/commands.js';
import { commandCodec } from '../../src/state/command-codec.js';
import { StateMachine } from '../../src/state/state-machine.js';
import { openSingleMaster } from '../helpers/single-master.js';
import { submitJobCommand } from '../helpers/state.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
const log = createLogger('test');
log.level = 'silent';

const open = () => openSingleMaster(dir, log);

const reg = (i: number): Command => ({ type: 'registerWorker', at: i, worker_id: `w${i}`, address: 'a', max_tasks: 1 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-raft-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('a cluster of one master (Raft with a single voter)', () => {
  it('leads at once, without waiting out an election timeout', async () => {
    const n = open();
    await n.leading;
    expect(n.consensus.status()).toMatchObject({ role: 'leader', leader_id: 1, members: [{ id: 1, healthy: true }] });
    await n.close();
  });

  it('group commit: proposals made together are persisted with one write (one fsync)', async () => {
    const n = open();
    await n.leading;
    const save = vi.spyOn(n.storage, 'save');
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => n.consensus.propose(reg(i))));
    expect(results.every((r) => r.ok)).toBe(true);
    const withEntries = save.mock.calls.filter(([, entries]) => entries.length > 0);
    expect(withEntries).toHaveLength(1);
    expect(withEntries[0]![1]).toHaveLength(100);
    await n.close();
  });

  it('writes its hard state only when the term or vote changes: the commit index is relearned', async () => {
    const n = open();
    await n.leading;
    const save = vi.spyOn(n.storage, 'save');
    for (let i = 0; i < 5; i++) await n.consensus.propose(reg(i));
    expect(save.mock.calls.length).toBeGreaterThan(0);
    expect(save.mock.calls.every(([hardState]) => hardState === undefined)).toBe(true);
    await n.close();
  });

  it('an acknowledged command survives a restart', async () => {
    const a = open();
    await a.leading;
    await a.consensus.propose(reg(1));
    await a.close();
    const b = open();
    await b.leading;
    expect(b.state.db.prepare('SELECT worker_id FROM workers').all()).toEqual([{ worker_id: 'w1' }]);
    expect(b.consensus.status().term).toBeGreaterThan(1);
    await b.close();
  });

  it('applies on the leader the command its log holds, not the object proposed: every node stores the same value', async () => {
    const n = open();
    await n.leading;
    // A lone UTF-16 surrogate (valid JSON as "\\ud800") is one value msgpack does not carry
    // exactly. The leader stored the proposed object's, its followers and its own restart the
    // decoded one's, and a retry under the same Idempotency-Key was a conflict on the leader
    // only.
    const plain = submitJobCommand('j-lone', { task_count: 1 }) as Extract<Command, { type: 'submitJob' }>;
    const submit = {
      ...plain,
      name: 'name \udc00',
      idempotency_key: 'k1',
      config: { ...plain.config, env: { TAG: 'x\ud800y' } },
    } as Command;
    const first = await n.consensus.propose(submit);
    expect(first).toMatchObject({ ok: true });
    const stored = () => n.state.db.prepare(`SELECT name, config FROM jobs WHERE job_id = 'j-lone'`).get();

    const follower = new StateMachine(join(dir, 'follower.db'));
    follower.applyBatch([{ index: 1, term: 1, kind: 'cmd', data: commandCodec.decode(commandCodec.encode(submit)) }]);
    expect(stored()).toEqual(follower.db.prepare(`SELECT name, config FROM jobs WHERE job_id = 'j-lone'`).get());
    follower.close();

    const retry = await n.consensus.propose({ ...submit, job_id: 'j-retry' } as Command);
    expect(retry).toEqual({ ok: true, job_id: 'j-lone', duplicate: true });
    await n.close();
  });

  it('compacts its log with no checkpoint of the state database on the event loop, only as far as the background sync made durable', async () => {
    const n = openSingleMaster(dir, log, { snapshotEntries: 20, keepEntries: 4 });
    await n.leading;
    // A TRUNCATE checkpoint before each compaction held a master's loop 15–150 ms under load.
    const checkpoint = vi.spyOn(n.state, 'checkpoint');
    const pragma = vi.spyOn(n.state.db, 'pragma');
    const raftLog = (n.consensus as unknown as { raft: { log: { snapshot: { index: number } } } }).raft.log;
    let i = 0;
    await waitFor(
      'the log compacted',
      async () => {
        await Promise.all(Array.from({ length: 10 }, () => n.consensus.propose(reg(i++))));
        // Nothing the state machine may still lose (applied, not yet synced) has left the log.
        expect(raftLog.snapshot.index).toBeLessThanOrEqual(n.state.durableIndex());
        return raftLog.snapshot.index > 0;
      },
      10_000,
      20,
    );
    expect(checkpoint).not.toHaveBeenCalled();
    expect(pragma.mock.calls.filter(([sql]) => /checkpoint/i.test(sql))).toEqual([]);
    await n.close();
    // What was compacted away is in the state all the same.
    const again = open();
    await again.leading;
    expect(again.state.db.prepare('SELECT count(*) AS n FROM workers').get()).toEqual({ n: i });
    await again.close();
  });

  it('calls onAppended before propose returns, and only for a command it appended to its log', async () => {
    const n = open();
    await n.leading;
    const calls: string[] = [];
    const applied = n.consensus.propose(reg(1), () => calls.push('appended'));
    calls.push('returned');
    await applied;
    expect(calls).toEqual(['appended', 'returned']);
    await n.close();
    // Closed (as refused by a hand-over or a disk that refused a write): nothing was appended.
    let called = false;
    await expect(n.consensus.propose(reg(2), () => (called = true))).rejects.toThrow();
    expect(called).toBe(false);
  });

  it('a compaction the background sync stopped short goes on once the sync catches up, with no new entry', async () => {
    const n = openSingleMaster(dir, log, { snapshotEntries: 20, keepEntries: 4 });
    await n.leading;
    const raftLog = (n.consensus as unknown as { raft: { log: { snapshot: { index: number } } } }).raft.log;
    // The sync lags the applies by ~50 ms: here it holds at 10 while 25 entries are applied.
    const durable = vi.spyOn(n.state, 'durableIndex').mockReturnValue(10);
    await Promise.all(Array.from({ length: 25 }, (_, i) => n.consensus.propose(reg(i))));
    await waitFor('a compaction stopped at what is durable', () => raftLog.snapshot.index === 10, 5_000, 10);
    durable.mockRestore();
    // 15 entries left is below the 20 that make a log due, yet all but the newest 4 may go.
    await waitFor('the compaction to go on', () => raftLog.snapshot.index >= n.state.lastApplied - 4, 5_000, 10);
    await n.close();
  });

  it('applies a large committed batch in turns of at most 64 KiB, letting the event loop turn between them', async () => {
    const n = open();
    await n.leading;
    const events: string[] = [];
    const applyBatch = n.state.applyBatch.bind(n.state);
    vi.spyOn(n.state, 'applyBatch').mockImplementation((entries) => {
      events.push(`apply ${entries.length}`);
      // Whatever waits for the loop (a peer's message, a heartbeat, a request) runs between turns.
      setImmediate(() => events.push('turn'));
      return applyBatch(entries);
    });
    // Ten entries of ~30 KB, committed together: 300 KB applied at once held the loop.
    const big = (i: number): Command => ({
      type: 'registerWorker',
      at: i,
      worker_id: `w${i}`,
      address: 'x'.repeat(30_000),
      max_tasks: 1,
    });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => n.consensus.propose(big(i))));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(events.filter((e) => e.startsWith('apply'))).toEqual(Array(5).fill('apply 2'));
    // The loop turns between them: at most two back to back (the first from an I/O callback).
    expect(events.join(', ')).not.toMatch(/apply 2, apply 2, apply 2/);
    expect(events.indexOf('turn')).toBeLessThan(events.lastIndexOf('apply 2'));
    expect(n.state.db.prepare('SELECT count(*) AS n FROM workers').get()).toEqual({ n: 10 });
    await n.close();
  });

  it('answers a command the state machine finds already applied (a snapshot installed before its turn) with an error to retry, not with no result', async () => {
    const n = open();
    await n.leading;
    // As applyBatch answers for entries at or below what a snapshot brought: in the state, no result.
    const apply = n.state.applyBatch.bind(n.state);
    vi.spyOn(n.state, 'applyBatch').mockImplementationOnce((entries) => {
      apply(entries);
      return entries.map(() => undefined);
    });
    await expect(n.consensus.propose(reg(1))).rejects.toMatchObject({ code: 'unavailable', message: /retry it/ });
    expect((await n.consensus.propose(reg(2))).ok).toBe(true);
    await n.close();
  });

  it('serves linearizable reads once it leads', async () => {
    const n = open();
    await n.leading;
    await expect(n.consensus.readBarrier()).resolves.toBeUndefined();
    await n.close();
  });
});

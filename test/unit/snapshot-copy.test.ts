// A leader copies its state for a follower in a worker thread: its event loop keeps turning
// (heartbeats), and the copy is one consistent state whose meta says which.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import type { Command } from '../../src/state/commands.js';
import { StateMachine } from '../../src/state/state-machine.js';

let dir: string;
let sm: StateMachine;
let index: number;

const submit = (n: number): Command => ({
  type: 'submitJob',
  at: 1000 + n,
  job_id: `j${n}`,
  name: `j${n}`,
  job_type: 'batch',
  config: normalizeBatchConfig({ operation: 'noop', task_count: 50 }),
});
const applyJobs = (from: number, count: number) =>
  sm.applyBatch(
    Array.from({ length: count }, (_, i) => ({
      index: ++index,
      term: 1,
      kind: 'cmd' as const,
      data: submit(from + i),
    })),
  );

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-snapshot-copy-'));
  sm = new StateMachine(join(dir, 'state.db'));
  index = 0;
  sm.applyBatch([
    {
      index: ++index,
      term: 1,
      kind: 'conf',
      data: { op: 'bootstrap', members: [{ id: 1, address: 'http://a:1', voter: true }] },
    },
  ]);
});
afterEach(() => {
  sm.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a snapshot copied in the background', () => {
  it('holds one applied state, at or after the call, and its meta says which, while applying goes on', async () => {
    for (let b = 0; b < 20; b++) applyJobs(b * 100, 100);
    const before = sm.lastApplied;
    const copying = sm.snapshotInBackground();
    // The leader goes on applying while the thread copies.
    let turns = 0;
    const more = setInterval(() => {
      turns++;
      applyJobs(10_000 + turns * 10, 10);
    }, 1);
    const snap = await copying;
    clearInterval(more);
    expect(snap.meta.index).toBeGreaterThanOrEqual(before);
    expect(snap.meta.members).toEqual([{ id: 1, address: 'http://a:1', voter: true }]);
    const copy = new Database((snap.data as { file: string }).file, { readonly: true });
    // Every entry up to meta.index but the first (the configuration) submitted one job.
    expect((copy.prepare('SELECT count(*) AS n FROM jobs').get() as { n: number }).n).toBe(snap.meta.index - 1);
    copy.close();
    sm.discard(snap);
  });

  it('lets the event loop turn while it copies', async () => {
    for (let b = 0; b < 40; b++) applyJobs(b * 100, 100);
    let turned = false;
    setImmediate(() => (turned = true));
    const snap = await sm.snapshotInBackground();
    expect(turned).toBe(true);
    sm.discard(snap);
  });
});

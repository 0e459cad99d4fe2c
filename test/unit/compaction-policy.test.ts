// When the log is compacted, and down to where: by entries or by bytes, keeping the newest
// entries (by count and by weight), never past a snapshot still on its way to a follower.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import {
  compactionLimits,
  compactionPoint,
  DEFAULT_SNAPSHOT_BYTES,
  dueForCompaction,
  entryBytes,
} from '../../src/consensus/compaction-policy.js';
import type { Command } from '../../src/state/commands.js';
import { openSingleMaster } from '../helpers/single-master.js';
import { waitFor } from '../helpers/wait.js';

/** A log whose entry i (1-based) weighs `weight(i)` bytes. */
const sizesOf = (weight: (i: number) => number) => (from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, k) => weight(from + k));

describe('when the log is due for compaction', () => {
  const limits = compactionLimits(25_000, DEFAULT_SNAPSHOT_BYTES);

  it('at --snapshot-entries applied entries, however light they are', () => {
    expect(dueForCompaction(24_999, 1_000, limits)).toBe(false);
    expect(dueForCompaction(25_000, 1_000, limits)).toBe(true);
  });

  it('at --snapshot-bytes of log, however few entries hold them (a leader batches many reports into one)', () => {
    expect(dueForCompaction(3_000, DEFAULT_SNAPSHOT_BYTES - 1, limits)).toBe(false);
    expect(dueForCompaction(3_000, DEFAULT_SNAPSHOT_BYTES, limits)).toBe(true);
  });

  it('keeps the newest fifth, at most 5,000 entries, of either limit', () => {
    expect(compactionLimits(25_000, 64 * 1024 * 1024)).toEqual({
      entries: 25_000,
      bytes: 64 * 1024 * 1024,
      keepEntries: 5_000,
      keepBytes: Math.floor((64 * 1024 * 1024) / 5),
    });
    expect(compactionLimits(20, 1000)).toMatchObject({ keepEntries: 4, keepBytes: 200 });
  });

  it('weighs an entry by its encoded command', () => {
    expect(entryBytes({ index: 1, term: 1, kind: 'cmd', data: Buffer.alloc(1000) })).toBe(1016);
    expect(entryBytes({ index: 1, term: 1, kind: 'noop' })).toBe(16);
  });
});

describe('down to where the log is compacted', () => {
  it('light entries: all but the newest keepEntries', () => {
    const limits = compactionLimits(1000, 1_000_000);
    expect(
      compactionPoint(
        5000,
        limits,
        sizesOf(() => 10),
      ),
    ).toBe(4800);
  });

  it('heavy entries: the newest are kept only up to keepBytes', () => {
    // 1,000-byte entries, keepBytes 10,000: ten of them stay, not two hundred.
    const limits = compactionLimits(1000, 50_000);
    expect(
      compactionPoint(
        5000,
        limits,
        sizesOf(() => 1000),
      ),
    ).toBe(4990);
  });

  it('an entry heavier than keepBytes on its own: none kept', () => {
    const limits = compactionLimits(1000, 50_000);
    expect(
      compactionPoint(
        5000,
        limits,
        sizesOf(() => 20_000),
      ),
    ).toBe(5000);
  });

  it('never past a snapshot still travelling to a follower (the floor)', () => {
    const limits = compactionLimits(1000, 1_000_000);
    expect(
      compactionPoint(
        5000,
        limits,
        sizesOf(() => 10),
        3000,
      ),
    ).toBe(3000);
    expect(
      compactionPoint(
        5000,
        limits,
        sizesOf(() => 10),
        4900,
      ),
    ).toBe(4800);
  });

  it('a log shorter than keepEntries (most of it compacted already) is walked as far as it goes', () => {
    const limits = compactionLimits(1000, 1_000_000);
    // Only entries 4,900–5,000 are still in the log: nothing more to drop by count.
    const sizes = (from: number, to: number) => sizesOf(() => 10)(Math.max(from, 4900), to);
    expect(compactionPoint(5000, limits, sizes)).toBe(4800);
  });
});

describe('a master whose few log entries are large', () => {
  let dir: string;
  const log = createLogger('test');
  log.level = 'silent';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-compaction-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A command of about 10 KB (a worker with a long address). */
  const heavy = (i: number): Command => ({
    type: 'registerWorker',
    at: i,
    worker_id: `w-${i}`,
    address: 'x'.repeat(10_000),
    max_tasks: 1,
  });

  it('compacts by --snapshot-bytes long before --snapshot-entries', async () => {
    const n = openSingleMaster(dir, log, { snapshotEntries: 1_000_000, snapshotBytes: 100_000 });
    await n.leading;
    for (let i = 0; i < 60; i++) await n.consensus.propose(heavy(i));
    const bytes = () => n.storage.entries().reduce((s, e) => s + entryBytes(e), 0);
    // 60 entries of ~10 KB went in; what stays is under the limit (a fifth of it kept after each
    // compaction) once the state database has synced what it applied (a tick after, at most).
    await waitFor('the log compacted under --snapshot-bytes', () => bytes() < 100_000, 10_000, 20);
    expect(n.storage.snapshot().index).toBeGreaterThan(0);
    await n.close();
  });

  it('keeps them all under the default --snapshot-bytes (64 MiB)', async () => {
    const n = openSingleMaster(dir, log);
    await n.leading;
    for (let i = 0; i < 60; i++) await n.consensus.propose(heavy(i));
    expect(n.storage.snapshot().index).toBe(0);
    await n.close();
  });
});

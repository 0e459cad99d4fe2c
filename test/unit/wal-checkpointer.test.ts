// The state database's WAL is checkpointed by a thread of its own (src/state/wal-checkpointer.ts),
// not by the commit that crosses SQLite's threshold on the master's event loop: what is applied
// reaches the database file soon after, the WAL starts over instead of growing, and replacing
// the file (a snapshot installed) or closing it never meets a connection of the thread's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateMachine } from '../../src/state/state-machine.js';
import { fill, mountTmpfs, unmount } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let sm: StateMachine | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-ckpt-'));
});
afterEach(() => {
  sm?.close();
  sm = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const members = [{ id: 1, address: 'http://a:1', voter: true }];

/** Applies `rows` worker registrations of ~2 KB each after index `from`; returns the last index. */
function register(state: StateMachine, from: number, rows: number): number {
  for (let i = 0; i < rows; i += 50) {
    state.applyBatch(
      Array.from({ length: 50 }, (_, k) => ({
        index: from + i + k + 1,
        term: 1,
        kind: 'cmd' as const,
        data: {
          type: 'registerWorker' as const,
          at: 1,
          worker_id: `w${from + i + k}`,
          address: 'x'.repeat(2000),
          max_tasks: 1,
        },
      })),
    );
  }
  return from + rows;
}

const size = (path: string) => statSync(path, { throwIfNoEntry: false })?.size ?? 0;

/** `rows` worker registrations of ~2 KB each after index `from`, as one batch. */
const registrations = (from: number, rows: number) =>
  Array.from({ length: rows }, (_, k) => ({
    index: from + k + 1,
    term: 1,
    kind: 'cmd' as const,
    data: {
      type: 'registerWorker' as const,
      at: 1,
      worker_id: `w${from + k}`,
      address: 'x'.repeat(2000),
      max_tasks: 1,
    },
  }));

/**
 * Whether every frame of the WAL is copied into the database, read from the WAL index (the
 * -shm file: the header's mxFrame at byte 16, the checkpoint's nBackfill at byte 96, in the
 * machine's byte order) — without a checkpoint of the test's own.
 */
function allCopied(path: string): boolean {
  const shm = readFileSync(`${path}-shm`);
  return shm.readUInt32LE(16) > 0 && shm.readUInt32LE(16) === shm.readUInt32LE(96);
}

/** prlimit (util-linux) limits the child's descriptors. */
const canLimit = spawnSync('prlimit', ['--version']).status === 0;

/**
 * Runs `body` in a child process of the built code, limited to 256 descriptors, with a state
 * machine whose checkpoint failures it records: `boot()` applies its first entry (the thread
 * starts), `register()` one registration, `takeAll()` opens descriptors until none is left,
 * `freeAll(n?)` closes them (or n of them), `until` waits
 * (10 s at most), `done(o)` ends the child with `o`, `taken`, `failures` and `starts` (when
 * each thread was started, ms) as its output.
 */
type ChildOut = Record<string, unknown> & { taken: number; failures: (string | null)[]; starts: number[] };

function inChild(body: string): ChildOut {
  const script = join(dir, 'child.mjs');
  writeFileSync(
    script,
    `import { closeSync, openSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
// Each start of a thread is noted (before the module that starts them is loaded).
const threads = createRequire(import.meta.url)('node:worker_threads');
const starts = [];
threads.Worker = class extends threads.Worker {
  constructor(...args) {
    starts.push(performance.now());
    super(...args);
  }
};
syncBuiltinESMExports();
const { StateMachine } = await import(${JSON.stringify(resolve('dist/src/state/state-machine.js'))});
const failures = [];
const sm = new StateMachine(${JSON.stringify(join(dir, 'state.db'))}, { onCheckpointFailure: (f) => failures.push(f ?? null) });
const members = [{ id: 1, address: 'http://a:1', voter: true }];
const bootstrap = [{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }];
const boot = () => sm.applyBatch(bootstrap);
let index = 1;
const register = () => {
  index++;
  sm.applyBatch([{ index, term: 1, kind: 'cmd', data: { type: 'registerWorker', at: 1, worker_id: 'w' + index, address: 'x', max_tasks: 1 } }]);
};
const until = async (what, ok) => {
  for (let t = 0; t < 500 && !ok(); t++) await new Promise((r) => setTimeout(r, 20));
  if (!ok()) throw new Error(what + ': durableIndex ' + sm.durableIndex() + ' of ' + index + ', failures ' + JSON.stringify(failures));
};
const taken = [];
let most = 0;
const takeAll = () => {
  for (;;) {
    try { taken.push(openSync('/dev/null', 'r')); } catch (err) { if (err.code === 'EMFILE') break; throw err; }
  }
  most = Math.max(most, taken.length);
};
const freeAll = (n = taken.length) => { for (const fd of taken.splice(0, n)) closeSync(fd); };
const done = (o) => { process.stdout.write(JSON.stringify({ ...o, taken: most, failures, starts })); process.exit(0); };
${body}
`,
  );
  const r = spawnSync('prlimit', ['--nofile=256:256', process.execPath, script], { encoding: 'utf8', timeout: 30_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ChildOut;
}

describe('the state database checkpoint thread', () => {
  it('copies what was applied into the database file without the master checkpointing', async () => {
    const path = join(dir, 'state.db');
    sm = new StateMachine(path);
    sm.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
    const before = size(path);
    // ~150 pages: far below SQLite's threshold, so only the thread can have copied them.
    register(sm, 1, 300);
    await waitFor('the database file to hold the registrations', () => size(path) > before + 500_000, 10_000, 20);
  });

  it('copies a batch that grew the database by a megabyte before applyBatch returns, a smaller one later', () => {
    const path = join(dir, 'state.db');
    sm = new StateMachine(path);
    sm.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
    const before = size(path);
    // ~100 KB: the thread's, some 50 ms on; nothing of it is in the file yet.
    sm.applyBatch(registrations(1, 50));
    expect(size(path)).toBe(before);
    // ~1.2 MB in one batch: a disk that filled now could take it into the file nowhere.
    sm.applyBatch(registrations(51, 600));
    expect(size(path)).toBeGreaterThan(before + 1_200_000);
    expect(allCopied(path)).toBe(true);
    expect(sm.durableIndex()).toBe(651);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'applies a megabyte batch all the same on a disk with room for its WAL but not for the copy: the thread copies it once there is room',
    async () => {
      const mnt = mountTmpfs(16, 'growth');
      if ('why' in mnt) throw new Error(mnt.why);
      try {
        const path = join(mnt.dir, 'state.db');
        sm = new StateMachine(path);
        const state = sm;
        sm.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
        const first = register(sm, 1, 50);
        await waitFor('the thread to copy the first rows', () => allCopied(path), 10_000, 20);
        const before = size(path);
        // Another program leaves ~1.9 MB: the batch's ~1.3 MB of WAL frames fit, their copy too does not.
        const filler = fill(mnt.dir, 'filler', 1_900_000);
        sm.applyBatch(registrations(first, 600));
        const last = first + 600;
        expect(sm.lastApplied).toBe(last);
        expect(state.db.prepare('SELECT count(*) AS n FROM workers').get()).toEqual({ n: 650 });
        expect(allCopied(path)).toBe(false);
        expect(sm.durableIndex()).toBeLessThan(last);
        rmSync(filler);
        await waitFor(
          'the thread to copy and sync the batch',
          () => allCopied(path) && state.durableIndex() === last,
          10_000,
          20,
        );
        expect(size(path)).toBeGreaterThan(before + 1_200_000);
      } finally {
        sm?.close();
        sm = undefined;
        unmount(mnt.dir);
      }
    },
    30_000,
  );

  it('lets the WAL start over: rounds of writes do not add up in it', async () => {
    const path = join(dir, 'state.db');
    sm = new StateMachine(path);
    sm.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
    let last = register(sm, 1, 300);
    // What one round takes in the WAL: the first went into a fresh one.
    const round = size(`${path}-wal`);
    for (let r = 2; r <= 8; r++) {
      await waitFor(`round ${r - 1} copied into the database`, () => allCopied(path), 10_000, 20);
      last = register(sm, last, 300);
    }
    // Eight rounds went through it: a WAL that never started over would hold them all.
    expect(size(`${path}-wal`)).toBeLessThan(2 * round);
  });

  it('installs snapshots and closes while the thread checkpoints, the file whole', async () => {
    const source = new StateMachine(join(dir, 'source.db'));
    source.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
    const at = register(source, 1, 100);
    const path = join(dir, 'state.db');
    sm = new StateMachine(path);
    sm.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
    for (let i = 0; i < 15; i++) {
      register(sm, 1, 200);
      // Now and then the thread is under way: a restore must wait for it, never race it.
      await new Promise((r) => setTimeout(r, i * 7));
      const snap = source.snapshot();
      sm.restore(snap);
      expect(sm.lastApplied).toBe(at);
    }
    source.close();
    sm.close();
    sm = undefined;
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('quick_check', { simple: true })).toBe('ok');
      expect((db.prepare('SELECT count(*) AS n FROM workers').get() as { n: number }).n).toBe(100);
    } finally {
      db.close();
    }
  });

  it('makes what was applied durable in the background: durableIndex follows lastApplied, and a restore is durable at once', async () => {
    const path = join(dir, 'state.db');
    sm = new StateMachine(path);
    expect(sm.durableIndex()).toBe(0);
    sm.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
    const last = register(sm, 1, 100);
    // Not synced by the apply itself (synchronous = NORMAL): the thread's fsync of the WAL follows.
    const state = sm;
    await waitFor('the thread to sync what was applied', () => state.durableIndex() === last, 10_000, 20);
    const source = new StateMachine(join(dir, 'source.db'));
    source.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
    const at = register(source, 1, 500);
    sm.restore(source.snapshot());
    source.close();
    expect(sm.durableIndex()).toBe(at);
    // Reopened: what the file holds was synced at the start.
    sm.close();
    sm = new StateMachine(path);
    expect(sm.durableIndex()).toBe(at);
  });

  it('counts a checkpoint made on demand (the no_space alarm) as durable only when it copied everything, and does not wait for a reader', async () => {
    const path = join(dir, 'state.db');
    sm = new StateMachine(path);
    const state = sm;
    const first = register(sm, 0, 100);
    await waitFor(
      'the thread to copy the first rows',
      () => state.durableIndex() === first && allCopied(path),
      10_000,
      20,
    );
    // A long reader, as a snapshot copy for a follower or a backup is, holds the WAL as it is now.
    const reader = new Database(path, { readonly: true });
    try {
      reader.prepare('BEGIN').run();
      reader.prepare('SELECT count(*) FROM workers').get();
      // Applied after the reader began: in the WAL only, and not synced (synchronous = NORMAL).
      const last = register(sm, first, 200);
      const t0 = performance.now();
      expect(sm.checkpoint()).toBe(false);
      // Not the 5 s busy timeout on the master's loop, which would cost it its heartbeats.
      expect(performance.now() - t0).toBeLessThan(2_500);
      // Such a checkpoint copied and synced nothing: compaction must not count on it.
      expect(sm.durableIndex()).toBeLessThan(last);
      reader.prepare('COMMIT').run();
      reader.close();
      await waitFor('the thread to sync the rest', () => state.durableIndex() === last, 10_000, 20);
      register(sm, last, 50);
      expect(sm.checkpoint()).toBe(true);
      expect(sm.durableIndex()).toBe(last + 50);
      expect(statSync(`${path}-wal`).size).toBe(0);
    } finally {
      if (reader.open) reader.close();
    }
  }, 30_000);

  // A flood of connections can take every descriptor a master has (test/integration/
  // connection-flood.test.ts): the thread must go on without opening anything, or nothing
  // applied becomes durable and the log is never compacted again.
  it.skipIf(!canLimit)(
    'goes on making what was applied durable once the process has no descriptor left to open',
    () => {
      const out = inChild(`
boot();
register();
await until('durable before', () => sm.durableIndex() === index);
takeAll();
for (let i = 0; i < 20; i++) register();
await until('durable with no descriptor left', () => sm.durableIndex() === index);
done({ durable: sm.durableIndex(), applied: index });
`);
      expect(out.taken).toBeGreaterThan(100);
      expect(out.durable).toBe(out.applied);
      expect(out.failures).toEqual([]);
    },
  );

  // Its first start (or a later one) may find no descriptor either: the thread cannot start.
  it.skipIf(!canLimit)(
    'when the thread cannot start, syncs each batch itself, says so, and starts it again once it can',
    () => {
      const out = inChild(`
takeAll();
boot();
register();
for (let i = 0; i < 20; i++) register();
await until('durable with no thread', () => sm.durableIndex() === index);
const whileDown = sm.durableIndex();
freeAll();
// Started again a second after it died; then it works, and says so.
await until('the thread back', () => failures.length === 2);
for (let i = 0; i < 20; i++) register();
await until('durable by the thread', () => sm.durableIndex() === index);
done({ whileDown, applied: index });
`);
      expect(out.taken).toBeGreaterThan(100);
      expect(out.whileDown).toBe(22);
      expect(out.applied).toBe(42);
      expect(out.failures).toEqual([expect.stringMatching(/checkpoint thread stopped .*EMFILE/), null]);
    },
  );

  // The unluckiest moment for a snapshot to arrive: the thread has just died, and the loop has
  // not yet heard of it. A thread that holds nothing is not asked to let go (it cannot answer).
  it.skipIf(!canLimit)(
    'installs a snapshot at once when the thread died holding nothing, not waiting for its answer',
    () => {
      const out = inChild(`
const source = new StateMachine(${JSON.stringify(join(dir, 'source.db'))});
source.applyBatch(bootstrap);
for (let i = 2; i <= 30; i++) source.applyBatch([{ index: i, term: 1, kind: 'cmd', data: { type: 'registerWorker', at: 1, worker_id: 's' + i, address: 'x', max_tasks: 1 } }]);
const snap = source.snapshot();
source.close();
takeAll();
boot();
// The thread dies starting, for want of descriptors, while this thread does not yield (on a
// loaded machine it may still be starting: then too it holds nothing, and is not waited for).
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
freeAll(16);
const t0 = performance.now();
sm.restore(snap);
const ms = performance.now() - t0;
index = sm.lastApplied;
freeAll();
for (let i = 0; i < 5; i++) register();
await until('durable after', () => sm.durableIndex() === index);
done({ ms, restored: sm.lastApplied - 5, applied: index });
`);
      expect(out.ms).toBeLessThan(5_000);
      expect(out.restored).toBe(30);
      expect(out.applied).toBe(35);
    },
  );

  // A thread that cannot start must not be started over and over: each start costs the loop a
  // thread's set-up, and a master short of descriptors has writes coming all the while.
  it.skipIf(!canLimit)(
    'starts a thread that keeps dying again only after 1 s, then 2 s, whatever the writes meanwhile',
    () => {
      const out = inChild(`
takeAll();
boot();
const t0 = performance.now();
while (performance.now() - t0 < 3_500) {
  register();
  await new Promise((r) => setTimeout(r, 20));
}
await until('durable all the same', () => sm.durableIndex() === index);
done({});
`);
      const gaps = out.starts.slice(1).map((t, i) => t - out.starts[i]!);
      expect(gaps.length, 'started again').toBeGreaterThanOrEqual(1);
      expect(gaps[0]).toBeGreaterThanOrEqual(950);
      if (gaps[1] !== undefined) expect(gaps[1]).toBeGreaterThanOrEqual(1_900);
      // One failure said, not one per death.
      expect(out.failures).toEqual([expect.stringMatching(/checkpoint thread stopped .*EMFILE/)]);
    },
  );
});

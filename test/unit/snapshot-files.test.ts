// Snapshots as files: the state database copied, streamed in chunks with a checksum, received
// into a temp file, renamed into place; a state database that cannot be read moved aside;
// raft.db giving compacted space back.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Message } from '../../src/consensus/core/types.js';
import { RaftStorage } from '../../src/consensus/raft-storage.js';
import {
  CHUNK_BYTES,
  SnapshotReceiver,
  SnapshotSender,
  type ChunkLink,
  type SnapshotChunk,
} from '../../src/consensus/snapshot-stream.js';
import { schemaVersion } from '../../src/state/schema.js';
import { receivingPath, StateMachine } from '../../src/state/state-machine.js';

const log = pino({ level: 'silent' });
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-snap-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const members = [{ id: 1, address: 'http://a:1', voter: true }];
const snapMsg = (index: number): Message => ({
  type: 'snap',
  from: 2,
  to: 1,
  term: 3,
  snapshot: { index, term: 3, members },
});

/** A state database with `rows` registered workers, each with a fat address. */
function filledState(path: string, rows: number): StateMachine {
  const sm = new StateMachine(path);
  sm.applyBatch([{ index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members } }]);
  for (let i = 0; i < rows; i += 100) {
    sm.applyBatch(
      Array.from({ length: 100 }, (_, k) => ({
        index: i + k + 2,
        term: 1,
        kind: 'cmd' as const,
        data: {
          type: 'registerWorker' as const,
          at: 1,
          worker_id: `w${i + k}`,
          address: 'x'.repeat(2000),
          max_tasks: 1,
        },
      })),
    );
  }
  return sm;
}

/** A link that hands every frame to `deliver` after `drainEvery` sends drain its buffer. */
class MemoryLink implements ChunkLink {
  bufferedAmount = 0;
  open = true;
  maxBuffered = 0;
  readonly frames: { chunk: SnapshotChunk; msgs?: Message[] }[] = [];
  sendNow(chunk: SnapshotChunk, msgs?: Message[]): boolean {
    if (!this.open) return false;
    this.frames.push({ chunk, ...(msgs ? { msgs } : {}) });
    this.bufferedAmount += chunk.data.length;
    this.maxBuffered = Math.max(this.maxBuffered, this.bufferedAmount);
    // The network takes it a little later.
    setTimeout(() => (this.bufferedAmount -= chunk.data.length), 1);
    return true;
  }
}

const sent = (link: MemoryLink, sm: StateMachine, index: number) =>
  new Promise<{ ok: boolean; why?: string }>((resolve) => {
    const snap = sm.snapshot();
    new SnapshotSender(link, snap, snapMsg(index), 42, (ok, why) => resolve({ ok, ...(why ? { why } : {}) }));
    sm.discard(snap); // the sender reads through its own descriptor
  });

describe('a snapshot streamed in chunks', () => {
  it('arrives whole, verified, in a file that restore renames over the state database', async () => {
    const leader = filledState(join(dir, 'leader.db'), 3000);
    const link = new MemoryLink();
    expect(await sent(link, leader, leader.lastApplied)).toEqual({ ok: true });
    expect(link.frames.length).toBeGreaterThan(3);
    expect(link.frames.every((f) => f.chunk.data.length <= CHUNK_BYTES)).toBe(true);
    // Flow control: the sender never ran far ahead of the network.
    expect(link.maxBuffered).toBeLessThanOrEqual(5 * CHUNK_BYTES);
    // Only the last chunk carries the message and the checksum.
    expect(link.frames.filter((f) => f.msgs).length).toBe(1);
    expect(link.frames.at(-1)!.chunk.sha256).toMatch(/^[0-9a-f]{64}$/);

    const follower = new StateMachine(join(dir, 'follower.db'));
    const receiver = new SnapshotReceiver((from, t) => receivingPath(join(dir, 'follower.db'), `${from}-${t}`), log);
    let inbound;
    for (const f of link.frames) inbound = receiver.take(2, f.chunk, f.msgs);
    expect(inbound?.snapshot?.meta.index).toBe(leader.lastApplied);
    follower.restore(inbound!.snapshot!);
    expect(follower.lastApplied).toBe(leader.lastApplied);
    expect(follower.db.prepare('SELECT count(*) AS n FROM workers').get()).toEqual({ n: 3000 });
    // Nothing is left behind: the copy is gone, the received file renamed into place.
    expect(readdirSync(dir).filter((n) => /outgoing|receiving|incoming/.test(n))).toEqual([]);
    leader.close();
    follower.close();
  });

  it('is dropped when a chunk is corrupted on the way (the checksum does not match)', async () => {
    const leader = filledState(join(dir, 'leader.db'), 1000);
    const link = new MemoryLink();
    await sent(link, leader, 5);
    const receiver = new SnapshotReceiver((from, t) => join(dir, `recv-${from}-${t}`), log);
    let inbound;
    for (const [i, f] of link.frames.entries()) {
      const data = i === 1 ? Buffer.from(f.chunk.data).fill(0, 0, 10) : f.chunk.data;
      inbound = receiver.take(2, { ...f.chunk, data }, f.msgs);
    }
    expect(inbound).toBeUndefined();
    expect(readdirSync(dir).filter((n) => n.startsWith('recv-'))).toEqual([]);
    leader.close();
  });

  it('a chunk missing in the middle abandons the transfer; a new one starts cleanly', async () => {
    const leader = filledState(join(dir, 'leader.db'), 1000);
    const link = new MemoryLink();
    await sent(link, leader, 5);
    const receiver = new SnapshotReceiver((from, t) => join(dir, `recv-${from}-${t}`), log);
    const frames = link.frames;
    expect(frames.length).toBeGreaterThan(2);
    for (const f of frames.filter((_, i) => i !== 1)) expect(receiver.take(2, f.chunk, f.msgs)).toBeUndefined();
    expect(readdirSync(dir).filter((n) => n.startsWith('recv-'))).toEqual([]);
    let inbound;
    for (const f of frames) inbound = receiver.take(2, { ...f.chunk, transfer: 43 }, f.msgs);
    expect(inbound?.snapshot).toBeDefined();
    leader.close();
  });

  it('stops when the link closes midway, and says so', async () => {
    const leader = filledState(join(dir, 'leader.db'), 3000);
    const link = new MemoryLink();
    const origSend = link.sendNow.bind(link);
    link.sendNow = (chunk, msgs) => {
      if (link.frames.length === 2) link.open = false;
      return origSend(chunk, msgs);
    };
    const r = await sent(link, leader, 5);
    expect(r.ok).toBe(false);
    leader.close();
  });

  it('of an empty snapshot is one last chunk', async () => {
    const link = new MemoryLink();
    const done = await new Promise<boolean>((resolve) => {
      const snap = { meta: { index: 1, term: 3, members }, data: Buffer.alloc(0) };
      new SnapshotSender(link, snap, snapMsg(1), 1, resolve);
    });
    expect(done).toBe(true);
    expect(link.frames).toHaveLength(1);
    expect(link.frames[0]!.chunk.sha256).toBe(createHash('sha256').update(Buffer.alloc(0)).digest('hex'));
  });
});

describe('a snapshot of a newer schema than this Weir reads', () => {
  it('is refused before anything is replaced; one of this schema or older is not', () => {
    const leader = filledState(join(dir, 'leader.db'), 10);
    const follower = filledState(join(dir, 'follower.db'), 3);
    const workers = () => follower.db.prepare('SELECT count(*) AS n FROM workers').get();
    const before = workers();
    const same = leader.snapshot();
    expect(follower.refuses(same)).toBeUndefined();
    leader.db.pragma(`user_version = ${schemaVersion() + 1}`);
    const newer = leader.snapshot();
    expect(follower.refuses(newer)).toBe(
      `the leader's snapshot holds a state of schema version ${schemaVersion() + 1}, newer than this Weir reads (${schemaVersion()}): not installed, this master keeps the state it has; upgrade it to catch up`,
    );
    // In memory (the simulation's form) as in a file.
    const bytes = { meta: newer.meta, data: readFileSync((newer.data as { file: string }).file) };
    expect(follower.refuses(bytes)).toMatch(/newer than this Weir reads/);
    // Not a database at all: not this check's to refuse (installing it fails as before).
    expect(follower.refuses({ meta: newer.meta, data: Buffer.from('not sqlite') })).toBeUndefined();
    expect(workers()).toEqual(before);
    leader.discard(same);
    leader.discard(newer);
    leader.close();
    follower.close();
  });
});

describe('the state database at startup', () => {
  it('removes the temp files a crash left behind', () => {
    const path = join(dir, 'state.db');
    new StateMachine(path).close();
    for (const name of ['state.db.incoming', 'state.db.outgoing-3', 'state.db.receiving-2-99']) {
      writeFileSync(join(dir, name), 'half a snapshot');
    }
    new StateMachine(path).close();
    expect(readdirSync(dir).sort()).toEqual(
      ['state.db', 'state.db-shm', 'state.db-wal'].filter((n) => existsSync(join(dir, n))),
    );
  });

  it('moves a corrupt file aside (not deleting it) and starts empty', () => {
    const path = join(dir, 'state.db');
    const sm = filledState(path, 200);
    sm.checkpoint();
    sm.close();
    // Garbage over the middle of the file: the header still reads, pages do not.
    const bytes = readFileSync(path);
    bytes.fill(0x5a, 8192, bytes.length - 4096);
    writeFileSync(path, bytes);
    rmSync(`${path}-wal`, { force: true });
    const again = new StateMachine(path);
    expect(again.lastApplied).toBe(0);
    expect(again.movedAside?.to).toMatch(/state\.db\.corrupt-/);
    expect(statSync(again.movedAside!.to).size).toBe(bytes.length);
    again.close();
  });

  it('moves aside a file that is not a database at all', () => {
    const path = join(dir, 'state.db');
    writeFileSync(path, 'garbage '.repeat(1000));
    const sm = new StateMachine(path);
    expect(sm.lastApplied).toBe(0);
    expect(readFileSync(sm.movedAside!.to, 'utf8')).toMatch(/^garbage/);
    sm.close();
  });

  it('keeps a healthy file', () => {
    const path = join(dir, 'state.db');
    filledState(path, 100).close();
    const sm = new StateMachine(path);
    expect([sm.lastApplied, sm.movedAside]).toEqual([101, undefined]);
    sm.close();
  });
});

describe('raft.db after compaction', () => {
  const fill = (s: RaftStorage, n: number) => {
    for (let i = 0; i < n; i += 1000) {
      s.save(
        undefined,
        Array.from({ length: 1000 }, (_, k) => ({
          index: i + k + 1,
          term: 1,
          kind: 'cmd' as const,
          data: Buffer.alloc(400, 7),
        })),
      );
    }
  };

  it('gives the space of compacted entries back to the file system', async () => {
    const s = new RaftStorage(join(dir, 'raft.db'));
    fill(s, 20_000);
    const full = s.pages().total;
    s.compact({ index: 19_500, term: 1, members: [] });
    await s.spaceGivenBack();
    expect(s.pages().free).toBe(0);
    expect(s.pages().total).toBeLessThan(full / 10);
    expect(s.entries()).toHaveLength(500);
    s.close();
  });

  it('gives the space back in slices, on later turns of the event loop: a compaction never holds the loop for all of it', async () => {
    const s = new RaftStorage(join(dir, 'raft.db'));
    fill(s, 20_000);
    const full = s.pages();
    s.compact({ index: 19_500, term: 1, members: [] });
    // Just after the compaction, most of the freed pages are still in the file…
    expect(s.pages().free * 2).toBeGreaterThan(full.total);
    let turns = 0;
    const counting = setInterval(() => turns++, 0);
    await s.spaceGivenBack();
    clearInterval(counting);
    // …and the event loop turned while they went back.
    expect(turns).toBeGreaterThan(1);
    expect(s.pages().free).toBe(0);
    expect(s.pages().total).toBeLessThan(full.total / 10);
    s.close();
  });

  it('a storage closed while giving space back stops there, and settles whoever waits', async () => {
    const path = join(dir, 'raft.db');
    const s = new RaftStorage(path);
    fill(s, 20_000);
    s.compact({ index: 19_500, term: 1, members: [] });
    const waiting = s.spaceGivenBack();
    s.close();
    await waiting;
    const again = new RaftStorage(path);
    expect(again.entries()).toHaveLength(500);
    again.close();
  });

  it('rewrites once at startup a file of an earlier version that is mostly free pages', () => {
    const path = join(dir, 'raft.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL, data BLOB) STRICT;
             CREATE TABLE raft_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;`);
    db.close();
    let s = new RaftStorage(path);
    fill(s, 20_000);
    s.compact({ index: 19_500, term: 1, members: [] });
    const before = s.pages();
    expect(before.free * 2).toBeGreaterThan(before.total); // the old layout keeps them
    s.close();
    s = new RaftStorage(path);
    expect(s.pages().free).toBe(0);
    expect(s.pages().total).toBeLessThan(before.total / 10);
    expect(s.entries()).toHaveLength(500);
    expect(s.snapshot().index).toBe(19_500);
    s.close();
  });
});

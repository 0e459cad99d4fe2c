import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { isDiskError } from '../common/disk-errors.js';
import { sqlitePageBytes } from '../common/sqlite-size.js';
import { WalCheckpointer, WAL_BACKSTOP_PAGES } from '../common/wal-checkpointer.js';
import { newCodec } from '../protocol/msgpack.js';
import { bootstrapState } from './core/membership.js';
import type { Entry, EntryKind, HardState, Member, SnapshotMeta } from './core/types.js';
import { StorageError, type LogStore, type VoteFloor } from './ports.js';

/** How entries other than commands are encoded; a command's bytes are stored as proposed. */
const logCodec = newCodec();
const KINDS: EntryKind[] = ['cmd', 'conf', 'noop'];

/** Pages moved and truncated per turn of the event loop after a compaction (1 MiB: a few ms). */
const VACUUM_SLICE_PAGES = 256;

function encodeData(e: Entry): Buffer | null {
  if (e.data === undefined) return null;
  return e.kind === 'cmd' && Buffer.isBuffer(e.data) ? e.data : logCodec.pack(e.data);
}

/**
 * The Raft log, hard state (term, vote, and the commit index as of the last change of either:
 * a lower bound, Raft relearns it) and the last compaction point, in their own SQLite file
 * with `synchronous = FULL`: when `save` returns, everything it was given is on disk — one
 * transaction, so one fsync per Ready.
 */
export class RaftStorage implements LogStore {
  private readonly db: Db;
  private readonly s: ReturnType<RaftStorage['prepare']>;
  /**
   * Runs a function in one transaction. Made once: better-sqlite3 builds four wrappers and
   * defines their properties at each `transaction()` call, ~9 µs here, where an entry's
   * insert takes 1–2 µs (four calls a job on the master: two writes, two applies).
   */
  private readonly inTransaction: (fn: () => void) => void;
  /** Checkpoints off the event loop (wal-checkpointer.ts). */
  private readonly checkpoints: WalCheckpointer;
  /** The space of compacted entries is going back to the file system, a slice per turn. */
  private givingBack = false;
  private spaceTimer: NodeJS.Immediate | undefined;
  private readonly spaceWaiters: (() => void)[] = [];
  /** The last entry's index on disk (0: none): a save past it has nothing to replace. */
  private lastIndex: number;

  /** `onCheckpointFailure` hears when the checkpoint thread starts failing (why) and works again (undefined). */
  constructor(path: string, o: { onCheckpointFailure?: (failure: string | undefined) => void } = {}) {
    this.db = new Database(path);
    // Compaction deletes most of the log: its pages go back to the file system (after each
    // compaction, see `compact`) instead of staying in the file as free pages. Set before the
    // first table exists; a file made before that is converted once, below.
    const fresh = (this.db.prepare(`SELECT count(*) AS n FROM sqlite_master`).get() as { n: number }).n === 0;
    if (fresh) this.db.pragma('auto_vacuum = INCREMENTAL');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma(`wal_autocheckpoint = ${WAL_BACKSTOP_PAGES}`);
    this.checkpoints = new WalCheckpointer(path, o.onCheckpointFailure);
    if (!fresh) this.vacuumIfMostlyFree();
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL, data BLOB) STRICT;
      CREATE TABLE IF NOT EXISTS raft_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    `);
    this.s = this.prepare();
    this.inTransaction = this.db.transaction((fn: () => void) => fn());
    this.lastIndex = (this.db.prepare(`SELECT max(idx) FROM log`).pluck().get() as number | null) ?? 0;
  }

  private prepare() {
    return {
      insert: this.db.prepare(`INSERT OR REPLACE INTO log (idx, term, kind, data) VALUES (?, ?, ?, ?)`),
      truncate: this.db.prepare(`DELETE FROM log WHERE idx >= ?`),
      compact: this.db.prepare(`DELETE FROM log WHERE idx <= ?`),
      all: this.db.prepare(`SELECT idx, term, kind, data FROM log WHERE idx > ? ORDER BY idx`),
      clear: this.db.prepare(`DELETE FROM log`),
      get: this.db.prepare(`SELECT value FROM raft_state WHERE key = ?`),
      set: this.db.prepare(
        `INSERT INTO raft_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ),
    };
  }

  /** Whether this node has ever been part of a cluster (anything was saved). */
  get initialized(): boolean {
    return this.getJson('hard_state') !== undefined;
  }

  private getJson<T>(key: string): T | undefined {
    const row = this.s.get.get(key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  private setJson(key: string, value: unknown): void {
    this.s.set.run(key, JSON.stringify(value));
  }

  hardState(): HardState {
    return this.getJson<HardState>('hard_state') ?? { term: 0, vote: 0, commit: 0 };
  }

  snapshot(): SnapshotMeta {
    return this.getJson<SnapshotMeta>('snapshot') ?? { index: 0, term: 0, members: [] };
  }

  /** Every entry after the compaction point. */
  entries(): Entry[] {
    const after = this.snapshot().index;
    const rows = this.s.all.all(after) as { idx: number; term: number; kind: number; data: Buffer | null }[];
    return rows.map((r) => {
      const kind = KINDS[r.kind]!;
      if (!r.data) return { index: r.idx, term: r.term, kind };
      // A command is kept encoded, as the driver proposed it; the rest is the core's to read.
      return { index: r.idx, term: r.term, kind, data: kind === 'cmd' ? r.data : (logCodec.unpack(r.data) as unknown) };
    });
  }

  voteFloor(): VoteFloor | undefined {
    return this.getJson<VoteFloor | null>('vote_floor') ?? undefined;
  }

  setVoteFloor(floor: VoteFloor | undefined): void {
    this.write(() => this.setJson('vote_floor', floor ?? null));
  }

  /** Persists one Ready's worth of state, durably, in one transaction. */
  save(hardState: HardState | undefined, entries: readonly Entry[], snapshot?: SnapshotMeta): void {
    this.write(() => {
      if (snapshot) {
        this.s.clear.run();
        this.setJson('snapshot', snapshot);
      }
      if (hardState) this.setJson('hard_state', hardState);
      if (entries.length) {
        // A leader's entries from this index on replace whatever we held (§5.3). Appended past
        // the end, as nearly every save is, there is nothing to replace: no DELETE to run.
        if (entries[0]!.index <= this.lastIndex) this.s.truncate.run(entries[0]!.index);
        for (const e of entries) {
          this.s.insert.run(e.index, e.term, KINDS.indexOf(e.kind), encodeData(e));
        }
      }
    });
    // Only once committed: a save refused and rolled back changed nothing on disk.
    if (snapshot) this.lastIndex = 0;
    if (entries.length) this.lastIndex = entries[entries.length - 1]!.index;
  }

  /** One transaction; a write the disk refused is a StorageError, and rolled back. */
  private write(fn: () => void): void {
    try {
      this.inTransaction(fn);
      this.checkpoints.written();
    } catch (err) {
      if (isDiskError(err)) throw new StorageError(`the Raft log could not be written: ${(err as Error).message}`, err);
      throw err;
    }
  }

  /** Founds a new cluster: its first entry holds the configuration. */
  bootstrap(members: Member[]): void {
    const { hardState, entries } = bootstrapState(members);
    this.save(hardState, entries);
  }

  /**
   * Drops entries the state database holds durably (up to `meta.index`); their space goes back
   * to the file system in slices on the following turns of the event loop (`giveSpaceBack`).
   */
  compact(meta: SnapshotMeta): void {
    this.write(() => {
      this.s.compact.run(meta.index);
      this.setJson('snapshot', meta);
    });
    this.giveSpaceBack();
  }

  /** Settles once the space of the last compaction is back with the file system. */
  spaceGivenBack(): Promise<void> {
    if (!this.givingBack) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** The file's pages, and how many of them are free. */
  pages(): { total: number; free: number; pageSize: number } {
    return {
      total: this.db.pragma('page_count', { simple: true }) as number,
      free: this.db.pragma('freelist_count', { simple: true }) as number,
      pageSize: this.db.pragma('page_size', { simple: true }) as number,
    };
  }

  /**
   * Truncates the free pages off the file, and the WAL that moving them wrote — a slice of
   * VACUUM_SLICE_PAGES per turn of the event loop. In one go, after a compaction of 64 MiB of
   * log, it took 0.5–0.7 s, and every master compacts at the same index: both followers of the
   * scale benchmark went silent together, and the leader, not hearing from a quorum, stepped
   * down. Only space is at stake: a slice is committed without its own fsync (the next write
   * of the log syncs the WAL, and a crash before that loses only the moves), and a disk that
   * refuses it now leaves the rest to the next compaction.
   */
  private giveSpaceBack(): void {
    if (this.givingBack) return; // the slices under way go on to the new free pages
    this.givingBack = true;
    const slice = () => {
      this.spaceTimer = undefined;
      let done = true;
      try {
        const free = this.db.open ? this.pages().free : 0;
        if (free > 0) {
          this.db.pragma('synchronous = NORMAL');
          try {
            this.db.pragma(`incremental_vacuum(${VACUUM_SLICE_PAGES})`);
          } finally {
            this.db.pragma('synchronous = FULL');
          }
          // A file of an earlier version (no auto_vacuum, see `vacuumIfMostlyFree`) frees nothing.
          const left = this.pages().free;
          done = left === 0 || left >= free;
          if (done) this.checkpoints.exclusive(() => this.db.pragma('wal_checkpoint(TRUNCATE)'));
        }
      } catch (err) {
        if (!isDiskError(err)) throw err;
      }
      if (!done) {
        this.spaceTimer = setImmediate(slice);
        return;
      }
      this.givingBack = false;
      for (const w of this.spaceWaiters.splice(0)) w();
    };
    this.spaceTimer = setImmediate(slice);
  }

  /**
   * A file made before raft.db gave space back (no auto_vacuum) and mostly free pages — a
   * log compacted many times — is rewritten once, converted on the way: a VACUUM needs room
   * for a copy of what is in use, which is then small.
   */
  private vacuumIfMostlyFree(): void {
    if ((this.db.pragma('auto_vacuum', { simple: true }) as number) === 2) return;
    const { total, free } = this.pages();
    if (free * 2 < total) return;
    try {
      this.db.pragma('auto_vacuum = INCREMENTAL');
      this.db.exec('VACUUM');
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      if (!isDiskError(err)) throw err;
    }
  }

  /** The bytes the log's live and free pages take (its WAL file aside): for the `no_space` alarm. */
  pageBytes(): { usedBytes: number; freeBytes: number } {
    return sqlitePageBytes(this.db);
  }

  close(): void {
    if (this.spaceTimer) clearImmediate(this.spaceTimer);
    this.spaceTimer = undefined;
    this.givingBack = false;
    for (const w of this.spaceWaiters.splice(0)) w();
    this.checkpoints.close(() => {
      if (this.db.open) this.db.close();
    });
  }
}

import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { isDiskError } from '../common/disk-errors.js';
import { applyConfChange } from '../consensus/core/membership.js';
import type { Member, SnapshotMeta } from '../consensus/core/types.js';
import {
  StorageError,
  type Committed,
  type Snapshot,
  type SnapshotData,
  type StateMachine as Port,
} from '../consensus/ports.js';
import { Applier } from './apply.js';
import type { ApplyResult, Command } from './commands.js';
import { migrate, schemaVersion } from './schema.js';
import { syncDir } from './durable-file.js';
import { copyInBackground } from './snapshot-copy.js';
import { BACKUP_APPLICATION_ID, type BackupInfo } from './backup-file.js';
import { ReleaseTimeout, WalCheckpointer, WAL_BACKSTOP_PAGES } from '../common/wal-checkpointer.js';

/**
 * A batch that grows the database by this many pages (1 MiB) or more is checkpointed before
 * `applyBatch` returns: see `copyNow`.
 */
const EAGER_CHECKPOINT_PAGES = 256;

/** The commands that write the workers table. */
const WORKER_COMMANDS: ReadonlySet<unknown> = new Set([
  'registerWorker',
  'markWorkerDead',
  'drainWorker',
  'forgetWorker',
]);

/**
 * The state database of one master. Committed entries are applied in index order, each
 * batch in one transaction that also records `last_applied` (and its term), so a crash
 * leaves the database at a batch boundary and replay from `last_applied + 1` is exact.
 * Re-applying an entry at or below `last_applied` is a no-op. Membership changes are
 * applied here too, so a copy of this database is a complete snapshot.
 */
export class StateMachine implements Port<Command, ApplyResult> {
  private database!: Db;
  private applier!: Applier;
  private applyInSavepoint!: (command: Command) => ApplyResult;
  /** A batch's transaction, made once per connection (see RaftStorage.inTransaction). */
  private inTransaction!: (fn: () => void) => void;
  private s!: ReturnType<StateMachine['prepare']>;
  private appliedIndex = 0;
  private appliedTerm = 0;
  /** Bumped whenever the database is replaced by a snapshot; readers re-prepare. */
  generation = 0;
  /**
   * Bumped by every command that may change the workers table (also one rolled back), so
   * readers may keep the list of live workers until it moves (queries.ts).
   */
  workersVersion = 0;
  /** Where the database was moved aside at startup, and why (unreadable, corrupt). */
  readonly movedAside: { to: string; why: string } | undefined;
  private snapshots = 0;
  private readonly checkpoints: WalCheckpointer;
  /** The database's pages after the last batch (or as opened): what a batch grew it by is read against it. */
  private pages = 0;

  /** `onCheckpointFailure` hears when the checkpoint thread starts failing (why) and works again (undefined). */
  constructor(
    private readonly path: string,
    o: { onCheckpointFailure?: (failure: string | undefined) => void } = {},
  ) {
    removeTempFiles(path);
    this.movedAside = moveAsideIfUnreadable(path);
    this.checkpoints = new WalCheckpointer(path, (failure) => {
      // What was applied before the failure was known is made durable now (then each batch,
      // see applyBatch); not from inside the checkpointer's call, which may hold its lock.
      if (failure !== undefined) setImmediate(() => this.database.open && this.copyNow());
      o.onCheckpointFailure?.(failure);
    });
    this.open();
  }

  private open(): void {
    this.database = new Database(this.path);
    this.database.pragma('journal_mode = WAL');
    // The Raft log is the durable record; the state database is rebuilt from it after a
    // crash, so its commits need not wait for the disk.
    this.database.pragma('synchronous = NORMAL');
    // Checkpoints are the thread's (wal-checkpointer.ts); SQLite's own, on the loop, only
    // if the WAL grows this long all the same (16 MiB).
    this.database.pragma(`wal_autocheckpoint = ${WAL_BACKSTOP_PAGES}`);
    migrate(this.database);
    this.applier = new Applier(this.database);
    // Nested in the batch's transaction, this is a savepoint.
    this.applyInSavepoint = this.database.transaction((command: Command) => this.applier.apply(command));
    this.inTransaction = this.database.transaction((fn: () => void) => fn());
    this.s = this.prepare();
    this.appliedIndex = (this.s.getMeta.get('last_applied') as { value: number }).value;
    this.appliedTerm = (this.s.getMeta.get('last_applied_term') as { value: number }).value;
    this.pages = this.s.pageCount.get() as number;
    this.generation++;
    // Commits are not synced one by one (synchronous = NORMAL): what the WAL holds from before
    // this start is made durable here, once, so that compaction may count on it.
    syncIfThere(`${this.path}-wal`);
    this.checkpoints.durableAt(this.appliedIndex);
  }

  private prepare() {
    const st = (sql: string) => this.database.prepare(sql);
    return {
      setMeta: st(`UPDATE meta SET value = ? WHERE key = ?`),
      getMeta: st(`SELECT value FROM meta WHERE key = ?`),
      members: st(`SELECT id, address, voter FROM members ORDER BY id`),
      clearMembers: st(`DELETE FROM members`),
      insertMember: st(`INSERT INTO members (id, address, voter) VALUES (?, ?, ?)`),
      refuse: st(`INSERT OR REPLACE INTO refused_commands (log_index, type, message) VALUES (?, ?, ?)`),
      pageCount: st(`PRAGMA page_count`).pluck(),
    };
  }

  get db(): Db {
    return this.database;
  }

  get lastApplied(): number {
    return this.appliedIndex;
  }

  get lastAppliedTerm(): number {
    return this.appliedTerm;
  }

  members(): Member[] {
    return (this.s.members.all() as { id: number; address: string; voter: number }[]).map((m) => ({
      id: m.id,
      address: m.address,
      voter: m.voter === 1,
    }));
  }

  private writeMembers(members: readonly Member[]): void {
    this.s.clearMembers.run();
    for (const m of members) this.s.insertMember.run(m.id, m.address, m.voter ? 1 : 0);
  }

  applied(): SnapshotMeta {
    return { index: this.appliedIndex, term: this.appliedTerm, members: this.members() };
  }

  /**
   * Applies consecutive committed entries in one transaction; returns one result per entry,
   * in order (undefined for entries applied before and for membership changes).
   */
  applyBatch(entries: readonly Committed<Command>[]): (ApplyResult | undefined)[] {
    const results: (ApplyResult | undefined)[] = [];
    const from = { applied: this.appliedIndex, term: this.appliedTerm };
    let pages = this.pages;
    try {
      this.guard('the state database', () =>
        this.inTransaction(() => {
          for (const e of entries) {
            if (e.index <= this.appliedIndex) {
              results.push(undefined);
              continue;
            }
            if (e.index !== this.appliedIndex + 1)
              throw new Error(`apply out of order: entry ${e.index} after ${this.appliedIndex}`);
            if (e.kind === 'cmd') results.push(this.applyCommand(e.index, e.data));
            else {
              if (e.kind === 'conf') this.writeMembers(applyConfChange(this.members(), e.data));
              results.push(undefined);
            }
            this.appliedIndex = e.index;
            this.appliedTerm = e.term;
          }
          this.s.setMeta.run(this.appliedIndex, 'last_applied');
          this.s.setMeta.run(this.appliedTerm, 'last_applied_term');
          // Read in the batch's own transaction: outside one, a statement takes and releases
          // a read lock of the WAL of its own (two fcntl calls a batch).
          pages = this.s.pageCount.get() as number;
        }),
      );
    } catch (err) {
      // Rolled back — also when the COMMIT itself failed, as a full disk makes it in WAL mode:
      // nothing of this batch was applied.
      this.appliedIndex = from.applied;
      this.appliedTerm = from.term;
      this.applier.reset();
      throw err;
    }
    // Committed: nothing from here on may undo the batch in memory (the catch above).
    this.checkpoints.written(this.appliedIndex);
    // One PRAGMA a batch (~4 µs, above): the count after the last batch is this one's before.
    // While the checkpoint thread fails (or is dead, waiting to start again), every batch is
    // copied here: nothing else would make it durable, and compaction would wait for it for good.
    if (pages - this.pages >= EAGER_CHECKPOINT_PAGES || this.checkpoints.failure !== undefined) this.copyNow();
    this.pages = pages;
    return results;
  }

  /**
   * The pages a batch added live in the WAL alone until a checkpoint copies them, and copying
   * them grows the database file by as much. Should the disk fill in between — another
   * program, in the ~50 ms before the thread's checkpoint — the WAL could neither be copied
   * nor started over, so every later write would grow it and fail: the deletes that free
   * space, the master's own entries (it would start over and over without leading). A batch
   * that grew the database by a megabyte or more (a job of tens of thousands of tasks, large
   * results) is copied at once, while the room it was written with is still there; smaller
   * ones are left to the thread, within what the disk reserve gives back. While the thread
   * fails, every batch is copied here: the copy is what makes it durable then.
   */
  private copyNow(): void {
    try {
      this.checkpoints.exclusive(() => this.copyAll('PASSIVE'));
    } catch {
      // Applied all the same (a full disk, say): the next checkpoint, the thread's or this one
      // at the next batch, tries again; until one copies everything, nothing counts as durable.
    }
  }

  /**
   * One command, in a savepoint: should apply throw on its data (an ill-typed command that got
   * into the log), its writes are undone and the refusal recorded — the same on every master,
   * which then all go on with the next entry instead of stopping at this one for good. Only
   * what the data decides is recorded so: anything a master could meet alone (memory, a busy
   * or failing disk, a corrupt file) stops the batch instead, to be applied again.
   */
  private applyCommand(index: number, command: Command): ApplyResult {
    if (WORKER_COMMANDS.has(command?.type)) this.workersVersion++;
    try {
      return this.applyInSavepoint(command);
    } catch (err) {
      if (!decidedByData(err) || !this.database.inTransaction) throw err;
      this.applier.reset();
      const type = typeof command?.type === 'string' ? command.type : typeof command;
      const message = `command ${index} (${type}) could not be applied: ${(err as Error).message}`;
      this.s.refuse.run(index, type, message);
      return { ok: false, code: 'internal', message };
    }
  }

  /**
   * A consistent copy of the database in a file beside it (`VACUUM INTO`: compact, and not
   * in memory whatever its size), with what it holds: a snapshot to send a peer in chunks.
   * The file is the caller's: `discard` it once sent.
   */
  snapshot(): Snapshot {
    const file = `${this.path}${OUTGOING}${++this.snapshots}`;
    rmSync(file, { force: true });
    try {
      this.guard('a snapshot copy', () => this.database.prepare('VACUUM INTO ?').run(file));
    } catch (err) {
      rmSync(file, { force: true });
      throw err;
    }
    return { meta: this.applied(), data: { file, size: statSync(file).size } };
  }

  /**
   * The same copy made in a worker thread, for a leader whose event loop must keep turning
   * (heartbeats) while a large state is copied. It holds the state at some batch boundary at
   * or after this call; its meta is read from the copy.
   */
  async snapshotInBackground(): Promise<Snapshot> {
    const file = `${this.path}${OUTGOING}${++this.snapshots}`;
    rmSync(file, { force: true });
    try {
      const meta = await copyInBackground(this.path, file);
      return { meta, data: { file, size: statSync(file).size } };
    } catch (err) {
      rmSync(file, { force: true });
      if (isDiskError(err))
        throw new StorageError(`a snapshot copy could not be written: ${(err as Error).message}`, err);
      throw err;
    }
  }

  /**
   * A backup of the state in `dest` (backup-file.ts), copied in a worker thread as a
   * snapshot's is: the state at some batch boundary at or after this call, as the info says.
   */
  backupInBackground(dest: string): Promise<BackupInfo> {
    return copyInBackground(this.path, dest, BACKUP_APPLICATION_ID);
  }

  discard(snapshot: Snapshot): void {
    if (!Buffer.isBuffer(snapshot.data)) rmSync(snapshot.data.file, { force: true });
  }

  /** Refuses a snapshot of a newer schema than this Weir knows: installed, it could not be opened. */
  refuses(snapshot: Snapshot): string | undefined {
    const version = snapshotSchemaVersion(snapshot.data);
    if (version === undefined || version <= schemaVersion()) return undefined;
    return `the leader's snapshot holds a state of schema version ${version}, newer than this Weir reads (${schemaVersion()}): not installed, this master keeps the state it has; upgrade it to catch up`;
  }

  /**
   * Replaces the database with a snapshot received from the leader, on disk before it returns:
   * a received file (written, synced and checked by the transport) is renamed into place.
   */
  restore(snapshot: Snapshot): void {
    const tmp = `${this.path}${INCOMING}`;
    try {
      this.guard('the snapshot', () => placeDurably(tmp, snapshot.data));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    try {
      this.checkpoints.replacing(() => this.replaceWith(tmp));
    } catch (err) {
      rmSync(tmp, { force: true });
      // Not replaced: the master starts over from what it has, and is sent a snapshot again.
      if (err instanceof ReleaseTimeout)
        throw new StorageError(`the snapshot could not be installed: ${err.message}`, err);
      throw err;
    }
  }

  /** Puts the synced file `tmp` in place of the database (nothing else has it open). */
  private replaceWith(tmp: string): void {
    this.database.close();
    rmSync(`${this.path}-wal`, { force: true });
    rmSync(`${this.path}-shm`, { force: true });
    renameSync(tmp, this.path);
    syncDir(dirname(this.path));
    this.open();
  }

  /**
   * Copies everything applied so far into the database file and gives the WAL's space back —
   * on the calling thread: for the no_space alarm, not for every compaction (`durableIndex`).
   * A reader of the file (a snapshot copy for a follower, a backup) keeps the checkpoint from
   * copying the frames it may still read; it is not waited for (the loop would stand still
   * for the busy timeout), and what was left stays the thread's to make durable: such a
   * checkpoint syncs nothing, so counting it would let compaction drop entries that a power
   * loss takes back. Returns whether it copied everything.
   */
  checkpoint(): boolean {
    return this.checkpoints.exclusive(() => {
      const wait = this.database.pragma('busy_timeout', { simple: true }) as number;
      this.database.pragma('busy_timeout = 0');
      try {
        let copied = false;
        this.guard('the state database', () => (copied = this.copyAll('TRUNCATE')));
        return copied;
      } finally {
        this.database.pragma(`busy_timeout = ${wait}`);
      }
    });
  }

  /**
   * A checkpoint on this connection (inside `checkpoints.exclusive`); whether it copied every
   * frame. One that did fsynced the WAL first (synchronous = NORMAL does before a checkpoint),
   * so all applied is durable; one that did not (busy behind a reader) may have synced nothing.
   */
  private copyAll(mode: 'PASSIVE' | 'TRUNCATE'): boolean {
    const [r] = this.database.pragma(`wal_checkpoint(${mode})`) as {
      busy: number;
      log: number;
      checkpointed: number;
    }[];
    const copied = r !== undefined && r.busy === 0 && r.log === r.checkpointed;
    if (copied) this.checkpoints.durableAt(this.appliedIndex);
    return copied;
  }

  /**
   * The highest applied index on disk: the checkpoint thread fsyncs the WAL shortly after each
   * batch, so this follows `lastApplied` some 50 ms behind, and compaction drops no entry above
   * it — with no checkpoint on the event loop (a TRUNCATE there held it 15–150 ms under load).
   */
  durableIndex(): number {
    return Math.min(this.checkpoints.durable, this.appliedIndex);
  }

  /** A write the disk refused is a StorageError (a transaction is rolled back). */
  private guard(what: string, write: () => unknown): void {
    try {
      write();
    } catch (err) {
      if (isDiskError(err)) throw new StorageError(`${what} could not be written: ${(err as Error).message}`, err);
      throw err;
    }
  }

  close(): void {
    this.checkpoints.close(() => {
      if (this.database.open) this.database.close();
    });
  }
}

/**
 * The schema version a snapshot's database says it has; undefined when it cannot be read as
 * one (installing it then fails as any unreadable file does).
 */
function snapshotSchemaVersion(data: SnapshotData): number | undefined {
  try {
    const db = Buffer.isBuffer(data)
      ? new Database(data)
      : new Database(data.file, { readonly: true, fileMustExist: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/** Suffixes of the files a snapshot passes through beside the state database. */
const OUTGOING = '.outgoing-';
const INCOMING = '.incoming';
/** Where the transport writes a snapshot it receives: beside the database, so a rename installs it. */
export const receivingPath = (statePath: string, transfer: string): string => `${statePath}.receiving-${transfer}`;

/** The snapshot's bytes at `path`, synced: a received file is renamed there (it is synced already). */
function placeDurably(path: string, data: SnapshotData): void {
  if (!Buffer.isBuffer(data)) {
    renameSync(data.file, path);
    return;
  }
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs a file if it exists. */
function syncIfThere(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Copies and transfers a crash left behind: nothing uses them once the process is gone. */
function removeTempFiles(path: string): void {
  const dir = dirname(path);
  const base = basename(path);
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    if (
      name === `${base}${INCOMING}` ||
      name.startsWith(`${base}${OUTGOING}`) ||
      name.startsWith(`${base}.receiving-`)
    ) {
      rmSync(join(dir, name), { force: true });
    }
  }
}

/**
 * A state database that cannot be opened or fails `PRAGMA quick_check` is moved aside (with
 * its WAL) rather than deleted — someone may want to look at it — and the master starts with
 * an empty state, which it then fetches from the leader as a snapshot.
 */
function moveAsideIfUnreadable(path: string): { to: string; why: string } | undefined {
  if (!existsSync(path)) return undefined;
  let why: string | undefined;
  try {
    const db = new Database(path, { fileMustExist: true });
    try {
      const rows = db.pragma('quick_check') as { quick_check: string }[];
      if (rows[0]?.quick_check !== 'ok') why = `quick_check: ${rows.map((r) => r.quick_check).join('; ')}`;
    } finally {
      db.close();
    }
  } catch (err) {
    if (isDiskError(err)) throw err; // this disk's trouble, not the file's: nothing to move aside
    why = (err as Error).message;
  }
  if (why === undefined) return undefined;
  const to = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, to + suffix);
  }
  syncDir(dirname(path));
  return { to, why };
}

/**
 * Whether applying a command failed because of what the command says — the same on every
 * master: a value SQLite cannot bind or store, a constraint, apply's own checks. SQLite's
 * other codes, a stack overflow and an allocation that failed are this master's own trouble.
 */
function decidedByData(err: unknown): boolean {
  // How deep the stack may go or how much memory there is differs between masters.
  if (err instanceof RangeError && /call stack|allocation failed|out of memory/i.test(err.message)) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return true;
  return /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(code);
}

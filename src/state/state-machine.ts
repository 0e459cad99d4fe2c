import { renameSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { applyConfChange } from '../consensus/core/membership.js';
import type { ConfChange, Entry, Member, SnapshotMeta } from '../consensus/core/types.js';
import { Applier } from './apply.js';
import type { ApplyResult, Command } from './commands.js';
import { migrate } from './schema.js';

/** A committed log entry as the state machine sees it. */
export type LogEntry = Pick<Entry, 'index' | 'term' | 'kind' | 'data'>;

/**
 * The state database of one master. Committed entries are applied in index order, each
 * batch in one transaction that also records `last_applied` (and its term), so a crash
 * leaves the database at a batch boundary and replay from `last_applied + 1` is exact.
 * Re-applying an entry at or below `last_applied` is a no-op. Membership changes are
 * applied here too, so a copy of this database is a complete snapshot.
 */
export class StateMachine {
  private database!: Db;
  private applier!: Applier;
  private s!: ReturnType<StateMachine['prepare']>;
  private applied = 0;
  private appliedTerm = 0;
  /** Bumped whenever the database is replaced by a snapshot; readers re-prepare. */
  generation = 0;

  constructor(private readonly path: string) {
    this.open();
  }

  private open(): void {
    this.database = new Database(this.path);
    this.database.pragma('journal_mode = WAL');
    // The Raft log is the durable record; the state database is rebuilt from it after a
    // crash, so its commits need not wait for the disk.
    this.database.pragma('synchronous = NORMAL');
    migrate(this.database);
    this.applier = new Applier(this.database);
    this.s = this.prepare();
    this.applied = (this.s.getMeta.get('last_applied') as { value: number }).value;
    this.appliedTerm = (this.s.getMeta.get('last_applied_term') as { value: number }).value;
    this.generation++;
  }

  private prepare() {
    const st = (sql: string) => this.database.prepare(sql);
    return {
      setMeta: st(`UPDATE meta SET value = ? WHERE key = ?`),
      getMeta: st(`SELECT value FROM meta WHERE key = ?`),
      members: st(`SELECT id, address, voter FROM members ORDER BY id`),
      clearMembers: st(`DELETE FROM members`),
      insertMember: st(`INSERT INTO members (id, address, voter) VALUES (?, ?, ?)`),
    };
  }

  get db(): Db {
    return this.database;
  }

  get lastApplied(): number {
    return this.applied;
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

  /** Applies consecutive committed entries; returns one result per entry, in order. */
  applyBatch(entries: readonly LogEntry[]): ApplyResult[] {
    const results: ApplyResult[] = [];
    this.database.transaction(() => {
      for (const e of entries) {
        if (e.index <= this.applied) {
          results.push({ ok: true, replayed: true });
          continue;
        }
        if (e.index !== this.applied + 1) throw new Error(`apply out of order: entry ${e.index} after ${this.applied}`);
        if (e.kind === 'cmd') results.push(this.applier.apply(e.data as Command));
        else if (e.kind === 'conf') {
          this.writeMembers(applyConfChange(this.members(), e.data as ConfChange));
          results.push({ ok: true });
        } else results.push({ ok: true });
        this.applied = e.index;
        this.appliedTerm = e.term;
      }
      this.s.setMeta.run(this.applied, 'last_applied');
      this.s.setMeta.run(this.appliedTerm, 'last_applied_term');
    })();
    return results;
  }

  /** The whole database as one buffer, with what it holds: a snapshot to send a peer. */
  snapshot(): { meta: SnapshotMeta; data: Buffer } {
    return {
      meta: { index: this.applied, term: this.appliedTerm, members: this.members() },
      data: this.database.serialize(),
    };
  }

  /** Replaces the database with a snapshot received from the leader. */
  install(data: Buffer): void {
    const tmp = `${this.path}.incoming`;
    writeFileSync(tmp, data);
    this.database.close();
    rmSync(`${this.path}-wal`, { force: true });
    rmSync(`${this.path}-shm`, { force: true });
    renameSync(tmp, this.path);
    this.open();
  }

  /** Makes everything applied so far durable in the database file itself. */
  checkpoint(): void {
    this.database.pragma('wal_checkpoint(TRUNCATE)');
  }

  close(): void {
    if (this.database.open) this.database.close();
  }
}

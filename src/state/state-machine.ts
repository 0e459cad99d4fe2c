import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { Applier } from './apply.js';
import type { ApplyResult, Command } from './commands.js';
import { migrate } from './schema.js';

export interface LogEntry {
  index: number;
  term: number;
  command: Command;
}

/**
 * The state database of one master. Committed entries are applied in index order, each
 * batch in one transaction that also records `last_applied`, so a crash leaves the database
 * at a batch boundary and replay from `last_applied + 1` is exact. Re-applying an entry at
 * or below `last_applied` is a no-op.
 */
export class StateMachine {
  readonly db: Db;
  private readonly applier: Applier;
  private readonly setApplied;
  private applied: number;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // The log is the durable record; the state database is rebuilt from it after a crash,
    // so its commits need not wait for the disk.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = OFF');
    migrate(this.db);
    this.applier = new Applier(this.db);
    this.setApplied = this.db.prepare(`UPDATE meta SET value = ? WHERE key = 'last_applied'`);
    this.applied = (
      this.db.prepare(`SELECT value FROM meta WHERE key = 'last_applied'`).get() as { value: number }
    ).value;
  }

  get lastApplied(): number {
    return this.applied;
  }

  /** Applies consecutive committed entries; returns one result per entry, in order. */
  applyBatch(entries: readonly LogEntry[]): ApplyResult[] {
    const results: ApplyResult[] = [];
    this.db.transaction(() => {
      for (const e of entries) {
        if (e.index <= this.applied) {
          results.push({ ok: true, replayed: true });
          continue;
        }
        if (e.index !== this.applied + 1) {
          throw new Error(`apply out of order: entry ${e.index} after ${this.applied}`);
        }
        results.push(this.applier.apply(e.command));
        this.applied = e.index;
      }
      this.setApplied.run(this.applied);
    })();
    return results;
  }

  /** Makes everything applied so far durable in the database file itself. */
  checkpoint(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

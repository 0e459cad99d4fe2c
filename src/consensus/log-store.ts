import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { pack, unpack } from 'msgpackr';
import type { Command } from '../state/commands.js';
import type { LogEntry } from '../state/state-machine.js';

/**
 * The durable log and hard state (term, vote) in their own SQLite file. Every append is one
 * transaction with `synchronous = FULL`: when `append` returns, the entries are on disk.
 * One call per batch keeps it to one fsync per batch.
 */
export class LogStore {
  private readonly db: Db;
  private readonly s: Record<string, Statement>;
  private last: number;
  private first: number;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, data BLOB NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS hard_state (key TEXT PRIMARY KEY, value INTEGER) STRICT;
    `);
    this.s = {
      insert: this.db.prepare(`INSERT INTO entries (idx, term, data) VALUES (?, ?, ?)`),
      range: this.db.prepare(`SELECT idx, term, data FROM entries WHERE idx >= ? AND idx <= ? ORDER BY idx LIMIT ?`),
      bounds: this.db.prepare(`SELECT min(idx) AS lo, max(idx) AS hi FROM entries`),
      compact: this.db.prepare(`DELETE FROM entries WHERE idx <= ?`),
      getHard: this.db.prepare(`SELECT value FROM hard_state WHERE key = ?`),
      setHard: this.db.prepare(`INSERT INTO hard_state (key, value) VALUES (?, ?)
                                ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
    };
    const b = this.s.bounds!.get() as { lo: number | null; hi: number | null };
    const compactedTo = this.hard('compacted_to') ?? 0;
    this.last = b.hi ?? compactedTo;
    this.first = b.lo ?? compactedTo + 1;
  }

  /** Index of the last entry (or of the last compacted one when the log is empty). */
  get lastIndex(): number {
    return this.last;
  }

  get firstIndex(): number {
    return this.first;
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    this.db.transaction(() => {
      for (const e of entries) {
        if (e.index !== this.last + 1) throw new Error(`log gap: appending ${e.index} after ${this.last}`);
        this.s.insert!.run(e.index, e.term, pack(e.command));
        this.last = e.index;
      }
    })();
  }

  /** Entries `[from, to]`, at most `max` of them. */
  entries(from: number, to: number, max = 10_000): LogEntry[] {
    const rows = this.s.range!.all(from, to, max) as { idx: number; term: number; data: Buffer }[];
    return rows.map((r) => ({ index: r.idx, term: r.term, command: unpack(r.data) as Command }));
  }

  /** Drops entries up to `index`, which the state database already holds durably. */
  compact(index: number): void {
    if (index < this.first) return;
    this.db.transaction(() => {
      this.s.compact!.run(index);
      this.s.setHard!.run('compacted_to', index);
    })();
    this.first = index + 1;
  }

  hard(key: string): number | undefined {
    const row = this.s.getHard!.get(key) as { value: number } | undefined;
    return row?.value;
  }

  setHard(key: string, value: number): void {
    this.s.setHard!.run(key, value);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

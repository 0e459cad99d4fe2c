import type { Database, Statement } from 'better-sqlite3';
import type { LogLine } from '../protocol/task-log.js';

/**
 * The table of what user code printed, one row per line. Lines reach the masters inside the
 * commands that record their task's outcome (completeTasks, failTasks: one log entry carries a
 * report's outcome and its lines together) or, for a streaming instance, in appendLogs: so
 * they are replicated like everything else, survive a kill -9 of their worker once reported,
 * and a failover of the leader once committed; they count against --max-db-bytes, travel in
 * snapshots and backups, and go with their job (deleteJob / purgeJob slices).
 *
 * `id` is the order lines were applied in, the same on every master (apply is deterministic,
 * and a new rowid is always one past the largest): the cursor of GET /api/jobs/ID/logs.
 */
export const TASK_LOGS_MIGRATION = `
  CREATE TABLE task_logs (
    id      INTEGER PRIMARY KEY,
    seq     INTEGER NOT NULL,                -- the job's seq, as its tasks are keyed
    idx     INTEGER NOT NULL,                -- the task (a streaming job's: its instance)
    attempt INTEGER NOT NULL,
    stream  TEXT NOT NULL,                   -- stdout | stderr
    at      INTEGER NOT NULL,                -- when it was written, ms since the epoch
    text    TEXT NOT NULL
  ) STRICT;
  CREATE INDEX task_logs_by_job ON task_logs (seq, id);
  CREATE INDEX task_logs_by_task ON task_logs (seq, idx, attempt, id);
`;

/** A stored line as the logs route reads it. */
export interface LogRow {
  id: number;
  idx: number;
  attempt: number;
  stream: string;
  at: number;
  text: string;
}

/** Apply's side: writes lines, and removes a deleted job's in slices. */
export class TaskLogWriter {
  private readonly insert: Statement;
  private readonly has: Statement;
  private readonly deleteSliceOf: Statement;

  constructor(db: Database) {
    this.insert = db.prepare(`INSERT INTO task_logs (seq, idx, attempt, stream, at, text) VALUES (?, ?, ?, ?, ?, ?)`);
    this.has = db.prepare(`SELECT 1 FROM task_logs WHERE seq = ? AND idx = ? AND attempt = ? LIMIT 1`);
    this.deleteSliceOf = db.prepare(
      `DELETE FROM task_logs WHERE id IN (SELECT id FROM task_logs WHERE seq = ? ORDER BY id LIMIT ?)`,
    );
  }

  /**
   * An attempt's lines from its report. A report is sent again until acknowledged, so the
   * lines of an attempt that has some already are a repeat: kept once.
   */
  addOnce(seq: number, idx: number, attempt: number, lines: readonly LogLine[]): void {
    if (lines.length === 0 || this.has.get(seq, idx, attempt) !== undefined) return;
    this.add(seq, idx, attempt, lines);
  }

  /** Lines appended to what the attempt has (a streaming instance's, sent as it runs). */
  add(seq: number, idx: number, attempt: number, lines: readonly LogLine[]): void {
    for (const l of lines) this.insert.run(seq, idx, attempt, l.stream, l.at, l.text);
  }

  /** Removes up to `limit` of a deleted job's lines; returns how many went. */
  deleteSlice(seq: number, limit: number): number {
    return this.deleteSliceOf.run(seq, limit).changes;
  }
}

/** The SQL of a page of a job's lines after a cursor, by what the caller filters on. */
export const LOG_PAGE_SQL = {
  job: `SELECT id, idx, attempt, stream, at, text FROM task_logs WHERE seq = ? AND id > ? ORDER BY id LIMIT ?`,
  task: `SELECT id, idx, attempt, stream, at, text FROM task_logs INDEXED BY task_logs_by_task
          WHERE seq = ? AND idx = ? AND id > ? ORDER BY id LIMIT ?`,
  attempt: `SELECT id, idx, attempt, stream, at, text FROM task_logs
             WHERE seq = ? AND idx = ? AND attempt = ? AND id > ? ORDER BY id LIMIT ?`,
};

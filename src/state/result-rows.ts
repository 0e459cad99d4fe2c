import type { Database, Statement } from 'better-sqlite3';
import { isKeyed } from '../ops/batch-ops.js';
import { isDataJob } from '../ops/batch-config.js';
import { keyOfRow, sortKey } from '../ops/sort-key.js';
import { finalStage, planStages } from '../ops/stages.js';
import type { JobConfig } from './commands.js';

/** A job's stored results (every task's, as JSON) may not exceed this (DESIGN §7). */
export const RESULTS_CAP_BYTES = 64 * 1024 * 1024;

/**
 * The first task whose results a keyed job serves sorted by key (its final stage's first),
 * or null for a job whose results are a list in input order (served from the tasks' rows).
 */
export function rowsFrom(config: JobConfig): number | null {
  if (!isKeyed(config) || !isDataJob(config)) return null;
  const stages = planStages(config);
  return stages ? finalStage(stages).first : 0;
}

/** A task's results as apply received them: a JSON array, or nothing to index if not one. */
function parseRows(resultJson: string): unknown[] {
  try {
    const rows = JSON.parse(resultJson) as unknown;
    return Array.isArray(rows) ? rows : [];
  } catch {
    return [];
  }
}

/** Rows per INSERT statement: one statement per row cost about 40% more (measured). */
const BATCH = 64;

/** Writes a keyed task's result rows into result_rows, each under its sort key. */
export class ResultRows {
  private readonly insertOne: Statement;
  private readonly insertBatch: Statement;

  constructor(db: Database) {
    // OR IGNORE: a task's rows are written once, when it completes; a repeat changes nothing.
    const sql = (n: number) =>
      `INSERT OR IGNORE INTO result_rows (seq, sort_key, row) VALUES ${Array(n).fill('(?, ?, ?)').join(', ')}`;
    this.insertOne = db.prepare(sql(1));
    this.insertBatch = db.prepare(sql(BATCH));
  }

  /** A task's rows, streamed in batches as they come (a reduce's come in key order already). */
  add(seq: number, idx: number, resultJson: string): void {
    const rows = parseRows(resultJson);
    const args = this.args;
    let i = 0;
    for (; i + BATCH <= rows.length; i += BATCH) {
      for (let j = 0; j < BATCH; j++) {
        const row = rows[i + j];
        args[3 * j] = seq;
        args[3 * j + 1] = sortKey(keyOfRow(row), idx, i + j);
        args[3 * j + 2] = JSON.stringify(row) ?? 'null';
      }
      this.insertBatch.run(args);
    }
    for (; i < rows.length; i++) {
      this.insertOne.run(seq, sortKey(keyOfRow(rows[i]), idx, i), JSON.stringify(rows[i]) ?? 'null');
    }
  }

  private readonly args: unknown[] = new Array(3 * BATCH);
}

/**
 * The migration that introduced result_rows: jobs stored before it get their rows_from,
 * their result_bytes and, for keyed ones, their completed results indexed.
 */
export function indexOldResults(db: Database): void {
  const jobs = db.prepare(`SELECT seq, config FROM jobs ORDER BY seq`).all() as { seq: number; config: string }[];
  const setJob = db.prepare(`UPDATE jobs SET rows_from = ?, result_bytes = ? WHERE seq = ?`);
  const bytes = db.prepare(
    `SELECT coalesce(sum(length(CAST(result AS BLOB))), 0) AS n FROM tasks WHERE seq = ? AND result IS NOT NULL`,
  );
  const completed = db.prepare(
    `SELECT idx, result FROM tasks WHERE seq = ? AND idx >= ? AND status = 'completed' AND result IS NOT NULL`,
  );
  const rows = new ResultRows(db);
  const updates: [number | null, number, number][] = [];
  const toIndex: [number, number][] = [];
  for (const job of jobs) {
    let from: number | null = null;
    try {
      from = rowsFrom(JSON.parse(job.config) as JobConfig);
    } catch {
      from = null;
    }
    updates.push([from, (bytes.get(job.seq) as { n: number }).n, job.seq]);
    if (from !== null) toIndex.push([job.seq, from]);
  }
  for (const u of updates) setJob.run(...u);
  // Read, then written: better-sqlite3 allows no writes while a query is being iterated.
  // Kept in result_rows alone from now on, as apply keeps them.
  const drop = db.prepare(`UPDATE tasks SET result = NULL WHERE seq = ? AND idx >= ?`);
  for (const [seq, from] of toIndex) {
    for (const t of completed.all(seq, from) as { idx: number; result: string }[]) rows.add(seq, t.idx, t.result);
    drop.run(seq, from);
  }
}

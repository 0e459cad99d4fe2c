import type { Database } from 'better-sqlite3';

/**
 * What the retention sweep and the clean-up of deleted jobs ask of the state database: each
 * question answered from an index, at a cost independent of how many jobs are kept.
 */
export class LifecycleQueries {
  private statements: ReturnType<typeof prepare> | undefined;
  private generation = -1;

  constructor(private readonly source: { db: Database; generation: number }) {}

  private get s(): ReturnType<typeof prepare> {
    if (!this.statements || this.generation !== this.source.generation) {
      this.statements = prepare(this.source.db);
      this.generation = this.source.generation;
    }
    return this.statements;
  }

  /**
   * Jobs whose retention ran out by `now`: finished more than their own retention ago, or the
   * cluster's `defaultMs` for those without one (0: the cluster keeps them).
   */
  expiredJobs(now: number, defaultMs: number, limit: number): string[] {
    const own = this.s.expiredOwn.all(now, limit) as { job_id: string }[];
    const byDefault = defaultMs > 0 ? (this.s.expiredDefault.all(now - defaultMs, limit) as { job_id: string }[]) : [];
    return [...own, ...byDefault].slice(0, limit).map((r) => r.job_id);
  }

  /** Deleted jobs whose rows are still being removed (by seq). */
  purging(): number[] {
    return (this.s.purging.all() as { seq: number }[]).map((r) => r.seq);
  }

  /** Workers declared dead before `before`. */
  deadWorkers(before: number, limit: number): { worker_id: string; dead_at: number }[] {
    return this.s.deadWorkers.all(before, limit) as { worker_id: string; dead_at: number }[];
  }

  /** Whether a job (kept, not deleted) reads the upload. */
  uploadRead(uploadId: string): boolean {
    return this.s.uploadReader.get(uploadId) !== undefined;
  }

  /** Whether any deleted upload was recorded before `before` (through its index). */
  deletedUploadsBefore(before: number): boolean {
    return this.s.deletedUploadBefore.get(before) !== undefined;
  }

  /** Whether the upload belonged to jobs that are all deleted (its copies may go). */
  uploadDeleted(uploadId: string): boolean {
    return this.s.deletedUpload.get(uploadId) !== undefined;
  }
}

function prepare(db: Database) {
  const st = (sql: string) => db.prepare(sql);
  return {
    // Both served by partial indexes (schema.ts: jobs_expiring, jobs_expiring_own).
    expiredDefault: st(
      `SELECT job_id FROM jobs WHERE finished_at < ? AND retention_ms IS NULL ORDER BY finished_at LIMIT ?`,
    ),
    expiredOwn: st(
      `SELECT job_id FROM jobs WHERE retention_ms > 0 AND finished_at + retention_ms < ?
        ORDER BY finished_at + retention_ms LIMIT ?`,
    ),
    purging: st(`SELECT seq FROM purging ORDER BY seq`),
    deadWorkers: st(
      `SELECT worker_id, dead_at FROM workers WHERE status = 'dead' AND dead_at < ? ORDER BY dead_at LIMIT ?`,
    ),
    deletedUpload: st(`SELECT 1 FROM deleted_uploads WHERE upload_id = ?`),
    deletedUploadBefore: st(`SELECT 1 FROM deleted_uploads WHERE at < ? LIMIT 1`),
    uploadReader: st(`SELECT 1 FROM jobs WHERE upload_id = ? LIMIT 1`),
  };
}

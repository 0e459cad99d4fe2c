import type { Database } from 'better-sqlite3';
import { indexOldResults } from './result-rows.js';
import { TASK_LOGS_MIGRATION } from './task-logs.js';

/**
 * Numbered migrations of the state database; `user_version` records how many ran. Add a
 * new entry to change the schema — never edit one that has shipped.
 */
const MIGRATIONS: (string | ((db: Database) => void))[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
  INSERT INTO meta (key, value) VALUES ('last_applied', 0), ('job_seq', 0);

  CREATE TABLE workers (
    worker_id     TEXT PRIMARY KEY,
    address       TEXT NOT NULL,
    max_tasks     INTEGER NOT NULL,
    status        TEXT NOT NULL,            -- active | draining | dead
    registered_at INTEGER NOT NULL,
    dead_at       INTEGER,
    dead_reason   TEXT
  ) STRICT;

  CREATE TABLE jobs (
    job_id          TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL UNIQUE, -- submission order, the list cursor
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    status          TEXT NOT NULL,           -- pending | running | completed | failed | cancelled
    config          TEXT NOT NULL,           -- JSON
    idempotency_key TEXT UNIQUE,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    error           TEXT,                    -- JSON {task, message, stack}
    max_retries     INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    pending         INTEGER NOT NULL,        -- counters kept by apply, so status is O(1)
    running         INTEGER NOT NULL,
    completed       INTEGER NOT NULL,
    failed          INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE tasks (
    job_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    status      TEXT NOT NULL,               -- pending | running | completed | failed | cancelled
    attempt     INTEGER NOT NULL,            -- bumped every time the task goes back to pending
    failures    INTEGER NOT NULL,            -- failed attempts that count against max_retries
    worker_id   TEXT,                        -- running: where; otherwise: where it last ran
    not_before  INTEGER NOT NULL,            -- retry backoff: not scheduled before this time
    seq         INTEGER NOT NULL,            -- the job's seq: pending tasks run oldest job first
    started_at  INTEGER,
    finished_at INTEGER,
    result      TEXT,                        -- JSON array of the task's results
    error       TEXT,                        -- JSON of the last failure
    PRIMARY KEY (job_id, idx)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX tasks_pending ON tasks (seq, idx) WHERE status = 'pending';
  CREATE INDEX tasks_running ON tasks (worker_id) WHERE status = 'running';
  `,
  `
  -- The masters' configuration as of last_applied, so a snapshot of this database says
  -- which nodes it belongs to.
  CREATE TABLE members (id INTEGER PRIMARY KEY, address TEXT NOT NULL, voter INTEGER NOT NULL) STRICT;
  INSERT INTO meta (key, value) VALUES ('last_applied_term', 0);
  `,
  `
  -- Jobs in stages (map → reduce): the plan says which task indexes form which stage, and
  -- holds a range partitioner's boundaries; 'waiting' tasks belong to a later stage.
  ALTER TABLE jobs ADD COLUMN plan TEXT;             -- JSON JobPlan, NULL for single-stage jobs
  ALTER TABLE jobs ADD COLUMN stage INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX jobs_staged_active ON jobs (job_id) WHERE plan IS NOT NULL AND status IN ('pending', 'running');
  `,
  `
  CREATE INDEX jobs_running ON jobs (seq) WHERE status = 'running';
  -- A speculative copy of a running task: the original attempt and where it runs (attempt
  -- and worker_id then name the copy). The first of the two to complete wins.
  ALTER TABLE tasks ADD COLUMN alt_attempt INTEGER;
  ALTER TABLE tasks ADD COLUMN alt_worker_id TEXT;
  CREATE INDEX tasks_copies ON tasks (alt_worker_id) WHERE status = 'running' AND alt_worker_id IS NOT NULL;
  `,
  `
  -- What streaming jobs' collect sinks delivered: one row per key (a window's key and
  -- bounds, or an event's id), replaced when it comes again; seq orders rows for followers.
  CREATE TABLE stream_rows (
    job_id  TEXT NOT NULL,
    row_key TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (job_id, row_key)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX stream_rows_seq ON stream_rows (job_id, seq);
  INSERT INTO meta (key, value) VALUES ('row_seq', 0);
  `,
  `
  -- Tasks are keyed by their job's seq, not its id: every master writes each task's row,
  -- and an integer key made those writes about a fifth cheaper than a text one (measured).
  CREATE TABLE tasks_by_seq (
    seq           INTEGER NOT NULL,          -- the job's seq: pending tasks run oldest job first
    idx           INTEGER NOT NULL,
    status        TEXT NOT NULL,             -- waiting | pending | running | completed | failed | cancelled
    attempt       INTEGER NOT NULL,          -- bumped every time the task goes back to pending
    failures      INTEGER NOT NULL,          -- failed attempts that count against max_retries
    worker_id     TEXT,                      -- running: where; otherwise: where it last ran
    not_before    INTEGER NOT NULL,          -- retry backoff: not scheduled before this time
    started_at    INTEGER,
    finished_at   INTEGER,
    result        TEXT,                      -- JSON array of the task's results
    error         TEXT,                      -- JSON of the last failure
    alt_attempt   INTEGER,                   -- a speculative copy's original attempt...
    alt_worker_id TEXT,                      -- ...and where it runs
    PRIMARY KEY (seq, idx)
  ) STRICT, WITHOUT ROWID;
  INSERT INTO tasks_by_seq
    SELECT seq, idx, status, attempt, failures, worker_id, not_before, started_at, finished_at, result, error,
           alt_attempt, alt_worker_id
      FROM tasks;
  DROP TABLE tasks;
  ALTER TABLE tasks_by_seq RENAME TO tasks;
  CREATE INDEX tasks_pending ON tasks (seq, idx) WHERE status = 'pending';
  CREATE INDEX tasks_running ON tasks (worker_id) WHERE status = 'running';
  CREATE INDEX tasks_copies ON tasks (alt_worker_id) WHERE status = 'running' AND alt_worker_id IS NOT NULL;

  -- A single-stage job's tasks get their row when first assigned, not at submission: one
  -- write less per task, and no pending-index entry to add and remove. Tasks from
  -- untouched_from on have no row: pending (attempt 1) while the job is pending or running,
  -- cancelled once it is cancelled or failed. Jobs in stages keep every row from submission.
  ALTER TABLE jobs ADD COLUMN untouched_from INTEGER NOT NULL DEFAULT 0;
  UPDATE jobs SET untouched_from = total;
  CREATE INDEX jobs_untouched ON jobs (seq) WHERE untouched_from < total AND status IN ('pending', 'running');
  `,
  `
  -- Commands apply could not apply (it threw on their data): recorded, identically on every
  -- master, instead of stopping the log there.
  CREATE TABLE refused_commands (
    log_index INTEGER PRIMARY KEY,
    type      TEXT NOT NULL,
    message   TEXT NOT NULL
  ) STRICT;
  `,
  `
  -- Keyed results (wordcount's rows…) in the order they are served, one row per result row,
  -- written as the final stage's tasks complete: a results page is a range of this index
  -- (see ops/sort-key.ts), whatever the job's size. rows_from: the first task whose results
  -- are indexed (the final stage's first), NULL for jobs whose results are lists.
  -- result_bytes: the bytes of results stored, against the 64 MiB cap.
  CREATE TABLE result_rows (
    seq      INTEGER NOT NULL,
    sort_key BLOB NOT NULL,
    row      TEXT NOT NULL,                  -- JSON of the row
    PRIMARY KEY (seq, sort_key)
  ) STRICT, WITHOUT ROWID;
  ALTER TABLE jobs ADD COLUMN rows_from INTEGER;
  ALTER TABLE jobs ADD COLUMN result_bytes INTEGER NOT NULL DEFAULT 0;
  -- The jobs list filtered by status, and the workers list, page by keyset on these.
  CREATE INDEX jobs_by_status ON jobs (status, seq);
  CREATE INDEX workers_by_age ON workers (registered_at, worker_id);
  `,
  // Jobs stored before result_rows existed: their keyed results are indexed now.
  indexOldResults,
  `
  -- Deleting jobs (DELETE /api/jobs/ID, retention). A job's row goes in the first command; its
  -- tasks and stream rows go in bounded slices afterwards, while the job is listed here.
  CREATE TABLE purging (
    seq    INTEGER PRIMARY KEY,             -- the deleted job's seq: its tasks' key
    job_id TEXT NOT NULL
  ) STRICT;
  -- Uploads no job reads any more: every master removes its copy (also one that missed the delete).
  CREATE TABLE deleted_uploads (upload_id TEXT PRIMARY KEY, at INTEGER NOT NULL) STRICT;
  -- The upload a job reads (its config.input.url), and its own retention (config.retention):
  -- NULL the cluster's --retention, 0 kept for ever.
  ALTER TABLE jobs ADD COLUMN upload_id TEXT;
  ALTER TABLE jobs ADD COLUMN retention_ms INTEGER;
  UPDATE jobs SET upload_id = substr(json_extract(config, '$.input.url'),
                                     instr(json_extract(config, '$.input.url'), '/uploads/up_') + 9, 35)
   WHERE instr(json_extract(config, '$.input.url'), '/uploads/up_') > 0;
  CREATE INDEX jobs_upload ON jobs (upload_id) WHERE upload_id IS NOT NULL;
  CREATE INDEX jobs_expiring ON jobs (finished_at) WHERE retention_ms IS NULL;
  CREATE INDEX jobs_expiring_own ON jobs (finished_at + retention_ms) WHERE retention_ms > 0;
  `,
  // What user code printed, per task attempt (see task-logs.ts).
  TASK_LOGS_MIGRATION,
  `
  -- Fewer index pages written per job (every master writes each one): running jobs are listed
  -- from jobs_by_status, which holds them in the same order, and a job enters jobs_expiring
  -- when it finishes instead of with a NULL key when it is submitted. A one-task job wrote 18
  -- pages of this database, 3 of them for these two indexes alone.
  DROP INDEX jobs_running;
  DROP INDEX jobs_expiring;
  CREATE INDEX jobs_expiring ON jobs (finished_at) WHERE retention_ms IS NULL AND finished_at IS NOT NULL;
  `,
  `
  -- The rules the state is applied by (rules.ts), moved on through the log; and how many
  -- workers were lost while they ran each task, which counts from rules 2 on.
  INSERT INTO meta (key, value) VALUES ('rules_version', 1);
  ALTER TABLE tasks ADD COLUMN losses INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- Records of deleted uploads are pruned by age from rules 3 on (rules.ts).
  CREATE INDEX deleted_uploads_at ON deleted_uploads (at);
  `,
];

/** The schema version this Weir writes: how many migrations there are. */
export const schemaVersion = (): number => MIGRATIONS.length;

/** Runs the migrations the database has not run yet, up to `target` (tests stop short). */
export function migrate(db: Database, target = MIGRATIONS.length): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(
      `the state database has schema version ${version}, newer than this Weir knows (${MIGRATIONS.length}); upgrade Weir`,
    );
  }
  for (let v = version; v < target; v++) {
    db.transaction(() => {
      const m = MIGRATIONS[v]!;
      if (typeof m === 'string') db.exec(m);
      else m(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

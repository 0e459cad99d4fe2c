import { badRequest } from '../common/errors.js';
import { isKeyed } from '../ops/batch-ops.js';
import type { BatchConfig } from '../ops/batch-config.js';
import type { JobConfig } from '../state/commands.js';
import { compareKeys } from '../ops/keys.js';
import { finalStage, type JobPlan } from '../ops/stages.js';
import type { Queries } from '../state/queries.js';

export interface ResultsPage {
  results: unknown[];
  next_cursor: string | null;
  /** Streaming jobs: where to ask from next time, even when nothing more is there yet. */
  follow_cursor?: string;
}

/**
 * A streaming job's collected rows in the order they were (last) delivered; the cursor
 * `s<seq>` resumes after a row, so a follower sees replaced rows again with their new value.
 */
export function streamRowsPage(
  queries: Queries,
  jobId: string,
  cursor: string | undefined,
  limit: number,
): ResultsPage {
  const m = cursor === undefined ? ['', '0'] : /^s(\d+)$/.exec(cursor);
  if (!m) throw badRequest(`cursor '${cursor}' is not one this API gave out; start again without a cursor`);
  const rows = queries.streamRows(jobId, Number(m[1]), limit + 1);
  const page = rows.slice(0, limit);
  const last = page.length ? `s${page[page.length - 1]!.seq}` : `s${m[1]}`;
  return { results: page.map((r) => r.value), next_cursor: rows.length > limit ? last : null, follow_cursor: last };
}

/**
 * A page of a completed job's results. Lists (multiply, noop, sleep) come in input order,
 * walked task by task with the cursor `<task>.<offset>`; keyed rows come sorted by key,
 * with the cursor `k<offset>`.
 */
export function pageResults(
  queries: Queries,
  job: { job_id: string; total: number },
  config: JobConfig & BatchConfig,
  cursor: string | undefined,
  limit: number,
): ResultsPage {
  // A multi-stage job's results are its last stage's; earlier stages only fed it.
  const plan: JobPlan | undefined = queries.jobPlan(job.job_id);
  const first = plan ? finalStage(plan.stages).first : 0;
  if (isKeyed(config)) return keyedPage(queries, job, first, cursor, limit);
  const m = cursor === undefined ? ['', String(first), '0'] : /^(\d+)\.(\d+)$/.exec(cursor);
  if (!m) throw badRequest(`cursor '${cursor}' is not one this API gave out; start again without a cursor`);
  let idx = Math.max(first, Number(m[1]));
  let offset = Number(m[2]);
  const results: unknown[] = [];
  while (idx < job.total) {
    const tasks = queries.results(job.job_id, idx, 256);
    if (tasks.length === 0) break;
    for (const t of tasks) {
      const take = t.result.slice(offset, offset + (limit - results.length));
      for (const r of take) results.push(r);
      if (offset + take.length < t.result.length) return { results, next_cursor: `${t.idx}.${offset + take.length}` };
      offset = 0;
      idx = t.idx + 1;
      if (results.length >= limit) return { results, next_cursor: idx < job.total ? `${idx}.0` : null };
    }
  }
  return { results, next_cursor: null };
}

function keyedPage(
  queries: Queries,
  job: { job_id: string; total: number },
  first: number,
  cursor: string | undefined,
  limit: number,
): ResultsPage {
  const m = cursor === undefined ? ['', '0'] : /^k(\d+)$/.exec(cursor);
  if (!m) throw badRequest(`cursor '${cursor}' is not one this API gave out; start again without a cursor`);
  const offset = Number(m[1]);
  const rows: { key: unknown }[] = [];
  for (let idx = first; idx < job.total;) {
    const tasks = queries.results(job.job_id, idx, 256);
    if (tasks.length === 0) break;
    for (const t of tasks) for (const r of t.result) rows.push(r as { key: unknown });
    idx = tasks[tasks.length - 1]!.idx + 1;
  }
  rows.sort((a, b) => compareKeys(a.key, b.key));
  const results = rows.slice(offset, offset + limit);
  const next = offset + results.length;
  return { results, next_cursor: next < rows.length ? `k${next}` : null };
}

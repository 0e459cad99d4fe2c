import { createHash } from 'node:crypto';
import { badRequest } from '../common/errors.js';
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

/** A cursor this API no longer gives out (or never did): the caller starts again. */
const staleCursor = (cursor: string) =>
  badRequest(`cursor '${cursor.slice(0, 100)}' is not one this API gives out; start again without a cursor`);

/**
 * A page of a completed job's results, at a cost that does not grow with the job. Keyed rows
 * (wordcount's…) come sorted by key from the result_rows index, the cursor `r<last sort key,
 * base64url>`; lists (multiply, noop, sleep, sort's values) come in input order, walked task
 * by task from the cursor `<task>.<offset>`.
 */
export function pageResults(
  queries: Queries,
  job: { job_id: string; seq: number; total: number; rows_from: number | null },
  cursor: string | undefined,
  limit: number,
): ResultsPage {
  if (job.rows_from !== null) return keyedPage(queries, job.seq, cursor, limit);
  // A multi-stage job's results are its last stage's; earlier stages only fed it.
  const plan: JobPlan | undefined = queries.jobPlan(job.job_id);
  const first = plan ? finalStage(plan.stages).first : 0;
  const m = cursor === undefined ? ['', String(first), '0'] : /^(\d{1,9})\.(\d{1,15})$/.exec(cursor);
  if (!m) throw staleCursor(cursor!);
  let offset = Number(m[2]);
  const results: unknown[] = [];
  for (const t of queries.resultsFrom(job.job_id, Math.max(first, Number(m[1])))) {
    const take = t.result.slice(offset, offset + (limit - results.length));
    for (const r of take) results.push(r);
    if (offset + take.length < t.result.length) return { results, next_cursor: `${t.idx}.${offset + take.length}` };
    offset = 0;
    const next = t.idx + 1;
    if (results.length >= limit) return { results, next_cursor: next < job.total ? `${next}.0` : null };
  }
  return { results, next_cursor: null };
}

function keyedPage(queries: Queries, seq: number, cursor: string | undefined, limit: number): ResultsPage {
  let after: Buffer | null = null;
  if (cursor !== undefined) {
    // Sort keys are at least a type byte, 8 bytes of number or a string's end, and 8 of position.
    if (/^r[A-Za-z0-9_-]{12,}$/.test(cursor)) after = Buffer.from(cursor.slice(1), 'base64url');
    else if (/^h[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/.test(cursor)) after = longKeyAfter(queries, seq, cursor);
    else throw staleCursor(cursor);
  }
  const rows = queries.resultRows(seq, after, limit + 1);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    results: page.map((r) => JSON.parse(r.row) as unknown),
    next_cursor: rows.length > limit && last ? keyCursor(last.sort_key) : null,
  };
}

/**
 * Past this, a sort key does not go whole into a cursor: a URL of over 16 KiB is refused by
 * the HTTP server (431) before Weir sees it, and the caller could never page on.
 */
export const CURSOR_KEY_BYTES = 4096;
/** Rows a long-key cursor may walk to find its row again (those sharing its key's first 4 KiB). */
const LONG_KEY_WALK = 10_000;

const digest = (key: Buffer) => createHash('sha256').update(key).digest().subarray(0, 16).toString('base64url');

/** `r<sort key>`, or for a long key `h<its first 4 KiB>.<a digest of it whole>`. */
function keyCursor(key: Buffer): string {
  if (key.length <= CURSOR_KEY_BYTES) return `r${key.toString('base64url')}`;
  return `h${key.subarray(0, CURSOR_KEY_BYTES).toString('base64url')}.${digest(key)}`;
}

/**
 * The whole sort key a long-key cursor stands for. Every key between its prefix and it starts
 * with that prefix, so the rows from the prefix on lead to it; a row no longer there (or more
 * rows sharing the prefix than a walk allows) makes the cursor stale.
 */
function longKeyAfter(queries: Queries, seq: number, cursor: string): Buffer {
  const [head, want] = cursor.slice(1).split('.') as [string, string];
  const prefix = Buffer.from(head, 'base64url');
  let from: Buffer = prefix;
  for (let walked = 0; walked < LONG_KEY_WALK;) {
    const rows = queries.resultRows(seq, from, 1000);
    for (const r of rows) {
      if (!r.sort_key.subarray(0, prefix.length).equals(prefix)) throw staleCursor(cursor);
      if (r.sort_key.length > CURSOR_KEY_BYTES && digest(r.sort_key) === want) return r.sort_key;
    }
    if (rows.length < 1000) break;
    walked += rows.length;
    from = rows[rows.length - 1]!.sort_key;
  }
  throw staleCursor(cursor);
}

import { trace } from '../../common/trace.js';
import { commit, commitFreeing } from '../cluster-log.js';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { WeirError, badRequest, noLeader, notFound } from '../../common/errors.js';
import { escapedUploadId, ID_PATTERN, newId, uploadIdOfUrl } from '../../common/ids.js';
import { normalizeBatchConfig } from '../../ops/batch-config.js';
import type { MasterContext } from '../context.js';
import { clientDeparture } from '../client-gone.js';
import { pageResults, streamRowsPage } from '../results-pager.js';
import { isStreamConfig } from '../../protocol/stream-job.js';
import { normalizeStreamConfig } from '../../stream/stream-config.js';
import { TERMINAL, jobView, taskView } from '../views.js';
import { retentionOf } from '../../ops/retention.js';
import { uploadDeletedMessage } from '../../state/commands.js';
import { DeletedReply, JobReply, JobsReply, ResultsReply, TasksReply } from '../reply-schemas.js';
import { unknownField } from '../../common/closest-name.js';
import { CONTROL_CHAR } from '../../common/control-chars.js';

const JobParams = Type.Object({ job_id: Type.String({ pattern: ID_PATTERN.source }) });

const SubmitBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  type: Type.Unsafe<'batch' | 'streaming'>({ type: 'string', enum: ['batch', 'streaming'] }),
  config: Type.Optional(Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()])),
});

const SUBMIT_FIELDS = ['name', 'type', 'config'] as const;

/** A field a submit does not read is a typo the job would silently run without (`confg`). */
function refuseUnknownFields(body: object): void {
  const unknown = unknownField(body, SUBMIT_FIELDS);
  if (unknown === undefined) return;
  const { field: name, guess } = unknown;
  throw badRequest(
    `unknown field '${name.slice(0, 64)}' in the submit${guess ? ` (did you mean '${guess}'?)` : ''}; a submit takes ${SUBMIT_FIELDS.join(', ')}`,
  );
}

const MAX_RESULTS_PAGE = 100_000;
/**
 * The most results a job's answer brings (`?results_limit`): a short job's, in the same round
 * trip. Every long poll woken by the job's end builds its page before the loop moves on
 * (job-watch.ts), so it stays small; more are read page by page from GET …/results.
 */
const MAX_RESULTS_WITH_JOB = 1000;

/**
 * `?wait_ms`: how long a submit or a GET of a job may wait for it to finish (a long poll);
 * `?results_limit`: a batch job answered completed brings its first results along — a short
 * job's submit, wait and results in one round trip (the SDK's run(), `weir run`).
 */
const WaitQuery = Type.Object({
  wait_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
  results_limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_RESULTS_WITH_JOB })),
});

export function jobRoutes(ctx: MasterContext): FastifyPluginAsyncTypebox {
  const { consensus, queries, jobWatch } = ctx;

  const requireJob = (jobId: string) => {
    const row = queries.job(jobId);
    if (!row) throw notFound('job', jobId);
    return row;
  };

  /**
   * The job as GET gives it, once it has finished or `waitMs` has run out. Woken by the apply
   * that ended it (JobWatch.notify, no timer in between); then one lookup by primary key.
   */
  const viewWhenDone = async (jobId: string, waitMs: number, resultsLimit: number | undefined, reply: FastifyReply) => {
    let row = requireJob(jobId);
    const deadline = Date.now() + waitMs;
    // Followed only by a request that may wait (a GET without wait_ms answers in this turn).
    const gone = waitMs > 0 ? clientDeparture(reply) : undefined;
    while (!TERMINAL.has(row.status) && Date.now() < deadline && !gone?.left) {
      await jobWatch.wait(row.job_id, deadline - Date.now(), gone);
      row = requireJob(row.job_id);
    }
    if (TERMINAL.has(row.status)) trace(row.job_id, 'wait answered');
    const view = jobView(row, queries, ctx.registry);
    // Read in the same turn as the view: the page is of the job the view shows. Not for a
    // client that left (up to 1,000 rows, for each poll a reconnecting client abandoned).
    if (resultsLimit === undefined || row.status !== 'completed' || row.type !== 'batch' || gone?.left) return view;
    const { results, next_cursor } = pageResults(queries, row, undefined, resultsLimit);
    return { ...view, results_page: { results, next_cursor } };
  };

  return async (app) => {
    app.post(
      '/jobs',
      {
        schema: {
          body: SubmitBody,
          // With wait_ms, answered when the job finishes or the wait runs out (one round trip
          // for a short job instead of a submit and a long poll).
          querystring: WaitQuery,
          headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
          // 200: the job an earlier submit with the same Idempotency-Key made.
          response: { 201: JobReply, 200: JobReply },
        },
      },
      async (req, reply) => {
        refuseUnknownFields(req.body);
        const { name, type } = req.body;
        // Printed in tables and logs: a newline would forge a row, an escape clear a screen.
        if (CONTROL_CHAR.test(name)) {
          throw badRequest(
            'name holds a control character (a newline, a tab, an escape); name the job with printable characters',
          );
        }
        const { retention_ms, rest } = retentionOf(req.body.config ?? undefined);
        const config = type === 'streaming' ? normalizeStreamConfig(rest) : normalizeBatchConfig(rest);
        const url = (config as { input?: { url?: unknown } }).input?.url;
        const escaped = escapedUploadId(url);
        if (escaped) {
          throw badRequest(
            `config.input.url names upload ${escaped} with escapes in its path; write the URL its upload answered (…/uploads/${escaped})`,
          );
        }
        const upload = uploadIdOfUrl(url);
        // Refused before anything runs; the apply looks again (a delete may come first in the log).
        if (upload && queries.uploadDeleted(upload)) throw new WeirError('not_found', uploadDeletedMessage(upload));
        const key = req.headers['idempotency-key'];
        if (key !== undefined && (key.length === 0 || key.length > 200)) {
          throw badRequest('the Idempotency-Key header must be 1 to 200 characters');
        }
        if (!consensus.isLeader()) throw noLeader();
        const at = Date.now();
        const jobId = newId('job', at);
        trace(jobId, 'submit received');
        const placed = ctx.scheduler?.placeOnSubmit(jobId, config) ?? [];
        // Answered once applied. The first tasks run while the entry is written and replicated
        // (Scheduler.sendOnSubmit) — if it was appended: a submit refused here runs nothing.
        const proposal = consensus.propose(
          {
            type: 'submitJob',
            at,
            job_id: jobId,
            name,
            job_type: type,
            config,
            ...(key ? { idempotency_key: key } : {}),
            ...(retention_ms !== undefined ? { retention_ms } : {}),
            ...(placed.length ? { assignments: placed } : {}),
          },
          () => ctx.scheduler?.sendOnSubmit(jobId, config, placed),
        );
        let applied;
        try {
          applied = await proposal;
        } finally {
          // Undefined: not committed by us. Refused by the log (not ok): none of it was assigned.
          ctx.scheduler?.submitted(jobId, placed, applied && (applied.ok ? applied : {}));
        }
        if (!applied.ok) throw new WeirError(applied.code, applied.message);
        const result = applied;
        trace(jobId, 'submit applied');
        const code = result.duplicate ? 200 : 201;
        const { wait_ms: waitMs = 0, results_limit: resultsLimit } = req.query;
        if (waitMs === 0 && resultsLimit === undefined)
          return reply.code(code).send(jobView(requireJob(result.job_id)));
        return reply.code(code).send(await viewWhenDone(result.job_id, waitMs, resultsLimit, reply));
      },
    );

    app.get(
      '/jobs',
      {
        schema: {
          querystring: Type.Object({
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            cursor: Type.Optional(Type.String({ pattern: '^\\d+$' })),
            status: Type.Optional(Type.String({ pattern: '^(pending|running|completed|failed|cancelled)$' })),
          }),
          response: { 200: JobsReply },
        },
      },
      async (req) => {
        const limit = req.query.limit ?? 100;
        const before = req.query.cursor ? Number(req.query.cursor) : Number.MAX_SAFE_INTEGER;
        const rows = queries.jobs(before, limit + 1, req.query.status);
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        return {
          jobs: page.map((r) => jobView(r)),
          next_cursor: rows.length > limit && last ? String(last.seq) : null,
        };
      },
    );

    app.get(
      '/jobs/:job_id',
      {
        schema: {
          params: JobParams,
          querystring: WaitQuery,
          response: { 200: JobReply },
        },
      },
      // Long poll: answer as soon as the job finishes, or when wait_ms runs out.
      async (req, reply) => viewWhenDone(req.params.job_id, req.query.wait_ms ?? 0, req.query.results_limit, reply),
    );

    app.get(
      '/jobs/:job_id/tasks',
      {
        schema: {
          params: JobParams,
          querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })) }),
          response: { 200: TasksReply },
        },
      },
      async (req) => {
        requireJob(req.params.job_id);
        const tasks = queries.tasksOfJob(req.params.job_id, req.query.limit ?? 1000).map(taskView);
        return { tasks };
      },
    );

    app.get(
      '/jobs/:job_id/results',
      {
        schema: {
          params: JobParams,
          querystring: Type.Object({
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_RESULTS_PAGE })),
            // What this API gives out is under 5.5 KiB (see results-pager.ts keyCursor).
            cursor: Type.Optional(Type.String({ maxLength: 8192 })),
          }),
          response: { 200: ResultsReply },
        },
      },
      async (req) => {
        const row = requireJob(req.params.job_id);
        const config = queries.jobConfig(row.job_id)!;
        // A streaming job's rows are served while it runs: `weir results --follow` polls them.
        if (isStreamConfig(config))
          return streamRowsPage(queries, row.job_id, req.query.cursor, req.query.limit ?? 10_000);
        if (row.status !== 'completed') {
          // A job that ended otherwise has none to wait for: what to read is why.
          const next = TERMINAL.has(row.status)
            ? `it will have none: 'weir status ${row.job_id}' says why`
            : `follow it with 'weir wait ${row.job_id}'`;
          throw new WeirError(
            'conflict',
            `job '${row.job_id}' is ${row.status}; results are served once it has completed (${next})`,
          );
        }
        return pageResults(queries, row, req.query.cursor, req.query.limit ?? 10_000);
      },
    );

    // Everything the job left goes; a running job is cancelled first. 404 from then on.
    app.delete(
      '/jobs/:job_id',
      { schema: { params: JobParams, response: { 204: DeletedReply } } },
      async (req, reply) => {
        requireJob(req.params.job_id);
        if (!consensus.isLeader()) throw noLeader();
        await commitFreeing(consensus, { type: 'deleteJob', at: Date.now(), job_id: req.params.job_id });
        return reply.code(204).send();
      },
    );

    app.post('/jobs/:job_id/cancel', { schema: { params: JobParams, response: { 200: JobReply } } }, async (req) => {
      requireJob(req.params.job_id);
      if (!consensus.isLeader()) throw noLeader();
      await commit(consensus, { type: 'cancelJob', at: Date.now(), job_id: req.params.job_id });
      return jobView(requireJob(req.params.job_id), queries, ctx.registry);
    });
  };
}

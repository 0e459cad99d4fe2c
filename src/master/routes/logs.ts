import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { badRequest, noLeader, notFound } from '../../common/errors.js';
import { commit } from '../cluster-log.js';
import { LOG_DROPPED_MARKER, type LogLine } from '../../protocol/task-log.js';
import { LogLinesSchema } from '../../protocol/task-log-schema.js';
import { ID_PATTERN } from '../../common/ids.js';
import { isStreamConfig } from '../../protocol/stream-job.js';
import { instancesOf } from '../../stream/topology.js';
import type { MasterContext } from '../context.js';
import { logCursor, LogLineView, logPage, MAX_LOG_PAGE_LINES, parseLogCursor } from '../log-pager.js';
import { TERMINAL } from '../views.js';

const JobParams = Type.Object({ job_id: Type.String({ pattern: ID_PATTERN.source }) });

const LogsPage = Type.Object({
  lines: Type.Array(LogLineView),
  /** More lines are there now: ask again with this cursor. */
  next_cursor: Type.Union([Type.String(), Type.Null()]),
  /** Where to ask from later, when the job may have printed more. */
  follow_cursor: Type.String(),
});

/**
 * A page of lines as JSON; with `follow=1`, NDJSON instead: one line object per line of
 * text (blank lines now and then keep a quiet stream open; readers skip them).
 */
const LogsReply = {
  description: 'a page of log lines; with `follow=1`, an NDJSON stream of them until the job has ended',
  content: {
    'application/json': { schema: LogsPage },
    'application/x-ndjson': { schema: LogLineView },
  },
};

/** How long a follower waits for its job to end before it looks for new lines again. */
const FOLLOW_POLL_MS = 250;
const KEEPALIVE_MS = 15_000;

/**
 * `GET /api/jobs/ID/logs`: what a job's tasks printed, served by any master from its own copy
 * of the state. A page holds at most `limit` lines and MAX_LOG_PAGE_BYTES of them; `follow=1`
 * answers NDJSON instead (one line object per line of text), kept open until the job ends.
 */
export function logRoutes(ctx: MasterContext): FastifyPluginAsyncTypebox {
  const { queries, jobWatch, consensus } = ctx;
  return async (app) => {
    // A streaming job's instances' lines, from the worker they run on (about once a second).
    app.post(
      '/jobs/:job_id/logs',
      {
        schema: {
          params: JobParams,
          body: Type.Object({
            instances: Type.Array(
              Type.Object({
                idx: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
                attempt: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
                lines: LogLinesSchema,
              }),
              { maxItems: 1024 },
            ),
          }),
          response: { 200: Type.Object({ stored: Type.Integer() }) },
        },
      },
      async (req) => {
        if (!queries.job(req.params.job_id)) throw notFound('job', req.params.job_id);
        if (!consensus.isLeader()) throw noLeader();
        // Under the no_space alarm the lines are dropped, and one line per instance says so.
        const full = ctx.space.reason !== undefined;
        const dropped = (lines: LogLine[]): LogLine[] =>
          lines.length ? [{ stream: 'stderr', at: lines[0]!.at, text: LOG_DROPPED_MARKER }] : [];
        const logs = req.body.instances
          .map((i) => ({ idx: i.idx, attempt: i.attempt, lines: full ? dropped(i.lines) : i.lines }))
          .filter((i) => i.lines.length > 0);
        if (logs.length)
          await commit(consensus, { type: 'appendLogs', at: Date.now(), job_id: req.params.job_id, logs });
        return { stored: logs.reduce((n, i) => n + i.lines.length, 0) };
      },
    );

    app.get(
      '/jobs/:job_id/logs',
      {
        schema: {
          params: JobParams,
          querystring: Type.Object({
            task: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
            attempt: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
            follow: Type.Optional(
              Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')]),
            ),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LOG_PAGE_LINES })),
            cursor: Type.Optional(Type.String({ maxLength: 100 })),
          }),
          response: { 200: LogsReply },
        },
      },
      async (req, reply) => {
        const { task, attempt } = req.query;
        if (attempt !== undefined && task === undefined)
          throw badRequest('attempt= needs task= too: an attempt is of one task');
        let after = parseLogCursor(req.query.cursor);
        const job = queries.job(req.params.job_id);
        if (!job) throw notFound('job', req.params.job_id);
        const config = queries.jobConfig(job.job_id);
        const instances = config && isStreamConfig(config) ? instancesOf(config.topology) : undefined;
        const filter = { ...(task === undefined ? {} : { task }), ...(attempt === undefined ? {} : { attempt }) };
        const limit = req.query.limit ?? 1000;

        if (req.query.follow !== '1' && req.query.follow !== 'true') {
          const rows = queries.logLines(job.seq, filter, after, limit + 1);
          const page = logPage(rows.slice(0, limit), instances);
          const end = page.last === undefined ? logCursor(after) : logCursor(page.last);
          const more = page.full || rows.length > limit;
          return { lines: page.lines, next_cursor: more ? end : null, follow_cursor: end };
        }

        // Followed: NDJSON until the job has ended and its last lines are out, or the client goes.
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
        let gone = false;
        res.on('close', () => (gone = true));
        let wroteAt = Date.now();
        while (!gone) {
          // The job's status before its lines: the entry that ended it wrote its last ones.
          const now = queries.job(job.job_id);
          const ended = !now || TERMINAL.has(now.status);
          const rows = now ? queries.logLines(job.seq, filter, after, MAX_LOG_PAGE_LINES) : [];
          const page = logPage(rows, instances);
          if (page.lines.length) {
            const ok = res.write(page.lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
            after = page.last!;
            wroteAt = Date.now();
            if (!ok) await new Promise((r) => res.once('drain', r).once('close', r));
          }
          if (page.full || rows.length === MAX_LOG_PAGE_LINES) continue;
          if (ended) break;
          // A blank line now and then keeps a quiet follow alive through proxies (a follower
          // forwarding to the leader gives up on a body silent for 90 s); readers skip it.
          if (Date.now() - wroteAt >= KEEPALIVE_MS) {
            res.write('\n');
            wroteAt = Date.now();
          }
          await jobWatch.wait(job.job_id, FOLLOW_POLL_MS);
        }
        res.end();
      },
    );
  };
}

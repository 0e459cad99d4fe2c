import { createReadStream } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { WeirError } from '../../common/errors.js';
import { Type } from '@fastify/type-provider-typebox';
import type { MasterContext } from '../context.js';
import { rawReply } from '../reply-schemas.js';
import { BACKUP_STALL_MS } from '../backup-maker.js';

/**
 * `GET /api/cluster/backup` (admins only): a consistent copy of the cluster's state — a
 * SQLite file holding every job, task, result and stream row applied so far, with its log
 * index, term and configuration — streamed as it is. Served by the leader after a read
 * barrier, like every read (any master with `?consistency=stale`).
 */
export function backupRoutes(ctx: MasterContext): FastifyPluginAsync {
  return async (app) => {
    const schema = {
      summary: "A consistent copy of the cluster's state (admins only)",
      description:
        'An SQLite file (application/vnd.sqlite3) with everything the log applied, its index and term in ' +
        'x-weir-applied-index and x-weir-applied-term; `weir master --restore FILE` founds a cluster from it.',
      response: {
        200: rawReply('application/vnd.sqlite3', 'the state database, streamed', {
          'x-weir-applied-index': Type.String({ description: 'the log index the copy holds everything up to' }),
          'x-weir-applied-term': Type.String({ description: 'the term of that index' }),
          'content-disposition': Type.String(),
        }),
      },
    };
    app.get('/cluster/backup', { schema }, async (_req, reply) => {
      if (!ctx.backups) throw new WeirError('unavailable', 'this master makes no backups');
      const made = await ctx.backups.make();
      ctx.log.info({ index: made.index, term: made.term, bytes: made.bytes }, 'backup made');
      const body = createReadStream(made.path);
      // Read whole, the file may go (the last bytes are in the socket's buffers): the next
      // backup need not wait for the client to take them, nor for the file's close.
      body.once('end', made.discard);
      body.once('close', made.discard);
      // A reader that stops taking bytes is cut off (its copy goes with the stream), not waited for.
      reply.raw.setTimeout(BACKUP_STALL_MS, () => reply.raw.destroy());
      return reply
        .header('content-type', 'application/vnd.sqlite3')
        .header('content-length', String(made.bytes))
        .header('content-disposition', `attachment; filename="weir-backup-${made.index}.db"`)
        .header('x-weir-applied-index', String(made.index))
        .header('x-weir-applied-term', String(made.term))
        .send(body);
    });
  };
}

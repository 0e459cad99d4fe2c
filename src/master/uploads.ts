import { randomBytes } from 'node:crypto';
import { Type } from '@fastify/type-provider-typebox';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDiskFull } from '../common/disk-errors.js';
import { WeirError, badRequest, noSpace } from '../common/errors.js';
import { refuseOnceBodyIsIn } from '../common/http-errors.js';
import { MAX_UPLOAD_BYTES, newUploadId, UPLOAD_ID, uploadMadeAt, uploadPath } from '../common/ids.js';
import { UPLOADS_PATH } from './forwarding.js';
import type { UploadReplicator } from './upload-replication.js';
import { commitFreeing, type ClusterConsensus } from './cluster-log.js';
import { unclaimedTooLong } from './unclaimed-uploads.js';
import { RangeRefusedReply, rawReply, UploadCopyReply, UploadDeletedReply, UploadReply } from './reply-schemas.js';

/**
 * Input files uploaded for jobs whose workers cannot see the client's disk, under each
 * master's data dir. The master that receives one copies it to the others and answers once
 * a majority holds it (upload-replication.ts); workers read it with range requests
 * (`/uploads/ID`) from the master named in its URL, or from any other that holds it.
 */
/**
 * An upload that brings no byte for this long is dropped, with what it had written: a client
 * that stalled half way (or a peer whose network went silent) held its connection, a file
 * descriptor and its partial file until the master restarted.
 */
export const UPLOAD_IDLE_MS = 60_000;

export class UploadStore {
  private readonly dir: string;

  constructor(
    dataDir: string,
    private readonly idleMs = UPLOAD_IDLE_MS,
  ) {
    this.dir = join(dataDir, 'uploads');
    mkdirSync(this.dir, { recursive: true });
    // Halves of uploads a crash interrupted: nobody was told of them.
    for (const f of readdirSync(this.dir)) if (f.endsWith('.tmp')) rmSync(join(this.dir, f), { force: true });
  }

  /**
   * Stores a body stream under a new id; refuses (and drops) one over the limit. The id is
   * made once the body is in: the time it carries is when the upload was whole, so an upload
   * slower than --retention is not taken for one left unclaimed as soon as it is acknowledged.
   */
  save(body: Readable): Promise<{ upload_id: string; bytes: number }> {
    return this.write(undefined, body);
  }

  /** Stores another master's copy of upload `id`. */
  saveCopy(id: string, body: Readable): Promise<{ upload_id: string; bytes: number }> {
    if (!UPLOAD_ID.test(id)) throw badRequest(`'${id}' is no upload id`);
    return this.write(id, body);
  }

  /** Writes to a temporary name, syncs, then renames: an upload is whole and durable or absent. */
  private async write(given: string | undefined, body: Readable): Promise<{ upload_id: string; bytes: number }> {
    // Copies of one id arriving twice at once (a retry) must not share a temporary file.
    const tmp = join(this.dir, `${given ?? 'new'}.${randomBytes(4).toString('hex')}.tmp`);
    let bytes = 0;
    const idle = setTimeout(() => body.destroy(stalled(this.idleMs)), this.idleMs);
    body.on('data', (chunk: Buffer) => {
      idle.refresh();
      bytes += chunk.length;
      if (bytes > MAX_UPLOAD_BYTES) body.destroy(tooBig());
    });
    try {
      await pipeline(body, createWriteStream(tmp));
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof WeirError) throw err;
      if (isDiskFull(err)) throw noSpace("this master's disk filled up while it stored the upload");
      throw badRequest(`the upload was interrupted: ${(err as Error).message}`);
    } finally {
      clearTimeout(idle);
    }
    const id = given ?? newUploadId();
    try {
      await syncPath(tmp, 'r+');
      await rename(tmp, this.pathOf(id));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // The new name is durable only once the directory holding it is.
    await syncPath(this.dir, 'r');
    return { upload_id: id, bytes };
  }

  pathOf(id: string): string {
    return join(this.dir, id);
  }

  /** The uploads this master holds (whole ones: no temporary files). */
  ids(): string[] {
    return readdirSync(this.dir).filter((f) => UPLOAD_ID.test(f));
  }

  /** When upload `id` was received whole: the time its id carries, or (an older id) its copy's file time. */
  madeAt(id: string): number {
    return uploadMadeAt(id) ?? statSync(this.pathOf(id), { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
  }

  async remove(id: string): Promise<void> {
    if (UPLOAD_ID.test(id)) await rm(this.pathOf(id), { force: true });
  }

  async open(id: string): Promise<{ path: string; size: number } | undefined> {
    if (!UPLOAD_ID.test(id)) return undefined;
    const path = join(this.dir, id);
    const s = await stat(path).catch(() => undefined);
    return s ? { path, size: s.size } : undefined;
  }
}

async function syncPath(path: string, flags: 'r' | 'r+'): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const tooBig = () =>
  new WeirError(
    'payload_too_large',
    `an upload may be at most ${MAX_UPLOAD_BYTES / 1024 ** 3} GiB; put larger inputs where every worker can read them`,
  );

const stalled = (ms: number) =>
  badRequest(`the upload stalled: no byte of it arrived for ${ms / 1000} s; send it again`);

const OCTETS = 'application/octet-stream';

/**
 * An onRequest hook of the upload routes: a body of another type, or declared over the limit,
 * is refused before any of it is read. Nothing here parses a body (the scope's only parser
 * hands the stream on): a JSON parser with an upload's limit buffered up to 1 GiB into one
 * string, and a body over 512 MiB made a string longer than V8 allows, which threw outside
 * any handler and took the master down.
 */
function uploadGate(req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
  if (req.method !== 'POST' && req.method !== 'PUT') return done();
  const type = req.headers['content-type'];
  const refusal =
    typeof type !== 'string' || !type.startsWith(OCTETS)
      ? badRequest('send the file as the body with Content-Type: application/octet-stream')
      : Number(req.headers['content-length']) > MAX_UPLOAD_BYTES
        ? tooBig()
        : undefined;
  if (!refusal) return done();
  refuseOnceBodyIsIn(req, reply, refusal, done);
}
const bytes = (description: string) => rawReply(OCTETS, description, { 'accept-ranges': Type.Literal('bytes') });
const Upload = { response: { 201: UploadReply } };
const Forget = {
  params: Type.Object({ id: Type.String({ pattern: UPLOAD_ID.source }) }),
  querystring: Type.Object({
    unclaimed: Type.Optional(
      Type.Boolean({
        description:
          'only if it was made longer than --retention ago by this master’s clock (a master’s sweep asks so)',
      }),
    ),
  }),
  response: { 204: UploadDeletedReply },
};
// 200: the same copy sent again.
const Copy = { response: { 201: UploadCopyReply, 200: UploadCopyReply } };
const Read = {
  response: {
    200: bytes('the upload'),
    206: {
      ...bytes('the range asked for'),
      headers: { 'accept-ranges': Type.Literal('bytes'), 'content-range': Type.String() },
    },
    416: RangeRefusedReply,
  },
};

/**
 * `POST /api/uploads` (raw bytes) → `{upload_id, url, bytes, copies}` once a majority of
 * masters hold it; `PUT /api/uploads/ID`, a master's copy from another; `GET /uploads/ID`
 * with ranges; `DELETE /api/uploads/ID` of one no job reads (through the log, on the leader).
 */
export function uploadRoutes(
  store: UploadStore,
  replicator: UploadReplicator,
  selfUrl: string,
  consensus: ClusterConsensus,
  /** --retention: how long an upload no job reads is kept. */
  retentionMs: number,
) {
  return async (app: FastifyInstance): Promise<void> => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    app.addHook('onRequest', uploadGate);
    app.post(UPLOADS_PATH, { bodyLimit: MAX_UPLOAD_BYTES, schema: Upload }, async (req, reply) => {
      const saved = await store.save(req.body as Readable);
      let copies: number;
      try {
        copies = await replicator.replicate(saved.upload_id, store.pathOf(saved.upload_id), saved.bytes);
      } catch (err) {
        // Refused uploads leave nothing here; copies that did land elsewhere are never named.
        await store.remove(saved.upload_id);
        throw err;
      }
      return reply.code(201).send({ ...saved, copies, url: `${selfUrl}${uploadPath(saved.upload_id)}` });
    });
    app.put(`${UPLOADS_PATH}/:id`, { bodyLimit: MAX_UPLOAD_BYTES, schema: Copy }, async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const body = req.body as Readable;
      const held = await store.open(id);
      if (held) {
        body.resume();
        // A copy sent again (the sender retried): the same id is the same file.
        if (Number(req.headers['content-length']) === held.size) {
          return reply.code(200).send({ upload_id: id, bytes: held.size });
        }
        throw new WeirError('conflict', `this master holds a different file as upload ${id}`);
      }
      return reply.code(201).send(await store.saveCopy(id, body));
    });
    app.delete(`${UPLOADS_PATH}/:id`, { schema: Forget }, async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const at = Date.now();
      // A follower's sweep judged by its own clock; the leader's decides (an id without a time
      // was judged by its copy's file time, which only that master has).
      const madeAt = uploadMadeAt(id);
      if ((req.query as { unclaimed?: boolean }).unclaimed && madeAt !== undefined) {
        if (!unclaimedTooLong(madeAt, at, retentionMs)) {
          throw new WeirError(
            'conflict',
            `upload ${id} was made ${Math.round((at - madeAt) / 1000)} s ago by this master's clock: kept for --retention`,
          );
        }
      }
      await commitFreeing(consensus, { type: 'forgetUpload', at, upload_id: id });
      return reply.code(204).send();
    });
    app.get(uploadPath(':id'), { schema: Read }, async (req, reply) => {
      const f = await store.open((req.params as { id: string }).id);
      if (!f) throw new WeirError('not_found', 'no such upload on this master');
      void reply.header('accept-ranges', 'bytes');
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      // Bytes as they are stored (the documented media type), whatever the file holds; a refusal stays JSON.
      if (!range) return reply.type(OCTETS).header('content-length', f.size).send(createReadStream(f.path));
      const start = Number(range[1]);
      const end = Math.min(f.size - 1, range[2] ? Number(range[2]) : f.size - 1);
      if (start >= f.size || end < start) {
        const why = `the range ${req.headers.range} is not within the upload's ${f.size} bytes`;
        return reply
          .code(416)
          .header('content-range', `bytes */${f.size}`)
          .send(new WeirError('bad_request', why, 416).toJSON());
      }
      return reply
        .code(206)
        .type(OCTETS)
        .header('content-range', `bytes ${start}-${end}/${f.size}`)
        .header('content-length', end - start + 1)
        .send(createReadStream(f.path, { start, end }));
    });
  };
}

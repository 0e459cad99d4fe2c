import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';
import { WeirError, badRequest } from '../common/errors.js';

/** Largest file `weir submit --input` may upload. */
export const MAX_UPLOAD_BYTES = 1024 * 1024 * 1024;

/** Upload ids are capabilities: whoever knows one may read the file, so they are unguessable. */
const UPLOAD_ID = /^up_[0-9a-f]{32}$/;

/**
 * Input files uploaded for jobs whose workers cannot see the client's disk. Each is kept
 * by the master that received it, under its data dir, and workers read it from there
 * with range requests (`/uploads/ID`) as they read any input URL. Not replicated: a job
 * reading an upload needs that master alive.
 */
export class UploadStore {
  private readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'uploads');
    mkdirSync(this.dir, { recursive: true });
  }

  /** Stores a body stream; refuses (and drops) one over the limit. */
  async save(body: Readable): Promise<{ upload_id: string; bytes: number }> {
    const id = `up_${randomBytes(16).toString('hex')}`;
    const tmp = join(this.dir, `${id}.tmp`);
    let bytes = 0;
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_UPLOAD_BYTES) body.destroy(tooBig());
    });
    try {
      await pipeline(body, createWriteStream(tmp));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err instanceof WeirError ? err : badRequest(`the upload was interrupted: ${(err as Error).message}`);
    }
    await rename(tmp, join(this.dir, id));
    return { upload_id: id, bytes };
  }

  async open(id: string): Promise<{ path: string; size: number } | undefined> {
    if (!UPLOAD_ID.test(id)) return undefined;
    const path = join(this.dir, id);
    const s = await stat(path).catch(() => undefined);
    return s ? { path, size: s.size } : undefined;
  }
}

const tooBig = () =>
  new WeirError(
    'payload_too_large',
    `an upload may be at most ${MAX_UPLOAD_BYTES / 1024 ** 3} GiB; put larger inputs where every worker can read them`,
  );

/** `POST /api/uploads` (raw bytes) → `{upload_id, url, bytes}`; `GET /uploads/ID` with ranges. */
export function uploadRoutes(store: UploadStore, selfUrl: string) {
  return async (app: FastifyInstance): Promise<void> => {
    app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    app.post('/api/uploads', { bodyLimit: MAX_UPLOAD_BYTES }, async (req, reply) => {
      if (!req.headers['content-type']?.startsWith('application/octet-stream')) {
        throw badRequest('send the file as the body with Content-Type: application/octet-stream');
      }
      const saved = await store.save(req.body as Readable);
      return reply.code(201).send({ ...saved, url: `${selfUrl}/uploads/${saved.upload_id}` });
    });
    app.get('/uploads/:id', async (req, reply) => {
      const f = await store.open((req.params as { id: string }).id);
      if (!f) throw new WeirError('not_found', 'no such upload on this master');
      void reply.header('accept-ranges', 'bytes');
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (!range) return reply.header('content-length', f.size).send(createReadStream(f.path));
      const start = Number(range[1]);
      const end = Math.min(f.size - 1, range[2] ? Number(range[2]) : f.size - 1);
      if (start >= f.size || end < start) {
        return reply.code(416).header('content-range', `bytes */${f.size}`).send();
      }
      return reply
        .code(206)
        .header('content-range', `bytes ${start}-${end}/${f.size}`)
        .header('content-length', end - start + 1)
        .send(createReadStream(f.path, { start, end }));
    });
  };
}

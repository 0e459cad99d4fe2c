import fastifyStatic from '@fastify/static';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeirError } from '../../common/errors.js';
import { ID_PATTERN } from '../../common/ids.js';
import { installRoot } from '../../common/install-root.js';
import { TokenExpiry } from '../../common/token-expiry.js';
import type { LiveFeed, Subscriber } from '../live-feed.js';
import { rawReply } from '../reply-schemas.js';

/** Where the page's routes live; the page itself routes between them (history API). */
export const DASHBOARD_PAGES = ['/', '/jobs/:job_id'] as const;
export const DASHBOARD_ASSETS = '/assets/';

/** The built dashboard (`npm run build` bundles ui/ into dist/dashboard/), if it was built. */
export function dashboardDir(root = installRoot()): string | undefined {
  const built = join(root, 'dist', 'dashboard');
  return existsSync(join(built, 'index.html')) ? built : undefined;
}

// The page loads nothing from elsewhere and runs no inline script; style attributes set from
// script are allowed by 'self' styles (they are not inline markup).
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // The page is small and names its assets by their hash: it is always asked for again.
  'cache-control': 'no-cache',
};

/**
 * The dashboard at `/` (and its deep links), with its assets under /assets/: open routes, as
 * they hold no data — the page asks the API for everything, with the user's token.
 */
export function dashboardRoutes(dir = dashboardDir()): FastifyPluginAsync {
  return async (app) => {
    const index = dir ? readFileSync(join(dir, 'index.html')) : undefined;
    const page = async (_req: unknown, reply: FastifyReply) => {
      if (!index) {
        throw new WeirError(
          'unavailable',
          'the dashboard is not built on this master: run `npm run build` and restart it',
        );
      }
      return reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(index);
    };
    const schema = {
      response: { 200: rawReply('text/html', 'the dashboard’s page (it asks the API with the user’s token)') },
    };
    for (const path of DASHBOARD_PAGES) app.get(path, { schema }, page);
    if (!dir) return;
    await app.register(fastifyStatic, {
      root: join(dir, 'assets'),
      prefix: DASHBOARD_ASSETS,
      decorateReply: false,
      index: false,
      list: false,
      // Asset names carry their content's hash: a new build is a new name.
      immutable: true,
      maxAge: '365d',
      setHeaders: (res) => void res.setHeader('x-content-type-options', 'nosniff'),
    });
  };
}

/** A reader this far behind (bytes not yet taken by its socket) is let go, not buffered for. */
const SLOW_READER_BYTES = 256 * 1024;
/** A comment line this often keeps a quiet stream alive through proxies. */
const KEEPALIVE_MS = 15_000;

const LiveQuery = Type.Object({
  job: Type.Optional(Type.String({ pattern: ID_PATTERN.source, description: 'a job’s page: frames of this job only' })),
});

/**
 * `GET /api/live[?job=ID]`: server-sent events, one `frame` event at most a second with what
 * changed (LiveFeed) — the overview's figures and changed jobs rows, or one job as its page
 * shows it. Read role, as the REST reads it summarises. Past the feed's limit: 503, and the
 * page polls instead.
 */
export function liveRoutes(feed: LiveFeed): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('onClose', async () => feed.close());
    app.get(
      '/live',
      {
        schema: {
          querystring: LiveQuery,
          response: {
            200: rawReply(
              'text/event-stream',
              'server-sent events: `event: frame` with `data:` one JSON object (seq, at, cluster, master, changed, jobs, jobs_gone, history; or job_id with job or gone), at most one a second',
            ),
          },
        },
      },
      async (req, reply) => {
        const refused = feed.refusal(req.ip);
        if (refused === 'full') {
          throw new WeirError(
            'unavailable',
            `this master already serves ${feed.maxSubscribers} live streams, the most it takes; close some dashboard pages, or read the REST routes instead`,
          );
        }
        if (refused === 'client') {
          throw new WeirError(
            'unavailable',
            `${req.ip} already holds ${feed.maxPerClient} live streams of this master, the most one client may; close some dashboard pages`,
            429,
          );
        }
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
        });
        res.write('retry: 2000\n\n');
        const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
        keepalive.unref();
        // The token was checked once, as the stream opened: it ends with the token, and the
        // page's reconnect meets the 401 (and its token prompt) like any read would.
        const expiry = new TokenExpiry(req.principal?.expires_at, () => res.end());
        const sub: Subscriber = {
          ...(req.query.job ? { job: req.query.job } : {}),
          client: req.ip,
          send: (frame) => {
            if (res.destroyed) return false;
            if (res.writableLength > SLOW_READER_BYTES) {
              res.destroy();
              return false;
            }
            res.write(`id: ${frame.seq}\nevent: frame\ndata: ${JSON.stringify(frame)}\n\n`);
            return true;
          },
          end: () => res.end(),
        };
        res.on('close', () => {
          clearInterval(keepalive);
          expiry.stop();
          feed.unsubscribe(sub);
        });
        if (!feed.subscribe(sub)) res.end();
      },
    );
  };
}

import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeirError } from '../../common/errors.js';
import { rawReply } from '../reply-schemas.js';

/** Where the page's routes live; the page itself routes between them (history API). */
export const DASHBOARD_PAGES = ['/', '/jobs/:job_id'] as const;
export const DASHBOARD_ASSETS = '/assets/';

/**
 * The built dashboard (`npm run build` bundles ui/ into dist/dashboard/): found from this
 * file upwards, so the master serves it whether it runs from dist/ or from the sources.
 */
export function dashboardDir(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      const built = join(dir, 'dist', 'dashboard');
      return existsSync(join(built, 'index.html')) ? built : undefined;
    }
    if (dirname(dir) === dir) return undefined;
  }
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
      setHeaders: (reply) => void reply.header('x-content-type-options', 'nosniff'),
    });
  };
}

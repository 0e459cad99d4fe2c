import type { FastifyInstance } from 'fastify';
import { badRequest } from './errors.js';
import { jsonNestsDeeper, MAX_NESTING, tooDeep } from '../protocol/nesting.js';

/**
 * A route carrying values that came in bounded, in an envelope of its own (a worker's rows,
 * events handed on to a worker), takes a few levels more: `config: BOUNDED_INSIDE`.
 */
export const BOUNDED_INSIDE = { maxNesting: MAX_NESTING + 8 };

/**
 * Fastify's JSON parser (prototype poisoning refused), behind a bound on nesting checked on
 * the text first: a body of a few KB of `[[[…` would otherwise become a value that overflows
 * the stack of whatever handles it next — the schema check, msgpack, a master applying it.
 */
export function installJsonBodies(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const max = (req.routeOptions.config as { maxNesting?: number }).maxNesting ?? MAX_NESTING;
    if (jsonNestsDeeper(body as string, max)) return done(badRequest(tooDeep('the request body', max)), undefined);
    parse(req, body as string, done);
  });
}

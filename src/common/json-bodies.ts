import type { FastifyInstance } from 'fastify';
import { badRequest } from './errors.js';
import { jsonNestsDeeper, tooDeep } from './nesting.js';

/**
 * Fastify's JSON parser (prototype poisoning refused), behind a bound on nesting checked on
 * the text first: a body of a few KB of `[[[…` would otherwise become a value that overflows
 * the stack of whatever handles it next — the schema check, msgpack, a master applying it.
 */
export function installJsonBodies(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (jsonNestsDeeper(body as string)) return done(badRequest(tooDeep('the request body')), undefined);
    parse(req, body as string, done);
  });
}

import type { FastifyError } from 'fastify';
import { WeirError } from '../common/errors.js';

export const BODY_LIMIT = 16 * 1024 * 1024;

type ValidationIssue = NonNullable<FastifyError['validation']>[number];

/** One schema failure as a sentence naming the field and what it must be. */
function describeIssue(where: string, issue: ValidationIssue): string {
  const path = issue.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const params = issue.params as Record<string, unknown>;
  const field = (name: string) => (name ? `${where}.${name}` : where);
  switch (issue.keyword) {
    case 'required':
      return `${field(path ? `${path}.${String(params.missingProperty)}` : String(params.missingProperty))} is required`;
    case 'enum':
      return `${field(path)} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
    case 'type':
      return `${field(path)} must be ${params.type === 'integer' ? 'an integer' : `a ${String(params.type)}`}`;
    default:
      return `${field(path)} ${issue.message ?? 'is not valid'}`;
  }
}

/** Maps any error to `{error: {code, message}}` with a status a client can act on. */
export function toHttpError(err: FastifyError | Error): WeirError {
  if (err instanceof WeirError) return err;
  const e = err as FastifyError;
  if (e.validation) {
    const where = e.validationContext ?? 'request';
    const first = e.validation[0];
    return new WeirError('validation_failed', `invalid ${where}: ${first ? describeIssue(where, first) : e.message}`);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new WeirError('invalid_json', `the body is not valid JSON: ${e.message}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return tooLarge();
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new WeirError('bad_request', 'send the body as application/json');
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new WeirError('bad_request', e.message);
  return new WeirError('internal', 'the master hit an internal error; see its log');
}

export const tooLarge = (): WeirError =>
  new WeirError('payload_too_large', `the body is over the ${BODY_LIMIT / 1024 / 1024} MiB limit`);

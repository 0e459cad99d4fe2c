import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

// Bodies are JSON and must arrive with the right types; query strings and path parameters
// are text, so numbers in them are parsed.
const bodyAjv = new Ajv({ coerceTypes: false, useDefaults: true, allErrors: false });
const textAjv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: false });

type Check = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

/**
 * Ajv parses "Infinity" or "1e400" in a query or a path into a number that then skips its
 * minimum and maximum (Ajv checks those on finite numbers only): refused here, as text that
 * is no number.
 */
function finiteOnly(validate: ValidateFunction): Check {
  const check: Check = (data) => {
    const ok = validate(data);
    check.errors = validate.errors;
    if (!ok || !data || typeof data !== 'object') return ok;
    const bad = Object.entries(data).find(([, v]) =>
      [v].flat().some((x) => typeof x === 'number' && !Number.isFinite(x)),
    );
    if (!bad) return true;
    check.errors = [
      {
        instancePath: `/${bad[0]}`,
        schemaPath: '#/type',
        keyword: 'type',
        params: { type: 'finite number' },
        message: 'must be a finite number',
      },
    ];
    return false;
  };
  return check;
}

/** The schema compiler of every Weir server: each route's schemas compiled once, at start. */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  httpPart === 'querystring' || httpPart === 'params'
    ? finiteOnly(textAjv.compile(schema as object))
    : bodyAjv.compile(schema as object);

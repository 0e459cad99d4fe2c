import SerializerSelector from '@fastify/fast-json-stringify-compiler';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler, FastifyServerOptions } from 'fastify';

/**
 * `WEIR_CHECK_SCHEMAS=1` (the OpenAPI spec's nodes): every route's schemas are compiled at
 * start, as they were before they were compiled on first use, and checked against the JSON
 * Schema meta-schema, so a schema that would fail its route's first request fails a start
 * in the suite instead. Without it, nothing is compiled before it is needed (see below).
 */
const checkAtStart = process.env.WEIR_CHECK_SCHEMAS === '1';

// Bodies are JSON and must arrive with the right types; query strings and path parameters
// are text, so numbers in them are parsed. The schemas are our own (TypeBox), not input: the
// meta-schema check (Ajv compiling the meta-schema took ~110 ms of a master's start) is the
// suite's, above.
const AJV_OPTIONS = { useDefaults: true, allErrors: false, validateSchema: checkAtStart } as const;
const bodyAjv = new Ajv({ ...AJV_OPTIONS, coerceTypes: false });
const textAjv = new Ajv({ ...AJV_OPTIONS, coerceTypes: true });

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

/** A check compiled on its first call (at once with WEIR_CHECK_SCHEMAS): see `validatorCompiler`. */
function onFirstCall(compile: () => Check): Check {
  if (checkAtStart) return compile();
  let compiled: Check | undefined;
  const check: Check = (data) => {
    compiled ??= compile();
    const ok = compiled(data);
    check.errors = compiled.errors;
    return ok;
  };
  return check;
}

/**
 * The schema compiler of every Weir server. Each route's schemas are compiled on the route's
 * first request, not at start: a process serves a few of its ~100 routes, and compiling them
 * all took ~190 ms of a master's start (a route's first request pays for its own instead:
 * a first submit ~25 ms more).
 */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  httpPart === 'querystring' || httpPart === 'params'
    ? onFirstCall(() => finiteOnly(textAjv.compile(schema as object)))
    : onFirstCall(() => bodyAjv.compile(schema as object));

/**
 * Fastify's own serializers (fast-json-stringify), each built on its route's first reply of
 * that status rather than at start (~90 ms of a master's start), for the same reason.
 */
const serializersOnFirstCall: SerializerSelector.SerializerFactory = (externalSchemas, options) => {
  const build = SerializerSelector()(externalSchemas, options);
  if (checkAtStart) return build;
  return (route) => {
    let serialize: SerializerSelector.Serializer | undefined;
    return (data) => (serialize ??= build(route))(data);
  };
};

/** For `Fastify({ ...schemaCompilers })`: the serializers above; the validators are set with `setValidatorCompiler`. */
export const schemaCompilers = {
  schemaController: { compilersFactory: { buildSerializer: serializersOnFirstCall } },
} satisfies Pick<FastifyServerOptions, 'schemaController'>;

import SerializerSelector from '@fastify/fast-json-stringify-compiler';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler, FastifyServerOptions } from 'fastify';

// Bodies are JSON and must arrive with the right types; query strings and path parameters
// are text, so numbers in them are parsed. The schemas are our own (TypeBox), not input: they
// are not checked against the JSON Schema meta-schema at each start (compiling it took ~110 ms
// of a master's start); the OpenAPI spec compiles every one of them against it instead.
const AJV_OPTIONS = { useDefaults: true, allErrors: false, validateSchema: false } as const;
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

/** A check compiled on its first call: see `validatorCompiler`. */
function onFirstCall(compile: () => Check): Check {
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
 * all took ~190 ms of a master's start (the first call of a route pays ~1–5 ms instead).
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
  return (route) => {
    let serialize: SerializerSelector.Serializer | undefined;
    return (data) => (serialize ??= build(route))(data);
  };
};

/** For `Fastify({ ...schemaCompilers })`: the serializers above; the validators are set with `setValidatorCompiler`. */
export const schemaCompilers = {
  schemaController: { compilersFactory: { buildSerializer: serializersOnFirstCall } },
} satisfies Pick<FastifyServerOptions, 'schemaController'>;

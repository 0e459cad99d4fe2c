import { Ajv } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

// Bodies are JSON and must arrive with the right types; query strings and path parameters
// are text, so numbers in them are parsed.
const bodyAjv = new Ajv({ coerceTypes: false, useDefaults: true, allErrors: false });
const textAjv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: false });

/** The schema compiler of every Weir server: each route's schemas compiled once, at start. */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'querystring' || httpPart === 'params' ? textAjv : bodyAjv).compile(schema as object);

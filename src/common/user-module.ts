import { parse } from 'acorn';
import { badRequest } from './errors.js';

/** Largest module source a job may carry. */
export const MAX_MODULE_BYTES = 1024 * 1024;

/**
 * Checks a job's user module at submission, without running it: it must parse as an ES
 * module and export every function the job's stages name. The message names the problem
 * and where it is, so the person can fix the file.
 */
export function checkUserModule(
  source: unknown,
  required: readonly string[],
): { source: string; exports: ReadonlySet<string> } {
  if (typeof source !== 'string' || source.trim() === '') {
    throw badRequest('config.module must be the JavaScript source of an ES module (weir submit … --module FILE)');
  }
  if (Buffer.byteLength(source) > MAX_MODULE_BYTES) {
    throw badRequest(`config.module is over the ${MAX_MODULE_BYTES / 1024} KiB limit`);
  }
  let ast;
  try {
    ast = parse(source, { ecmaVersion: 'latest', sourceType: 'module', locations: true });
  } catch (err) {
    throw badRequest(`config.module has a syntax error: ${(err as Error).message}`);
  }
  const exported = new Set<string>();
  for (const node of ast.body) {
    if (node.type === 'ExportNamedDeclaration') {
      const d = node.declaration;
      if (d?.type === 'FunctionDeclaration' && d.id) exported.add(d.id.name);
      if (d?.type === 'VariableDeclaration') {
        for (const v of d.declarations) if (v.id.type === 'Identifier') exported.add(v.id.name);
      }
      for (const s of node.specifiers) {
        if (s.exported.type === 'Identifier') exported.add(s.exported.name);
      }
    }
  }
  const missing = required.filter((name) => !exported.has(name));
  if (missing.length > 0) {
    throw badRequest(
      `config.module does not export ${missing.map((m) => `'${m}'`).join(', ')}; it exports ${
        exported.size ? [...exported].map((e) => `'${e}'`).join(', ') : 'nothing'
      }`,
    );
  }
  return { source, exports: exported };
}

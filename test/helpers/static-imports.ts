import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(import.meta.dirname, '../..');

/** Where a module's static imports lead: our own files (relative to the repo) and the packages. */
export interface ImportClosure {
  files: Set<string>;
  packages: Set<string>;
  /** For each package, one chain of our files that imports it (entry first). */
  via: Map<string, string[]>;
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`; `node:fs` → undefined. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('node:')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Whether an import brings nothing at run time (`import type`, or every name `type`). */
function typeOnly(d: ts.ImportDeclaration | ts.ExportDeclaration): boolean {
  if (ts.isExportDeclaration(d)) {
    return (
      d.isTypeOnly ||
      (!!d.exportClause && ts.isNamedExports(d.exportClause) && d.exportClause.elements.every((e) => e.isTypeOnly))
    );
  }
  const c = d.importClause;
  if (!c) return false; // a bare `import 'x'` runs x
  if (c.isTypeOnly) return true;
  if (c.name) return false;
  const b = c.namedBindings;
  return !!b && ts.isNamedImports(b) && b.elements.length > 0 && b.elements.every((e) => e.isTypeOnly);
}

/**
 * The modules a TypeScript source file loads before its first line runs: its top-level
 * imports and re-exports, followed through our own files, and not through `import()`, which
 * loads on demand. An import whose names are all types is left out, as the compiler drops it.
 */
export function staticImports(entry: string): ImportClosure {
  const files = new Set<string>();
  const packages = new Set<string>();
  const via = new Map<string, string[]>();
  const queue: { file: string; chain: string[] }[] = [{ file: resolve(ROOT, entry), chain: [] }];
  while (queue.length) {
    const { file, chain } = queue.shift()!;
    const name = relative(ROOT, file);
    if (files.has(name)) continue;
    files.add(name);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022);
    for (const s of source.statements) {
      if (!(ts.isImportDeclaration(s) || ts.isExportDeclaration(s)) || !s.moduleSpecifier) continue;
      if (typeOnly(s)) continue;
      const spec = (s.moduleSpecifier as ts.StringLiteral).text;
      if (spec.startsWith('.')) {
        queue.push({ file: join(dirname(file), spec.replace(/\.js$/, '.ts')), chain: [...chain, name] });
        continue;
      }
      const pkg = packageOf(spec);
      if (pkg === undefined) continue;
      packages.add(pkg);
      if (!via.has(pkg)) via.set(pkg, [...chain, name]);
    }
  }
  return { files, packages, via };
}

/** The packages of `banned` that `entry` loads at start, each with the chain that loads it. */
export function bannedImports(entry: string, banned: readonly string[]): string[] {
  const c = staticImports(entry);
  return banned.filter((p) => c.packages.has(p)).map((p) => `${p} via ${c.via.get(p)!.join(' → ')}`);
}

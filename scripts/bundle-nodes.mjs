// Bundles what `weir` runs (the CLI and the nodes it starts, and the executor a worker forks)
// into dist/bundle/, from tsc's output in dist/src/. A master loading ~1,000 files one by one
// spent most of its start resolving, statting and reading them: bundled, a node starts on about
// a third of the CPU. Every `import()` stays a chunk of its own, so a client command still loads
// no server code (test/unit/startup-imports.test.ts). dist/src/ stays as it is, for the SDK.
import { build } from 'esbuild';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'bundle');

/**
 * Packages left to be loaded from node_modules, because they find their own files at run
 * time: native addons, pino's transports (run in worker threads, by path), the docs page's
 * assets, @fastify/swagger's reading of its package.json.
 */
const EXTERNAL = [
  'better-sqlite3',
  'msgpackr-extract',
  'pino',
  'pino-pretty',
  'thread-stream',
  '@fastify/swagger',
  '@fastify/swagger-ui',
];

/**
 * Bundled packages that name __dirname or __filename, each checked to only test for it
 * (`typeof __filename !== 'undefined'`): in an ES module bundle neither exists, and a package
 * that reads a file beside itself must be in EXTERNAL.
 */
const CHECKED_DIRNAME = ['undici'];

const result = await build({
  entryPoints: {
    cli: join(root, 'dist/src/client/cli.js'),
    // Beside every chunk, where the executors' pool finds it (`./executor-main.js`).
    'executor-main': join(root, 'dist/src/worker/executor-main.js'),
  },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir: out,
  absWorkingDir: root,
  chunkNames: '[name]-[hash]',
  external: EXTERNAL,
  // Bundled CommonJS packages require Node's own modules; an ES module has no `require`.
  banner: {
    js: "import { createRequire as __weirRequire } from 'node:module'; const require = __weirRequire(import.meta.url);",
  },
  // Read only under `node --enable-source-maps`: stack traces then name the TypeScript sources.
  sourcemap: 'linked',
  metafile: true,
  // Written only once the checks below pass: a bundle that fails them never runs.
  write: false,
  logLevel: 'warning',
});
const text = new Map(result.outputFiles.map((f) => [relative(root, f.path), f.text]));

const packageOf = (path) => path.match(/node_modules\/((@[^/]+\/)?[^/]+)/)?.[1];

// A CommonJS package imported with import() becomes a file of its own that exports the package's
// exports as `default` alone, unlike Node: import a module of ours that re-exports it instead.
const split = Object.values(result.metafile.outputs)
  .map((o) => o.entryPoint)
  .filter((e) => e && packageOf(e) && result.metafile.inputs[e]?.format === 'cjs')
  .map(packageOf);
if (split.length > 0) {
  console.error(
    `bundle-nodes: ${split.join(', ')} imported with import(): import a module that re-exports what is used (see src/worker/tasks/cluster-undici.ts)`,
  );
  process.exit(1);
}

// esbuild heads each module it bundles with a comment naming its file (in unminified output):
// a line is the package's whose header came last, or ours.
const inputs = new Set(Object.keys(result.metafile.inputs));
const unsafe = new Set();
for (const file of Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'))) {
  let from;
  for (const line of text.get(file).split('\n')) {
    if (line.startsWith('// ') && inputs.has(line.slice(3))) from = packageOf(line);
    else if (
      /\b__(dirname|filename)\b/.test(line) &&
      !/^\s*(\*|\/\/|\/\*)/.test(line) &&
      from &&
      !CHECKED_DIRNAME.includes(from)
    )
      unsafe.add(from);
  }
}
if (unsafe.size > 0) {
  console.error(
    `bundle-nodes: ${[...unsafe].join(', ')} name __dirname or __filename, which a bundle does not have: add them to EXTERNAL in scripts/bundle-nodes.mjs (or, if they only test for it, to CHECKED_DIRNAME)`,
  );
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [file, body] of text) writeFileSync(join(root, file), body);
// Which sources each file of the bundle holds: the specs read it to tell what a process loads.
writeFileSync(join(out, 'meta.json'), JSON.stringify(result.metafile));
const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0);
console.log(`bundle-nodes: ${outputs.length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB in dist/bundle/`);

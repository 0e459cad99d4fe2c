// Bundles what `weir` runs (the CLI and the nodes it starts, and the executor a worker forks)
// into dist/bundle/, from tsc's output in dist/src/. A master loading ~1,000 files one by one
// spent most of its start resolving, statting and reading them: bundled, a node starts on about
// two thirds of the CPU. Every `import()` stays a chunk of its own, so a client command still loads
// no server code (test/unit/startup-imports.test.ts). dist/src/ stays as it is, for the SDK.
import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'bundle');

/**
 * Packages left to be loaded from node_modules: native addons (found by their own loaders),
 * and pino with its transports, which run files of theirs in worker threads.
 */
const EXTERNAL = ['better-sqlite3', 'msgpackr-extract', 'pino', 'pino-pretty', 'thread-stream'];

/**
 * A bundled module that names __dirname or __filename (the docs page's assets, a package
 * reading its package.json) gets its own, as in node_modules, where it still lies: an ES module
 * bundle has neither. Found from the bundle's own place when it runs, so the install may move.
 */
const ownPaths = {
  name: 'own-paths',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(source)) return undefined;
      const file = JSON.stringify(relative(out, args.path));
      return {
        contents: `var __filename = __weirBundled(${file}), __dirname = __weirDirname(__filename);${source}`,
        loader: 'js',
      };
    });
  },
};

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
    js: [
      "import { createRequire as __weirRequire } from 'node:module';",
      "import { dirname as __weirDirname, join as __weirJoin } from 'node:path';",
      'const require = __weirRequire(import.meta.url);',
      "import { fileURLToPath as __weirFileURLToPath } from 'node:url';",
      'const __weirBundled = (path) => __weirJoin(__weirDirname(__weirFileURLToPath(import.meta.url)), path);',
    ].join(' '),
  },
  plugins: [ownPaths],
  // Read only under `node --enable-source-maps`: stack traces then name the TypeScript sources.
  sourcemap: 'linked',
  metafile: true,
  // Written only once the check below passes: a bundle that fails it never runs.
  write: false,
  logLevel: 'warning',
});
/** Each output file by its path in dist/bundle/, with its text. */
const files = result.outputFiles.map((f) => [relative(out, f.path), f.text]);

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

// `weir` must find whole code however the build ends (a full disk, a kill): each file is written
// aside and renamed into place, the chunks before the entries that import them. The previous
// build's files stay, for processes started from it that have a lazily loaded part still to
// load; the build's before it, and anything a stopped build left, are removed.
const META = join(out, 'meta.json');
const ENTRIES = new Set(['cli', 'executor-main'].flatMap((e) => [`${e}.js`, `${e}.js.map`]));
const filesOf = (meta) => Object.keys(meta.outputs).map((f) => relative(out, join(root, f)));
let previous = [];
try {
  previous = filesOf(JSON.parse(readFileSync(META, 'utf8')));
} catch {
  // no build before, or one that stopped before it named its files: nothing to keep
}
const put = (path, body) => {
  writeFileSync(`${path}.${process.pid}.tmp`, body);
  renameSync(`${path}.${process.pid}.tmp`, path);
};
mkdirSync(out, { recursive: true });
for (const [file, body] of files) if (!ENTRIES.has(file)) put(join(out, file), body);
// Which sources each file of the bundle holds: the specs read it to tell what a process loads.
put(META, JSON.stringify(result.metafile));
for (const [file, body] of files) if (ENTRIES.has(file)) put(join(out, file), body);
const keep = new Set(['meta.json', ...files.map(([file]) => file), ...previous]);
for (const file of readdirSync(out)) if (!keep.has(file)) rmSync(join(out, file), { force: true });
const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0);
console.log(`bundle-nodes: ${outputs.length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB in dist/bundle/`);

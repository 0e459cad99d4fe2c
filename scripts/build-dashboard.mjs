// Bundles the dashboard (ui/) into dist/dashboard/: one script and one stylesheet named by
// their content's hash (so a master may let browsers keep them), and the page that loads them.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'dashboard');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await build({
  entryPoints: [join(root, 'ui', 'main.ts')],
  bundle: true,
  // WEIR_DASHBOARD_MINIFY=0 keeps names readable, for a profile of the page (bench --profile).
  minify: process.env.WEIR_DASHBOARD_MINIFY !== '0',
  format: 'esm',
  target: ['es2022'],
  platform: 'browser',
  sourcemap: true,
  entryNames: '[name]-[hash]',
  outdir: join(out, 'assets'),
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs);
const named = (ext) => {
  const f = outputs.find((o) => o.endsWith(ext));
  if (!f) throw new Error(`esbuild wrote no ${ext} file`);
  return `/assets/${basename(f)}`;
};
const page = readFileSync(join(root, 'ui', 'index.html'), 'utf8')
  .replace('%JS%', named('.js'))
  .replace('%CSS%', named('.css'));
writeFileSync(join(out, 'index.html'), page);
const size = (ext) => result.metafile.outputs[outputs.find((o) => o.endsWith(ext))].bytes;
console.log(
  `dashboard: ${named('.js')} ${(size('.js') / 1024).toFixed(1)} KiB, ${named('.css')} ${(size('.css') / 1024).toFixed(1)} KiB`,
);

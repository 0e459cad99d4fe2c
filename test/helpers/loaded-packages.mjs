// Preloaded with `node --import` into a process under test: records every package the process
// loads, by name, one per line, in the file $WEIR_TRACE_PACKAGES — those imported as ES modules
// (a resolve hook sees each), those required as CommonJS, however deep (the require cache, read
// as the process exits), and those bundled into the files of dist/bundle/ it loads (the
// bundle's metafile says which sources each file holds). What a process loads is what it pays
// for at every start.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.WEIR_TRACE_PACKAGES;
const packageOf = (path) => path.match(/node_modules\/((@[^/]+\/)?[^/]+)/)?.[1];

if (file) {
  register(
    `data:text/javascript,${encodeURIComponent(`
      import { appendFileSync, readFileSync } from 'node:fs';
      import { basename } from 'node:path';
      const packageOf = ${packageOf.toString()};
      let bundled;
      /** The packages each file of the bundle holds, by file name. */
      function bundleContents(url) {
        if (bundled) return bundled;
        const meta = JSON.parse(readFileSync(new URL('./meta.json', url), 'utf8'));
        bundled = new Map();
        for (const [out, o] of Object.entries(meta.outputs)) {
          bundled.set(basename(out), new Set(Object.keys(o.inputs).map(packageOf).filter(Boolean)));
        }
        return bundled;
      }
      export async function resolve(specifier, context, next) {
        const r = await next(specifier, context);
        const names = /\\/dist\\/bundle\\/[^/]+\\.js$/.test(r.url)
          ? [...(bundleContents(r.url).get(basename(r.url)) ?? [])]
          : [packageOf(r.url)].filter(Boolean);
        if (names.length) appendFileSync(${JSON.stringify(file)}, names.map((n) => n + '\\n').join(''));
        return r;
      }
    `)}`,
  );
  process.on('exit', () => {
    const names = new Set(
      Object.keys(createRequire(import.meta.url).cache)
        .map(packageOf)
        .filter(Boolean),
    );
    appendFileSync(file, [...names].map((n) => `${n}\n`).join(''));
  });
}

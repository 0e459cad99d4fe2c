// Preloaded with `node --import` into a process under test: records every package the process
// loads, by name, one per line, in the file $WEIR_TRACE_PACKAGES — those imported as ES modules
// (a resolve hook sees each) and those required as CommonJS, however deep (the require cache,
// read as the process exits). What a process loads is what it pays for at every start.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.WEIR_TRACE_PACKAGES;
const packageOf = (path) => path.match(/node_modules\/((@[^/]+\/)?[^/]+)/)?.[1];

if (file) {
  register(
    `data:text/javascript,${encodeURIComponent(`
      import { appendFileSync } from 'node:fs';
      export async function resolve(specifier, context, next) {
        const r = await next(specifier, context);
        const name = r.url.match(/node_modules\\/((@[^/]+\\/)?[^/]+)/)?.[1];
        if (name) appendFileSync(${JSON.stringify(file)}, name + '\\n');
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

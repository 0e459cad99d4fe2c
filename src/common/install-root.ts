import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory Weir is installed in, the one holding its package.json: found from this
 * module upwards, because the code runs from dist/src/…, from the bundle in dist/bundle/, and
 * (in the specs) from src/ — three depths under the same root.
 */
export function installRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}: Weir's install is incomplete`);
  }
}

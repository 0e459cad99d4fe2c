// Another version of Weir for specs of mixed-version clusters: this build copied aside (its
// compiled code, sharing node_modules) and changed where a spec says, as the next or the
// previous release would differ.
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cluster.js';

/** A change to one compiled file: `at` (which must be there) becomes `change(at)`. */
export interface Patch {
  /** The file under dist/, e.g. `src/state/rules.js`. */
  file: string;
  at: string;
  change: (at: string) => string;
}

/**
 * Copies this build into `dir` with `patches` applied to tsc's output, bundled again as `weir`
 * runs it (scripts/bundle-nodes.mjs); returns its bin/weir.js.
 */
export function buildCopy(dir: string, patches: readonly Patch[]): string {
  for (const part of ['bin', 'dist', 'package.json', 'scripts/bundle-nodes.mjs'])
    cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  for (const p of patches) {
    const file = join(dir, 'dist', p.file);
    const source = readFileSync(file, 'utf8');
    if (!source.includes(p.at)) throw new Error(`${file} no longer has ${JSON.stringify(p.at)}: update the spec`);
    writeFileSync(file, source.replace(p.at, p.change(p.at)));
  }
  // A failure throws with what the script said.
  if (patches.length > 0) execFileSync(process.execPath, [join(dir, 'scripts/bundle-nodes.mjs')], { stdio: 'pipe' });
  return join(dir, 'bin', 'weir.js');
}

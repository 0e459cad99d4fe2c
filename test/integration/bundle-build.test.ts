import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCopy } from '../helpers/build-copy.js';
import { fill, mountTmpfs, unmount } from '../helpers/tmpfs.js';

// `weir` runs dist/bundle/, which `npm run build` writes again (scripts/bundle-nodes.mjs): a
// build stopped at its worst moment — killed, or out of disk — must leave a bundle that runs,
// and a rebuild must not pull the files from under processes started from the build before.

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** This build copied into a new directory under `parent` (node_modules shared). */
function copy(parent = tmpdir()): string {
  const dir = mkdtempSync(join(parent, 'weir-bundle-'));
  dirs.push(dir);
  buildCopy(dir, []);
  return dir;
}

/** Every file the entries import, however deep, statically or lazily: those missing. */
function missingFrom(dir: string): string[] {
  const bundle = join(dir, 'dist/bundle');
  const seen = new Set<string>();
  const missing: string[] = [];
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!existsSync(join(bundle, file))) return void missing.push(file);
    const source = readFileSync(join(bundle, file), 'utf8');
    for (const m of source.matchAll(/(?:from|import\()\s*"\.\/([^"]+\.js)"/g)) visit(m[1]!);
  };
  visit('cli.js');
  visit('executor-main.js');
  return missing;
}

/** `weir --help` of the copy in `dir` runs. */
function helpRuns(dir: string): boolean {
  const r = spawnSync(process.execPath, [join(dir, 'bin/weir.js'), '--help'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('Usage: weir');
}

const bundleScript = (dir: string) => join(dir, 'scripts/bundle-nodes.mjs');

describe('building the bundle again', () => {
  it('leaves a bundle that runs when killed at its first change to dist/bundle/, or at any later one', async () => {
    const dir = copy();
    for (const nth of [1, 2, 5, 20, 60]) {
      const build = spawn(process.execPath, [bundleScript(dir)], { stdio: 'ignore' });
      let changes = 0;
      const watcher = watch(join(dir, 'dist/bundle'), () => {
        if (++changes === nth) build.kill('SIGKILL');
      });
      await new Promise((r) => build.once('exit', r));
      watcher.close();
      expect({ nth, missing: missingFrom(dir), runs: helpRuns(dir) }).toEqual({ nth, missing: [], runs: true });
    }
  });

  it('on a full disk fails, saying so, and leaves the bundle that was there; once there is room it builds and leaves no scraps', () => {
    const m = mountTmpfs(40, 'bundle');
    if ('why' in m) {
      if (process.env.CI) throw new Error(m.why);
      return;
    }
    try {
      const dir = copy(m.dir);
      const before = readdirSync(join(dir, 'dist/bundle')).sort();
      const filler = fill(m.dir, 'filler', 1024 * 1024);
      const r = spawnSync(process.execPath, [bundleScript(dir)], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('ENOSPC');
      expect(missingFrom(dir)).toEqual([]);
      expect(helpRuns(dir)).toBe(true);

      rmSync(filler);
      execFileSync(process.execPath, [bundleScript(dir)], { stdio: 'pipe' });
      // Every file is this build's or the one's before (kept for processes started from it).
      const meta = JSON.parse(readFileSync(join(dir, 'dist/bundle/meta.json'), 'utf8')) as { outputs: object };
      const built = Object.keys(meta.outputs).map((f) => f.replace('dist/bundle/', ''));
      const after = readdirSync(join(dir, 'dist/bundle'));
      expect(after.filter((f) => f !== 'meta.json' && !built.includes(f) && !before.includes(f))).toEqual([]);
      expect(helpRuns(dir)).toBe(true);
    } finally {
      unmount(m.dir);
    }
  });

  it('keeps the files of the build before for processes started from it, and drops those of the build before that', () => {
    const dir = copy();
    const files = () => new Set(readdirSync(join(dir, 'dist/bundle')));
    const rebuildChanged = (mark: number) => {
      // A change to the master's code, lazily loaded: its file is named anew.
      const master = join(dir, 'dist/src/master/master-node.js');
      writeFileSync(master, `${readFileSync(master, 'utf8')}\nexport const buildMark${mark} = ${mark};\n`);
      execFileSync(process.execPath, [bundleScript(dir)], { stdio: 'pipe' });
    };
    const first = files();
    rebuildChanged(1);
    const second = files();
    expect([...first].filter((f) => !second.has(f))).toEqual([]);
    const added = [...second].filter((f) => !first.has(f));
    expect(added.some((f) => f.startsWith('master-node-'))).toBe(true);

    rebuildChanged(2);
    const third = files();
    const onlyFirst = [...first].filter((f) => f.startsWith('master-node-') && !third.has(f));
    expect(onlyFirst.length).toBeGreaterThan(0);
    expect(missingFrom(dir)).toEqual([]);
    expect(helpRuns(dir)).toBe(true);
  });
});

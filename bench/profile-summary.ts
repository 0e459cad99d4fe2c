// Reads a V8 .cpuprofile (from `node --cpu-prof`) and lists where the time went: the
// functions with the most self time, and the same samples grouped by package or source file.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
}

export interface Share {
  name: string;
  percent: number;
}

/** `node_modules/<pkg>` or the file under the repo, so a row names who to blame. */
function owner(url: string): string {
  if (!url) return '(native / V8)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return url;
  const repo = /\/(dist\/src\/.*)$/.exec(url);
  return repo ? repo[1]! : url.replace(/^file:\/\//, '');
}

/** `fn  pkg/path/in/package.js:line` (or the repo file), precise enough to open the source. */
function frameName(n: ProfileNode): string {
  const f = n.callFrame;
  const fn = f.functionName || '(anonymous)';
  if (!f.url) return fn;
  const inPackage = /node_modules\/(.*)$/.exec(f.url)?.[1];
  return `${fn}  ${inPackage ?? owner(f.url)}:${f.lineNumber + 1}`;
}

function top(counts: Map<string, number>, total: number, n: number): Share[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, hits]) => ({ name, percent: (100 * hits) / total }));
}

/** Self-time shares: by function, and by package / source file. `(idle)` is left out. */
export function summarizeProfile(path: string, n = 15): { functions: Share[]; owners: Share[]; busyPercent: number } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    if (node.callFrame.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    busy += hits;
    const name = frameName(node);
    byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
    const o = node.callFrame.url ? owner(node.callFrame.url) : node.callFrame.functionName;
    byOwner.set(o, (byOwner.get(o) ?? 0) + hits);
  }
  return {
    functions: top(byFunction, busy, n),
    owners: top(byOwner, busy, n),
    busyPercent: (100 * busy) / (busy + idle || 1),
  };
}

/**
 * Node flags that make a process write its profiles into `dir`/NAME when it exits: one a
 * thread, under Node's own names (they carry the thread's id). A fixed `--cpu-prof-name`
 * would let the thread that exits last (a master's WAL checkpointer) overwrite the main
 * thread's profile.
 */
export const cpuProfArgs =
  (dir: string) =>
  (name: string): string[] => ['--cpu-prof', `--cpu-prof-dir=${join(dir, name)}`];

/** The profiles written under `dir` by processes started with `cpuProfArgs(dir)`, main threads first. */
export function profilesIn(dir: string): { label: string; path: string }[] {
  const out: { label: string; path: string; main: boolean }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const name = entry.name;
    for (const f of readdirSync(join(dir, name)).sort()) {
      // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread.
      const tid = f.split('.')[4];
      out.push({
        label: `${name}, ${tid === '0' ? 'main thread' : `thread ${tid}`}`,
        path: join(dir, name, f),
        main: tid === '0',
      });
    }
  }
  return out
    .sort((a, b) => Number(b.main) - Number(a.main) || a.label.localeCompare(b.label))
    .map(({ label, path }) => ({ label, path }));
}

/** Every profile under `dir` summarized, the main threads' first. */
export const formatProfilesIn = (dir: string): string =>
  profilesIn(dir)
    .map((p) => `${p.label}: ${formatProfile(p.path)}`)
    .join('\n');

export function formatProfile(path: string): string {
  const s = summarizeProfile(path);
  const rows = (list: Share[]) => list.map((x) => `  ${x.percent.toFixed(1).padStart(5)}%  ${x.name}`).join('\n');
  return [
    `CPU profile ${path}`,
    `busy ${s.busyPercent.toFixed(0)}% of the profiled time; shares below are of the busy time.`,
    'Self time by function:',
    rows(s.functions),
    'Self time by package / file:',
    rows(s.owners),
  ].join('\n');
}

// `node dist/bench/profile-summary.js FILE.cpuprofile` prints the summary of a saved profile.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  for (const f of process.argv.slice(2)) process.stdout.write(`${formatProfile(f)}\n`);
}

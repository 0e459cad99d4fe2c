// What an executor process may do and how its end is told, as pure functions: the flags it
// starts with, how its memory is measured from outside, what its death means to the task
// that ran in it, and how a refusal of Node's permission model reads to the user.
import { isAbsolute, relative, sep } from 'node:path';

/** What tasks may reach on this worker: the roots of --allow-read / --allow-write / --allow-net. */
export interface TaskRights {
  read: string[];
  write: string[];
  /** HOST or HOST:PORT entries; undefined: any. */
  net?: string[];
}

/**
 * Whether `path` (absolute, normalised) is `root` or lies under it. A root ending in `*` is
 * a prefix, as Node's permission model reads it: `/tmp/a*` holds `/tmp/abc/d`.
 */
export function isUnder(path: string, root: string): boolean {
  if (root.endsWith('*')) return path.startsWith(root.slice(0, -1));
  const r = relative(root, path);
  return r === '' || (!r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r));
}

/**
 * Node flags of an executor: the permission model with exactly these roots (no child
 * processes, no threads: neither flag is given), and a heap that cannot grow past the task's
 * memory. The young generation is kept small so that what V8 commits for it (counted by the
 * supervisor, see memoryUsedMb) stays a small share of the limit.
 */
export function executorFlags(memoryMb: number, read: readonly string[], write: readonly string[]): string[] {
  return [...permissionFlags(read, write), ...heapFlags(memoryMb)];
}

/**
 * The permission model's flags for these roots. With a data dir inside a default root they
 * are thousands (see rootsWithout): a pool makes them once, and adds a job's own with withRoot.
 */
export function permissionFlags(read: readonly string[], write: readonly string[]): string[] {
  const flags = ['--experimental-permission', '--no-warnings'];
  // One flag per root: Node 20.20 reads a comma as part of the path.
  for (const r of outermost(read)) flags.push(`${READ}${r}`);
  for (const w of outermost(write)) flags.push(`${WRITE}${w}`);
  return flags;
}

const READ = '--allow-fs-read=';
const WRITE = '--allow-fs-write=';

/** `flags` (of permissionFlags) with `dir` readable and writable too, each flag once. */
export function withRoot(flags: readonly string[], dir: string): string[] {
  const held = (kind: string) => flags.some((f) => f.startsWith(kind) && isUnder(dir, f.slice(kind.length)));
  return [...flags, ...(held(READ) ? [] : [`${READ}${dir}`]), ...(held(WRITE) ? [] : [`${WRITE}${dir}`])];
}

export function heapFlags(memoryMb: number): string[] {
  return [
    `--max-old-space-size=${memoryMb}`,
    `--max-semi-space-size=${Math.max(1, Math.min(16, Math.floor(memoryMb / 64)))}`,
  ];
}

/**
 * The roots that no other root holds, each once: Node 20.20 aborts at start (an assertion in
 * its permission tree) when a path is given twice.
 */
export function outermost(roots: readonly string[]): string[] {
  const unique = [...new Set(roots.map((r) => (r.length > 1 ? r.replace(/\/+$/, '') : r)))];
  // Thousands of prefix roots (see rootsWithout): in key order, a root's holders come before
  // it and are prefixes of it, so a stack of the roots kept finds them in O(n log n).
  const entries = unique.map((r) => {
    const prefix = r.endsWith('*');
    return { r, prefix, key: prefix ? r.slice(0, -1) : r };
  });
  // On a tie of keys, the prefix root (which holds the other) first.
  entries.sort((a, b) => (a.key !== b.key ? (a.key < b.key ? -1 : 1) : a.prefix ? -1 : 1));
  const holds = (o: (typeof entries)[number], key: string) =>
    o.prefix ? key.startsWith(o.key) : o.key === '/' || key.startsWith(`${o.key}/`);
  const kept = new Set<string>();
  const stack: typeof entries = [];
  for (const e of entries) {
    while (stack.length && !e.key.startsWith(stack[stack.length - 1]!.key)) stack.pop();
    if (stack.some((o) => holds(o, e.key))) continue;
    kept.add(e.r);
    stack.push(e);
  }
  return unique.filter((r) => kept.has(r));
}

/** What a prefix root can end with: printable ASCII but `/` and `*` (`/tmp/**` is everything). */
const NAME_CHARS = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).filter(
  (c) => c !== '/' && c !== '*',
);

/**
 * `root` without `excluded` (absolute, normalised), as roots Node's permission model takes:
 * it cannot subtract a directory, so each directory on the way from `root` down to `excluded`
 * is given as what its names can be but the one leading on — the names that share a
 * shorter beginning with it and then differ (`/tmp/a*` … for `/tmp/weir`, then `/tmp/wa*` …),
 * those that go on after it, and those that are a beginning of it. Names made later match as
 * well, so files created after the executor starts are readable too; only a name that
 * differs from the excluded one first at `*` or a character outside printable ASCII is not.
 * `excluded` outside `root`: `[root]`; `root` inside `excluded`: nothing.
 */
export function rootsWithout(root: string, excluded: string): string[] {
  if (isUnder(root, excluded)) return [];
  if (!isUnder(excluded, root)) return [root];
  const roots: string[] = [];
  let base = root.endsWith(sep) ? root : root + sep;
  for (const name of relative(root, excluded).split(sep)) {
    for (let i = 0; i <= name.length; i++) {
      const start = base + name.slice(0, i);
      if (i > 0 && i < name.length) roots.push(start);
      for (const c of NAME_CHARS) if (c !== name[i]) roots.push(`${start}${c}*`);
    }
    base = base + name + sep;
  }
  return roots;
}

/** Pages as /proc/PID/statm gives them: total, resident, shared, text, lib, data, dirty. */
export interface Statm {
  residentMb: number;
  /** Private writable memory the process has mapped, touched or not (VmData). */
  dataMb: number;
}

export function parseStatm(text: string, pageBytes = 4096): Statm | undefined {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length < 6 || f.some((n) => !Number.isFinite(n))) return undefined;
  const mb = (pages: number) => (pages * pageBytes) / 1048576;
  return { residentMb: mb(f[1]!), dataMb: mb(f[5]!) };
}

/**
 * The memory a process holds, its baseline included: what is resident, or, when more, its
 * resident baseline plus all it has mapped since — so a Buffer allocated but not yet
 * touched (zeroed pages cost nothing until written) counts in full at once.
 */
export function memoryUsedMb(now: Statm, baseline: Statm): number {
  return Math.max(now.residentMb, baseline.residentMb + (now.dataMb - baseline.dataMb));
}

export const MEMORY_LIMIT = 'memory_limit';
export const PERMISSION_DENIED = 'permission_denied';

/** Why an executor ended, as the message of the task attempt it was running. */
export function deathCause(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `the task's process was killed by ${signal}`;
  return `the task's process exited with code ${code ?? 'unknown'}`;
}

/** A task failure named like a thrown error, so it crosses the channel as one. */
export function namedError(name: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  return err;
}

/**
 * A refusal of Node's permission model, as the user reads it: the path and the worker flag
 * that would allow it; undefined for any other error.
 */
export function permissionMessage(err: unknown): string | undefined {
  const e = err as { code?: unknown; permission?: unknown; resource?: unknown } | null;
  if (!e || e.code !== 'ERR_ACCESS_DENIED') return undefined;
  const what = typeof e.resource === 'string' ? e.resource : 'a path';
  switch (e.permission) {
    case 'FileSystemRead':
      return `${PERMISSION_DENIED}: ${what} is outside --allow-read`;
    case 'FileSystemWrite':
      return `${PERMISSION_DENIED}: ${what} is outside --allow-write`;
    case 'ChildProcess':
      return `${PERMISSION_DENIED}: tasks cannot start processes`;
    case 'WorkerThreads':
      return `${PERMISSION_DENIED}: tasks cannot start threads`;
    case 'Signal':
      return `${PERMISSION_DENIED}: tasks may act on their own process alone; ${what} names another`;
    default:
      return `${PERMISSION_DENIED}: ${String(e.permission ?? 'this operation')} is not allowed to tasks`;
  }
}

/** Whether `host[:port]` of a URL is among the --allow-net entries (undefined: any). */
export function netAllowed(url: string, allowed: readonly string[] | undefined): boolean {
  if (!allowed) return true;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return allowed.some((a) => {
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(a.trim().toLowerCase());
    if (!m) return false;
    return m[1]!.replace(/^\[|\]$/g, '') === host && (m[2] === undefined || m[2] === port);
  });
}

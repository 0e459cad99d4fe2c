// CPU time a process (or a process tree) has used, read from /proc: what a benchmark needs to
// say which process paid for a slowdown on a shared machine. Linux only.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on every Linux we run on). */
const TICKS_PER_S = 100;

interface Stat {
  ppid: number;
  /** utime + stime, in seconds. */
  cpuS: number;
}

/**
 * The fields of /proc/PID/stat after the command name (which may hold spaces and
 * parentheses, so it is cut at the last ')'); undefined once the process has gone.
 */
export function parseStat(text: string): Stat | undefined {
  const end = text.lastIndexOf(')');
  if (end < 0) return undefined;
  const f = text.slice(end + 2).split(' ');
  // After the name: state(0) ppid(1) … utime(11) stime(12).
  const ppid = Number(f[1]);
  const ticks = Number(f[11]) + Number(f[12]);
  if (!Number.isFinite(ppid) || !Number.isFinite(ticks)) return undefined;
  return { ppid, cpuS: ticks / TICKS_PER_S };
}

function statOf(pid: number): Stat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) `pid` has used so far; 0 for a process that has gone. */
export function cpuSeconds(pid: number): number {
  return statOf(pid)?.cpuS ?? 0;
}

/**
 * CPU seconds of `pid` and every live descendant (a browser's renderers and helpers). A
 * child that exited took its figure with it: read the tree before and after a stretch in
 * which its members live throughout.
 */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  for (const [, cpuS] of treeCpu(pid)) total += cpuS;
  return total;
}

/** CPU seconds of `pid` and of each live descendant, by process id. */
export function treeCpu(pid: number): Map<number, number> {
  const children = new Map<number, number[]>();
  const cpu = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = statOf(Number(name));
    if (!s) continue;
    cpu.set(Number(name), s.cpuS);
    children.set(s.ppid, [...(children.get(s.ppid) ?? []), Number(name)]);
  }
  const tree = new Map<number, number>();
  const todo = [pid];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    tree.set(p, cpu.get(p) ?? 0);
    todo.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** A chromium process's kind from its command line (`--type=renderer`, …; none: the browser). */
export function chromiumKind(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
    const type = args.find((a) => a.startsWith('--type='))?.slice(7);
    if (!type) return args.some((a) => a.includes('chrom')) ? 'browser' : 'other';
    const sub = args.find((a) => a.startsWith('--utility-sub-type='))?.slice(19);
    return sub ? `${type}:${sub.split('.').slice(-1)[0]}` : type;
  } catch {
    return 'gone';
  }
}

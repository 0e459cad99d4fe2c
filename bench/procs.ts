// Child processes, ports and temp dirs for the benchmark: everything it starts is
// registered here and torn down at the end, on error, on Ctrl-C and at the deadline.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or signal) once the process has gone. */
  exited: Promise<number | string>;
}

const children = new Set<Child>();
const tempDirs = new Set<string>();

/** A fresh directory under the OS temp dir, removed by `cleanup()`. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/**
 * Starts a process with stdout and stderr going to `logFile`: the bench's own output stays
 * readable, and the log is there to show when a process dies early.
 */
export function startChild(
  name: string,
  command: string,
  args: string[],
  opts: { logFile: string; env?: NodeJS.ProcessEnv; ipc?: boolean },
): Child {
  const fd = openSync(opts.logFile, 'a');
  const stdio: StdioOptions = opts.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd];
  const proc = spawn(command, args, { stdio, env: opts.env ?? process.env });
  closeSync(fd); // the child holds its own copy
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    proc.once('error', (err) => resolve(`spawn failed: ${err.message}`));
  });
  const child: Child = { name, proc, logFile: opts.logFile, exited };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

/** SIGTERM first (a graceful exit writes CPU profiles), SIGKILL if it lingers. */
export async function stopChild(child: Child, graceMs = 3000): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill('SIGTERM');
  const gone = await Promise.race([child.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!gone) {
    child.proc.kill('SIGKILL');
    await child.exited;
  }
}

/** The last lines a child wrote, for error messages. */
export function tailLog(child: Child, lines = 15): string {
  try {
    return readFileSync(child.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * The same module of other builds a side-by-side run loaded (`--against DIR`): each keeps its
 * own children and temp dirs, and is torn down with this one's.
 */
const otherBuilds: { cleanup?: typeof cleanup; killAllNow?: typeof killAllNow }[] = [];

export function tearDownWithThis(procsOfOtherBuild: (typeof otherBuilds)[number]): void {
  // A DIR that is this very build gives this module back.
  if (procsOfOtherBuild.cleanup !== cleanup) otherBuilds.push(procsOfOtherBuild);
}

/** Stops every child still running, then removes the temp dirs unless `keepDirs`; returns those kept. */
export async function cleanup(keepDirs = false): Promise<string[]> {
  await Promise.all([...children].map((c) => stopChild(c)));
  const dirs = [...tempDirs];
  tempDirs.clear();
  for (const other of otherBuilds.splice(0)) dirs.push(...((await other.cleanup?.(keepDirs)) ?? []));
  if (keepDirs) return dirs;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  return [];
}

/** Last resort when the bench exits without `cleanup()`: no process outlives it. */
export function killAllNow(): void {
  for (const c of children) c.proc.kill('SIGKILL');
  for (const other of otherBuilds) other.killAllNow?.();
}

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** The kernel's range for the source ports of outgoing connections (Linux; a common default elsewhere). */
function ephemeralRange(): { lo: number; hi: number } {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return { lo, hi };
  } catch {
    // not Linux
  }
  return { lo: 32768, hi: 60999 };
}

/**
 * A loopback port P such that P … P+n-1 are all free on every one of `hosts` (the cluster
 * uses consecutive ports; a multi-master cluster puts each master on its own 127.0.0.x).
 * Chosen below the ephemeral range: polling a port there before its server listens can make
 * the kernel pick that very port as the poller's source port (a TCP self-connect), and the
 * server then fails with EADDRINUSE.
 */
export async function freePortBlock(n: number, hosts: readonly string[] = ['127.0.0.1']): Promise<number> {
  const { lo } = ephemeralRange();
  const min = 10_000;
  const max = Math.max(min + 1000, lo) - n;
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = min + Math.floor(Math.random() * (max - min));
    let ok = true;
    for (let i = 0; i < n && ok; i++) for (const h of hosts) ok &&= await isFree(base + i, h);
    if (ok) return base;
  }
  throw new Error(`found no ${n} consecutive free ports on ${hosts.join(', ')} between ${min} and ${max + n}`);
}

/** Polls `probe` until it returns true, or fails with `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  alive?: Child[],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const c of alive ?? []) {
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
        throw new Error(`${c.name} exited while waiting for ${what}; its log:\n${tailLog(c)}`);
      }
    }
    if (await probe().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Runs a command to its end, its output on our stderr (stdout is the report); resolves with its exit code. */
export function run(command: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ['ignore', 2, 2], timeout: timeoutMs, env: env ?? process.env });
    proc.once('error', () => resolve(127));
    proc.once('exit', (code) => resolve(code ?? 1));
  });
}

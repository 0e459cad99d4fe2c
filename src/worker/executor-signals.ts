// What a task may do to other processes: nothing. Node's permission model leaves three calls
// free to reach any process of the same user — the worker (`process.ppid`), its process group
// (pid 0), a master on the same host:
// - `process.kill`, which a task that kills its worker uses to take every task there down
//   with it, then the next worker's, attempt after attempt;
// - `process._debugProcess`, which sends SIGUSR1: a Node process opens its inspector on it
//   (code in the worker, where its secrets are), any other process dies of it;
// - `os.setPriority`, which renices the worker for good.
// Running executors as another user (`--executor-user`) is the boundary the OS keeps; this
// keeps it for the default too, for code that reaches no further than JavaScript (the
// permission model refuses bindings, addons, processes and the inspector, the ways past it).
import os from 'node:os';
import { syncBuiltinESMExports } from 'node:module';

/** Node's own error for a refusal of its permission model, which permissionMessage reads. */
function refused(call: string, pid: unknown): Error {
  return Object.assign(new Error(`Access to this API has been restricted: ${call}(${String(pid)})`), {
    code: 'ERR_ACCESS_DENIED',
    permission: 'Signal',
    resource: `${call}(${String(pid)})`,
  });
}

/** Replaces `obj[name]` for good: not writable, not configurable, so user code cannot put it back. */
function fix(obj: object, name: string, value: (...args: never[]) => unknown): void {
  Object.defineProperty(obj, name, { value, writable: false, configurable: false, enumerable: false });
}

/**
 * Lets the process act on itself alone from here on. `process.kill` checks its arguments and
 * calls `process._kill`, which this replaces; the originals are kept only in this closure. The
 * pid is taken now: `process.pid` is a property user code may redefine.
 */
export function confineSignals(): void {
  const self = process.pid;
  const p = process as unknown as { _kill: (pid: number, signal: number) => number };
  const kill = p._kill.bind(process);
  fix(process, '_kill', (pid: number, signal: number) => {
    if (pid !== self) throw refused('process.kill', pid);
    return kill(pid, signal);
  });
  fix(process, '_debugProcess', (pid: number) => {
    throw refused('process._debugProcess', pid);
  });
  const setPriority = os.setPriority.bind(os);
  fix(os, 'setPriority', ((pid: number, priority?: number) => {
    // setPriority(priority) and setPriority(0, priority) are the process's own.
    if (priority !== undefined && pid !== 0 && pid !== self) throw refused('os.setPriority', pid);
    return priority === undefined ? setPriority(pid) : setPriority(pid, priority);
  }) as (...args: never[]) => unknown);
  // `import { setPriority } from 'node:os'` reads a copy of the module's exports: renewed.
  syncBuiltinESMExports();
}

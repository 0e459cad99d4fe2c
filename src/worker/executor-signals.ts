// What a task may signal: its own process alone. Node's permission model leaves
// `process.kill` free to reach any process of the same user — the worker (`process.ppid`), its
// process group (pid 0) — and a task that kills its worker takes every task there down with
// it, then the next worker's, attempt after attempt. Running executors as another user
// (`--executor-user`) is the boundary the OS keeps; this keeps it for the default too, for
// code that reaches no further than JavaScript (the permission model refuses bindings,
// addons and processes, the ways past it).

/** Node's own error for a refusal of its permission model, which permissionMessage reads. */
function refused(pid: number): Error {
  return Object.assign(new Error(`Access to this API has been restricted: process.kill(${pid})`), {
    code: 'ERR_ACCESS_DENIED',
    permission: 'Signal',
    resource: String(pid),
  });
}

/**
 * Lets the process signal only itself from here on. `process.kill` checks its arguments and
 * calls `process._kill`, which this replaces for good (not writable, not configurable); the
 * original is kept only in this closure.
 */
export function confineSignals(): void {
  const p = process as unknown as { _kill: (pid: number, signal: number) => number };
  const kill = p._kill.bind(process);
  Object.defineProperty(process, '_kill', {
    value: (pid: number, signal: number) => {
      if (pid !== process.pid) throw refused(pid);
      return kill(pid, signal);
    },
    writable: false,
    configurable: false,
    enumerable: false,
  });
}

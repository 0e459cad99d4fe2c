// Clean-ups that must run however a test process ends: at its exit, and when a signal cuts it
// short (a CI run killed at its time limit, ^C) — Node runs no 'exit' listener then, and the
// masters, workers and tmpfs mounts a test made would outlive it.

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
const cleanUps: (() => void)[] = [];
let installed = false;

function runAll(): void {
  for (const cleanUp of cleanUps.splice(0)) {
    try {
      cleanUp();
    } catch {
      // The others still run.
    }
  }
}

/**
 * Runs `cleanUp` (synchronous) once, when this process exits or a signal ends it, in the order
 * registered: the harness's processes are killed (registered on import) before mounts go.
 */
export function onCutShort(cleanUp: () => void): void {
  cleanUps.push(cleanUp);
  if (installed) return;
  installed = true;
  process.once('exit', runAll);
  for (const signal of SIGNALS) {
    process.once(signal, () => {
      runAll();
      // Then die of it as the process would have: unless the test runner handles it itself.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

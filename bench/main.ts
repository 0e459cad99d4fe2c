// How a benchmark's entry point runs: whichever way it ends (done, failed, Ctrl-C, SIGTERM,
// its deadline), every process it started is stopped; a failed run keeps its logs.
import { cleanup, killAllNow } from './procs.js';
import { log } from './stats.js';

export interface MainOptions {
  /** The run stops by itself after this long, whatever it is doing. */
  deadlineMs: number;
  /** Called at the deadline before teardown, e.g. to write the figures measured so far. */
  onDeadline?: () => void;
}

export function runMain(main: () => Promise<void>, o: MainOptions): void {
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`\n${sig}: stopping every process the bench started`);
      exitWith(128 + (sig === 'SIGINT' ? 2 : 15), false);
    });
  }
  setTimeout(() => {
    log(`bench: still running after ${o.deadlineMs / 1000} s; stopping`);
    try {
      o.onDeadline?.();
    } finally {
      exitWith(1);
    }
  }, o.deadlineMs).unref();
  main().then(
    // A main that measured everything but found a failure sets process.exitCode.
    () => exitWith(Number(process.exitCode ?? 0)),
    (err: Error) => {
      log(`bench failed: ${err.stack ?? err.message}`);
      exitWith(1);
    },
  );
}

/** Tears everything down, then exits; a failed run keeps its temp dirs (logs, data). */
function exitWith(code: number, keepLogs = code !== 0 || process.env.WEIR_BENCH_KEEP === '1'): void {
  void cleanup(keepLogs).then(
    (kept) => {
      if (kept.length) log(`logs kept in: ${kept.join(' ')}`);
      process.exit(code);
    },
    () => process.exit(code),
  );
}

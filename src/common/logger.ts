import { pino, type Logger } from 'pino';
import { isHandOver } from './errors.js';

export type { Logger };

/** Structured logs to stderr; `WEIR_LOG_LEVEL` tunes the level (default `info`). */
export function createLogger(name: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    { name, level: process.env.WEIR_LOG_LEVEL ?? 'info', base: { pid: process.pid, ...bindings } },
    pino.destination(2),
  );
}

/**
 * A write the cluster proposed for itself (`what`: "declaring a worker dead") that failed:
 * refused for a hand-over or a stop (isHandOver), a line at info; anything else, a warning
 * with its stack.
 */
export function logFailedWrite(log: Logger, err: Error, fields: Record<string, unknown>, what: string): void {
  if (isHandOver(err)) log.info({ ...fields, why: err.message }, `${what} was not recorded: no leader to record it`);
  else log.warn({ err, ...fields }, `${what} failed`);
}

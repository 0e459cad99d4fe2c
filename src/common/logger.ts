import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured logs to stderr; `WEIR_LOG_LEVEL` tunes the level (default `info`). */
export function createLogger(name: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    { name, level: process.env.WEIR_LOG_LEVEL ?? 'info', base: { pid: process.pid, ...bindings } },
    pino.destination(2),
  );
}

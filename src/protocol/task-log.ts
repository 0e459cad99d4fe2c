// No schema here: executors import these constants, and TypeBox costs each one ~0.1 s to
// load (task-log-schema.ts has the wire schemas).

/** Where a line of user code's output was written. */
export type LogStream = 'stdout' | 'stderr';

/**
 * One line a task (or a streaming instance) printed, as it travels from its worker to the
 * masters and is stored: `at` is when it was written (ms since the epoch, the worker's clock).
 */
export interface LogLine {
  stream: LogStream;
  at: number;
  text: string;
}

/** Bytes of output kept per task attempt (and per streaming instance attempt). */
export const LOG_CAP_BYTES = 1024 * 1024;

/**
 * What each line costs against the cap besides its text: a million empty lines would
 * otherwise be a million rows in every master's database for 1 MiB.
 */
export const LOG_LINE_OVERHEAD = 32;

/** A longer line is stored as several. */
export const MAX_LOG_LINE_CHARS = 16 * 1024;

/** Lines one attempt can have at most (empty lines, each costing its overhead). */
export const MAX_LOG_LINES = Math.ceil(LOG_CAP_BYTES / LOG_LINE_OVERHEAD) + 2;

/** The line that ends an attempt's log once it reached the cap. */
export const LOG_CUT_MARKER = `[weir: log cut at ${LOG_CAP_BYTES / 1048576} MiB]`;

/** The line that stands for lines the masters dropped while their disk was full. */
export const LOG_DROPPED_MARKER = '[weir: log lines dropped: the cluster is out of space (no_space)]';

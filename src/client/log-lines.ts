import { prettyFactory } from 'pino-pretty';

/**
 * How `weir dev` shows its nodes' log lines: readable on a terminal (pino-pretty, one line
 * each), JSON as written otherwise, so that a pipe or a file keeps what a machine reads.
 * `WEIR_LOG_FORMAT=json|pretty` overrides the choice.
 */
export function logLineFormatter(terminal: boolean, format = process.env.WEIR_LOG_FORMAT): (line: string) => string {
  const pretty = format === 'pretty' || (format !== 'json' && terminal);
  if (!pretty) return (line) => line;
  const prettify = prettyFactory({
    colorize: terminal,
    singleLine: true,
    ignore: 'pid,hostname,name',
    translateTime: 'HH:MM:ss.l',
  });
  return (line) => {
    // Only pino's lines are prettified: anything else a node writes passes as it is.
    if (!line.startsWith('{')) return line;
    try {
      return prettify(line).replace(/\n$/, '');
    } catch {
      return line;
    }
  };
}

import { Type, type Static } from '@sinclair/typebox';
import { badRequest } from '../common/errors.js';
import type { LogRow } from '../state/task-logs.js';

/** One line of a job's logs as the API serves it: the route's reply schema, and the type it gives. */
export const LogLineView = Type.Object({
  task: Type.Integer(),
  attempt: Type.Integer(),
  stream: Type.String({ enum: ['stdout', 'stderr'] }),
  time: Type.String({ format: 'date-time' }),
  text: Type.String(),
  /** A streaming job's lines: the component and its instance the task runs. */
  component: Type.Optional(Type.String()),
  instance: Type.Optional(Type.Integer()),
});
export type LogLineView = Static<typeof LogLineView>;

/** Lines one answer holds at most, and their text's bytes at most (a job's logs may be 10 GiB). */
export const MAX_LOG_PAGE_LINES = 10_000;
export const MAX_LOG_PAGE_BYTES = 4 * 1024 * 1024;

/** The cursor `l<id>` resumes after a stored line; none: from the first. */
export function parseLogCursor(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  const m = /^l(\d{1,15})$/.exec(cursor);
  if (!m)
    throw badRequest(`cursor '${cursor.slice(0, 100)}' is not one this API gives out; start again without a cursor`);
  return Number(m[1]);
}

export const logCursor = (id: number): string => `l${id}`;

/**
 * The rows of a page that fit its byte budget (at least one, however long), as the API shows
 * them; `instances` names a streaming job's tasks by component and instance.
 */
export function logPage(
  rows: readonly LogRow[],
  instances: readonly { component: string; index: number }[] | undefined,
  maxBytes = MAX_LOG_PAGE_BYTES,
): { lines: LogLineView[]; last: number | undefined; full: boolean } {
  const lines: LogLineView[] = [];
  let bytes = 0;
  let last: number | undefined;
  for (const r of rows) {
    bytes += r.text.length + 64;
    if (bytes > maxBytes && lines.length > 0) return { lines, last, full: true };
    const inst = instances?.[r.idx];
    lines.push({
      task: r.idx,
      attempt: r.attempt,
      stream: r.stream,
      time: new Date(r.at).toISOString(),
      text: r.text,
      ...(inst ? { component: inst.component, instance: inst.index } : {}),
    });
    last = r.id;
  }
  return { lines, last, full: false };
}

import { Type } from '@sinclair/typebox';
import { MAX_LOG_LINE_CHARS, MAX_LOG_LINES } from './task-log.js';

export const LogLineSchema = Type.Object({
  stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
  at: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  // The marker lines are short; a line of text is at most MAX_LOG_LINE_CHARS.
  text: Type.String({ maxLength: MAX_LOG_LINE_CHARS }),
});

export const LogLinesSchema = Type.Array(LogLineSchema, { maxItems: MAX_LOG_LINES });

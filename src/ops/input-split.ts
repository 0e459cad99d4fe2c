import { parse as parseCsv } from 'csv-parse/sync';
import { contiguousPartition } from './partition.js';
import { isUploadPath } from '../common/ids.js';
import type { InputSpec } from '../protocol/task-spec.js';

const NEWLINE = 0x0a;
const CHUNK = 1024 * 1024;

/**
 * The byte range of split `idx` of `count` over a file of `size` bytes. Workers compute it
 * themselves from the file they see, so the masters never read the input.
 */
export function splitRange(size: number, count: number, idx: number): { start: number; end: number } {
  return contiguousPartition(size, count, idx);
}

/**
 * The records of the byte range `[start, end)`, on record boundaries as Hadoop's input
 * splits do: a split owns every line that *starts* inside it — it skips a partial first line
 * (the previous split reads it to its end) and reads its last line past `end`. So every line
 * belongs to exactly one split, whatever the split points.
 *
 * `read(position, length)` returns the bytes there (fewer at the end of the file).
 */
export async function readSplitLines(
  read: (position: number, length: number) => Promise<Buffer>,
  start: number,
  end: number,
  lines: string[] = [],
): Promise<string[]> {
  // A line starts at `start` only if the byte before it ends a line.
  let pos = start;
  if (start > 0) {
    const before = await read(start - 1, 1);
    if (before[0] !== NEWLINE) pos = await skipPastNewline(read, start);
  }
  // `carry` holds the unfinished line that starts at file offset `lineStart`. Whole lines are
  // decoded a chunk at a time (one toString and one split per chunk, not per line): a
  // newline byte never occurs inside a UTF-8 character, so cutting at one is always safe.
  let carry: Buffer = Buffer.alloc(0);
  let lineStart = pos;
  while (lineStart < end) {
    const chunk = await read(pos, CHUNK);
    if (chunk.length === 0) break; // end of file: a last line without a newline
    pos += chunk.length;
    const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const lastNewline = buf.lastIndexOf(NEWLINE);
    if (lastNewline < 0) {
      carry = buf;
      continue;
    }
    // Lines start at 0 and after each newline; the first starting at `end` or later is the
    // next split's, so cut at the newline before it.
    const done = lineStart + lastNewline + 1 >= end;
    const cut = done ? buf.indexOf(NEWLINE, end - lineStart - 1) : lastNewline;
    pushLines(lines, buf.toString('utf8', 0, cut));
    if (done) return lines;
    carry = buf.subarray(cut + 1);
    lineStart += cut + 1;
  }
  if (carry.length && lineStart < end) pushLines(lines, carry.toString('utf8'));
  return lines;
}

/** Appends the lines of `text` (no trailing newline), each without a final '\r'. */
function pushLines(lines: string[], text: string): void {
  for (const l of text.split('\n')) lines.push(l.endsWith('\r') ? l.slice(0, -1) : l);
}

async function skipPastNewline(read: (p: number, n: number) => Promise<Buffer>, from: number): Promise<number> {
  for (let pos = from; ;) {
    const chunk = await read(pos, CHUNK);
    if (chunk.length === 0) return pos;
    const i = chunk.indexOf(NEWLINE);
    if (i >= 0) return pos + i + 1;
    pos += chunk.length;
  }
}

/** Positioned reads of an input: `read(position, length)` returns the bytes there (fewer at the end). */
export type Read = (position: number, length: number) => Promise<Buffer>;

const where = (input: InputSpec) => input.path ?? input.url;

/**
 * Where an input URL can be read: the URL itself and, for an upload (`/uploads/ID` on a
 * master), the same path on every master the worker knows — each master holds a copy, so
 * the input outlives the master that received it.
 */
export function inputSources(url: string, masters: readonly string[] = []): string[] {
  const own = new URL(url);
  if (!isUploadPath(own.pathname)) return [url];
  return [...new Set([own.href, ...masters.map((m) => new URL(own.pathname, m).href)])];
}

/** The first line of the input: a csv file's header. */
async function headerOf(read: Read): Promise<string[]> {
  const [line] = await readSplitLines(read, 0, 1);
  if (line === undefined) return [];
  // Spreadsheets start their csv with a byte-order mark; it is no part of the first name.
  return parseCsv(line.replace(/^\uFEFF/, ''), { relax_quotes: true })[0] as string[];
}

function parseRecords(input: InputSpec, lines: string[], header: string[] | undefined, what: string): unknown[] {
  switch (input.format) {
    case 'lines':
      return lines;
    case 'jsonl':
      return lines
        .filter((l) => l.trim() !== '')
        .map((l, i) => {
          try {
            return JSON.parse(l) as unknown;
          } catch {
            throw new SyntaxError(`${where(input)}: line ${i + 1} of ${what} is not JSON: ${l.slice(0, 80)}`);
          }
        });
    case 'csv': {
      const body = lines.filter((l) => l.trim() !== '').join('\n');
      if (body === '') return [];
      // Records are whole lines: a quoted field may not hold a line break (documented).
      return parseCsv(body, { columns: header, relax_column_count: true, cast: true }) as unknown[];
    }
  }
}

/**
 * The records of split `idx` of `count` of an input of `size` bytes, read through `read`.
 * With `sample`, reads only that many windows of `sample.bytes` spread over the split (a
 * range partitioner's sample).
 */
export async function readSplitRecords(
  read: Read,
  size: number,
  input: InputSpec,
  count: number,
  idx: number,
  sample?: { windows: number; bytes: number },
): Promise<unknown[]> {
  const { start, end } = splitRange(size, count, idx);
  const header = input.format === 'csv' ? await headerOf(read) : undefined;
  // The header line is no record: the split holding it starts after it.
  const from = header ? Math.max(start, (await firstLineEnd(read)) ?? size) : start;
  if (from >= end) return [];
  const lines: string[] = [];
  if (sample) {
    const step = Math.max(sample.bytes, Math.floor((end - from) / sample.windows));
    for (let s = from; s < end; s += step) await readSplitLines(read, s, Math.min(end, s + sample.bytes), lines);
  } else {
    await readSplitLines(read, from, end, lines);
  }
  return parseRecords(input, lines, header, `split ${idx}`);
}

async function firstLineEnd(read: Read): Promise<number | undefined> {
  const end = await skipPastNewline(read, 0);
  return end;
}

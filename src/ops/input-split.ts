import { open } from 'node:fs/promises';
import { contiguousPartition } from './partition.js';

export const INPUT_FORMATS = ['lines', 'jsonl'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

export interface InputSpec {
  path: string;
  format: InputFormat;
}

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
): Promise<string[]> {
  const lines: string[] = [];
  // A line starts at `start` only if the byte before it ends a line.
  let pos = start;
  if (start > 0) {
    const before = await read(start - 1, 1);
    if (before[0] !== NEWLINE) pos = await skipPastNewline(read, start);
  }
  let pending: Buffer[] = [];
  let lineStart = pos;
  while (lineStart < end) {
    const chunk = await read(pos, CHUNK);
    if (chunk.length === 0) break; // end of file: a last line without a newline
    let from = 0;
    for (let i = chunk.indexOf(NEWLINE); i >= 0; i = chunk.indexOf(NEWLINE, from)) {
      pending.push(chunk.subarray(from, i));
      lines.push(Buffer.concat(pending).toString('utf8'));
      pending = [];
      from = i + 1;
      lineStart = pos + from;
      if (lineStart >= end) break;
    }
    if (lineStart >= end) {
      pending = [];
      break;
    }
    pending.push(chunk.subarray(from));
    pos += chunk.length;
  }
  if (pending.length && lineStart < end) {
    const last = Buffer.concat(pending).toString('utf8');
    if (last.length) lines.push(last);
  }
  return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
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

/** Reads split `idx` of `count` of an input file and parses its records. */
export async function readInputSplit(input: InputSpec, count: number, idx: number): Promise<unknown[]> {
  const file = await open(input.path, 'r');
  try {
    const { size } = await file.stat();
    const { start, end } = splitRange(size, count, idx);
    const read = async (position: number, length: number) => {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await file.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    };
    const lines = await readSplitLines(read, start, end);
    if (input.format === 'lines') return lines;
    return lines
      .filter((l) => l.trim() !== '')
      .map((l, i) => {
        try {
          return JSON.parse(l) as unknown;
        } catch {
          throw new SyntaxError(`${input.path}: line ${i + 1} of split ${idx} is not JSON: ${l.slice(0, 80)}`);
        }
      });
  } finally {
    await file.close();
  }
}

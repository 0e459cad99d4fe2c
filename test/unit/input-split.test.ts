import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readInputSplit, readSplitLines, splitRange } from '../../src/ops/input-split.js';

const reader = (text: string) => {
  const buf = Buffer.from(text);
  return async (position: number, length: number) => buf.subarray(position, position + length);
};

async function allSplits(text: string, count: number): Promise<string[][]> {
  const size = Buffer.byteLength(text);
  const out = [];
  for (let i = 0; i < count; i++) {
    const { start, end } = splitRange(size, count, i);
    out.push(await readSplitLines(reader(text), start, end));
  }
  return out;
}

describe('input splits on record boundaries (Hadoop-style)', () => {
  const text = 'alpha\nbeta\ngamma delta\n\nepsilon\nzeta\n';
  const lines = ['alpha', 'beta', 'gamma delta', '', 'epsilon', 'zeta'];

  it('every line lands in exactly one split, in order, whatever the split count', async () => {
    for (let count = 1; count <= Buffer.byteLength(text) + 3; count++) {
      expect((await allSplits(text, count)).flat(), `count ${count}`).toEqual(lines);
    }
  });

  it('keeps a last line that has no newline', async () => {
    expect((await allSplits('a\nb\nlast', 2)).flat()).toEqual(['a', 'b', 'last']);
  });

  it('reads a line that crosses the split end to its end, and the next split skips it', async () => {
    const [first, second] = await allSplits('0123456789\nab\n', 2);
    expect(first).toEqual(['0123456789']);
    expect(second).toEqual(['ab']);
  });

  it('handles multi-byte characters split across byte boundaries', async () => {
    const t = 'ñandú\nçà va\n日本語\n';
    for (let count = 1; count <= 10; count++) {
      expect((await allSplits(t, count)).flat()).toEqual(['ñandú', 'çà va', '日本語']);
    }
  });

  it('strips Windows line ends', async () => {
    expect((await allSplits('a\r\nb\r\n', 1)).flat()).toEqual(['a', 'b']);
  });

  it('reads and parses a file split as JSON lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-split-'));
    const path = join(dir, 'in.jsonl');
    const records = Array.from({ length: 500 }, (_, i) => ({ i, word: `w${i % 7}` }));
    writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const parts = await Promise.all([0, 1, 2, 3].map((idx) => readInputSplit({ path, format: 'jsonl' }, 4, idx)));
    expect(parts.flat()).toEqual(records);
    rmSync(dir, { recursive: true, force: true });
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inputSources, readSplitLines, splitRange } from '../../src/ops/input-split.js';
import { readInputSplit } from '../../src/worker/tasks/input-reader.js';

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

  it('reads lines across many chunks, and splits of a million lines', async () => {
    const many = Array.from({ length: 1_000_000 }, (_, i) => `line ${i}`);
    const text = `${many.join('\n')}\n`;
    const whole = await readSplitLines(reader(text), 0, Buffer.byteLength(text));
    expect(whole.length).toBe(many.length);
    expect(whole.join('\n')).toBe(many.join('\n'));
    expect((await allSplits(text, 7)).flat().join('\n')).toBe(many.join('\n'));
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

describe('csv input', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-csv-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const readAll = async (path: string, count: number) => {
    const parts = [];
    for (let idx = 0; idx < count; idx++) parts.push(await readInputSplit({ path, format: 'csv' }, count, idx));
    return parts;
  };

  const rows = Array.from({ length: 40 }, (_, i) => ({ name: `n${i}`, age: 20 + i, city: `c${i % 5}` }));
  const text = 'name,age,city\n' + rows.map((r) => `${r.name},${r.age},${r.city}`).join('\n') + '\n';

  it('names the fields of every record by the header, the first line of the file', async () => {
    const path = write('in.csv', text);
    expect(await readInputSplit({ path, format: 'csv' }, 1, 0)).toEqual(rows);
  });

  it('puts every record in exactly one split, and the header in none, whatever the split count', async () => {
    const path = write('in.csv', text);
    for (const count of [1, 2, 3, 4, 5, 7, 10, 13, 16, 31, 64, Buffer.byteLength(text), Buffer.byteLength(text) + 3]) {
      const parts = await readAll(path, count);
      expect(parts.flat(), `count ${count}`).toEqual(rows);
    }
  });

  it('reads no record from splits that lie inside the header line', async () => {
    const path = write('in.csv', 'a_rather_long_header_field,b\n1,2\n');
    const parts = await readAll(path, 8); // the header alone spans several splits
    expect(parts.flat()).toEqual([{ a_rather_long_header_field: 1, b: 2 }]);
    expect(parts.filter((p) => p.length > 0)).toHaveLength(1);
  });

  it('casts numbers and leaves other fields as strings', async () => {
    const path = write('in.csv', 'id,price,label\n1,2.5,x\n-3,1e3,4b\n');
    expect(await readInputSplit({ path, format: 'csv' }, 1, 0)).toEqual([
      { id: 1, price: 2.5, label: 'x' },
      { id: -3, price: 1000, label: '4b' },
    ]);
  });

  it('parses quoted fields, skips blank lines, strips Windows line ends and keeps a last line without newline', async () => {
    const path = write('in.csv', 'who,says\r\n"Smith, J","say ""hi"""\r\n\r\nLee,bye');
    expect(await readInputSplit({ path, format: 'csv' }, 1, 0)).toEqual([
      { who: 'Smith, J', says: 'say "hi"' },
      { who: 'Lee', says: 'bye' },
    ]);
  });

  it('gives no records for a file that is only a header', async () => {
    expect(await readAll(write('h.csv', 'a,b,c\n'), 3)).toEqual([[], [], []]);
    expect(await readAll(write('h2.csv', 'a,b,c'), 2)).toEqual([[], []]);
  });

  it('ignores a UTF-8 byte order mark before the header', async () => {
    const path = write('bom.csv', '\uFEFFname,age\nann,3\n');
    expect(await readInputSplit({ path, format: 'csv' }, 1, 0)).toEqual([{ name: 'ann', age: 3 }]);
  });
});

describe('sampling a split (the range partitioner)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-sample-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const records = Array.from({ length: 3000 }, (_, i) => ({ i, word: `w${(i * 7919) % 1000}` }));
  const jsonl = () => {
    const path = join(dir, 'in.jsonl');
    writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return { path, format: 'jsonl' as const };
  };

  it("returns a subset of the split's records, in order, without repeats", async () => {
    const input = jsonl();
    for (const [count, idx] of [
      [1, 0],
      [3, 0],
      [3, 1],
      [3, 2],
    ] as const) {
      const whole = (await readInputSplit(input, count, idx)) as { i: number }[];
      const sample = (await readInputSplit(input, count, idx, { windows: 4, bytes: 256 })) as { i: number }[];
      expect(sample.length, `split ${idx} of ${count}`).toBeGreaterThan(0);
      expect(sample.length).toBeLessThan(whole.length);
      const ids = new Set(whole.map((r) => r.i));
      for (const r of sample) expect(ids.has(r.i)).toBe(true);
      for (let k = 1; k < sample.length; k++) expect(sample[k]!.i).toBeGreaterThan(sample[k - 1]!.i);
    }
  });

  it('draws from across the split, not only its start', async () => {
    const input = jsonl();
    const sample = (await readInputSplit(input, 1, 0, { windows: 8, bytes: 128 })) as { i: number }[];
    expect(Math.max(...sample.map((r) => r.i))).toBeGreaterThan(records.length / 2);
  });

  it('returns the whole split when the windows cover it', async () => {
    const input = jsonl();
    const whole = await readInputSplit(input, 4, 2);
    expect(await readInputSplit(input, 4, 2, { windows: 1, bytes: 10 * 1024 * 1024 })).toEqual(whole);
  });

  it('never returns the header of a csv file', async () => {
    const path = join(dir, 'in.csv');
    writeFileSync(path, 'i,word\n' + records.map((r) => `${r.i},${r.word}`).join('\n') + '\n');
    const sample = (await readInputSplit({ path, format: 'csv' }, 2, 0, { windows: 4, bytes: 64 })) as {
      i: unknown;
      word: unknown;
    }[];
    expect(sample.length).toBeGreaterThan(0);
    for (const r of sample) expect(typeof r.i).toBe('number');
    expect(sample[0]).toEqual({ i: 0, word: 'w0' });
  });
});

describe('where an input URL is read from', () => {
  const id = `up_${'ab'.repeat(16)}`;
  const masters = ['http://10.0.0.1:8080', 'http://10.0.0.2:8080/', 'http://10.0.0.3:8080'];

  it('an upload: the master in its URL first, then every other master the worker knows', () => {
    expect(inputSources(`http://10.0.0.2:8080/uploads/${id}`, masters)).toEqual([
      `http://10.0.0.2:8080/uploads/${id}`,
      `http://10.0.0.1:8080/uploads/${id}`,
      `http://10.0.0.3:8080/uploads/${id}`,
    ]);
  });

  it('any other URL: only itself', () => {
    expect(inputSources('https://data.example/uploads/words.txt', masters)).toEqual([
      'https://data.example/uploads/words.txt',
    ]);
    expect(inputSources(`http://10.0.0.2:8080/uploads/${id}`)).toEqual([`http://10.0.0.2:8080/uploads/${id}`]);
  });
});

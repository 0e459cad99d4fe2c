// What a task prints, cut into lines and bounded on its worker (src/worker/log-capture.ts).
import { describe, expect, it } from 'vitest';
import { LogCapture } from '../../src/worker/log-capture.js';
import { LOG_CAP_BYTES, LOG_CUT_MARKER, LOG_LINE_OVERHEAD, MAX_LOG_LINE_CHARS } from '../../src/protocol/task-log.js';

describe('LogCapture', () => {
  it('cuts writes into lines per stream, a line timed by its first piece', () => {
    const c = new LogCapture();
    c.write('stdout', 'one\ntw', 1);
    c.write('stderr', 'err\n', 2);
    c.write('stdout', 'o\nthree\n', 3);
    expect(c.take()).toEqual([
      { stream: 'stdout', at: 1, text: 'one' },
      { stream: 'stderr', at: 2, text: 'err' },
      { stream: 'stdout', at: 1, text: 'two' },
      { stream: 'stdout', at: 3, text: 'three' },
    ]);
    expect(c.empty).toBe(true);
  });

  it('keeps empty lines, and closes a line left open when the lines are taken', () => {
    const c = new LogCapture();
    c.write('stdout', '\n\nlast', 5);
    expect(c.empty).toBe(false);
    expect(c.take().map((l) => l.text)).toEqual(['', '', 'last']);
    expect(c.take()).toEqual([]);
  });

  it('stores a line longer than MAX_LOG_LINE_CHARS in parts, even one never ended', () => {
    const c = new LogCapture();
    c.write('stdout', 'x'.repeat(MAX_LOG_LINE_CHARS * 2 + 5), 1);
    c.write('stdout', 'y'.repeat(MAX_LOG_LINE_CHARS + 1) + '\n', 2);
    const lines = c.take();
    expect(lines.map((l) => l.text.length)).toEqual([MAX_LOG_LINE_CHARS, MAX_LOG_LINE_CHARS, MAX_LOG_LINE_CHARS, 6]);
    expect(lines.every((l) => l.at === 1)).toBe(true);
  });

  it('keeps at most LOG_CAP_BYTES (text and overhead per line), then drops the rest and ends with the marker once', () => {
    const c = new LogCapture();
    const line = 'z'.repeat(1000);
    for (let i = 0; i < 5000; i++) c.write('stdout', `${line}\n`, i);
    expect(c.cut).toBe(true);
    const lines = c.take();
    const kept = lines.slice(0, -1);
    expect(lines[lines.length - 1]).toEqual({ stream: 'stderr', at: kept.length, text: LOG_CUT_MARKER });
    expect(kept.length).toBe(Math.floor(LOG_CAP_BYTES / (1000 + LOG_LINE_OVERHEAD)));
    c.write('stdout', 'more\n', 9999);
    expect(c.take()).toEqual([]);
    expect(c.empty).toBe(true);
  });

  it('counts what is taken against the cap too (a streaming instance takes again and again)', () => {
    const c = new LogCapture();
    const line = `${'q'.repeat(15_000)}\n`.repeat(17);
    for (let i = 0; i < 4; i++) {
      c.write('stdout', line, i);
      expect(c.take()).toHaveLength(17);
    }
    c.write('stdout', line, 4);
    const last = c.take();
    expect(last.length).toBeLessThan(17);
    expect(last[last.length - 1]!.text).toBe(LOG_CUT_MARKER);
  });

  it('ends the log where its process said it stopped sending, keeping the open line', () => {
    const c = new LogCapture();
    c.write('stdout', 'before\nopen', 1);
    c.cutNow(7);
    c.write('stdout', 'after\n', 8);
    expect(c.take()).toEqual([
      { stream: 'stdout', at: 1, text: 'before' },
      { stream: 'stdout', at: 1, text: 'open' },
      { stream: 'stderr', at: 7, text: LOG_CUT_MARKER },
    ]);
  });

  it('holds bounded memory whatever is printed: 100 MiB in a loop', () => {
    const c = new LogCapture();
    const chunk = 'w'.repeat(64 * 1024 - 1) + '\n';
    for (let i = 0; i < 1600; i++) c.write('stdout', chunk, i);
    const lines = c.take();
    const bytes = lines.reduce((n, l) => n + l.text.length + LOG_LINE_OVERHEAD, 0);
    expect(bytes).toBeLessThanOrEqual(LOG_CAP_BYTES + LOG_CUT_MARKER.length + LOG_LINE_OVERHEAD);
  });
});

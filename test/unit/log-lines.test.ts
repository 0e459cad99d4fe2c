import { describe, expect, it } from 'vitest';
import { logLineFormatter } from '../../src/client/log-lines.js';

const line = JSON.stringify({
  level: 40,
  time: Date.UTC(2026, 0, 1),
  pid: 7,
  name: 'weir-master',
  node_id: 1,
  msg: 'a disk refused a write',
});

describe('weir dev’s log lines', () => {
  it('are readable on a terminal: time, level, message and fields on one line, no JSON', () => {
    const out = logLineFormatter(true, 'pretty')(line);
    expect(out).toMatch(/WARN.*a disk refused a write.*node_id.*1/);
    expect(out).not.toContain('\n');
    expect(out).not.toContain('"level"');
  });

  it('stay JSON when not on a terminal, or when WEIR_LOG_FORMAT=json asks', () => {
    expect(logLineFormatter(false, undefined)(line)).toBe(line);
    expect(logLineFormatter(true, 'json')(line)).toBe(line);
  });

  it('pass what is not a pino line as it is', () => {
    const f = logLineFormatter(true, 'pretty');
    expect(f('weir: listening')).toBe('weir: listening');
    expect(f('{not json')).toBe('{not json');
  });
});

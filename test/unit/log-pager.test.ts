// Pages of a job's logs (src/master/log-pager.ts) and how `weir logs` prints a line.
import { describe, expect, it } from 'vitest';
import { logCursor, logPage, parseLogCursor } from '../../src/master/log-pager.js';
import { formatLogLine } from '../../src/client/format.js';
import { WeirError } from '../../src/common/errors.js';

const row = (id: number, text = `line ${id}`) => ({ id, idx: id % 3, attempt: 1, stream: 'stdout', at: 0, text });

describe('the logs cursor', () => {
  it('resumes after the line it names, and none starts at the first', () => {
    expect(parseLogCursor(undefined)).toBe(0);
    expect(parseLogCursor(logCursor(42))).toBe(42);
  });

  it('refuses one this API did not give out with bad_request', () => {
    for (const bad of ['42', 'l', 'l-1', 'lx', 'r42', `l${'9'.repeat(16)}`]) {
      expect(() => parseLogCursor(bad), bad).toThrow(WeirError);
      try {
        parseLogCursor(bad);
      } catch (e) {
        expect((e as WeirError).code).toBe('bad_request');
      }
    }
  });
});

describe('a page of lines', () => {
  it('shows each with its task, attempt, stream, ISO time and text, and says where it ended', () => {
    const p = logPage([row(1), row(2)], undefined);
    expect(p.lines[0]).toEqual({
      task: 1,
      attempt: 1,
      stream: 'stdout',
      time: '1970-01-01T00:00:00.000Z',
      text: 'line 1',
    });
    expect(p).toMatchObject({ last: 2, full: false });
  });

  it('names a streaming job’s instance by component and index', () => {
    const instances = [
      { component: 'in', index: 0 },
      { component: 'map', index: 0 },
      { component: 'map', index: 1 },
    ];
    expect(logPage([row(2)], instances).lines[0]).toMatchObject({ task: 2, component: 'map', instance: 1 });
  });

  it('stops at its byte budget (but always holds one line), so 10 GiB of logs never make one answer', () => {
    const big = 'b'.repeat(1000);
    const p = logPage([row(1, big), row(2, big), row(3, big)], undefined, 2200);
    expect(p).toMatchObject({ last: 2, full: true });
    expect(p.lines).toHaveLength(2);
    expect(logPage([row(1, big)], undefined, 10).lines).toHaveLength(1);
  });
});

describe('weir logs', () => {
  it('prints `task N #ATTEMPT STREAM HH:MM:SS.mmm text`, with the component of a streaming instance', () => {
    const l = { task: 3, attempt: 1, stream: 'stderr' as const, time: '2026-12-04T12:00:01.123Z', text: 'boom' };
    expect(formatLogLine(l)).toBe('task 3 #1 stderr 12:00:01.123 boom');
    expect(formatLogLine({ ...l, component: 'count', instance: 2 })).toBe(
      'task 3 (count[2]) #1 stderr 12:00:01.123 boom',
    );
  });
});

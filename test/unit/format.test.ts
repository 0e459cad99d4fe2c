import { describe, expect, it } from 'vitest';
import { formatJob, formatJobs, printable } from '../../src/client/format.js';
import type { JobView } from '../../src/client/sdk.js';

const failed = (error: NonNullable<JobView['error']>): JobView =>
  ({
    job_id: 'job-1',
    name: 'words',
    type: 'batch',
    status: 'failed',
    progress: { total: 1, pending: 0, running: 0, completed: 0, failed: 1 },
    created_at: '2026-12-06T00:00:00.000Z',
    error,
  }) as unknown as JobView;

describe('weir status of a failed job', () => {
  it('says the error once: the stack without its first line, which repeats the message', () => {
    const message = 'permission_denied: /data/books.txt is outside --allow-read';
    const text = formatJob(
      failed({ task: 0, attempts: 1, message, stack: `permission_denied: ${message}\n    at map (words.mjs:2:3)` }),
    );
    expect(text).toContain(`error: task 0 failed after 1 attempt: ${message}`);
    expect(text).not.toContain(`permission_denied: permission_denied`);
    expect(text).toContain('  at map (words.mjs:2:3)');
  });
});

describe('text from the cluster printed to a terminal', () => {
  it('shows control characters as escapes: a name cannot forge a table row or clear the screen', () => {
    const job = { ...failed({ task: 0, message: 'x' }), name: 'a\njob-0  payroll  completed\u001b[2J' };
    const out = formatJobs([job]);
    expect(out.split('\n')).toHaveLength(2);
    expect(out).toContain('a\\u000ajob-0  payroll  completed\\u001b[2J');
    expect(formatJob(job).split('\n')[0]).toContain('"a\\u000ajob-0');
    expect(printable('Mi Trabajo — ünïcode')).toBe('Mi Trabajo — ünïcode');
    // What user code threw, too: its message and its stack's lines.
    const thrown = formatJob(
      failed({ task: 0, message: 'boom\u001b[2J', stack: 'Error: x\n    at f (\u001b[31mm.mjs:1)' }),
    );
    expect(thrown).toContain('boom\\u001b[2J');
    expect(thrown).toContain('at f (\\u001b[31mm.mjs:1)');
    expect(thrown).not.toContain('\u001b');
  });
});

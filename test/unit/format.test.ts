import { describe, expect, it } from 'vitest';
import { formatJob } from '../../src/client/format.js';
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

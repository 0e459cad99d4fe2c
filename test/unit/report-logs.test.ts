// A report's log lines travel in the entry that records its outcome; under the no_space alarm
// the outcome goes on and its lines are dropped, with one line saying so.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { ReportBatcher } from '../../src/master/report-batcher.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { LOG_DROPPED_MARKER } from '../../src/protocol/task-log.js';
import { decodeToMaster, encode, type TaskReport } from '../../src/protocol/worker-channel.js';
import { Queries } from '../../src/state/queries.js';
import { openSingleMaster } from '../helpers/single-master.js';

const log = createLogger('test');
log.level = 'silent';
const JOB = 'job-logs';
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-report-logs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function run(noSpace: string | undefined) {
  const { consensus, state, leading, close } = openSingleMaster(dir, log);
  await leading;
  await consensus.propose({ type: 'registerWorker', at: 1, worker_id: 'w', address: 'w:1', max_tasks: 2 });
  const config = normalizeBatchConfig({ operation: 'noop', task_count: 1 });
  await consensus.propose({ type: 'submitJob', at: 2, job_id: JOB, name: JOB, job_type: 'batch', config });
  await consensus.propose({
    type: 'assignTasks',
    at: 3,
    assignments: [{ job_id: JOB, idx: 0, attempt: 1, worker_id: 'w' }],
  });
  const report: TaskReport = {
    job_id: JOB,
    idx: 0,
    attempt: 1,
    ok: true,
    result_json: '[0]',
    logs: [
      { stream: 'stdout', at: 7, text: 'hello' },
      { stream: 'stderr', at: 8, text: 'world' },
    ],
  };
  await new Promise<void>((acked) => {
    new ReportBatcher(
      consensus,
      () => acked(),
      log,
      undefined,
      () => noSpace,
    ).add('w', [report]);
  });
  const q = new Queries(state);
  const job = q.job(JOB)!;
  const lines = q.logLines(job.seq, {}, 0, 10).map((r) => ({ stream: r.stream, at: r.at, text: r.text }));
  await close();
  return { status: job.status, lines };
}

describe('a report with log lines', () => {
  it('records its outcome and its lines in one entry', async () => {
    expect(await run(undefined)).toEqual({
      status: 'completed',
      lines: [
        { stream: 'stdout', at: 7, text: 'hello' },
        { stream: 'stderr', at: 8, text: 'world' },
      ],
    });
  });

  it('under the no_space alarm: records its outcome, and a marker in place of its lines', async () => {
    expect(await run('the disk is full')).toEqual({
      status: 'completed',
      lines: [{ stream: 'stderr', at: 7, text: LOG_DROPPED_MARKER }],
    });
  });
});

describe('a report’s lines on the worker channel', () => {
  const report = (logs: unknown) =>
    encode({
      t: 'report',
      reports: [{ job_id: JOB, idx: 0, attempt: 1, ok: true, result_json: '[]', logs } as TaskReport],
    });

  it('are taken when each has a stream, a time and a text of at most 16 KiB', () => {
    expect(decodeToMaster(report([{ stream: 'stderr', at: 1, text: 'ok' }])).ok).toBe(true);
  });

  it('are refused, with nothing of the frame taken, otherwise', () => {
    for (const bad of [
      [{ stream: 'stdin', at: 1, text: 'x' }],
      [{ stream: 'stdout', at: -1, text: 'x' }],
      [{ stream: 'stdout', at: 1, text: 'x'.repeat(16 * 1024 + 1) }],
      [{ stream: 'stdout', at: 1 }],
      'not lines',
    ]) {
      expect(decodeToMaster(report(bad)).ok, JSON.stringify(bad).slice(0, 80)).toBe(false);
    }
  });
});

// What tasks printed, in the state machine: kept once per attempt from its reports, appended
// for streaming instances, paged by the order it was stored, and deleted with the job.
import { beforeEach, describe, expect, it } from 'vitest';
import { PURGE_SLICE_ROWS } from '../../src/state/apply.js';
import type { ApplyResult } from '../../src/state/commands.js';
import type { Queries } from '../../src/state/queries.js';
import type { StateMachine } from '../../src/state/state-machine.js';
import type { LogLine } from '../../src/protocol/task-log.js';
import { registerWorkerCommand, stateEachTest, submitJobCommand } from '../helpers/state.js';

const state = stateEachTest('weir-task-logs-');
const { apply } = state;
let sm: StateMachine;
let q: Queries;
const lines = (...texts: string[]): LogLine[] => texts.map((text, i) => ({ stream: 'stdout', at: 10 + i, text }));
const seqOf = (job: string) => q.job(job)!.seq;
const texts = (job: string, f: { task?: number; attempt?: number } = {}, after = 0, limit = 1000) =>
  q.logLines(seqOf(job), f, after, limit).map((r) => r.text);
const logRows = () => (sm.db.prepare(`SELECT count(*) AS n FROM task_logs`).get() as { n: number }).n;

/** Task `idx` of job 'j' done (attempt 1, on worker 'w'), its outcome carrying the lines `l`. */
const done = (idx: number, l: LogLine[]) => ({
  job_id: 'j',
  idx,
  attempt: 1,
  worker_id: 'w',
  result_json: '[]',
  logs: l,
});

/** A job of `tasks` noop tasks, every one running as attempt 1 on worker 'w'. */
function start(job: string, tasks: number): void {
  apply(submitJobCommand(job, { operation: 'noop', task_count: tasks }, {}, 1));
  apply({
    type: 'assignTasks',
    at: 2,
    assignments: Array.from({ length: tasks }, (_, idx) => ({ job_id: job, idx, attempt: 1, worker_id: 'w' })),
  });
}

beforeEach(() => {
  ({ sm, q } = state);
  apply(registerWorkerCommand('w', 10, 0));
});

describe('task logs in the state', () => {
  it('keeps an attempt’s lines from its outcome once, however often the report is sent again', () => {
    start('j', 2);
    apply({ type: 'completeTasks', at: 3, completions: [done(0, lines('a', 'b'))] });
    apply({ type: 'completeTasks', at: 4, completions: [done(0, lines('a', 'b'))] });
    apply({
      type: 'failTasks',
      at: 5,
      failures: [{ job_id: 'j', idx: 1, attempt: 1, worker_id: 'w', error: { message: 'x' }, logs: lines('c') }],
    });
    expect(texts('j')).toEqual(['a', 'b', 'c']);
    expect(texts('j', { task: 0 })).toEqual(['a', 'b']);
    expect(texts('j', { task: 1, attempt: 1 })).toEqual(['c']);
    expect(texts('j', { task: 1, attempt: 2 })).toEqual([]);
  });

  it('pages by the order lines were stored: a cursor never skips a line stored later for an earlier task', () => {
    start('j', 2);
    apply({ type: 'completeTasks', at: 3, completions: [done(1, lines('from 1'))] });
    const first = q.logLines(seqOf('j'), {}, 0, 10);
    apply({ type: 'completeTasks', at: 4, completions: [done(0, lines('from 0'))] });
    expect(texts('j', {}, first[first.length - 1]!.id)).toEqual(['from 0']);
  });

  it('appends a streaming instance’s lines as they come; refuses a job it does not know', () => {
    start('s', 1);
    apply({ type: 'appendLogs', at: 3, job_id: 's', logs: [{ idx: 0, attempt: 1, lines: lines('x') }] });
    apply({ type: 'appendLogs', at: 4, job_id: 's', logs: [{ idx: 0, attempt: 1, lines: lines('x', 'y') }] });
    expect(texts('s')).toEqual(['x', 'x', 'y']);
    expect(apply({ type: 'appendLogs', at: 5, job_id: 'nope', logs: [] })).toMatchObject({
      ok: false,
      code: 'not_found',
    });
  });

  it('deletes them with the job, in the purge slices, and keeps none that arrive after', () => {
    start('j', 1);
    start('other', 1);
    const many = Array.from({ length: PURGE_SLICE_ROWS + 10 }, (_, i) => `l${i}`);
    apply({ type: 'appendLogs', at: 3, job_id: 'j', logs: [{ idx: 0, attempt: 1, lines: lines(...many) }] });
    apply({ type: 'appendLogs', at: 3, job_id: 'other', logs: [{ idx: 0, attempt: 1, lines: lines('stays') }] });
    const d = apply({ type: 'deleteJob', at: 4, job_id: 'j' }) as Extract<ApplyResult<'deleteJob'>, { ok: true }>;
    expect(d.more).toBe(true);
    for (let more = d.more; more;) {
      more = (apply({ type: 'purgeJob', at: 5, seq: d.seq }) as Extract<ApplyResult<'purgeJob'>, { ok: true }>).more;
    }
    expect(logRows()).toBe(1);
    apply({
      type: 'completeTasks',
      at: 6,
      completions: [{ job_id: 'j', idx: 0, attempt: 1, worker_id: 'w', result_json: '[]', logs: lines('late') }],
    });
    expect(logRows()).toBe(1);
    expect(texts('other')).toEqual(['stays']);
  });
});

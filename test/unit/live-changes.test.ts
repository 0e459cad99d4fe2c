// What the dashboard's stream learns from applied entries between two frames: a burst of
// completions is a few job ids and a count, bounded whatever the burst.
import { describe, expect, it } from 'vitest';
import type { Applied } from '../../src/consensus/consensus.js';
import type { Command, Results } from '../../src/state/commands.js';
import { LiveChanges } from '../../src/master/live-changes.js';

type Entry = Applied<Command, Results>;

const completions = (jobId: string, n: number): Entry =>
  ({
    type: 'completeTasks',
    command: { type: 'completeTasks', at: 1, completions: [] },
    result: {
      ok: true,
      at: 1,
      accepted: Array.from({ length: n }, (_, idx) => ({ job_id: jobId, idx, attempt: 1 })),
      finished_jobs: [],
      to_stop: [],
    },
  }) as unknown as Entry;

describe('LiveChanges', () => {
  it('folds 10,000 completions of two jobs into two job ids and a count', () => {
    const c = new LiveChanges();
    for (let i = 0; i < 100; i++) c.onApplied([completions('a', 50), completions('b', 50)]);
    const got = c.take();
    expect([...got.jobs].sort()).toEqual(['a', 'b']);
    expect(got.completed).toBe(10_000);
    expect(got.workers).toBe(true);
    expect(got.reset).toBe(false);
  });

  it('starts afresh after each take', () => {
    const c = new LiveChanges();
    c.onApplied([completions('a', 3)]);
    c.take();
    const next = c.take();
    expect(next.jobs.size).toBe(0);
    expect(next.completed).toBe(0);
    expect(next.workers).toBe(false);
  });

  it('keeps no more than its bound of job ids: past it, says reset (read the lists again)', () => {
    const c = new LiveChanges(10);
    for (let i = 0; i < 50; i++) c.onApplied([completions(`j${i}`, 1)]);
    const got = c.take();
    expect(got.reset).toBe(true);
    expect(got.jobs.size).toBe(0);
    expect(got.completed).toBe(50);
  });

  it('names deleted jobs as gone (not as changed), and ignores refused entries', () => {
    const c = new LiveChanges();
    c.onApplied([
      completions('x', 1),
      {
        type: 'deleteJob',
        command: { type: 'deleteJob', at: 1, job_id: 'x' },
        result: { ok: true },
      } as unknown as Entry,
      {
        type: 'cancelJob',
        command: { type: 'cancelJob', at: 1, job_id: 'y' },
        result: { ok: false },
      } as unknown as Entry,
    ]);
    const got = c.take();
    expect([...got.gone]).toEqual(['x']);
    expect(got.jobs.has('x')).toBe(false);
    expect(got.jobs.has('y')).toBe(false);
  });

  it('keeps no more than its bound of deleted job ids either: the janitor deletes all day while no page takes them', () => {
    const c = new LiveChanges(10);
    const deleted = (jobId: string) =>
      ({
        type: 'deleteJob',
        command: { type: 'deleteJob', at: 1, job_id: jobId },
        result: { ok: true },
      }) as unknown as Entry;
    for (let i = 0; i < 100_000; i++) c.onApplied([deleted(`j${i}`)]);
    const got = c.take();
    expect(got.reset).toBe(true);
    expect(got.gone.size).toBe(0);
    // A reset forgets what it named before, and names no more until taken.
    c.onApplied([completions('a', 1), deleted('b')]);
    c.onApplied(Array.from({ length: 11 }, (_, i) => completions(`k${i}`, 1)));
    c.onApplied([deleted('c')]);
    expect(c.take()).toMatchObject({ reset: true, jobs: new Set(), gone: new Set() });
  });

  it('says reset when a worker is declared dead: its tasks went back to pending in jobs no entry names', () => {
    const c = new LiveChanges();
    c.onApplied([
      {
        type: 'markWorkerDead',
        command: { type: 'markWorkerDead', at: 1, worker_id: 'w', reason: 'silent' },
        result: { ok: true, requeued: 0, to_stop: [], jobs: [], failed_jobs: ['j'] },
      } as unknown as Entry,
    ]);
    // A job failed by a task that lost one worker too many counts a failed task in the chart.
    expect(c.take()).toMatchObject({ reset: true, workers: true, failed: 1 });
  });

  it('names the tasks that moved, by index, of the jobs a page follows only', () => {
    const c = new LiveChanges();
    c.watched.add('open');
    c.onApplied([completions('open', 3), completions('closed', 3)]);
    const got = c.take();
    expect([...(got.tasks.get('open') as Set<number>)].sort()).toEqual([0, 1, 2]);
    expect(got.tasks.has('closed')).toBe(false);
    expect([...got.jobs].sort()).toEqual(['closed', 'open']);
  });

  it("says 'all' for a followed job past its bound of moved tasks, or cancelled", () => {
    const c = new LiveChanges(1000, 10);
    c.watched.add('big');
    c.watched.add('gone');
    c.onApplied([
      completions('big', 11),
      {
        type: 'cancelJob',
        command: { type: 'cancelJob', at: 1, job_id: 'gone' },
        result: { ok: true },
      } as unknown as Entry,
    ]);
    const got = c.take();
    expect(got.tasks.get('big')).toBe('all');
    expect(got.tasks.get('gone')).toBe('all');
  });

  it('names the jobs whose tasks printed, and not those whose tasks ended silently', () => {
    const c = new LiveChanges();
    const printing = completions('loud', 1) as unknown as { command: { completions: unknown[] } };
    printing.command.completions = [{ job_id: 'loud', idx: 0, logs: [{ stream: 'stdout', text: 'hi' }] }];
    c.onApplied([printing as unknown as Entry, completions('quiet', 1)]);
    expect([...c.take().logs]).toEqual(['loud']);
  });
});

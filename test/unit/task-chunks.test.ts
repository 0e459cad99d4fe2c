import { describe, expect, it } from 'vitest';
import { chunkSize, SPLIT_MIN_MS, type Chunkable } from '../../src/worker/task-chunks.js';

const task = (over: Partial<Chunkable> = {}): Chunkable => ({
  memoryMb: 512,
  timeoutMs: 60_000,
  key: 'quick',
  job: undefined,
  solo: false,
  ...over,
});
const queue = (n: number, over: Partial<Chunkable> = {}) => Array.from({ length: n }, () => task(over));
/** Jobs named quick… take half a millisecond a task, tiny… 5 µs, slow… 50 ms; others are not known. */
const quick = (key: string): number | undefined =>
  key.startsWith('quick') ? 0.5 : key.startsWith('tiny') ? 0.005 : key.startsWith('slow') ? 50 : undefined;

describe('which queued tasks share a thread message', () => {
  it('gives each thread a fair share of a quick backlog, up to the most per chunk', () => {
    expect(chunkSize(queue(10), 2, quick)).toBe(5);
    expect(chunkSize(queue(3), 2, quick)).toBe(2);
    expect(chunkSize(queue(1000), 2, quick, 32)).toBe(32);
  });

  it('sends a task alone when the queue is short, so nothing waits behind it', () => {
    expect(chunkSize(queue(2), 2, quick)).toBe(1);
    expect(chunkSize(queue(1), 4, quick)).toBe(1);
  });

  it('sends tasks of jobs known to be slow one at a time, and tasks that name no job', () => {
    expect(chunkSize(queue(10, { key: 'slow' }), 1, quick)).toBe(1);
    expect(chunkSize(queue(10, { key: undefined }), 1, quick)).toBe(1);
  });

  it('gives tasks of a job not yet seen a fair share (a slow one comes back after one task)', () => {
    expect(chunkSize(queue(10, { key: 'new' }), 2, quick)).toBe(5);
    expect(chunkSize(queue(2, { key: 'new' }), 2, quick)).toBe(1);
    expect(chunkSize([task({ key: 'new' }), task({ key: 'new-too' }), task({ key: 'slow' })], 1, quick)).toBe(2);
  });

  it('ends a chunk at the first task that cannot join it', () => {
    const q = [task(), task({ key: 'quick-too' }), task({ key: 'slow' }), task(), task()];
    expect(chunkSize(q, 1, quick)).toBe(2);
    expect(chunkSize([task(), task(), task({ memoryMb: 64 }), task()], 1, quick)).toBe(2);
    expect(chunkSize([task(), task({ timeoutMs: 5 }), task()], 1, quick)).toBe(1);
  });

  it('never puts a task that must run alone in a chunk', () => {
    expect(chunkSize([task({ solo: true }), task(), task()], 1, quick)).toBe(1);
    expect(chunkSize([task(), task(), task({ solo: true }), task()], 1, quick)).toBe(2);
  });

  it('does not split a backlog whose parts would each run for less than a split costs', () => {
    const tiny = (n: number) => queue(n, { key: 'tiny' });
    // 5 µs a task: 20 of them are 0.1 ms of work, not worth a second message.
    expect(chunkSize(tiny(20), 2, quick)).toBe(20);
    expect(chunkSize(tiny(2), 2, quick)).toBe(2);
    // Enough of them to be worth splitting, up to the most per chunk.
    const worth = Math.ceil(SPLIT_MIN_MS / 0.005);
    expect(chunkSize(tiny(1000), 2, quick, 32)).toBe(Math.min(32, 500));
    expect(chunkSize(tiny(3 * worth), 2, quick, 1000)).toBe(Math.ceil((3 * worth) / 2));
  });

  it('shares a backlog between the executors free now, not all of them', () => {
    expect(chunkSize(queue(12), 3, quick)).toBe(4);
    expect(chunkSize(queue(12), 1, quick)).toBe(12);
  });

  it('has nothing to send from an empty queue', () => {
    expect(chunkSize([], 2, quick)).toBe(0);
  });

  it("never puts one job's user code in a chunk with another job's tasks", () => {
    const mixed = [task({ job: 'quick-a' }), task({ job: 'quick-a' }), task({ job: 'quick-b' }), task()];
    expect(chunkSize(mixed, 1, quick)).toBe(2);
    expect(chunkSize(mixed.slice(2), 1, quick)).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { chunkSize, type Chunkable } from '../../src/worker/task-chunks.js';

const task = (over: Partial<Chunkable> = {}): Chunkable => ({
  memoryMb: 512,
  timeoutMs: 60_000,
  key: 'quick',
  job: undefined,
  solo: false,
  ...over,
});
const queue = (n: number, over: Partial<Chunkable> = {}) => Array.from({ length: n }, () => task(over));
const quick = (key: string) => key.startsWith('quick');

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

  it('sends tasks of jobs not known to be quick one at a time', () => {
    expect(chunkSize(queue(10, { key: 'slow' }), 1, quick)).toBe(1);
    expect(chunkSize(queue(10, { key: undefined }), 1, quick)).toBe(1);
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

  it('has nothing to send from an empty queue', () => {
    expect(chunkSize([], 2, quick)).toBe(0);
  });

  it("never puts one job's user code in a chunk with another job's tasks", () => {
    const mixed = [task({ job: 'quick-a' }), task({ job: 'quick-a' }), task({ job: 'quick-b' }), task()];
    expect(chunkSize(mixed, 1, quick)).toBe(2);
    expect(chunkSize(mixed.slice(2), 1, quick)).toBe(1);
  });
});

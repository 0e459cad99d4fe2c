import { describe, expect, it } from 'vitest';
import { normalizeBatchConfig, type DataJobConfig } from '../../src/ops/batch-config.js';
import { finalStage, planStages, stageOf, totalTasks, type Stage } from '../../src/ops/stages.js';

const shape = (task_count: number, reduce_tasks: number, partitioner: 'hash' | 'range' = 'hash') => ({
  task_count,
  reduce_tasks,
  partitioner,
});

describe('planStages: the stages of a job', () => {
  it('gives no plan to a job without a reduce step (every task is independent)', () => {
    expect(planStages({})).toBeUndefined();
    expect(planStages(shape(5, 0))).toBeUndefined();
    expect(planStages(shape(5, 0, 'range'))).toBeUndefined();
  });

  it('plans a hash-partitioned job as map tasks then reduce tasks', () => {
    expect(planStages(shape(4, 3))).toEqual([
      { name: 'map', first: 0, count: 4 },
      { name: 'reduce', first: 4, count: 3 },
    ]);
  });

  it('plans a range-partitioned job with several reduce tasks as sample, map, reduce', () => {
    expect(planStages(shape(3, 2, 'range'))).toEqual([
      { name: 'sample', first: 0, count: 3 },
      { name: 'map', first: 3, count: 3 },
      { name: 'reduce', first: 6, count: 2 },
    ]);
  });

  it('needs no sample when a range-partitioned job has one reduce task (nothing to split)', () => {
    expect(planStages(shape(3, 1, 'range'))!.map((s) => s.name)).toEqual(['map', 'reduce']);
  });

  it('numbers tasks consecutively across stages, from 0, with no gaps', () => {
    for (const [m, r, p] of [
      [1, 1, 'hash'],
      [7, 2, 'hash'],
      [5, 5, 'range'],
      [2, 9, 'range'],
    ] as const) {
      const stages = planStages(shape(m, r, p))!;
      expect(stages[0]!.first).toBe(0);
      for (let s = 1; s < stages.length; s++) {
        expect(stages[s]!.first).toBe(stages[s - 1]!.first + stages[s - 1]!.count);
      }
      expect(totalTasks(stages)).toBe((p === 'range' && r > 1 ? 2 * m : m) + r);
    }
  });

  it('plans the stages of normalized built-in jobs', () => {
    const wordcount = normalizeBatchConfig({ operation: 'wordcount', data: ['a'], task_count: 1, reduce_tasks: 2 });
    expect(planStages(wordcount as DataJobConfig)!.map((s) => s.name)).toEqual(['map', 'reduce']);
    // sort partitions by range, with as many reduce tasks as map tasks by default.
    const sort = normalizeBatchConfig({ operation: 'sort', data: [3, 1, 2], task_count: 3 });
    expect(planStages(sort as DataJobConfig)).toEqual([
      { name: 'sample', first: 0, count: 3 },
      { name: 'map', first: 3, count: 3 },
      { name: 'reduce', first: 6, count: 3 },
    ]);
    // A map-only user job has no stages.
    const mapOnly = normalizeBatchConfig({ module: 'export function map(r, emit) { emit(r, 1) }', data: [1] });
    expect(planStages(mapOnly as DataJobConfig)).toBeUndefined();
  });
});

describe('stageOf, totalTasks, finalStage', () => {
  const stages: Stage[] = planStages(shape(3, 2, 'range'))!;

  it('says which stage a task index is in, and its index within the stage', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => stageOf(stages, i))).toEqual([
      { stage: 0, local: 0 },
      { stage: 0, local: 1 },
      { stage: 0, local: 2 },
      { stage: 1, local: 0 },
      { stage: 1, local: 1 },
      { stage: 1, local: 2 },
      { stage: 2, local: 0 },
      { stage: 2, local: 1 },
    ]);
  });

  it('refuses an index in no stage', () => {
    expect(() => stageOf(stages, 8)).toThrow(RangeError);
    expect(() => stageOf(stages, -1)).toThrow(/task -1 is in no stage/);
  });

  it('counts the tasks of every stage', () => {
    expect(totalTasks(stages)).toBe(8);
    expect(totalTasks(planStages(shape(10, 1))!)).toBe(11);
    expect(totalTasks([])).toBe(0);
  });

  it("names the stage whose tasks' results are the job's: the last", () => {
    expect(finalStage(stages)).toEqual({ name: 'reduce', first: 6, count: 2 });
    expect(finalStage([{ name: 'map', first: 0, count: 4 }])).toEqual({ name: 'map', first: 0, count: 4 });
  });
});

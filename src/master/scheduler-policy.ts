/** A worker as the scheduler sees it at one instant. */
export interface WorkerSlot {
  worker_id: string;
  max_tasks: number;
  running: number;
}

export interface SchedulableTask {
  job_id: string;
  idx: number;
  attempt: number;
  /** Where the task last ran; a retried task prefers another worker. */
  avoid?: string | null;
}

export interface Placement<T extends SchedulableTask> {
  assignments: { task: T; worker_id: string }[];
  /** Where the next round-robin turn starts. */
  cursor: number;
}

/**
 * Round-robin over workers with free slots, preferring the least loaded (running/max_tasks)
 * and, for a retried task, a worker other than the one it failed on when there is one.
 * Ties go to the next worker in round-robin order from `cursor`, so equal workers take
 * turns. Pure: workers' `running` counts are copied, not changed.
 */
export function placeTasks<T extends SchedulableTask>(
  tasks: readonly T[],
  workers: readonly WorkerSlot[],
  cursor: number,
): Placement<T> {
  const slots = workers.map((w) => ({ ...w }));
  const n = slots.length;
  const assignments: { task: T; worker_id: string }[] = [];
  if (n === 0) return { assignments, cursor };
  let start = ((cursor % n) + n) % n;
  for (const task of tasks) {
    let best = -1;
    let bestLoad = Infinity;
    let bestAvoided = true;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const w = slots[i]!;
      if (w.running >= w.max_tasks) continue;
      const load = w.running / w.max_tasks;
      const avoided = task.avoid != null && task.avoid === w.worker_id;
      // Prefer not-avoided, then least loaded, then round-robin order (strict < keeps the first).
      if ((bestAvoided && !avoided) || (avoided === bestAvoided && load < bestLoad)) {
        best = i;
        bestLoad = load;
        bestAvoided = avoided;
      }
    }
    if (best < 0) break; // every worker is full
    slots[best]!.running++;
    assignments.push({ task, worker_id: slots[best]!.worker_id });
    start = (best + 1) % n;
  }
  return { assignments, cursor: start };
}

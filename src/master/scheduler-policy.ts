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
  /**
   * Never back on `avoid` while another worker is there, even one with no room now: the task
   * waits for a slot elsewhere. (A worker failing every task at once — its disk full — always
   * has room, and would otherwise take the retries of the tasks it failed.)
   */
  strict?: boolean;
}

export interface Placement<T extends SchedulableTask> {
  assignments: { task: T; worker_id: string }[];
  /** Where the next round-robin turn starts. */
  cursor: number;
}

/**
 * Round-robin over workers with free slots, preferring the least loaded (running/max_tasks)
 * and, for a retried task, a worker other than the one it failed on when there is one (when
 * `strict`, one that has room; a task that only its old worker could take is left for a later
 * pass). Ties go to the next worker in round-robin order from `cursor`, so equal workers take
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
  const loadOf = (w: WorkerSlot) => w.running / w.max_tasks;
  // The lowest load among workers with room, and how many have it: nothing is below it, so
  // the first such worker from the turn is the one a whole scan would pick. Scanning every
  // worker for every task made a pass of 8,000 tasks over 1,000 workers 8 million steps.
  let minLoad = Infinity;
  let atMin = 0;
  const recount = () => {
    minLoad = Infinity;
    atMin = 0;
    for (const w of slots) {
      if (w.running >= w.max_tasks) continue;
      const load = loadOf(w);
      if (load < minLoad) [minLoad, atMin] = [load, 1];
      else if (load === minLoad) atMin++;
    }
  };
  recount();
  let start = ((cursor % n) + n) % n;
  for (const task of tasks) {
    if (atMin === 0) break; // every worker is full
    const best = task.avoid != null ? bestAvoiding(slots, start, task.avoid) : firstAt(slots, start, minLoad);
    const w = slots[best]!;
    if (task.strict && w.worker_id === task.avoid && slots.some((o) => o.worker_id !== task.avoid)) continue;
    if (loadOf(w) === minLoad) atMin--;
    w.running++;
    assignments.push({ task, worker_id: w.worker_id });
    start = (best + 1) % n;
    if (atMin === 0) recount();
  }
  return { assignments, cursor: start };
}

/** The first worker from `start` with room and load `minLoad` (there is one). */
function firstAt(slots: readonly WorkerSlot[], start: number, minLoad: number): number {
  const n = slots.length;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    const w = slots[i]!;
    if (w.running < w.max_tasks && w.running / w.max_tasks === minLoad) return i;
  }
  throw new Error('no worker at the lowest load');
}

/** A whole scan: not `avoid` if another has room, then least loaded, then first from `start`. */
function bestAvoiding(slots: readonly WorkerSlot[], start: number, avoid: string): number {
  const n = slots.length;
  let best = -1;
  let bestLoad = Infinity;
  let bestAvoided = true;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    const w = slots[i]!;
    if (w.running >= w.max_tasks) continue;
    const load = w.running / w.max_tasks;
    const avoided = avoid === w.worker_id;
    // Strict < keeps the first in round-robin order among equals.
    if ((bestAvoided && !avoided) || (avoided === bestAvoided && load < bestLoad)) {
      best = i;
      bestLoad = load;
      bestAvoided = avoided;
    }
  }
  return best;
}

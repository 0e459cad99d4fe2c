import { trace, tracing } from '../common/trace.js';
import { groupBy } from '../common/group-by.js';
import type { Logger } from '../common/logger.js';
import type { TaskAssignment } from '../protocol/worker-channel.js';
import { taskSpec, type DispatchContext } from '../ops/batch-ops.js';
import type { MapOutput } from '../protocol/task-spec.js';
import { isDataJob } from '../ops/batch-config.js';
import { isStreamConfig } from '../protocol/stream-job.js';
import { stageOf, type JobPlan } from '../ops/stages.js';
import type { AssignTasks, RunningTask } from '../state/commands.js';
import type { JobConfig } from '../state/commands.js';
import type { Queries } from '../state/queries.js';
import { taskKey } from '../protocol/task-ref.js';
import { placeTasks, type SchedulableTask, type WorkerSlot } from './scheduler-policy.js';
import { RecentFailures, stragglers } from './speculation.js';
import type { WorkerRegistry } from './worker-registry.js';
import { onNextTurn } from '../common/next-turn.js';
import type { ClusterConsensus } from './cluster-log.js';
import { chunked, MAX_TASKS_PER_ENTRY } from './entry-size.js';

/**
 * How long a retried task waits for a slot on another worker before it may go back to the one
 * it failed on (see SchedulableTask.strict): a worker whose disk is full fails every map at
 * once and so always has room — without the wait it took the retries of the tasks it had
 * failed, and a job failed for one sick worker. After it, a cluster whose other workers stay
 * busy runs the retry where there is room.
 */
const AVOID_STRICTLY_MS = 5_000;

/** How often the leader looks for straggling tasks. */
const SPECULATION_CHECK_MS = 500;
/** A pass this long gets a log line. */
const SLOW_PASS_MS = 50;
/**
 * Jobs that ended are named to the workers together, this long after the first: the frame
 * went to every worker from inside the apply of each completion, ahead of the answer to the
 * client waiting for that job (~0.2 ms of a one-task job's path), and a worker's map outputs
 * can wait that long to go.
 */
export const FORGET_AFTER_MS = 100;

/**
 * The leader's dispatch loop. A pass runs whenever something may have made work runnable
 * (a submit, a completion freeing a slot, a retry, a worker joining) — on the next turn of
 * the event loop, not on a timer — so a task reaches an idle worker within milliseconds.
 * A task in an assignment proposal not yet applied is never placed again, and takes its slot.
 */
export class Scheduler {
  /** Proposals (assignments, speculative copies) not yet applied. */
  private inFlight = 0;
  /**
   * How many assignment proposals may be in flight. Alone, a master commits on its own disk
   * in well under a millisecond and a second proposal only adds entries (−6–10% for one
   * master, measured); replicated, a commit takes a round trip and a follower's disk, and
   * slots freed meanwhile would idle until it lands (+2–13% for three masters).
   */
  private depth = 1;
  /** Tasks (and speculative copies) of proposals in flight, by task key: where each was placed. */
  private readonly proposed = new Map<string, string>();
  private cursor = 0;
  /** Workers that failed a task lately: speculation passes them over. */
  private readonly failures = new RecentFailures();
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = Infinity;
  private active = false;
  private speculationTimer: NodeJS.Timeout | undefined;
  /** Jobs over, not yet named to the workers (`forgetJobs`). */
  private forgotten: string[] = [];
  private forgetTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly queries: Queries,
    private readonly registry: WorkerRegistry,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.active = true;
    this.speculationTimer = setInterval(() => this.speculate(), SPECULATION_CHECK_MS);
    this.kick();
  }

  stop(): void {
    this.active = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    clearInterval(this.speculationTimer);
    this.speculationTimer = undefined;
  }

  private readonly passSoon = onNextTurn(() => {
    const t0 = performance.now();
    this.pass();
    const ms = performance.now() - t0;
    // Named in the log as the other work that holds the loop (loop-stalls.ts) is.
    if (ms >= SLOW_PASS_MS) this.log.info({ ms: Math.round(ms) }, 'a slow scheduler pass');
  });

  kick(): void {
    if (!this.active || this.inFlight >= this.depth) return;
    this.passSoon();
  }

  private freeSlots(): WorkerSlot[] {
    const running = this.queries.runningByWorker();
    // Tasks of proposals in flight take their slots too (counted twice for the moment between
    // their entry's apply and its callback: a pass then places a few tasks less, never more).
    const proposedOn = new Map<string, number>();
    for (const workerId of this.proposed.values()) proposedOn.set(workerId, (proposedOn.get(workerId) ?? 0) + 1);
    const slots: WorkerSlot[] = [];
    for (const w of this.queries.liveWorkers()) {
      if (w.status !== 'active' || !this.registry.connected(w.worker_id)) continue;
      // A task the worker reported done no longer takes a slot there, committed or not:
      // the slot goes back to work while the outcome replicates. (Re-sent reports are not
      // counted; a first report of a task the log no longer runs there may free one slot
      // too many until it is committed and dropped, and the worker queues the extra task.)
      const taken = (running.get(w.worker_id) ?? 0) + (proposedOn.get(w.worker_id) ?? 0);
      const busy = taken - this.registry.finishingOn(w.worker_id);
      slots.push({ worker_id: w.worker_id, max_tasks: w.max_tasks, running: Math.max(0, busy) });
    }
    return slots;
  }

  private pass(): void {
    if (!this.active || !this.consensus.isLeader()) return;
    this.depth = this.consensus.voters() > 1 ? 2 : 1;
    if (this.inFlight >= this.depth) return;
    // Most passes a report asks for find nothing waiting: that answer is two index probes.
    if (!this.queries.anyPending()) return;
    const slots = this.freeSlots();
    const free = slots.reduce((n, w) => n + Math.max(0, w.max_tasks - w.running), 0);
    if (free === 0) return;
    const now = Date.now();
    let nextRetry = Infinity;
    const ready = [];
    // Retries that may have to wait for room elsewhere do not count toward the free slots:
    // tasks after them may take the slots they leave.
    let strictOnes = 0;
    // Tasks still backing off are skipped, so look a little past the free slots.
    for (const t of this.queries.pending(free * 4 + 64 + this.proposed.size)) {
      if (this.proposed.has(taskKey(t))) continue;
      if (t.not_before > now) {
        nextRetry = Math.min(nextRetry, t.not_before);
        continue;
      }
      const strict = t.worker_id !== null && now - t.not_before < AVOID_STRICTLY_MS;
      // Left unplaced for want of room elsewhere, it may go back once the wait is over.
      if (strict) {
        nextRetry = Math.min(nextRetry, t.not_before + AVOID_STRICTLY_MS);
        strictOnes++;
      }
      ready.push({ job_id: t.job_id, idx: t.idx, attempt: t.attempt, avoid: t.worker_id, strict });
      if (ready.length - strictOnes >= free) break;
    }
    if (nextRetry < Infinity) this.wakeAt(nextRetry);
    const { assignments, cursor } = placeTasks(ready, slots, this.cursor);
    if (assignments.length === 0) return;
    this.cursor = cursor;
    const proposed = assignments.map(({ task, worker_id }) => ({
      job_id: task.job_id,
      idx: task.idx,
      attempt: task.attempt,
      worker_id,
    }));
    // Batch tasks leave for their workers now, while the assignment replicates — as a leader
    // writes its own log while its followers write theirs — so a slot's turnaround is one
    // commit shorter. The log stays the authority: a report counts only from the worker an
    // applied assignment names (apply.ts), and a task the entry did not assign after all
    // (its job cancelled, its worker dead meanwhile) is stopped. A stream instance waits for
    // the commit: the placement its job's instances are told comes from the log.
    for (const a of proposed) this.proposed.set(taskKey(a), a.worker_id);
    const streaming = new Set([...new Set(proposed.map((a) => a.job_id))].filter((jobId) => this.isStreaming(jobId)));
    const early = (list: AssignTasks['assignments']) => list.filter((a) => !streaming.has(a.job_id));
    // Entries of bounded size (entry-size.ts), proposed together: still one write of the log.
    // The pass counts as one in flight until all of them are settled.
    this.inFlight++;
    const sent: AssignTasks['assignments'] = [];
    const settled = chunked(proposed, MAX_TASKS_PER_ENTRY).map((chunk) => {
      const leaving = early(chunk);
      return this.proposeAssignments(chunk, leaving, now, () => sent.push(...leaving));
    });
    // The tasks of the entries the log took, in one frame per worker for the whole pass: sent
    // entry by entry, a pass of 8,000 tasks placed round-robin sent each of 1,000 workers 8
    // frames, and the leader's loop spent 200–480 ms in socket writes (elections in the scale
    // benchmark). An entry the log refused (a hand-over under way) sends nothing.
    this.dispatch(sent);
    void Promise.all(settled).then(() => {
      this.inFlight--;
      // Slots may have freed while the proposal was in flight.
      this.kick();
    });
  }

  /**
   * `early`: those of `proposed` sent to their workers once the entry is appended (all but
   * stream instances), by `onAppended`.
   */
  private proposeAssignments(
    proposed: AssignTasks['assignments'],
    early: AssignTasks['assignments'],
    now: number,
    onAppended: () => void,
  ): Promise<void> {
    return (
      this.consensus
        .propose({ type: 'assignTasks', at: now, assignments: proposed }, onAppended)
        .then((r) => {
          const assigned = r.ok ? r.assigned : [];
          const taken = new Set(assigned.map((a) => `${a.worker_id} ${taskKey(a)}`));
          const refused = early.filter((a) => !taken.has(`${a.worker_id} ${taskKey(a)}`));
          if (refused.length)
            this.log.info({ tasks: refused.length }, 'stopping tasks sent before the log refused them');
          this.stopTasks(refused);
          this.dispatch(assigned.filter((a) => this.isStreaming(a.job_id)));
        })
        // Not committed by us (leadership moved): a task sent early runs for nothing unless the
        // next leader commits the entry; its report from that worker is refused otherwise.
        .catch((err: Error) => this.log.warn({ err }, 'assigning tasks failed'))
        .finally(() => {
          for (const a of proposed) this.proposed.delete(taskKey(a));
        })
    );
  }

  /**
   * Places the first tasks of a job about to be proposed on free slots, for its submit entry
   * to carry (SubmitJob.assignments): the task then leaves once that one entry is committed,
   * where a separate AssignTasks entry would add a second fsync — on a lone master, one that
   * stalls the event loop while the task runs. Only when nothing else is pending, so a new job
   * never overtakes queued ones; only plain batch jobs (a stream instance waits for its
   * placement, a data job's tasks for its plan). The places count as proposed until
   * `submitted`.
   */
  placeOnSubmit(jobId: string, config: JobConfig): { idx: number; worker_id: string }[] {
    if (!this.active || !this.consensus.isLeader()) return [];
    if (isStreamConfig(config) || isDataJob(config)) return [];
    if (this.queries.anyPending()) return [];
    const slots = this.freeSlots();
    const free = slots.reduce((n, w) => n + Math.max(0, w.max_tasks - w.running), 0);
    // The rest go in the scheduler's next pass, in entries of bounded size (entry-size.ts).
    const count = Math.min(free, config.task_count, MAX_TASKS_PER_ENTRY);
    if (count <= 0) return [];
    const tasks = Array.from({ length: count }, (_, idx) => ({ job_id: jobId, idx, attempt: 1 }));
    const { assignments, cursor } = placeTasks(tasks, slots, this.cursor);
    this.cursor = cursor;
    for (const { task, worker_id } of assignments) this.proposed.set(taskKey(task), worker_id);
    return assignments.map(({ task, worker_id }) => ({ idx: task.idx, worker_id }));
  }

  /**
   * Sends the tasks `placeOnSubmit` placed to their workers now, once their submit entry is
   * appended, while it is written and replicated — as `pass` sends an assignment's tasks — so
   * a one-task job's task runs during its submit's fsync instead of after it. The log stays
   * the authority: the client is answered only after the entry's apply; a report counts only
   * from the worker an applied assignment names, so one of a job that never committed changes
   * nothing (apply.ts); and a report is proposed after the submit it follows, so it is applied
   * after it. The job's config is given: it is not in the state database before the apply.
   */
  sendOnSubmit(jobId: string, config: JobConfig, placed: readonly { idx: number; worker_id: string }[]): void {
    const tasks = placed.map(({ idx, worker_id }) => ({ job_id: jobId, idx, attempt: 1, worker_id }));
    this.dispatch(tasks, () => config);
  }

  /**
   * The submit entry carrying `placed` was applied (`applied`) or not committed by us
   * (undefined). Tasks the entry did not assign after all (a duplicate submit, a worker dead
   * meanwhile) are stopped; an entry we did not see committed may still be by the next leader,
   * so its tasks run on: their reports count then, and change nothing otherwise.
   */
  submitted(
    jobId: string,
    placed: readonly { idx: number; worker_id: string }[],
    applied: { assigned?: readonly RunningTask[] } | undefined,
  ): void {
    for (const { idx } of placed) this.proposed.delete(taskKey({ job_id: jobId, idx, attempt: 1 }));
    if (applied) {
      const taken = new Set((applied.assigned ?? []).map((a) => `${a.worker_id} ${a.job_id} ${a.idx}`));
      const refused = placed
        .filter((p) => !taken.has(`${p.worker_id} ${jobId} ${p.idx}`))
        .map(({ idx, worker_id }) => ({ job_id: jobId, idx, attempt: 1, worker_id }));
      if (refused.length) this.log.info({ tasks: refused.length }, 'stopping tasks sent before the log refused them');
      this.stopTasks(refused);
    }
    if (placed.length) this.kick();
  }

  /** Failures applied: their workers take no speculative copies for a while. */
  noteFailures(failures: readonly { worker_id: string }[], at: number): void {
    for (const f of failures) this.failures.note(f.worker_id, at);
  }

  /**
   * Speculative execution: stragglers of a running data job's current stage get a copy on
   * another worker with a free slot, once nothing else waits for one; the first attempt to
   * finish wins and the other is stopped.
   */
  private speculate(): void {
    if (!this.active || this.inFlight > 0 || !this.consensus.isLeader()) return;
    if (this.queries.anyPending()) return;
    const now = Date.now();
    const candidates: SchedulableTask[] = [];
    for (const job of this.queries.runningJobs()) {
      const config = this.queries.jobConfig(job.job_id);
      if (!config || !isDataJob(config) || !config.speculation) continue;
      const plan = job.plan ? (JSON.parse(job.plan) as JobPlan) : undefined;
      const stage = plan?.stages[job.stage] ?? { first: 0, count: config.task_count };
      for (const t of stragglers(this.queries.stageTimes(job.job_id, stage.first, stage.count), stage.count, now)) {
        candidates.push({ job_id: job.job_id, idx: t.idx, attempt: t.attempt, avoid: t.worker_id });
      }
    }
    if (candidates.length === 0) return;
    const slots = this.freeSlots().filter((w) => !this.failures.failedLately(w.worker_id, now));
    const { assignments, cursor } = placeTasks(candidates, slots, this.cursor);
    const copies = assignments
      .filter((a) => a.worker_id !== a.task.avoid)
      .map(({ task, worker_id }) => ({ job_id: task.job_id, idx: task.idx, attempt: task.attempt, worker_id }));
    if (copies.length === 0) return;
    this.cursor = cursor;
    this.inFlight++;
    const keys = copies.map((c) => taskKey({ ...c, attempt: c.attempt + 1 }));
    keys.forEach((k, i) => this.proposed.set(k, copies[i]!.worker_id));
    this.log.info({ copies: copies.length }, 'running speculative copies of straggling tasks');
    this.consensus
      .propose({ type: 'speculateTasks', at: now, copies })
      .then((r) => {
        if (r.ok) this.dispatch(r.assigned);
      })
      .catch((err: Error) => this.log.warn({ err }, 'speculating failed'))
      .finally(() => {
        this.inFlight--;
        for (const k of keys) this.proposed.delete(k);
        this.kick();
      });
  }

  private isStreaming(jobId: string): boolean {
    const config = this.queries.jobConfig(jobId);
    return config !== undefined && isStreamConfig(config);
  }

  /** Sends assignments to their workers, grouped per worker. */
  dispatch(
    assigned: readonly RunningTask[],
    configOf: (jobId: string) => JobConfig | undefined = (jobId) => this.queries.jobConfig(jobId),
  ): void {
    if (assigned.length === 0) return;
    const assignments: (TaskAssignment & { worker_id: string })[] = [];
    for (const [jobId, tasks] of groupBy(assigned, (a) => a.job_id)) {
      const config = configOf(jobId);
      if (!config) continue;
      const context = this.dispatchContext(jobId, config);
      for (const a of tasks) {
        assignments.push({
          job_id: a.job_id,
          idx: a.idx,
          attempt: a.attempt,
          worker_id: a.worker_id,
          spec: taskSpec(config, a.idx, context?.(a)),
          timeout_ms: config.timeout_ms,
          memory_mb: config.memory_mb,
        });
      }
    }
    // A worker whose channel dropped meanwhile gets them again when it reconnects (hello).
    for (const [workerId, tasks] of groupBy(assignments, (a) => a.worker_id)) {
      if (tracing) for (const a of tasks) trace(a.job_id, 'assign sent');
      this.registry.send(workerId, { t: 'assign', tasks: tasks.map(({ worker_id: _, ...task }) => task) });
    }
    this.announcePlacements(assignments.filter((a) => a.spec.operation === 'stream').map((a) => a.job_id));
  }

  /**
   * Tells every worker running an instance of these streaming jobs where all the job's
   * instances run now, so their links follow re-placements.
   */
  announcePlacements(jobIds: readonly string[]): void {
    for (const jobId of new Set(jobIds)) {
      const config = this.queries.jobConfig(jobId);
      if (!config || !isStreamConfig(config)) continue;
      const placed = this.queries.streamPlacement(jobId);
      const instances = placed.map(({ idx, attempt, address }) => ({ idx, attempt, address }));
      for (const workerId of new Set(placed.map((p) => p.worker_id))) {
        this.registry.send(workerId, { t: 'placement', job_id: jobId, instances });
      }
    }
  }

  /**
   * What a task needs beyond its job's config — a stream instance the placement of its job, a
   * data task the plan, a reduce task its map outputs — looked up once per job and stage of a
   * dispatch. Undefined for jobs whose tasks need nothing more.
   */
  private dispatchContext(jobId: string, config: JobConfig): ((a: RunningTask) => DispatchContext) | undefined {
    if (isStreamConfig(config)) {
      const placement = this.queries
        .streamPlacement(jobId)
        .map(({ idx, attempt, address }) => ({ idx, attempt, address }));
      return (a) => ({ job_id: jobId, attempt: a.attempt, placement });
    }
    if (!isDataJob(config)) return undefined;
    const plan = this.queries.jobPlan(jobId);
    if (!plan) return (a) => ({ job_id: jobId, attempt: a.attempt });
    const maps = new Map<number, MapOutput[] | undefined>();
    return (a) => {
      const { stage } = stageOf(plan.stages, a.idx);
      if (!maps.has(stage)) {
        const producer = plan.stages[stage - 1];
        const reads = plan.stages[stage]!.name === 'reduce' && producer;
        maps.set(stage, reads ? this.queries.mapOutputs(jobId, producer.first, producer.count) : undefined);
      }
      const outputs = maps.get(stage);
      return { job_id: jobId, attempt: a.attempt, plan, ...(outputs ? { maps: outputs } : {}) };
    };
  }

  /** Workers may delete what they keep for these jobs (map outputs): the jobs are over. */
  forgetJobs(jobIds: readonly string[]): void {
    if (!jobIds.length) return;
    this.forgotten.push(...jobIds);
    this.forgetTimer ??= setTimeout(() => {
      this.forgetTimer = undefined;
      const all = this.forgotten;
      this.forgotten = [];
      // A burst (the janitor's deletes) in frames of a bounded size.
      for (let i = 0; i < all.length; i += 1000)
        this.registry.broadcast({ t: 'forget', job_ids: all.slice(i, i + 1000) });
    }, FORGET_AFTER_MS).unref();
  }

  /** Tells workers to stop tasks of a cancelled or failed job. */
  stopTasks(tasks: readonly RunningTask[]): void {
    for (const [workerId, list] of groupBy(tasks, (t) => t.worker_id)) {
      this.registry.send(workerId, {
        t: 'cancel',
        tasks: list.map(({ job_id, idx, attempt }) => ({ job_id, idx, attempt })),
      });
    }
  }

  private wakeAt(when: number): void {
    if (this.retryTimer && this.retryAt <= when) return;
    clearTimeout(this.retryTimer);
    this.retryAt = when;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined;
        this.retryAt = Infinity;
        this.kick();
      },
      Math.max(1, when - Date.now()),
    );
  }
}

import { installRoot } from '../common/install-root.js';
import { trace, tracing } from '../common/trace.js';
import { realpathSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TaskError } from '../protocol/task-ref.js';
import type { ExecutorSpec } from './stream/stream-apply.js';
import { Executor, ExecutorExit, SETPRIV } from './executor-process.js';
import type { ExecutorUser } from './executor-user.js';
import { ShuffleViews, type ShuffleView } from './shuffle-views.js';
import {
  isUnder,
  MEMORY_LIMIT,
  memoryUsedMb,
  namedError,
  permissionFlags,
  rootsWithout,
  withRoot,
  type TaskRights,
} from './executor-rules.js';
import { fetchFailureOf } from './tasks/shuffle-files.js';
import type { LogCapture } from './log-capture.js';
import type { OutputMessage } from './executor-output.js';
import {
  CHUNK_BUDGET_MS,
  chunkSize,
  thrownError,
  type Chunkable,
  type ChunkOutcome,
  type ChunkRequest,
  type ThrownError,
} from './task-chunks.js';

export interface RunLimits {
  timeoutMs: number;
  memoryMb: number;
  /** Aborting it stops the task (its executor is killed and replaced). */
  signal?: AbortSignal;
  /** The task's job: tasks of a job seen to run quickly share executor messages. */
  key?: string;
  /** Where what the task prints is kept (absent: it goes to the worker's own output). */
  logs?: LogCapture;
  /** Called once the task is handed to an executor process: from then on it runs there. */
  onSent?: () => void;
}

export interface ExecutorPoolOptions {
  /** What tasks may read and write. Default: read the working and temp dirs, write the temp dir. */
  rights?: TaskRights;
  /** Executors started before the first task, with this memory limit, and kept at that count. */
  warm?: { count: number; memoryMb: number };
  /** How often the memory of an executor running a task is read. Default 5 ms. */
  memorySampleMs?: number;
  /**
   * Where map tasks write their outputs (one directory per job): each executor reaches the
   * jobs it runs tasks of (see ShuffleViews), one that has run user code only its own job's.
   */
  shuffleDir?: string;
  /** Executors run as this user (`--executor-user`); the worker runs as root. */
  user?: ExecutorUser;
  /** Executors starting at once, at most. Default: one per core (STARTS_AT_ONCE). */
  startsAtOnce?: number;
  /** An executor not ready for tasks after this long is killed. Default START_TIMEOUT_MS (30 s). */
  startTimeoutMs?: number;
}

/**
 * An executor takes ~0.2 CPU-s to start here (Node, its permission model). Started all at
 * once, 128 of them — a worker with `--max-tasks 128` and a burst of tasks — queue ~25 s of
 * CPU on two cores before the first is ready; started a core's worth at a time, the first
 * runs tasks after 0.2 s, and the worker, its master and the executors already started keep
 * their share of the machine.
 */
const STARTS_AT_ONCE = availableParallelism();

export class TaskTimeoutError extends Error {
  constructor(ms: number) {
    super(`task timed out after ${ms} ms`);
    this.name = 'TaskTimeoutError';
  }
}

/**
 * The job whose user code a task runs, if it runs any. User code can leave state in its
 * process (on globalThis, in a patched builtin), so an executor that has run one job's code
 * never runs another's: it is started for that job, with that job's shuffle directory alone.
 * Built-in tasks run only Weir's code, which leaves nothing behind; any executor started
 * for no job serves them.
 */
export function userCodeJob(spec: ExecutorSpec): string | undefined {
  if (!('job_id' in spec)) return undefined;
  // A topology's functions are its module's code, whatever the message carries.
  if (spec.operation === 'stream_apply') return spec.job_id;
  if (spec.operation === 'stream') return undefined;
  return spec.operation === 'map' || spec.module !== undefined ? spec.job_id : undefined;
}

/** A task waiting for an executor or running in one. */
interface Task extends Chunkable {
  spec: ExecutorSpec;
  resolve(json: string): void;
  reject(err: unknown): void;
  settled: boolean;
  onAbort: (() => void) | undefined;
  signal: AbortSignal | undefined;
  /** The chunk it was sent in. */
  chunk: Chunk | undefined;
  logs: LogCapture | undefined;
  onSent: (() => void) | undefined;
}

interface Chunk {
  /** Its number in this pool: what its tasks print comes tagged with it. */
  seq: number;
  tasks: Task[];
  executor: Executor;
  memoryMb: number;
  /** Why the pool killed its executor, and the task to charge when it is known. */
  culprit: { task: Task | undefined; error: Error } | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** The executor's own code, which it must read whatever the roots of user code are. */
export function codeRoots(): string[] {
  const root = installRoot();
  const roots = [join(root, 'dist'), join(root, 'node_modules'), join(root, 'package.json')];
  for (const p of [...roots]) {
    try {
      const real = realpathSync(p);
      if (real !== p) roots.push(real);
    } catch {
      // absent (a bundled install): nothing to allow
    }
  }
  return roots;
}

/**
 * The compiled entry of an executor process, beside this module: dist/src/worker/ when run
 * from tsc's output, dist/bundle/ when run from the bundle (scripts/bundle-nodes.mjs puts it
 * beside every chunk).
 */
export const EXECUTOR_ENTRY = fileURLToPath(new URL('./executor-main.js', import.meta.url));

/**
 * What tasks may reach when the worker names no roots: read the working and temp dirs, write
 * the temp dir — but never the worker's data dir, whichever of them it lies in.
 */
export function defaultRights(dataDir?: string): TaskRights {
  const kept = dataDir === undefined ? undefined : keptFromTasks(dataDir);
  const without = (root: string) => (kept === undefined ? [root] : rootsWithout(root, kept));
  return { read: [process.cwd(), tmpdir()].flatMap(without), write: without(tmpdir()) };
}

/**
 * What the defaults keep from tasks for this data dir. The default layout (and `weir dev`)
 * keeps every node's data dir, masters' included, and the dev CA's keys under the working
 * dir's `data/`: a worker whose data dir lies there keeps all of it from its tasks, not only
 * its own branch (which is also fewer permission entries for every executor to hold).
 */
export function keptFromTasks(dataDir: string, cwd = process.cwd()): string {
  const shared = join(cwd, 'data');
  return isUnder(dataDir, shared) ? shared : dataDir;
}

/**
 * Runs tasks in executor processes, so a task that loops, throws, exits, kills its process or
 * exceeds its memory takes down only its executor: the pool replaces it and the worker lives
 * on. An executor's heap limit is fixed when it starts, so executors are kept per memory
 * limit. With fewer executors than slots, tasks wait here, and a task's timeout starts only
 * when it is sent.
 *
 * When tasks of quick jobs queue up, a free executor gets several in one message (a chunk,
 * see task-chunks.ts), which it runs one after the other. When an executor ends mid-chunk —
 * killed for a timeout, a cancellation or its memory, or by its own hand — the task it was
 * killed for is charged; when that is not known (a chunk of several tasks), none is, and the
 * chunk's unfinished tasks run again each alone, where the next fault has one owner. Tasks
 * may run more than once in Weir anyway (retries, speculation), so that is safe.
 */
export class ExecutorPool {
  private readonly entry = EXECUTOR_ENTRY;
  /** The permission flags of every executor, but for its own shuffle view. */
  private readonly permissions: string[];
  private readonly views: ShuffleViews | undefined;
  private readonly viewOf = new Map<Executor, ShuffleView>();
  private readonly queue: Task[] = [];
  private readonly executors = new Set<Executor>();
  private readonly idle: Executor[] = [];
  private readonly runningChunks = new Set<Chunk>();
  /** Executors started and not ready yet (see STARTS_AT_ONCE). */
  private starting = 0;
  private readonly startsAtOnce: number;
  private sampler: NodeJS.Timeout | undefined;
  private readonly sampleMs: number;
  /** Chunks running: at most one per executor. */
  private busy = 0;
  private pumpScheduled = false;
  private closed = false;
  private tasksSent = 0;
  private chunksSent = 0;
  private lateDropped = 0;
  /** The chunks running, by seq: where what their tasks print goes. */
  private readonly chunkBySeq = new Map<number, Chunk>();
  /** Each job's recent time per task (see observe), in two generations so it stays bounded. */
  private msNow = new Map<string, number>();
  private msBefore = new Map<string, number>();
  private readonly msOf = (key: string) => this.msNow.get(key) ?? this.msBefore.get(key);

  constructor(
    private readonly maxExecutors: number,
    private readonly o: ExecutorPoolOptions = {},
  ) {
    if (o.user && !SETPRIV) throw new Error('--executor-user needs setpriv (util-linux) on the worker’s machine');
    const rights = o.rights ?? defaultRights();
    // A part file is written aside and renamed into place, and Node checks a rename's source
    // for reading: what a task may write, it may read.
    this.permissions = permissionFlags([...codeRoots(), ...rights.read, ...rights.write], rights.write);
    this.views = o.shuffleDir === undefined ? undefined : new ShuffleViews(o.shuffleDir, o.user);
    this.sampleMs = o.memorySampleMs ?? 5;
    this.startsAtOnce = Math.max(1, o.startsAtOnce ?? STARTS_AT_ONCE);
    this.keepWarm();
  }

  private keepWarm(): void {
    const warm = this.o.warm;
    if (!warm || this.closed) return;
    while (this.executors.size < Math.min(warm.count, this.maxExecutors) && this.starting < this.startsAtOnce) {
      if (!this.spare(warm.memoryMb)) return;
    }
  }

  /**
   * Starts an executor ahead of need. One the file system refuses (no room for its view) is
   * not an error yet: the chunk that needs an executor fails then, saying why (see send).
   */
  private spare(memoryMb: number): boolean {
    try {
      this.idle.push(this.spawn(memoryMb));
      return true;
    } catch {
      return false;
    }
  }

  private spawn(memoryMb: number): Executor {
    const view = this.views?.create();
    const permissions = view ? withRoot(this.permissions, view.dir) : this.permissions;
    const start = {
      entry: this.entry,
      memoryMb,
      user: this.o.user,
      permissions,
      startTimeoutMs: this.o.startTimeoutMs,
    };
    const ex = new Executor(start, (e) => {
      this.executors.delete(e);
      const v = this.viewOf.get(e);
      if (v) this.views?.drop(v);
      this.viewOf.delete(e);
      const i = this.idle.indexOf(e);
      if (i >= 0) this.idle.splice(i, 1);
      // Replaced later, not here: an executor that cannot start must not respawn in a loop.
    });
    ex.onOutput = (m) => this.output(ex, m);
    this.starting++;
    const started = () => {
      this.starting--;
      // Tasks that waited for a start may go now (to this one or to the next start).
      this.keepWarm();
      this.pumpSoon();
    };
    ex.ready.then(started, started);
    this.executors.add(ex);
    if (view) this.viewOf.set(ex, view);
    return ex;
  }

  /**
   * Where in `idle` is an executor with this memory limit for this job's user code (or for no
   * job); else, for a job's code, one that has run none yet (it is that job's from then on). -1: none.
   * Of those ready, the one released last: tasks that come one at a time keep going to the same
   * process, whose code V8 has optimized (it does so only after thousands of calls) and whose
   * memory is in the CPU's caches, where taking the oldest would spread them over every idle
   * executor. A spare still starting (pushed last) only when none is ready: the oldest first.
   */
  private idleFor(memoryMb: number, job: string | undefined): number {
    const i = this.idleOf(memoryMb, job);
    return i >= 0 || job === undefined ? i : this.idleOf(memoryMb, undefined);
  }

  private idleOf(memoryMb: number, job: string | undefined): number {
    const fits = (e: Executor) => e.memoryMb === memoryMb && e.job === job;
    const i = this.idle.findLastIndex((e) => fits(e) && e.isReady);
    return i >= 0 ? i : this.idle.findIndex(fits);
  }

  /**
   * An idle executor with this memory limit, for this job's user code (or for no job), or a new
   * one (in place of an idle one if need be).
   */
  private acquire(memoryMb: number, job: string | undefined): Executor {
    const i = this.idleFor(memoryMb, job);
    let ex: Executor;
    if (i >= 0) ex = this.idle.splice(i, 1)[0]!;
    else {
      if (this.executors.size >= this.maxExecutors) this.idle.shift()?.kill();
      ex = this.spawn(memoryMb);
    }
    if (job !== undefined && ex.job === undefined) {
      ex.job = job;
      const view = this.viewOf.get(ex);
      try {
        if (view) this.views?.keepOnly(view, job);
      } catch (err) {
        // Its view is in no known state: it runs nothing more.
        ex.kill();
        throw err;
      }
      this.keepSpare(memoryMb);
    }
    return ex;
  }

  /**
   * An executor has just been given a job's code: another that has run none is started now, if
   * there is room, so the next job's code finds it ready. Never in place of an idle executor of
   * another job: that job (a streaming one above all) may need it next, and a process start
   * per message would outlast its ack timeout.
   */
  private keepSpare(memoryMb: number): void {
    if (!this.o.warm || this.closed || this.executors.size >= this.maxExecutors) return;
    if (this.starting >= this.startsAtOnce) return;
    if (this.idle.some((e) => e.job === undefined && e.memoryMb === memoryMb)) return;
    this.spare(memoryMb);
  }

  /**
   * The tasks' specs as this executor runs them: each data task's job linked in its view, and
   * the view as its shuffle directory.
   */
  private specsFor(ex: Executor, tasks: readonly Task[]): ExecutorSpec[] {
    const view = this.viewOf.get(ex);
    if (!view || !this.views) return tasks.map((t) => t.spec);
    return tasks.map(({ spec }) => {
      if (!('env' in spec) || !spec.env) return spec;
      this.views!.link(view, spec.job_id);
      return { ...spec, env: { ...spec.env, shuffle_dir: view.dir } };
    });
  }

  /** A job is over on this worker: the executors that ran its code go, and its links. */
  forgetJob(job: string): void {
    for (const e of this.idle.filter((x) => x.job === job)) e.kill();
    for (const view of this.viewOf.values()) {
      try {
        this.views?.unlink(view, job);
      } catch {
        // Left in the view, it points to a deleted directory: the view's next link of the job,
        // or its executor's next job (keepOnly), removes it. A 'forget' never ends the worker.
      }
    }
  }

  private release(ex: Executor): void {
    if (ex.exited) return;
    if (this.closed) ex.kill();
    else this.idle.push(ex);
  }

  run(spec: ExecutorSpec, limits: RunLimits): Promise<string> {
    const { signal } = limits;
    if (signal?.aborted) return Promise.reject(reasonOf(signal));
    if (this.closed) return Promise.reject(new Error('the executor is closed'));
    return new Promise((resolve, reject) => {
      const task: Task = {
        spec,
        memoryMb: limits.memoryMb,
        timeoutMs: limits.timeoutMs,
        key: limits.key,
        job: userCodeJob(spec),
        solo: false,
        resolve,
        reject,
        settled: false,
        signal,
        onAbort: undefined,
        chunk: undefined,
        logs: limits.logs,
        onSent: limits.onSent,
      };
      if (signal) {
        task.onAbort = () => this.cancel(task, reasonOf(signal));
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.queue.push(task);
      this.pumpSoon();
    });
  }

  /**
   * Tasks come from the master many to a message: queued first and sent once the message is
   * read, they travel as one chunk per free executor, where sending each as it arrived gave
   * the first ones a message each.
   */
  private pumpSoon(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.busy < this.maxExecutors && this.queue.length > 0) {
      // The next chunk needs a process started: it waits for a start to end (FIFO, ~0.2 s).
      const next = this.queue[0]!;
      if (this.starting >= this.startsAtOnce && this.idleFor(next.memoryMb, next.job) < 0) return;
      this.send(this.queue.splice(0, chunkSize(this.queue, this.maxExecutors - this.busy, this.msOf)));
    }
  }

  private send(tasks: Task[]): void {
    const { memoryMb, timeoutMs, job } = tasks[0]!;
    let executor: Executor | undefined;
    let specs: ExecutorSpec[];
    try {
      executor = this.acquire(memoryMb, job);
      specs = this.specsFor(executor, tasks);
    } catch (err) {
      // The file system refused what a chunk needs (an executor's view of the map outputs, a
      // process started on a full disk): its tasks fail, and are retried; the worker goes on.
      executor?.kill();
      const why = new Error(`the worker could not prepare the task for an executor: ${(err as Error).message}`);
      for (const t of tasks) this.settle(t, why);
      return;
    }
    this.busy++;
    const seq = ++this.chunksSent;
    this.tasksSent += tasks.length;
    const chunk: Chunk = {
      seq,
      tasks,
      executor,
      memoryMb,
      culprit: undefined,
      timer: undefined,
    };
    for (const t of tasks) t.chunk = chunk;
    const req: ChunkRequest = { seq, specs, budgetMs: CHUNK_BUDGET_MS };
    this.runningChunks.add(chunk);
    this.chunkBySeq.set(seq, chunk);
    chunk.executor
      .run(req, () => {
        if (tracing) for (const t of tasks) trace(t.key ?? '', 'task sent to executor');
        for (const t of tasks) t.onSent?.();
        const lone = tasks.length === 1 ? tasks[0] : undefined;
        chunk.timer = setTimeout(() => this.killFor(chunk, lone, new TaskTimeoutError(timeoutMs)), timeoutMs);
        this.sampler ??= setInterval(() => this.sampleMemory(), this.sampleMs);
      })
      .then(
        (outcomes) => this.finished(chunk, outcomes),
        (err: unknown) => this.died(chunk, err),
      )
      .finally(() => {
        clearTimeout(chunk.timer);
        this.runningChunks.delete(chunk);
        this.chunkBySeq.delete(seq);
        if (this.runningChunks.size === 0) {
          clearInterval(this.sampler);
          this.sampler = undefined;
        }
        this.busy--;
        this.keepWarm();
        this.pump();
      });
  }

  /**
   * A write of a task's code, into its attempt's log while its chunk runs (its report has not
   * gone). Later — a timer it left behind — the line has no log to go to and is dropped; so
   * is one naming a chunk of another executor (user code can call process.send itself).
   */
  private output(ex: Executor, m: OutputMessage): void {
    const chunk = this.chunkBySeq.get(m.c);
    if (!chunk || chunk.executor !== ex) {
      if (m.t === 'log') this.lateDropped++;
      return;
    }
    const logs = chunk.tasks[m.i]?.logs;
    if (!logs) return;
    if (m.t === 'log_cut') logs.cutNow(m.at);
    else logs.write(m.s === 0 ? 'stdout' : 'stderr', m.d, m.at);
  }

  /** Writes of tasks that came after their attempt's report had gone, dropped (see output). */
  get lateWritesDropped(): number {
    return this.lateDropped;
  }

  /** Kills the executors running a chunk over their memory limit; true if this one is. */
  private overLimit(chunk: Chunk): boolean {
    const ex = chunk.executor;
    const now = ex.statm();
    if (!now || !ex.baseline) return false;
    ex.lastUsedMb = memoryUsedMb(now, ex.baseline);
    if (ex.lastUsedMb <= chunk.memoryMb) return false;
    const lone = chunk.tasks.length === 1 ? chunk.tasks[0] : undefined;
    this.killFor(chunk, lone, memoryError(ex.lastUsedMb, chunk.memoryMb, ex.baseline.residentMb));
    return true;
  }

  private sampleMemory(): void {
    for (const chunk of this.runningChunks) if (!chunk.culprit) this.overLimit(chunk);
  }

  private killFor(chunk: Chunk, task: Task | undefined, error: Error): void {
    if (chunk.culprit) return;
    chunk.culprit = { task, error };
    chunk.executor.kill();
  }

  private cancel(task: Task, reason: Error): void {
    if (task.settled) return;
    const chunk = task.chunk;
    if (!chunk) {
      const i = this.queue.indexOf(task);
      if (i >= 0) this.queue.splice(i, 1);
    } else {
      // Its chunk-mates, not charged, run again.
      this.killFor(chunk, task, reason);
    }
    this.settle(task, reason);
  }

  private finished(chunk: Chunk, outcomes: ChunkOutcome[]): void {
    // Killed already (its memory, a timeout, a cancellation) and its answer read before the
    // exit: it ends as killed, as when the exit comes first. (Read again, the dying process's
    // memory is all zeros: a task over its limit passed for one within it.)
    if (chunk.culprit) return this.died(chunk, chunk.culprit.error);
    // What a quick task allocated may be gone before any sample: read it once more now. Over,
    // its executor is killed, but this chunk has answered: it ends here as if it had died.
    if (this.overLimit(chunk)) return this.died(chunk, chunk.culprit!.error);
    outcomes.forEach((o, i) => {
      const task = chunk.tasks[i]!;
      this.observe(task, o.ms);
      if ('json' in o) this.settle(task, undefined, o.json);
      else this.settle(task, errorFrom(o.error));
    });
    this.release(chunk.executor);
    // The executor ran out of its budget before these: they wait for the next free one.
    this.requeue(chunk.tasks.slice(outcomes.length), false);
  }

  private died(chunk: Chunk, err: unknown): void {
    chunk.executor.kill();
    const { culprit, tasks, executor } = chunk;
    const charged = culprit ? culprit.task : tasks.length === 1 ? tasks[0] : undefined;
    if (charged) {
      // Killed for a cancellation, the task said nothing about its job's speed.
      if (!culprit || culprit.error instanceof TaskTimeoutError || culprit.error.name === MEMORY_LIMIT) {
        this.observe(charged, Infinity);
      }
      this.settle(charged, culprit?.error ?? exitError(err, executor, chunk.memoryMb));
    } else {
      for (const t of tasks) this.observe(t, Infinity);
    }
    this.requeue(
      tasks.filter((t) => t !== charged),
      true,
    );
  }

  /** Puts tasks of a chunk back at the head of the queue, in order. */
  private requeue(tasks: Task[], solo: boolean): void {
    const again = tasks.filter((t) => !t.settled);
    for (const t of again) {
      t.chunk = undefined;
      t.solo ||= solo;
    }
    if (this.closed) for (const t of again) this.settle(t, new Error('the executor is closed'));
    else this.queue.unshift(...again);
  }

  private observe(task: Task, ms: number): void {
    if (task.key === undefined) return;
    const before = this.msOf(task.key);
    // Slower at once, quicker only over a few tasks: one quick task of a slow job does not
    // let the next ones hold each other's reports back. After a chunk died (Infinity), the
    // next task's time is taken as it is.
    const recent =
      before === undefined || !Number.isFinite(before) || ms >= before ? ms : before + (ms - before) * QUICKER_WEIGHT;
    this.msNow.set(task.key, recent);
    if (this.msNow.size >= QUICK_JOBS_KEPT) {
      this.msBefore = this.msNow;
      this.msNow = new Map();
    }
  }

  private settle(task: Task, error: unknown, json?: string): void {
    if (task.settled) return;
    task.settled = true;
    if (task.onAbort) task.signal?.removeEventListener('abort', task.onAbort);
    if (error === undefined) task.resolve(json!);
    else task.reject(error);
  }

  /** Tasks and executor messages (chunks) so far: how much chunking saved. */
  get sent(): { tasks: number; chunks: number } {
    return { tasks: this.tasksSent, chunks: this.chunksSent };
  }

  /** How many executor processes may run tasks at once (`--threads`). */
  get maxThreads(): number {
    return this.maxExecutors;
  }

  /** Entries of Node's permission model each executor starts with (each costs it ~1.6 KiB). */
  get permissionEntries(): number {
    return this.permissions.length;
  }

  /** Executor processes started and not ready for tasks yet. */
  get startingNow(): number {
    return this.starting;
  }

  /** Executor processes alive now. */
  get threads(): number {
    return this.executors.size;
  }

  /** Their process ids (tests check that none outlives its worker). */
  get pids(): number[] {
    return [...this.executors].flatMap((e) => (e.pid === undefined ? [] : [e.pid]));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.queue.splice(0)) this.settle(t, new Error('the executor is closed'));
    const ended = [...this.executors].map((e) => new Promise((r) => (e.exited ? r(0) : e.child.once('exit', r))));
    for (const e of this.executors) e.kill();
    await Promise.allSettled(ended);
  }
}

/** Jobs per generation of the pool's memory of task times. */
const QUICK_JOBS_KEPT = 512;
/** How far one quicker task moves a job's recent time per task towards it. */
const QUICKER_WEIGHT = 0.25;

const reasonOf = (signal: AbortSignal): Error =>
  signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));

/** Over the limit; one whose process alone is near it says so, or the user hunts a leak of theirs. */
function memoryError(usedMb: number, limitMb: number, baselineMb: number): Error {
  const already =
    baselineMb >= 0.8 * limitMb
      ? `; the process takes ${Math.round(baselineMb)} MiB before any task runs, so give memory_mb more room`
      : '';
  return namedError(
    MEMORY_LIMIT,
    `${MEMORY_LIMIT}: the task's process used ${Math.round(usedMb)} MiB, over its memory_mb of ${limitMb}${already}`,
  );
}

/** An executor that ended by itself: near its limit, the heap's own limit is what ended it. */
function exitError(err: unknown, ex: Executor, limitMb: number): Error {
  const cause = err instanceof ExecutorExit ? err.why : String(err);
  if (ex.lastUsedMb >= 0.8 * limitMb) return namedError(MEMORY_LIMIT, `${MEMORY_LIMIT}: ${cause} near its memory_mb`);
  return namedError('TaskProcessDied', cause);
}

/** A task's error as thrown in its executor: same name, message and stack. */
function errorFrom(e: ThrownError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = e.stack;
  return err;
}

/** A task's failure as reported to the master; process boundaries lose prototypes, not names. */
export function describeError(err: unknown): TaskError {
  const e = thrownError(err);
  const lost = fetchFailureOf(e);
  return { ...e, ...(lost ? { fetch_failed: lost } : {}) };
}

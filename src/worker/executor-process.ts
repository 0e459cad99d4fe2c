import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { deathCause, heapFlags, parseStatm, type Statm } from './executor-rules.js';
import { isChunkAnswer, type ChunkOutcome, type ChunkRequest } from './task-chunks.js';
import type { ExecutorUser } from './executor-user.js';
import { isOutputMessage, type OutputMessage } from './executor-output.js';

/**
 * `setpriv --pdeathsig KILL` makes the kernel kill an executor when its worker dies, however
 * it dies and whatever the executor is doing (a task in a loop handles no disconnect event).
 */
export const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** setpriv's arguments: die with the worker, and run as `user` (no supplementary groups) if given. */
function setprivArgs(user: ExecutorUser | undefined): string[] {
  const as = user ? [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups'] : [];
  return ['--pdeathsig', 'KILL', ...as, '--'];
}

export interface ExecutorStart {
  /** The compiled executor-main.js. */
  entry: string;
  memoryMb: number;
  /** Whom it runs as (`--executor-user`); undefined: its worker's user. */
  user?: ExecutorUser | undefined;
  /** The permission model's flags (executor-rules.ts permissionFlags). */
  permissions: readonly string[];
  /** Killed if not ready for tasks by then. Default START_TIMEOUT_MS. */
  startTimeoutMs?: number;
}

/**
 * A start takes 0.1–0.2 s of CPU; one not ready after 30 s is stuck (a stopped process, a hung
 * read of node's own files), and would hold a start of its pool and the chunk sent to it for ever.
 */
export const START_TIMEOUT_MS = 30_000;

/**
 * How much lower than its worker an executor runs (its nice value, added to the worker's).
 * User code then takes only the CPU its worker and a master on the same machine leave: 128
 * executors starting at once on two cores (~0.2 CPU-s each) kept two workers from
 * heartbeating for 13–17 s, and both were declared dead. HTCondor renices its jobs by 10 too.
 */
export const EXECUTOR_NICE = 10;

/** Lowers a process's priority by EXECUTOR_NICE below ours; one gone already has nothing to lower. */
function lowerPriority(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    setPriority(pid, Math.min(19, getPriority() + EXECUTOR_NICE));
  } catch {
    // Exited before it could be reniced (its exit is handled below) or a system without nice.
  }
}

/** How long a dead executor's channel is read for what it sent before dying. */
const CHANNEL_END_WAIT_MS = 1000;

/** Thrown by Executor.run when the process ends before answering. */
export class ExecutorExit extends Error {
  constructor(readonly why: string) {
    super(why);
    this.name = 'ExecutorExit';
  }
}

/**
 * One executor process: a clean environment, Node's permission model, a heap bounded by its
 * memory limit, and one chunk of tasks at a time over an IPC channel.
 */
export class Executor {
  readonly memoryMb: number;
  /** The job whose user code it has run, once it has: it runs no other job's tasks. */
  job: string | undefined = undefined;
  readonly child: ChildProcess;
  /** Resolves with its memory figures once it is ready for tasks; rejects if it ends first. */
  readonly ready: Promise<void>;
  /** Measured when it became ready: what the process costs before any task. */
  baseline: Statm | undefined;
  /** Whether it has become ready for tasks (a spare may still be starting). */
  isReady = false;
  /** The last figure memoryUsedMb gave for it. */
  lastUsedMb = 0;
  exited: string | undefined;
  /**
   * /proc/PID/statm, opened once: read again at offset 0 it is made afresh, for ~5 µs
   * instead of the ~60 µs an open, read and close take (it is read once per chunk).
   */
  private statmFd: number | undefined;
  private readonly statmBuf = Buffer.alloc(128);
  /** Where what its tasks print goes (the pool finds the chunk and task each write names). */
  onOutput: ((m: OutputMessage) => void) | undefined;
  private answer: { resolve(o: ChunkOutcome[]): void; reject(e: Error): void; count: number } | undefined;

  constructor(
    o: ExecutorStart,
    private readonly onExit: (e: Executor) => void,
  ) {
    this.memoryMb = o.memoryMb;
    const flags = [...o.permissions, ...heapFlags(o.memoryMb)];
    this.child = fork(o.entry, [], {
      ...(SETPRIV ? { execPath: SETPRIV } : {}),
      execArgv: SETPRIV ? [...setprivArgs(o.user), process.execPath, ...flags] : flags,
      // Nothing of the worker's environment (JWT_SECRET above all) reaches user code.
      env: {},
      // Everything passing here began as JSON (job configs, records, results as JSON text), and
      // Node's json channel costs the worker half the CPU per message that 'advanced' does
      // (40 µs against 90 µs for a chunk of 8 specs and its answer).
      serialization: 'json',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // In the worker's process group and session (not detached): a session of its own would
      // be a scheduler autogroup of its own too, where its nice value weighs nothing against
      // the worker's and the masters'. A stop signal to the group it ignores (executor-main).
    });
    // At once: the value survives setpriv's exec of node, and what user code starts inherits it.
    lowerPriority(this.child.pid);
    // First of its exit listeners: the others read `exited`.
    let stuck: string | undefined;
    const startTimeoutMs = o.startTimeoutMs ?? START_TIMEOUT_MS;
    const startTimer = setTimeout(() => {
      stuck = `the task's process did not start within ${startTimeoutMs} ms`;
      this.kill();
    }, startTimeoutMs);
    startTimer.unref();
    this.child.once('exit', (code, signal) => {
      clearTimeout(startTimer);
      this.exited = stuck ?? deathCause(code, signal);
      if (this.statmFd !== undefined) closeSync(this.statmFd);
      this.statmFd = undefined;
      const answer = this.answer;
      this.answer = undefined;
      const fail = () => answer?.reject(new ExecutorExit(this.exited!));
      // What the task printed before it died may still be in the channel's pipe (the exit is
      // told apart from it): its lines are read first, up to the channel's end.
      if (answer && this.child.connected) {
        const late = setTimeout(fail, CHANNEL_END_WAIT_MS);
        this.child.once('disconnect', () => {
          clearTimeout(late);
          fail();
        });
      } else fail();
      this.onExit(this);
    });
    this.ready = new Promise((resolve, reject) => {
      this.child.once('message', () => {
        try {
          this.statmFd = openSync(`/proc/${this.child.pid}/statm`, 'r');
        } catch {
          // no /proc (not Linux): memory is bounded by the heap flag alone
        }
        this.baseline = this.statm();
        clearTimeout(startTimer);
        this.isReady = true;
        resolve();
      });
      this.child.once('exit', () => reject(new ExecutorExit(this.exited ?? 'the executor ended')));
    });
    this.ready.catch(() => {});
    this.child.on('message', (m: unknown) => {
      if (isOutputMessage(m)) return this.onOutput?.(m);
      const a = this.answer;
      if (!a || !Array.isArray(m)) return;
      this.answer = undefined;
      if (isChunkAnswer(m, a.count)) return a.resolve(m);
      // Not the executor's own answer: its tasks' results cannot be told apart from forgeries.
      a.reject(
        new ExecutorExit('its executor sent an answer its worker could not read (did its code call process.send?)'),
      );
      this.kill();
    });
    this.child.on('error', () => {});
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Runs a chunk once the process is ready; `onSent` is when its tasks' time begins. */
  async run(req: ChunkRequest, onSent: () => void): Promise<ChunkOutcome[]> {
    await this.ready;
    if (this.exited) throw new ExecutorExit(this.exited);
    return new Promise((resolve, reject) => {
      this.answer = { resolve, reject, count: req.specs.length };
      this.child.send(req, (err) => {
        if (err) this.kill();
      });
      onSent();
    });
  }

  /** Its memory now, read by the kernel (the process itself has no say in it). */
  statm(): Statm | undefined {
    if (this.exited || this.statmFd === undefined) return undefined;
    try {
      const n = readSync(this.statmFd, this.statmBuf, 0, this.statmBuf.length, 0);
      return parseStatm(this.statmBuf.toString('latin1', 0, n));
    } catch {
      return undefined;
    }
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

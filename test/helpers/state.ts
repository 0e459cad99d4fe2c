// A real state machine (SQLite in a temp dir) for specs that apply commands to it directly,
// as the log would: a fresh one before each test, closed and removed after it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import type { ApplyResult, Command } from '../../src/state/commands.js';
import { Queries } from '../../src/state/queries.js';
import { StateMachine } from '../../src/state/state-machine.js';

/** A batch job's submitJob command, as the leader proposes it (`extra` adds or overrides fields). */
export const submitJobCommand = (job_id: string, config: unknown, extra: Partial<Command> = {}, at = 1000): Command =>
  ({
    type: 'submitJob',
    at,
    job_id,
    name: job_id,
    job_type: 'batch',
    config: normalizeBatchConfig(config),
    ...extra,
  }) as Command;

/** A worker's registerWorker command; its address is `${worker_id}:1`. */
export const registerWorkerCommand = (worker_id: string, max_tasks = 10, at = 1000): Command => ({
  type: 'registerWorker',
  at,
  worker_id,
  address: `${worker_id}:1`,
  max_tasks,
});

interface Opened {
  dir: string;
  sm: StateMachine;
  q: Queries;
}

/** What a spec reads of the state of the running test; see `stateEachTest`. */
export class StateUnderTest {
  private opened: Opened | undefined;
  private lastIndex = 0;

  constructor(private readonly prefix: string) {}

  /** The test's temp dir, which holds its state.db. */
  get dir(): string {
    return this.now().dir;
  }

  get sm(): StateMachine {
    return this.now().sm;
  }

  get q(): Queries {
    return this.now().q;
  }

  /** The log index of the last command applied (they are numbered from 1 in each test). */
  get index(): number {
    return this.lastIndex;
  }

  /** Applies one command as the next log entry (term 1) and returns its result. */
  readonly apply = (command: Command): ApplyResult =>
    this.sm.applyBatch([{ index: ++this.lastIndex, term: 1, kind: 'cmd', data: command }])[0]!;

  readonly submit = (job_id: string, config: unknown, extra: Partial<Command> = {}): ApplyResult =>
    this.apply(submitJobCommand(job_id, config, extra));

  readonly register = (worker_id: string, max_tasks = 10): ApplyResult =>
    this.apply(registerWorkerCommand(worker_id, max_tasks));

  open(): void {
    const dir = mkdtempSync(join(tmpdir(), this.prefix));
    const sm = new StateMachine(join(dir, 'state.db'));
    this.opened = { dir, sm, q: new Queries(sm) };
    this.lastIndex = 0;
  }

  close(): void {
    if (!this.opened) return;
    this.opened.sm.close();
    rmSync(this.opened.dir, { recursive: true, force: true });
    this.opened = undefined;
  }

  private now(): Opened {
    if (!this.opened) throw new Error('the state is only there during a test (stateEachTest opens it in beforeEach)');
    return this.opened;
  }
}

/**
 * A fresh state machine in a temp dir named `prefix…` for each test of the calling spec file,
 * closed and removed after it. Call at the top of the file, before its own beforeEach hooks
 * (which then see the new state).
 */
export function stateEachTest(prefix: string): StateUnderTest {
  const state = new StateUnderTest(prefix);
  beforeEach(() => state.open());
  afterEach(() => state.close());
  return state;
}

// Load and observation for the cluster benchmark: a stream of jobs that survives masters
// dying, write probes that time a failover, and a watch that counts elections.
import { setTimeout as sleep } from 'node:timers/promises';
import { clusterStatus, noopJob, type JobView, type MasterProc } from './weir.js';

/** How long one poll of a job may park on the master before the lane looks again. */
const POLL_WAIT_MS = 2000;

/**
 * Jobs kept flowing through a cluster while it is measured: `lanes` loops, each submitting
 * one job of `tasksPerJob` no-op tasks and waiting for it to finish. Each lane starts on the
 * first master given (the leader: no forwarding) and moves to the next on any error, as the
 * client does; errors are counted, never fatal, since masters die here on purpose.
 */
export class LoadStream {
  completedTasks = 0;
  errors = 0;
  private stopped = false;
  private running: Promise<void>[] = [];
  private startedAt = 0;

  constructor(
    private readonly masters: readonly MasterProc[],
    private readonly shape: { lanes: number; tasksPerJob: number },
    private readonly label: string,
  ) {}

  start(): void {
    this.startedAt = performance.now();
    this.running = Array.from({ length: this.shape.lanes }, (_, i) => this.lane(i));
  }

  /** Resolves once `tasks` more tasks have completed than when called; false after `timeoutMs`. */
  async progressed(tasks: number, timeoutMs: number): Promise<boolean> {
    const target = this.completedTasks + tasks;
    for (const t0 = performance.now(); performance.now() - t0 < timeoutMs; await sleep(20)) {
      if (this.completedTasks >= target) return true;
    }
    return false;
  }

  /** Stops every lane after its current request; returns tasks/s over the stream's life. */
  async stop(): Promise<number> {
    this.stopped = true;
    await Promise.all(this.running);
    return this.completedTasks / ((performance.now() - this.startedAt) / 1000);
  }

  private async lane(lane: number): Promise<void> {
    let at = 0;
    for (let n = 0; !this.stopped; n++) {
      const master = this.masters[at % this.masters.length]!;
      try {
        const job = await master.api.call<JobView>(
          'POST',
          '/api/jobs',
          noopJob(`${this.label}-${lane}-${n}`, this.shape.tasksPerJob),
        );
        await this.finish(master, job.job_id);
      } catch {
        this.errors++;
        at++;
        await sleep(20);
      }
    }
  }

  /** Waits for a job on the master that accepted it; gives up quietly when stopped. */
  private async finish(master: MasterProc, jobId: string): Promise<void> {
    while (!this.stopped) {
      const job = await master.api.call<JobView>('GET', `/api/jobs/${jobId}?wait_ms=${POLL_WAIT_MS}`);
      if (job.status === 'completed') {
        this.completedTasks += job.progress.completed;
        return;
      }
      if (job.status === 'failed' || job.status === 'cancelled') throw new Error(`job ${jobId} ${job.status}`);
    }
  }
}

/** How often every survivor gets a probe, and how long a probe may take. */
const PROBE_EVERY_MS = 20;
const PROBE_TIMEOUT_MS = 3000;

export interface FailoverTiming {
  /** From the kill to the first submit a survivor accepted (2xx). */
  writeMs: number;
  /** From the kill to the first survivor reporting itself leader in a newer term. */
  electedMs: number | null;
  acceptedBy: number;
  newTerm: number | null;
}

/**
 * Times a failover that began at `t0` (performance.now() just before the kill): every
 * PROBE_EVERY_MS each survivor gets a one-task submit, without waiting for earlier probes
 * (a probe stuck on a dying path must not hide a later one that would succeed), and its
 * /cluster/status is read to see when a new leader appears.
 */
export function timeFailover(
  survivors: readonly MasterProc[],
  oldTerm: number,
  t0: number,
  timeoutMs: number,
): Promise<FailoverTiming> {
  return new Promise((resolve, reject) => {
    let electedMs: number | null = null;
    let newTerm: number | null = null;
    let n = 0;
    let done = false;
    const end = (f: () => void) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      f();
    };
    const probe = () => {
      if (performance.now() - t0 > timeoutMs) {
        end(() => reject(new Error(`no survivor accepted a write within ${timeoutMs} ms of the kill`)));
        return;
      }
      for (const m of survivors) {
        void m.api.send('POST', '/api/jobs', noopJob(`probe-${n++}`, 1), PROBE_TIMEOUT_MS).then(
          ({ status }) => {
            const writeMs = performance.now() - t0;
            if (status < 300) end(() => resolve({ writeMs, electedMs, acceptedBy: m.id, newTerm }));
          },
          () => undefined, // refused or timed out: the next probe will tell
        );
        if (electedMs === null) {
          void clusterStatus(m.url, PROBE_TIMEOUT_MS).then((s) => {
            if (electedMs === null && s?.current_role === 'leader' && s.term > oldTerm) {
              electedMs = performance.now() - t0;
              newTerm = s.term;
            }
          });
        }
      }
    };
    const timer = setInterval(probe, PROBE_EVERY_MS);
    probe();
  });
}

export interface ElectionWatch {
  seconds: number;
  polls: number;
  /** Term increases seen on any node; with no fault, each one is a needless election. */
  termChanges: number;
  /** Changes of the leader a node names, most on any one node (a hand-over counts too). */
  leaderChanges: number;
  terms: { start: number; end: number };
  /** Times a master did not answer /cluster/status within a second: a stalled event loop. */
  unanswered: number;
  statusMaxMs: number;
  events: { at_s: number; node: number; what: string }[];
}

/** Polls every master's /cluster/status every `everyMs` for `seconds`, noting every change. */
export async function watchElections(
  masters: readonly MasterProc[],
  seconds: number,
  everyMs = 200,
): Promise<ElectionWatch> {
  const last = new Map<number, NodeView>();
  const termsSeen = new Set<number>();
  const w: ElectionWatch = {
    seconds,
    polls: 0,
    termChanges: 0,
    leaderChanges: 0,
    terms: { start: 0, end: 0 },
    unanswered: 0,
    statusMaxMs: 0,
    events: [],
  };
  const t0 = performance.now();
  for (let next = t0; performance.now() - t0 < seconds * 1000; next += everyMs) {
    await sleep(Math.max(0, next - performance.now()));
    w.polls++;
    await Promise.all(masters.map((m) => pollOne(m, w, last, termsSeen, t0)));
  }
  const terms = [...termsSeen].sort((a, b) => a - b);
  w.terms = { start: terms[0] ?? 0, end: terms[terms.length - 1] ?? 0 };
  return w;
}

interface NodeView {
  term: number;
  leader: number | null;
  leaderChanges: number;
}

async function pollOne(
  m: MasterProc,
  w: ElectionWatch,
  last: Map<number, NodeView>,
  termsSeen: Set<number>,
  t0: number,
): Promise<void> {
  const asked = performance.now();
  const s = await clusterStatus(m.url, 1000);
  w.statusMaxMs = Math.max(w.statusMaxMs, performance.now() - asked);
  if (!s) {
    w.unanswered++;
    return;
  }
  const at_s = Number(((performance.now() - t0) / 1000).toFixed(2));
  const before = last.get(m.id);
  // A term no node has reported yet is one more election, whichever node saw it first.
  if (termsSeen.size > 0 && !termsSeen.has(s.term)) {
    w.termChanges++;
    w.events.push({ at_s, node: m.id, what: `term ${before?.term ?? '?'} → ${s.term}` });
  }
  termsSeen.add(s.term);
  let leaderChanges = before?.leaderChanges ?? 0;
  if (before && before.leader !== s.leader_id) {
    leaderChanges++;
    w.leaderChanges = Math.max(w.leaderChanges, leaderChanges);
    w.events.push({ at_s, node: m.id, what: `leader ${before.leader} → ${s.leader_id}` });
  }
  last.set(m.id, { term: s.term, leader: s.leader_id, leaderChanges });
}

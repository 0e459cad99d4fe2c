// The rules by which masters apply commands (src/state/rules.ts), with real processes
// (addresses 127.0.0.194–200 and 105–108 belong to this file). A cluster moves to newer rules only once
// every master has said it knows them, as a rolling upgrade ends; from rules 2 on, a batch task
// whose workers keep being lost under it fails instead of taking the next worker down too, and
// from rules 4 only a worker that said it began the task counts.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { MAX_WORKER_LOSSES, RULES_VERSION } from '../../src/state/rules.js';
import { SILENT_LINK_MS } from '../../src/consensus/peer-transport.js';
import { decodeToWorker, encode } from '../../src/protocol/worker-channel.js';
import type { TaskRef } from '../../src/protocol/task-ref.js';
import {
  Cluster,
  freePorts,
  tasksBegun,
  clusterStatus,
  http,
  submitJob,
  submitRetrying,
  untilAgreedLeader,
  untilJobStatus,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { MastersOnDisk } from '../helpers/masters-on-disk.js';
import { hasChromium, launchChromium } from '../../scripts/chromium.js';

// The functions handed to the page run in the browser; this project's types are Node's.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;
import { buildCopy } from '../helpers/build-copy.js';

const c = new Cluster('rules');
afterAll(() => c.cleanup());

/** This build copied aside, announcing the rules before RULES_VERSION: a Weir one version older. */
const olderWeir = (): string =>
  buildCopy(join(c.tmp, 'older-weir'), [
    {
      file: 'src/state/rules.js',
      at: `export const RULES_VERSION = ${RULES_VERSION};`,
      change: () => `export const RULES_VERSION = ${RULES_VERSION - 1};`,
    },
  ]);

describe('a rolling upgrade to newer rules', () => {
  const OLD = 194;
  const set = new MastersOnDisk(c, ['127.0.0.194', '127.0.0.195', '127.0.0.196'], [194, 195, 196], []);

  /** Waits for master 195 to apply all that `leader` committed so far: it follows on. */
  async function untilAppliedBy195(leader: MasterProc): Promise<void> {
    const commit = (await clusterStatus(leader.url)).commit_index as number;
    await waitFor(
      'master 195 to apply what the leader committed',
      async () => ((await clusterStatus(set.procs.get(195)!.url)).last_applied as number) >= commit || undefined,
      10_000,
    );
  }
  let olderBin: string;
  const rulesOf = async (m: MasterProc) => (await clusterStatus(m.url)).rules_version as number;
  const allRules = () => Promise.all(set.running().map(rulesOf));

  beforeAll(async () => {
    olderBin = olderWeir();
    await set.init();
    await Promise.all(
      [194, 195, 196].map((id) => set.start(id, { wait: false, ...(id === OLD ? { bin: olderBin } : {}) })),
    );
    await Promise.all(set.running().map((m) => c.untilReady(m)));
    await untilAgreedLeader(set.urls(), { leaderId: 196, timeoutMs: 30_000 });
  }, 60_000);

  it('keeps the rules the oldest master knows while it runs, and says what the newer ones wait for', async () => {
    const leader = set.procs.get(196)!;
    await waitFor(
      'the leader to say what the newer rules wait for',
      () =>
        new RegExp(`master ${OLD} knows the rules up to version ${RULES_VERSION - 1}`).test(c.log(leader)) || undefined,
      20_000,
    );
    expect(c.log(leader)).toContain(
      `the cluster applies version ${RULES_VERSION - 1} until every master knows version ${RULES_VERSION}`,
    );
    // As far as the oldest master goes, and no further; jobs run meanwhile, applied alike by all three.
    await waitFor(
      'every master to apply the rules the oldest knows',
      async () => (await allRules()).every((v) => v === RULES_VERSION - 1) || undefined,
      20_000,
    );
    await submitRetrying(leader.url, { name: 'meanwhile', type: 'batch', config: { operation: 'noop' } });
    expect(await allRules()).toEqual([RULES_VERSION - 1, RULES_VERSION - 1, RULES_VERSION - 1]);
  });

  it('moves every master to the newer rules once the last one is upgraded', async () => {
    await c.stop(set.procs.get(OLD)!, 'SIGTERM');
    await set.start(OLD);
    await waitFor(
      'every master to apply the newer rules',
      async () => (await allRules()).every((v) => v === RULES_VERSION) || undefined,
      30_000,
    );
    await c.waitForLog(set.procs.get(196)!, /every master knows newer rules: the cluster applies them from now on/);
  });

  it('sends a master restarted on an older Weir no entries of the log, and says why: it would apply them its own way', async () => {
    await c.stop(set.procs.get(OLD)!, 'SIGTERM');
    const downgraded = await set.start(OLD, { bin: olderBin });
    const leader = set.procs.get(196)!;
    await waitFor(
      'the leader to say why the downgraded master is held back',
      () =>
        new RegExp(`master ${OLD} runs an older Weir: it knows the rules of version ${RULES_VERSION - 1}`).test(
          c.log(leader),
        ) || undefined,
      20_000,
    );
    expect(c.log(leader)).toContain(
      `this cluster applies version ${RULES_VERSION}, which it would apply differently from the others, so it is sent no entries of the log`,
    );
    // The others go on; it stays where it was, on the rules it had.
    const heldAt = (await clusterStatus(downgraded.url)).last_applied as number;
    for (let i = 0; i < 3; i++) {
      await submitRetrying(leader.url, { name: `without-${i}`, type: 'batch', config: { operation: 'noop' } });
    }
    expect((await clusterStatus(leader.url)).commit_index).toBeGreaterThan(heldAt);
    expect((await clusterStatus(downgraded.url)).last_applied).toBe(heldAt);
    expect(await rulesOf(downgraded)).toBe(RULES_VERSION);
  });

  it('once it is upgraded again, it catches up', async () => {
    await c.stop(set.procs.get(OLD)!, 'SIGTERM');
    const upgraded = await set.start(OLD);
    const commit = (await clusterStatus(set.procs.get(196)!.url)).commit_index as number;
    await waitFor(
      'the upgraded master to catch up',
      async () => ((await clusterStatus(upgraded.url)).last_applied as number) >= commit || undefined,
      30_000,
    );
  });

  it('takes a garbage or older rules header on a stray link in a member’s name for nothing: the member follows on', async () => {
    const leader = set.procs.get(196)!;
    const strays = ['abc', '-1', '1e3', '99999999999', ' 3', String(RULES_VERSION - 1)].map(
      (v) =>
        new WebSocket(`${leader.url.replace('http', 'ws')}/raft/stream`, {
          headers: { 'x-weir-node-id': '195', 'x-weir-rules-version': v },
        }),
    );
    await Promise.all(
      strays.map(
        (ws) =>
          new Promise((resolve, reject) => {
            ws.once('open', resolve);
            ws.once('error', reject);
          }),
      ),
    );
    try {
      await submitRetrying(leader.url, { name: 'garbage-headers', type: 'batch', config: { operation: 'noop' } });
      await untilAppliedBy195(leader);
      expect(await allRules()).toEqual([RULES_VERSION, RULES_VERSION, RULES_VERSION]);
      expect(leader.exitCode).toBeUndefined();
    } finally {
      for (const ws of strays) ws.close();
    }
  });

  it('keeps sending a master entries while a stray link in its name, announcing nothing, is open beside its own', async () => {
    const leader = set.procs.get(196)!;
    // On a cluster without JWT_SECRET anyone may open a link as master 195 (with one, its token).
    const stray = new WebSocket(`${leader.url.replace('http', 'ws')}/raft/stream`, {
      headers: { 'x-weir-node-id': '195' },
    });
    await new Promise((resolve, reject) => {
      stray.once('open', resolve);
      stray.once('error', reject);
    });
    try {
      for (let i = 0; i < 3; i++) {
        await submitRetrying(leader.url, { name: `stray-${i}`, type: 'batch', config: { operation: 'noop' } });
      }
      await untilAppliedBy195(leader);
    } finally {
      stray.close();
    }
  });

  it('closes a link in a member’s name that goes silent, as one whose host died would: it speaks for the member no longer', async () => {
    const leader = set.procs.get(196)!;
    // A live master sends a ping at least every 0.5 s on an idle link; this one sends nothing.
    const silent = new WebSocket(`${leader.url.replace('http', 'ws')}/raft/stream`, {
      headers: { 'x-weir-node-id': '195', 'x-weir-state-version': '1', 'x-weir-rules-version': '1' },
    });
    const closed = new Promise<number>((resolve) => silent.once('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      silent.once('open', resolve);
      silent.once('error', reject);
    });
    const opened = Date.now();
    expect(await closed).toBe(1006); // cut, without a closing handshake
    expect(Date.now() - opened).toBeGreaterThanOrEqual(SILENT_LINK_MS - 1_000);
    // The line is written as the link is cut, but a log's writes are asynchronous: it may land
    // just after the socket's close has reached this side.
    await waitFor('the leader to log the silent link it closed', () =>
      /"peer":195,"silent_ms":\d+,"msg":"closing a silent peer link"/.test(c.log(leader)),
    );
    // Master 195's own link, which pings, is still there: it follows on.
    await submitRetrying(leader.url, { name: 'after-silence', type: 'batch', config: { operation: 'noop' } });
    await untilAppliedBy195(leader);
  });
  it('takes no link for silent over its own stall: a master stopped past the limit keeps its peers’ links when it runs again', async () => {
    const leader = set.procs.get(196)!;
    const stopped = set.procs.get(195)!;
    const closedFor195 = () =>
      c.log(leader).match(/"peer":195,"silent_ms":\d+,"msg":"closing a silent peer link"/g)?.length ?? 0;
    const before = closedFor195();
    c.kill(stopped, 'SIGSTOP');
    let logFrom: number;
    try {
      // Its peers' pings pile up unread meanwhile; the leader, rightly, closes its silent link.
      await waitFor(
        'the leader to close the stopped master’s link',
        () => closedFor195() > before || undefined,
        20_000,
      );
    } finally {
      logFrom = c.log(stopped).length; // taken while it is stopped: nothing of its waking is before
      c.kill(stopped, 'SIGCONT');
    }
    await submitRetrying(leader.url, { name: 'after-stall', type: 'batch', config: { operation: 'noop' } });
    await untilAppliedBy195(leader);
    expect(c.log(stopped).slice(logFrom)).not.toMatch(/closing a silent peer link/);
  });
});

/**
 * A worker of the test's own: registers on `m`, opens its channel, says hello, takes the first
 * assignment, tells the leader it began it if asked to (and waits until the leader read that),
 * then drops the channel. Returns the attempt it was assigned.
 */
async function takeAndDrop(m: MasterProc, o: { tellBegan: boolean }): Promise<TaskRef> {
  const r = await http('POST', `${m.url}/api/workers/register`, { address: '127.0.0.199:1', max_tasks: 1 });
  expect(r.status, r.text).toBe(201);
  const socket = new WebSocket(`${m.url.replace('http', 'ws')}/api/workers/${r.json.worker_id}/channel`);
  try {
    const assigned = new Promise<TaskRef>((resolve, reject) => {
      socket.on('message', (data: Buffer) => {
        const d = decodeToWorker(data);
        if (d.ok && d.value.t === 'assign') resolve(d.value.tasks[0]!);
      });
      socket.once('error', reject);
      socket.once('close', (code) => reject(new Error(`the channel closed (${code}) before an assignment came`)));
    });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.send(encode({ t: 'hello', running: [], unacked: [] }));
    const a = await assigned;
    const ref = { job_id: a.job_id, idx: a.idx, attempt: a.attempt };
    if (o.tellBegan) {
      const before = await tasksBegun(m);
      socket.send(encode({ t: 'began', tasks: [ref] }));
      await waitFor(
        'the leader to read the began frame',
        async () => (await tasksBegun(m)) > before || undefined,
        10_000,
      );
    }
    return ref;
  } finally {
    socket.terminate();
  }
}

describe(`a batch task whose workers are lost under it ${MAX_WORKER_LOSSES} times`, () => {
  let m: MasterProc;
  const workers: WorkerProc[] = [];
  let poisoned: string;

  beforeAll(async () => {
    m = await c.master('127.0.0.197');
    // A master alone knows every member's rules: it applies the newest at once.
    await waitFor(
      'the master to apply its rules',
      async () => (await clusterStatus(m.url)).rules_version === RULES_VERSION || undefined,
      10_000,
    );
  }, 30_000);

  it('fails with its job, naming the workers lost, instead of taking the next worker down', async () => {
    // One worker at a time: each runs the task until it is killed under it (as the kernel's
    // OOM killer would choose it), and the next is started only then.
    const id = await submitJob(m.url, {
      name: 'poison',
      type: 'batch',
      config: { operation: 'sleep', ms: 60_000, task_count: 1, max_retries: 5 },
    });
    for (let i = 0; i < MAX_WORKER_LOSSES; i++) {
      const w = await c.worker(`127.0.0.${198 + i}`, m, { maxTasks: 1 });
      workers.push(w);
      await waitFor(
        `attempt ${i + 1} to run on worker ${i + 1}`,
        async () => {
          const t = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json?.tasks?.[0];
          return t?.status === 'running' && t.attempt === i + 1 ? t : undefined;
        },
        20_000,
      );
      // Killed once it has told the leader it began the task (a loss counts against that only).
      await waitFor(
        `worker ${i + 1} to say it began the task`,
        async () => (await tasksBegun(m)) > i || undefined,
        20_000,
      );
      await c.stop(w, 'SIGKILL');
      if (i < MAX_WORKER_LOSSES - 1) {
        await waitFor(
          `the task to wait for its next attempt`,
          async () =>
            (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json?.tasks?.[0]?.status === 'pending' || undefined,
          20_000,
        );
      }
    }
    poisoned = id;
    const job = await untilJobStatus(m.url, id, 'failed', 20_000);
    expect(job.error).toMatchObject({ task: 0, attempts: MAX_WORKER_LOSSES, name: 'worker_lost' });
    expect(job.error.message).toContain(`${MAX_WORKER_LOSSES} workers were lost while they ran this task`);
    // No retry was used up: the losses are counted apart from failures.
    const task = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json.tasks[0];
    expect(task).toMatchObject({ status: 'failed', failures: 0, losses: MAX_WORKER_LOSSES });
  });

  it.skipIf(!hasChromium() && process.env.CI !== 'true')(
    "shows the task's lost workers on the job's page of the dashboard",
    async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        await page.goto(`${m.url}/jobs/${poisoned}`);
        const cell = await page.waitForFunction(
          (n: number) =>
            [...document.querySelectorAll('#tasks tbody tr')]
              .map((tr: { textContent: string }) => tr.textContent)
              .find((t: string) => t.includes(`(${n} workers lost)`)),
          { timeout: 20_000, polling: 'mutation' },
          MAX_WORKER_LOSSES,
        );
        expect(await cell.jsonValue()).toMatch(/failed/);
      } finally {
        await browser.close();
      }
    },
  );

  let dropped: string;
  it('counts no loss against a task its worker dropped before it said it began it', async () => {
    // No worker runs: each of these registers, takes the assignment and drops its channel — a
    // worker whose process ends before it takes the task up, or a worker token's holder playing.
    dropped = await submitJob(m.url, { name: 'dropped', type: 'batch', config: { operation: 'noop' } });
    const task = async () => (await http('GET', `${m.url}/api/jobs/${dropped}/tasks`)).json.tasks[0];
    for (let i = 1; i <= MAX_WORKER_LOSSES + 1; i++) {
      const assigned = await takeAndDrop(m, { tellBegan: false });
      expect(assigned).toMatchObject({ job_id: dropped, idx: 0, attempt: i });
      await waitFor(
        `the task to wait again after drop ${i}`,
        async () => (await task()).status === 'pending' || undefined,
        20_000,
      );
    }
    expect(await task()).toMatchObject({ losses: 0, failures: 0 });
    // One that says it began the task before it drops is a loss of it.
    await takeAndDrop(m, { tellBegan: true });
    await waitFor('the task to wait again', async () => (await task()).status === 'pending' || undefined, 20_000);
    expect(await task()).toMatchObject({ losses: 1, failures: 0 });
  });

  it('leaves the cluster running other jobs', async () => {
    await c.worker('127.0.0.200', m, { maxTasks: 1 });
    const id = await submitJob(m.url, { name: 'after', type: 'batch', config: { operation: 'noop' } });
    await untilJobStatus(m.url, id, 'completed', 20_000);
    await untilJobStatus(m.url, dropped, 'completed', 20_000);
  });
});

describe('a worker lost after the leader that heard it begin a task was killed', () => {
  const hosts = ['127.0.0.105', '127.0.0.106', '127.0.0.107'];
  const masters: MasterProc[] = [];
  const urls = () => masters.filter((m) => m.exitCode === undefined).map((m) => m.url);

  beforeAll(async () => {
    const ports = await freePorts(hosts);
    const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
    masters.push(
      ...(await Promise.all(hosts.map((h, i) => c.master(h, { port: ports[i]!, args: ['--peers', peers] })))),
    );
  }, 60_000);

  it('counts against the task all the same: the new leader learns what it runs from its hello', async () => {
    /** The master of `urls()` that `agreed` names leader. */
    const leading = (agreed: { leaderId: number; statuses: Json[] }, among: string[]) =>
      masters.find((m) => m.url === among[agreed.statuses.findIndex((x) => x.current_node_id === agreed.leaderId)])!;
    const before = urls();
    // The highest id leads once the hand-over is done (a task begun before it would be heard
    // by a leader about to step down).
    const first = await untilAgreedLeader(before, { leaderId: 107, timeoutMs: 30_000 });
    const leader = leading(first, before);
    const w = await c.worker('127.0.0.108', leader, { maxTasks: 1, masters: urls() });
    const id = await submitJob(leader.url, {
      name: 'long',
      type: 'batch',
      config: { operation: 'sleep', ms: 60_000, task_count: 1, max_retries: 5 },
    });
    await waitFor(
      'the leader to hear the task begin',
      async () => (await tasksBegun(leader)) >= 1 || undefined,
      20_000,
    );
    await c.stop(leader, 'SIGKILL');
    const after = urls();
    const next = await untilAgreedLeader(after, { leaderId: 106, minTerm: first.term + 1, timeoutMs: 30_000 });
    const nextUrl = leading(next, after).url;
    // Its channel open on the new leader, the hello that opened it said what it runs.
    await waitFor(
      'the worker to reach the new leader',
      async () => {
        const s = (await http('GET', `${w.url}/api/status`)).json;
        return (s?.connected && s.master === nextUrl) || undefined;
      },
      30_000,
    );
    await c.stop(w, 'SIGKILL');
    const task = await waitFor(
      'the task to wait for its next attempt',
      async () => {
        const t = (await http('GET', `${nextUrl}/api/jobs/${id}/tasks`)).json?.tasks?.[0];
        return t?.status === 'pending' ? t : undefined;
      },
      20_000,
    );
    expect(task).toMatchObject({ losses: 1, failures: 0 });
  });
});

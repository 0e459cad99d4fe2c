import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { taskSpec } from '../../src/ops/batch-ops.js';
import { normalizeBatchConfig } from '../../src/ops/batch-config.js';
import { describeError, ExecutorPool, TaskTimeoutError } from '../../src/worker/executor-pool.js';
import type { DataTaskSpec } from '../../src/protocol/task-spec.js';
import { LogCapture } from '../../src/worker/log-capture.js';

// The pool starts its executors from the compiled tree (npm test builds first).
const built = '../../dist/src/worker/executor-pool.js';
const { ExecutorPool: BuiltPool, defaultRights } = (await import(built)) as {
  ExecutorPool: typeof ExecutorPool;
  defaultRights: typeof import('../../src/worker/executor-pool.js').defaultRights;
};

const sleep = (ms: number, idx = 0) => ({ operation: 'sleep' as const, params: { ms }, input: null, idx });
const user = (module: string) => taskSpec(normalizeBatchConfig({ module, data: [1] }), 0);
const limits = { timeoutMs: 5_000, memoryMb: 64 };
const noop = (idx: number) => ({ operation: 'noop' as const, params: {}, input: null, idx });
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setImmediate(r));
}

describe('the executor pool', () => {
  const pool = new BuiltPool(1);
  afterAll(() => pool.close());

  it('runs a task in an executor process and returns its results', async () => {
    expect(await pool.run(sleep(1, 7), limits)).toBe('[7]');
  });

  it('fails a task that loops past its timeout, and goes on running others', async () => {
    await expect(
      pool.run(user('export function map() { for (;;) {} }'), { ...limits, timeoutMs: 200 }),
    ).rejects.toThrow(/timed out after 200 ms/);
    expect(await pool.run(sleep(1, 1), limits)).toBe('[1]');
  });

  it('starts a queued task’s timeout only when it gets an executor', async () => {
    const first = pool.run(sleep(300, 1), limits);
    // Waits ~300 ms for the only executor, then needs 50 ms of its 200 ms budget.
    const second = pool.run(sleep(50, 2), { ...limits, timeoutMs: 200 });
    expect(await Promise.all([first, second])).toEqual(['[1]', '[2]']);
  });

  it('drops a queued task that is cancelled before it starts', async () => {
    const ac = new AbortController();
    const first = pool.run(sleep(200, 1), limits);
    const second = pool.run(sleep(1, 2), { ...limits, signal: ac.signal });
    ac.abort(new Error('task cancelled'));
    await expect(second).rejects.toThrow(/cancelled/);
    expect(await first).toBe('[1]');
  });

  it('names its timeout error', () => {
    expect(new TaskTimeoutError(5).name).toBe('TaskTimeoutError');
  });

  it('gives a task none of its worker’s environment, only its job’s', async () => {
    process.env.JWT_SECRET_PROBE = 'x';
    const spec = {
      ...user('export function map(r, emit) { emit(process.env.JWT_SECRET_PROBE ?? "none", process.env.LANG) }'),
      user_env: { LANG: 'C' },
    };
    expect(JSON.parse(await pool.run(spec, limits))).toEqual([{ key: 'none', value: 'C' }]);
    delete process.env.JWT_SECRET_PROBE;
  });

  it('fails a task that ends its process with the cause, and runs the next one in a new process', async () => {
    await expect(pool.run(user('export function map() { process.exit(3) }'), limits)).rejects.toThrow(
      /exited with code 3/,
    );
    await expect(
      pool.run(user('export function map() { process.kill(process.pid, "SIGKILL") }'), limits),
    ).rejects.toThrow(/killed by SIGKILL/);
    expect(await pool.run(sleep(1, 4), limits)).toBe('[4]');
  });

  it('fails a task over its memory, off-heap included, with memory_limit', async () => {
    const hog = user('export function map(r, emit) { emit("n", Buffer.alloc(1024 * 1024 * 1024).length) }');
    await expect(pool.run(hog, { ...limits, memoryMb: 128 })).rejects.toMatchObject({ name: 'memory_limit' });
  });

  it('fails a task found over its memory only once it has answered, and runs the next one', async () => {
    // Sampled once a minute, the task is over its limit only when its answer is read: it must
    // still fail, not hang with the executor that was killed for it.
    const seldom = new BuiltPool(1, { memorySampleMs: 60_000 });
    try {
      const keeps = user(
        'export function map(r, emit) { globalThis.kept = Buffer.alloc(256 * 1024 * 1024, 1); emit("n", 1) }',
      );
      await expect(seldom.run(keeps, { ...limits, memoryMb: 128 })).rejects.toMatchObject({ name: 'memory_limit' });
      expect(await seldom.run(sleep(1, 5), limits)).toBe('[5]');
    } finally {
      await seldom.close();
    }
  });

  it('says so when the process alone nears memory_mb: a data dir deep in the temp dir costs every executor', async () => {
    // Keeping tasks out of /tmp/xxx…(80) lists every other name beside each of its prefixes.
    const deep = new BuiltPool(1, { rights: defaultRights(join(tmpdir(), 'x'.repeat(80))) });
    try {
      expect(deep.permissionEntries).toBeGreaterThan(10_000);
      const err = await deep.run(sleep(1), limits).catch((e: Error) => e);
      expect(err).toMatchObject({ name: 'memory_limit', message: expect.stringMatching(/before any task runs/) });
    } finally {
      await deep.close();
    }
  });

  it('fails a task whose code sends its worker a forged answer, and the worker goes on', async () => {
    // User code shares its process with the executor, so process.send is within its reach: what
    // it sends must not throw in the worker (an unhandled rejection there ends it).
    for (const forged of ['[null]', '[{}, {}, {}]', '[{ json: 1, ms: "x" }]', '["ready"]']) {
      const err = await pool
        .run(user(`export function map() { process.send(${forged}); for (;;) {} }`), limits)
        .catch((e: Error) => e);
      expect(err).toMatchObject({ message: expect.stringMatching(/answer its worker could not read/) });
    }
    expect(await pool.run(sleep(1, 6), limits)).toBe('[6]');
  });

  it('refuses a path outside the roots, a process and a thread, as permission_denied', async () => {
    const refused = (module: string) => pool.run(user(module), limits).catch((e: Error) => e);
    expect(
      await refused('import { readFileSync } from "node:fs"; export function map() { readFileSync("/etc/passwd") }'),
    ).toMatchObject({ name: 'permission_denied', message: 'permission_denied: /etc/passwd is outside --allow-read' });
    expect(
      await refused('import { execSync } from "node:child_process"; export function map() { execSync("id") }'),
    ).toMatchObject({ name: 'permission_denied' });
    expect(
      await refused(
        'import { Worker } from "node:worker_threads"; export function map() { new Worker("1", { eval: true }) }',
      ),
    ).toMatchObject({ name: 'permission_denied' });
  });
});

describe('executors as a share of the machine', () => {
  it('starts a few executors at a time, however many tasks come at once, and runs every task', async () => {
    const pool = new BuiltPool(6, { startsAtOnce: 2 });
    try {
      let most = 0;
      const watch = setInterval(() => (most = Math.max(most, pool.startingNow)), 1);
      const results = await Promise.all(range(6).map((i) => pool.run(sleep(150, i), limits)));
      clearInterval(watch);
      expect(results).toEqual(range(6).map((i) => `[${i}]`));
      expect(most).toBe(2);
    } finally {
      await pool.close();
    }
  });

  it('kills an executor that does not start in time, fails its task saying so, and starts others', async () => {
    // Room for the next start on a loaded machine (three busy processes on two cores made a start take over 3 s).
    const pool = new BuiltPool(1, { startsAtOnce: 1, startTimeoutMs: 5000 });
    try {
      const first = pool.run(sleep(1, 1), limits).catch((e: Error) => e);
      // Stopped before it could be ready (a start takes ~0.2 s): it holds the pool's only start.
      await until(() => pool.pids.length === 1);
      process.kill(pool.pids[0]!, 'SIGSTOP');
      expect(await first).toMatchObject({ message: expect.stringMatching(/did not start within 5000 ms/) });
      expect(await pool.run(sleep(1, 2), limits)).toBe('[2]');
      expect(pool.startingNow).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('fails the task of an executor killed -9 while it starts, frees its start, and starts the next', async () => {
    const pool = new BuiltPool(1, { startsAtOnce: 1 });
    try {
      const first = pool.run(sleep(1, 1), limits).catch((e: Error) => e);
      await until(() => pool.pids.length === 1);
      process.kill(pool.pids[0]!, 'SIGKILL');
      expect(await first).toMatchObject({ message: expect.stringMatching(/killed by SIGKILL/) });
      expect(pool.startingNow).toBe(0);
      expect(await pool.run(sleep(1, 2), limits)).toBe('[2]');
    } finally {
      await pool.close();
    }
  });

  it('gives tasks that come one at a time to the executor that ran the last one, not to each idle one in turn', async () => {
    const pool = new BuiltPool(2);
    try {
      // Both started and both run a task.
      await Promise.all([pool.run(sleep(100, 0), limits), pool.run(sleep(100, 1), limits)]);
      expect(pool.pids).toHaveLength(2);
      // An executor wakes (a voluntary context switch of its main thread) for a task that finds
      // it asleep (one that comes before it slept does not wake it); an idle one sleeps on.
      const wakes = (p: number) =>
        Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]);
      const pids = [...pool.pids];
      const before = pids.map(wakes);
      for (const i of range(100)) expect(await pool.run(noop(i), limits)).toBe(`[${i}]`);
      expect(pool.pids, 'the same two executors throughout').toEqual(pids);
      // Taken in turns, each would have woken for about half of them (40–50 times here); how
      // often the busy one sleeps between two tasks varies with the machine's load.
      const woke = pids.map((p, i) => wakes(p) - before[i]!).sort((a, b) => a - b);
      expect(woke[0]).toBeLessThanOrEqual(5);
    } finally {
      await pool.close();
    }
  });

  it('gives a task to a ready idle executor before a spare that is still starting', async () => {
    // The stopped spare is never waited for: a long budget costs nothing, and a loaded machine
    // may take seconds to start the first two.
    const pool = new BuiltPool(2, { warm: { count: 2, memoryMb: 64 }, startTimeoutMs: 10_000 });
    try {
      await Promise.all([pool.run(sleep(100, 0), limits), pool.run(sleep(100, 1), limits)]);
      // A job's code takes one of the two; once the job is over, that executor goes.
      const jobA = { ...user('export function map(r, emit) { emit("k", 1) }'), job_id: 'job-a' };
      await pool.run(jobA, limits);
      pool.forgetJob('job-a');
      await until(() => pool.pids.length === 1);
      const [ready] = pool.pids;
      // The next chunk's end starts a spare in its place, behind the ready one; it never starts.
      expect(await pool.run(noop(1), limits)).toBe('[1]');
      await until(() => pool.pids.length === 2);
      process.kill(
        pool.pids.find((p) => p !== ready)!,
        'SIGSTOP',
      );
      expect(await pool.run(noop(2), limits)).toBe('[2]');
    } finally {
      await pool.close();
    }
  });

  it('never gives a task to the executor released last once it was killed -9 while idle', async () => {
    const pool = new BuiltPool(2, { warm: { count: 2, memoryMb: 64 } });
    try {
      await Promise.all([pool.run(sleep(50, 0), limits), pool.run(sleep(150, 1), limits)]);
      // Tasks one at a time: the same executor takes each; the other sleeps.
      const wakes = (p: number) =>
        Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]);
      const before = pool.pids.map(wakes);
      for (const i of range(20)) await pool.run(noop(i), limits);
      const woke = pool.pids.map((p, i) => wakes(p) - before[i]!);
      const last = pool.pids[woke.indexOf(Math.max(...woke))]!;
      process.kill(last, 'SIGKILL');
      await until(() => !pool.pids.includes(last));
      expect(await pool.run(noop(20), limits)).toBe('[20]');
    } finally {
      await pool.close();
    }
  });

  it('runs user code at a lower priority than its worker (nice 10 more)', async () => {
    const pool = new BuiltPool(1);
    try {
      await pool.run(sleep(1), limits);
      const [pid] = pool.pids;
      // Field 19 of /proc/PID/stat, counted after the command name's closing parenthesis.
      const nice = (p: number | string) =>
        Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
      expect(nice(pid!)).toBe(Math.min(19, nice('self') + 10));
    } finally {
      await pool.close();
    }
  });
});

describe("one job's code never meets another's", () => {
  const of = (job_id: string, module: string) => ({ ...user(module), job_id });
  const leaves =
    'export function map(r, emit) { globalThis.left = "by a"; Array.prototype.at = () => "patched"; emit("k", 1) }';
  const looks = 'export function map(r, emit) { emit(String(globalThis.left), [1].at(0)) }';

  it("runs each job's user code in executors of its own: what job a leaves, job b never sees", async () => {
    await withPool(1, async (pool) => {
      await pool.run(of('job-a', leaves), limits);
      // The same job's next task may find it (warm executors serve their own job).
      expect(JSON.parse(await pool.run(of('job-a', looks), limits))).toEqual([{ key: 'by a', value: 'patched' }]);
      expect(JSON.parse(await pool.run(of('job-b', looks), limits))).toEqual([{ key: 'undefined', value: 1 }]);
      // Built-in tasks run beside neither.
      expect(await pool.run(noop(3), { ...limits, key: 'job-c' })).toBe('[3]');
    });
  });

  it("ends a job's executors when the job is forgotten", async () => {
    await withPool(2, async (pool) => {
      await pool.run(of('job-a', leaves), limits);
      const before = pool.pids;
      pool.forgetJob('job-a');
      await waitUntil(() => pool.pids.length < before.length);
      expect(JSON.parse(await pool.run(of('job-a', looks), limits))).toEqual([{ key: 'undefined', value: 1 }]);
    });
  });
});

describe("a worker's shuffle directory, as its executors reach it", () => {
  const shuffleDir = mkdtempSync(join(tmpdir(), 'weir-views-'));
  afterAll(() => rmSync(shuffleDir, { recursive: true, force: true }));
  const of = (job_id: string, module: string) => ({
    ...user(module),
    job_id,
    env: { shuffle_dir: shuffleDir },
  });
  const probe = (path: string) => `import { readFileSync } from "node:fs";
    export function map(r, emit) { try { emit("read", readFileSync(${JSON.stringify(path)}, "utf8")) } catch (e) { emit("read", e.code) } }`;

  it("gives user code its own job's map outputs, never another job's", async () => {
    for (const [job, file] of [
      ['job-x', 'secret'],
      ['job-a', 'mine'],
    ] as const) {
      mkdirSync(join(shuffleDir, job), { recursive: true });
      writeFileSync(join(shuffleDir, job, file), job);
    }
    // No other roots: as in a worker, whose shuffle directory lies in its data dir.
    const pool = new BuiltPool(1, { shuffleDir, rights: { read: [], write: [] } });
    try {
      // A built-in task of job-x runs first in the only executor (view 1), linking job-x there.
      const wordcount = taskSpec(normalizeBatchConfig({ operation: 'wordcount', data: ['a'] }), 0) as DataTaskSpec;
      await pool.run({ ...wordcount, job_id: 'job-x', env: { shuffle_dir: shuffleDir } }, limits);
      const view = join(shuffleDir, '.views', '1');
      const read = async (path: string) =>
        (JSON.parse(await pool.run(of('job-a', probe(path)), limits)) as { value: string }[])[0]!.value;
      // Job a's code then takes that executor: job-x's link is gone before it runs.
      expect(await read(join(view, 'job-a', 'mine'))).toBe('job-a');
      expect(await read(join(view, 'job-x', 'secret'))).toBe('ENOENT');
      expect(await read(join(shuffleDir, 'job-x', 'secret'))).toBe('ERR_ACCESS_DENIED');
    } finally {
      await pool.close();
    }
  });
});

describe("a worker's shuffle views when a job is forgotten while its tasks still come", () => {
  const shuffleDir = mkdtempSync(join(tmpdir(), 'weir-views-late-'));
  afterAll(() => rmSync(shuffleDir, { recursive: true, force: true }));
  const wordcount = (job_id: string) => ({
    ...(taskSpec(normalizeBatchConfig({ operation: 'wordcount', data: ['a'] }), 0) as DataTaskSpec),
    job_id,
    env: { shuffle_dir: shuffleDir },
  });
  const view = join(shuffleDir, '.views', '1');

  // A job deleted while it runs: the worker forgets it (its links go), a task of it still
  // running writes its outputs where the link was (a directory now), and the leader, which
  // had sent more of the job's tasks before the log refused them, sends them on. A CI run's
  // worker died there: rm of that directory threw EISDIR out of the pool's pump.
  it('runs a task of a forgotten job where a late task left a directory for its link, and the worker lives', async () => {
    const pool = new BuiltPool(1, { shuffleDir, rights: { read: [], write: [] } });
    try {
      await pool.run(wordcount('job-late'), limits);
      expect(lstatSync(join(view, 'job-late')).isSymbolicLink()).toBe(true);
      writeFileSync(join(shuffleDir, 'job-late', 'kept'), 'the job’s own directory');
      pool.forgetJob('job-late');
      mkdirSync(join(view, 'job-late', 'map-0'), { recursive: true });
      writeFileSync(join(view, 'job-late', 'map-0', 'part'), 'late');
      await pool.run(wordcount('job-late'), limits);
      expect(lstatSync(join(view, 'job-late')).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(view, 'job-late'))).toBe(join(shuffleDir, 'job-late'));
      // Links are removed, never what they point to.
      expect(readFileSync(join(shuffleDir, 'job-late', 'kept'), 'utf8')).toBe('the job’s own directory');
    } finally {
      await pool.close();
    }
  });

  it("leaves user code no stray directory of another job's outputs in its view", async () => {
    const pool = new BuiltPool(1, { shuffleDir, rights: { read: [], write: [] } });
    try {
      await pool.run(wordcount('job-gone'), limits);
      pool.forgetJob('job-gone');
      mkdirSync(join(view, 'job-gone', 'map-0'), { recursive: true });
      writeFileSync(join(view, 'job-gone', 'map-0', 'part'), 'secret');
      const probe = `import { readFileSync } from "node:fs";
        export function map(r, emit) { try { emit("read", readFileSync(${JSON.stringify(join(view, 'job-gone', 'map-0', 'part'))}, "utf8")) } catch (e) { emit("read", e.code) } }`;
      const next = { ...user(probe), job_id: 'job-next', env: { shuffle_dir: shuffleDir } };
      const out = JSON.parse(await pool.run(next, limits)) as { value: string }[];
      expect(out[0]!.value).toBe('ENOENT');
    } finally {
      await pool.close();
    }
  });

  it('fails a task whose map-output directory cannot be made, saying why, and runs the next', async () => {
    const pool = new BuiltPool(1, { shuffleDir, rights: { read: [], write: [] } });
    try {
      // Where the job's directory should be stands a file.
      writeFileSync(join(shuffleDir, 'job-blocked'), 'not a directory');
      await expect(pool.run(wordcount('job-blocked'), limits)).rejects.toThrow(
        /the worker could not prepare the task for an executor: .*job-blocked/,
      );
      expect(await pool.run(sleep(1, 3), limits)).toBe('[3]');
    } finally {
      await pool.close();
    }
  });
});

describe('a worker whose shuffle directory refuses its executors’ views', () => {
  it('starts, and fails each task saying why rather than dying', async () => {
    const shuffleDir = mkdtempSync(join(tmpdir(), 'weir-views-refused-'));
    // Where the views should be stands a file: no executor can be given one.
    writeFileSync(join(shuffleDir, '.views'), 'not a directory');
    const pool = new BuiltPool(1, { shuffleDir, warm: { count: 1, memoryMb: 64 } });
    try {
      await expect(pool.run(sleep(1, 1), limits)).rejects.toThrow(
        /the worker could not prepare the task for an executor: .*\.views/,
      );
    } finally {
      await pool.close();
      rmSync(shuffleDir, { recursive: true, force: true });
    }
  });
});

async function waitUntil(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setTimeout(r, 10));
}

/** Runs `body` with a pool of `threads` threads of its own, closed after. */
async function withPool(threads: number, body: (pool: ExecutorPool) => Promise<void>): Promise<void> {
  const pool = new BuiltPool(threads);
  try {
    await body(pool);
  } finally {
    await pool.close();
  }
}

describe('chunks: an executor gets several quick tasks in one message', () => {
  /**
   * One executor, busy with a task of another job while `tasks` (of job `key`, known to be
   * quick) queue up behind it — so they leave in one chunk when it frees.
   */
  async function inOneChunk<T>(
    pool: ExecutorPool,
    key: string,
    tasks: (() => Promise<T>)[],
  ): Promise<PromiseSettledResult<T>[]> {
    await pool.run(noop(0), { ...limits, key }); // learns that the job is quick
    const blocker = pool.run(sleep(50), { ...limits, key: `${key}-blocker` });
    const settled = Promise.allSettled(tasks.map((t) => t()));
    await blocker;
    return settled;
  }

  it('runs a backlog of a quick job in far fewer executor messages than tasks, each with its own result', () =>
    withPool(2, async (pool) => {
      await pool.run(noop(0), { ...limits, key: 'job' });
      const before = pool.sent;
      const results = await Promise.all(range(500).map((i) => pool.run(noop(i), { ...limits, key: 'job' })));
      expect(results).toEqual(range(500).map((i) => `[${i}]`));
      // A chunk's executor hands back what it had no time for (its budget): those go out again.
      expect(pool.sent.tasks - before.tasks).toBeGreaterThanOrEqual(500);
      expect(pool.sent.chunks - before.chunks).toBeLessThan(100);
    }));

  it('sends a slow job’s tasks one per message, and a job nobody named', () =>
    withPool(1, async (pool) => {
      await pool.run(sleep(5), { ...limits, key: 'slow' });
      const before = pool.sent;
      await Promise.all(range(5).map((i) => pool.run(sleep(5, i), { ...limits, key: 'slow' })));
      await Promise.all(range(5).map((i) => pool.run(noop(i), limits)));
      expect(pool.sent.chunks - before.chunks).toBe(10);
    }));

  it('fails a task that throws alone, with its name and message; its chunk-mates succeed', () =>
    withPool(1, async (pool) => {
      const o = { ...limits, key: 'throws' };
      const thrower = user('export function map() { throw new TypeError("bad row 7") }');
      const [a, bad, c] = await inOneChunk(pool, 'throws', [
        () => pool.run(noop(1), o),
        () => pool.run(thrower, o),
        () => pool.run(noop(3), o),
      ]);
      expect(a).toEqual({ status: 'fulfilled', value: '[1]' });
      expect(c).toEqual({ status: 'fulfilled', value: '[3]' });
      expect(bad).toMatchObject({ status: 'rejected', reason: { name: 'TypeError', message: 'bad row 7' } });
    }));

  it('times out only the task that ran past its timeout; its chunk-mates complete', () =>
    withPool(1, async (pool) => {
      const o = { ...limits, timeoutMs: 300, key: 'loops' };
      const looper = user('export function map() { for (;;) {} }');
      const [a, loop, c, d] = await inOneChunk(pool, 'loops', [
        () => pool.run(noop(1), o),
        () => pool.run(looper, o),
        () => pool.run(noop(3), o),
        () => pool.run(noop(4), o),
      ]);
      expect(loop).toMatchObject({ status: 'rejected', reason: { name: 'TaskTimeoutError' } });
      expect([a, c, d]).toEqual(['[1]', '[3]', '[4]'].map((value) => ({ status: 'fulfilled', value })));
    }));

  it('pins running out of memory on the task that did; its chunk-mates complete', () =>
    withPool(1, async (pool) => {
      const o = { ...limits, memoryMb: 96, key: 'hungry' };
      const hog = user('export function map() { const a = []; for (;;) a.push(new Array(1e5).fill(a.length)); }');
      // The blocker must share the limits' memory for all of them to share the one executor.
      await pool.run(noop(0), o);
      const blocker = pool.run(sleep(50), { ...o, key: 'blocker' });
      const settled = Promise.allSettled([pool.run(noop(1), o), pool.run(hog, o), pool.run(noop(3), o)]);
      await blocker;
      const [a, oom, c] = await settled;
      expect(oom.status).toBe('rejected');
      expect(describeError((oom as PromiseRejectedResult).reason).message).toMatch(/^memory_limit/);
      expect([a, c]).toEqual(['[1]', '[3]'].map((value) => ({ status: 'fulfilled', value })));
    }));

  it('charges a process’s death to no chunk-mate: each runs again alone, the culprit fails', () =>
    withPool(1, async (pool) => {
      const o = { ...limits, key: 'exits' };
      const exits = user('export function map() { process.exit(3) }');
      const [a, bad, c] = await inOneChunk(pool, 'exits', [
        () => pool.run(noop(1), o),
        () => pool.run(exits, o),
        () => pool.run(noop(3), o),
      ]);
      expect(bad).toMatchObject({ status: 'rejected', reason: { message: /exited with code 3/ } });
      expect([a, c]).toEqual(['[1]', '[3]'].map((value) => ({ status: 'fulfilled', value })));
    }));

  it('stops a cancelled task that runs in a chunk, and only that one', () =>
    withPool(1, async (pool) => {
      const ac = new AbortController();
      const o = { ...limits, key: 'cancels' };
      const looper = user('export function map() { for (;;) {} }');
      const settled = inOneChunk(pool, 'cancels', [
        () => pool.run(noop(1), o),
        () => {
          // By then the blocker (50 ms) is done and the looper runs.
          setTimeout(() => ac.abort(new Error('task cancelled')), 150);
          return pool.run(looper, { ...o, signal: ac.signal });
        },
        () => pool.run(noop(3), o),
      ]);
      const [a, loop, c] = await settled;
      expect(loop).toMatchObject({ status: 'rejected', reason: { message: 'task cancelled' } });
      expect([a, c]).toEqual(['[1]', '[3]'].map((value) => ({ status: 'fulfilled', value })));
    }));

  it('drops a cancelled task of a chunk before it starts, without waiting for the chunk', () =>
    withPool(1, async (pool) => {
      const ac = new AbortController();
      const o = { ...limits, key: 'drops' };
      const order: string[] = [];
      const settled = inOneChunk(pool, 'drops', [
        () => pool.run(sleep(200, 1), o).finally(() => order.push('slow')),
        () => {
          // By then the blocker (50 ms) is done and the 200 ms task ahead of this one runs.
          setTimeout(() => ac.abort(new Error('task cancelled')), 100);
          return pool.run(noop(2), { ...o, signal: ac.signal }).finally(() => order.push('cancelled'));
        },
        () => pool.run(noop(3), o).finally(() => order.push('last')),
      ]);
      const [slow, cancelled, last] = await settled;
      expect(cancelled).toMatchObject({ status: 'rejected', reason: { message: 'task cancelled' } });
      expect([slow, last]).toEqual(['[1]', '[3]'].map((value) => ({ status: 'fulfilled', value })));
      expect(order).toEqual(['cancelled', 'slow', 'last']);
    }));
});

describe('what a task prints, by the task whose code printed it', () => {
  const of = (module: string) => ({ ...user(module), job_id: 'prints-late' });
  const texts = (logs: LogCapture) => logs.take().map((l) => l.text);

  it('never gives a line printed after its task returned to the next task of the executor', () =>
    withPool(1, async (pool) => {
      const first = new LogCapture();
      // Late by 50 ms: a line printed before the chunk's answer has left is the chunk's (the
      // executor, slowed on a loaded machine, took more than 5 ms to answer once).
      const late = 'export function map(r, emit) { setTimeout(() => console.log("late"), 50); emit(r, 1) }';
      expect(await pool.run(of(late), { ...limits, logs: first })).toBe('[{"key":1,"value":1}]');
      expect(texts(first)).toEqual([]);
      // Runs in the same executor (its job's) while the first task's timer fires.
      const second = new LogCapture();
      const waits =
        'export async function map(r, emit) { await new Promise((ok) => setTimeout(ok, 100)); console.log("second"); emit(r, 2) }';
      expect(await pool.run(of(waits), { ...limits, logs: second })).toBe('[{"key":1,"value":2}]');
      expect(texts(second)).toEqual(['second']);
      // The first task's report had gone: its late line is dropped, and counted.
      expect(pool.lateWritesDropped).toBe(1);
    }));

  it("keeps a chunk-mate's late line in its own log while their chunk runs", () =>
    withPool(1, async (pool) => {
      const late = 'export function map(r, emit) { setTimeout(() => console.log("late"), 0); emit(r, 1) }';
      // It waits for the first one's timer: the line comes while it runs.
      const waits =
        'export async function map(r, emit) { await new Promise((ok) => setTimeout(ok, 20)); console.log("second"); emit(r, 2) }';
      const blocks = 'export async function map(r, emit) { await new Promise((ok) => setTimeout(ok, 50)); emit(r, 0) }';
      // All in the job's executor: their modules loaded, and the job known to be quick.
      for (const m of [late, waits, blocks]) await pool.run(of(m), { ...limits, key: 'warm-up' });
      const o = { ...limits, key: 'prints-late' };
      await pool.run(of('export function map(r, emit) { emit(r, 0) }'), o);
      const blocker = pool.run(of(blocks), { ...limits, key: 'blocker' });
      const before = { ...pool.sent, dropped: pool.lateWritesDropped };
      const logs = [new LogCapture(), new LogCapture()] as const;
      const both = Promise.all([
        pool.run(of(late), { ...o, logs: logs[0] }),
        pool.run(of(waits), { ...o, logs: logs[1] }),
      ]);
      await blocker;
      await both;
      expect(texts(logs[1])).toEqual(['second']);
      const first = texts(logs[0]);
      // One chunk (as on a machine not too busy to run a task in under QUICK_TASK_MS): the line
      // is its task's; else that task's report had gone and the line is dropped.
      if (pool.sent.chunks - before.chunks === 1) expect(first).toEqual(['late']);
      expect(first.length + pool.lateWritesDropped - before.dropped).toBe(1);
    }));
});

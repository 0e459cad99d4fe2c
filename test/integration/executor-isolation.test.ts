// What a task cannot reach on its worker: the worker's data dir (wherever it lies), another
// job's state or map outputs, and — with --executor-user — the worker's process and files
// even past Node's permission model (addresses 127.0.0.181–189 belong to this file).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  http,
  ROOT,
  submitJob,
  untilJobStatus,
  WEIR_BIN,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { bearer, cliToken, signedToken } from '../helpers/tokens.js';

const c = new Cluster('executor-isolation');
const SECRET = 'executor-isolation-secret-of-32-bytes-or-more';
const env = { JWT_SECRET: SECRET };
let admin: Record<string, string>;

beforeAll(() => {
  admin = bearer(cliToken(env));
});
afterAll(() => c.cleanup());

const submit = (m: MasterProc, config: Json) => submitJob(m.url, { name: 'x', type: 'batch', config }, admin);

async function results(m: MasterProc, config: Json): Promise<Json[]> {
  const id = await submit(m, config);
  await untilJobStatus(m.url, id, 'completed', 60_000, admin);
  return (await http('GET', `${m.url}/api/jobs/${id}/results`, undefined, admin)).json.results as Json[];
}

const failed = async (m: MasterProc, config: Json) =>
  (await untilJobStatus(m.url, await submit(m, config), 'failed', 60_000, admin)).error as Json;

/** A module whose map reads `path` as text. */
const reads = (path: string) =>
  `import { readFileSync } from "node:fs"; export function map(x, emit) { emit("text", readFileSync(${JSON.stringify(path)}, "utf8")) }`;

/** A master and one worker of its own, so that every task of the master runs on that worker. */
async function pair(masterHost: string, workerHost: string, args: string[] = [], dataDir?: string) {
  const m = await c.master(masterHost, { env });
  const token = admin.authorization!.slice(7);
  const w = await c.worker(workerHost, m, { env, maxTasks: 2, token, args, ...(dataDir ? { dataDir } : {}) });
  return { m, w };
}

describe("a worker's data dir", () => {
  const underCwd = join(ROOT, 'data', `it-isolation-${process.pid}`);
  const besideCwd = join(ROOT, 'data', `it-isolation-master-${process.pid}`);
  afterAll(() => {
    rmSync(underCwd, { recursive: true, force: true });
    rmSync(besideCwd, { recursive: true, force: true });
  });

  it('is refused to tasks when it lies in the temp dir (a default root)', async () => {
    const inTmp = join(c.tmp, 'worker-in-tmp');
    const { m, w } = await pair('127.0.0.181', '127.0.0.182', [], inTmp);
    const lock = join(w.dataDir, 'LOCK');
    expect(await failed(m, { module: reads(lock), data: [1], max_retries: 2 })).toMatchObject({
      name: 'permission_denied',
      attempts: 1,
      message: `permission_denied: ${lock} is outside --allow-read`,
    });
    // The rest of the temp dir stays readable, files made after the worker started included.
    const beside = join(c.tmp, 'beside.txt');
    execFileSync('sh', ['-c', `echo hello > '${beside}'`]);
    expect(await results(m, { module: reads(beside), data: [1] })).toEqual([{ key: 'text', value: 'hello\n' }]);
  });

  it('is refused to tasks when it lies in the working dir (a default root), with every node’s data beside it', async () => {
    mkdirSync(underCwd, { recursive: true });
    const { m } = await pair('127.0.0.183', '127.0.0.184', ['--data-dir', underCwd]);
    const lock = join(underCwd, 'LOCK');
    expect(await failed(m, { module: reads(lock), data: [1] })).toMatchObject({
      name: 'permission_denied',
      message: `permission_denied: ${lock} is outside --allow-read`,
    });
    // ./data holds the masters' state and weir dev's CA too: a worker's task reaches none of it.
    const masters = join(besideCwd, 'state.db');
    mkdirSync(besideCwd, { recursive: true });
    writeFileSync(masters, 'a master’s state');
    expect(await failed(m, { module: reads(masters), data: [1] })).toMatchObject({
      name: 'permission_denied',
      message: `permission_denied: ${masters} is outside --allow-read`,
    });
    expect(await results(m, { module: reads(join(ROOT, 'package.json')), data: [1] })).toHaveLength(1);
  });

  it('is readable when --allow-read names it', async () => {
    const dir = join(c.tmp, 'named');
    const { m, w } = await pair('127.0.0.185', '127.0.0.186', ['--data-dir', dir, '--allow-read', dir]);
    expect(await results(m, { module: reads(join(dir, 'LOCK')), data: [1] })).toEqual([
      { key: 'text', value: String(w.pid) },
    ]);
  });
});

describe("one job's tasks and another's", () => {
  let m: MasterProc;
  let workers: WorkerProc[];

  beforeAll(async () => {
    m = await c.master('127.0.0.187', { env });
    const token = admin.authorization!.slice(7);
    workers = [
      await c.worker('127.0.0.188', m, { env, maxTasks: 1, token, args: ['--threads', '1'] }),
      await c.worker('127.0.0.189', m, { env, maxTasks: 1, token, args: ['--threads', '1'] }),
    ];
  });

  it('may act on their own process alone: a task that would kill, debug or renice its worker or its process group fails its job at once, and every worker lives on as it was', async () => {
    const before = (await http('GET', `${m.url}/api/workers`, undefined, admin)).json.workers as Json[];
    for (const [call, shown] of [
      ['process.kill(process.ppid, "SIGKILL")', 'process\\.kill\\(\\d+\\)'],
      ['process.kill(0, "SIGKILL")', 'process\\.kill\\(0\\)'],
      ['process.kill(-process.ppid, "SIGKILL")', 'process\\.kill\\(-\\d+\\)'],
      // process.pid is a property user code may redefine: the guard took it at start.
      [
        'Object.defineProperty(process, "pid", { value: process.ppid }); process.kill(process.ppid, "SIGKILL")',
        'process\\.kill\\(\\d+\\)',
      ],
      // SIGUSR1: the worker would open its inspector to whoever connects.
      ['process._debugProcess(process.ppid)', 'process\\._debugProcess\\(\\d+\\)'],
      ['(await import("node:os")).setPriority(process.ppid, 19)', 'os\\.setPriority\\(\\d+\\)'],
    ]) {
      const error = await failed(m, {
        module: `export async function map(x, emit) { ${call}; emit("k", 1) }`,
        data: [1],
        max_retries: 3,
      });
      expect(error, call).toMatchObject({ name: 'permission_denied', attempts: 1 });
      expect(error.message, call).toMatch(
        new RegExp(`^permission_denied: tasks may act on their own process alone; ${shown} names another`),
      );
    }
    const niceness = (pid: number) => execFileSync('ps', ['-o', 'ni=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    for (const w of workers) {
      expect(process.kill(w.pid, 0)).toBe(true);
      expect(niceness(w.pid), 'as niced as the spec that started it').toBe(niceness(process.pid));
      expect(c.log(w)).not.toMatch(/Debugger listening/);
    }
    const after = (await http('GET', `${m.url}/api/workers`, undefined, admin)).json.workers as Json[];
    expect(after.map((w) => [w.worker_id, w.status])).toEqual(before.map((w) => [w.worker_id, 'active']));
    // Its own process it may end: that attempt fails as any that kills its executor does.
    expect(
      await failed(m, {
        module: 'export function map(x, emit) { process.kill(process.pid, "SIGKILL") }',
        data: [1],
        max_retries: 0,
      }),
    ).toMatchObject({ message: expect.stringMatching(/killed by SIGKILL/) });
  });

  it('share no state: what job a leaves on globalThis or in a builtin, job b never sees', async () => {
    const leave =
      'export function map(x, emit) { globalThis.left = "by a"; Array.prototype.at = () => "patched"; emit("k", 1) }';
    await results(m, { module: leave, data: [1, 2, 3, 4], task_count: 4 });
    const look = 'export function map(x, emit) { emit(String(globalThis.left), [7].at(0)) }';
    const seen = await results(m, { module: look, data: [1, 2, 3, 4], task_count: 4 });
    expect(seen).toEqual(Array.from({ length: 4 }, () => ({ key: 'undefined', value: 7 })));
  });

  it("shuffle across workers with each job's own token, and a task's token reads no other job's map outputs", async () => {
    const module = `export function map(x, emit) { emit(x % 5, 1) }
      export function reduce(k, ones, emit) { emit(k, ones.length) }`;
    const data = Array.from({ length: 100 }, (_, i) => i);
    expect(await results(m, { module, data, task_count: 4, reduce_tasks: 2 })).toEqual(
      [0, 1, 2, 3, 4].map((k) => ({ key: k, value: 20 })),
    );
    // The token a task of job-a holds, as its worker mints it.
    const task = bearer(await signedToken(SECRET, { role: 'worker', scope: 'shuffle', job_id: 'job-a' }));
    for (const w of workers) {
      const other = await http('GET', `${w.url}/api/shuffle/job-b/0.1/0`, undefined, task);
      expect(other.status, other.text).toBe(403);
      expect(other.json.error.code).toBe('forbidden');
      // Its own job's: allowed, and not there.
      expect((await http('GET', `${w.url}/api/shuffle/job-a/0.1/0`, undefined, task)).status).toBe(404);
    }
  });
});

const USER = 'weir-test-exec';
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('--executor-user (skipped unless run as root: it starts executors as another user)', () => {
  let m: MasterProc;
  let w: WorkerProc;
  let uid: number;
  let gid: number;

  beforeAll(async () => {
    if (spawnSync('id', ['-u', USER]).status !== 0) {
      execFileSync('useradd', ['--system', '--no-create-home', USER]);
    }
    uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim());
    // mkdtemp made the cluster's dir 0700: executors must pass through it to the shuffle dir.
    chmodSync(c.tmp, 0o711);
    m = await c.master('127.0.0.181', { env });
    const dataDir = join(c.tmp, 'as-user');
    // --allow-read names the data dir: Node's permission model lets tasks read it; the kernel does not.
    w = await c.worker('127.0.0.183', m, {
      env,
      maxTasks: 2,
      token: admin.authorization!.slice(7),
      args: ['--data-dir', dataDir, '--allow-read', `${dataDir},${c.tmp}`, '--executor-user', USER],
    });
  });

  it("runs tasks as that user, who can neither read the worker's data dir nor signal the worker", async () => {
    const probe = `import { readFileSync, readdirSync } from "node:fs";
      const code = (f) => { try { f(); return "ok" } catch (e) { return e.code } };
      export function map(x, emit) {
        emit("1 uid", process.getuid());
        emit("2 read LOCK", code(() => readFileSync(${JSON.stringify(join(c.tmp, 'as-user', 'LOCK'))})));
        emit("3 list data dir", code(() => readdirSync(${JSON.stringify(join(c.tmp, 'as-user'))})));
        emit("4 signal worker", code(() => process.kill(Number(process.env.WORKER_PID), 0)));
        emit("5 signal parent", code(() => process.kill(process.ppid, 0)));
      }`;
    const rows = await results(m, { module: probe, data: [1], env: { WORKER_PID: String(w.pid) } });
    expect(rows).toEqual([
      { key: '1 uid', value: uid },
      { key: '2 read LOCK', value: 'EACCES' },
      { key: '3 list data dir', value: 'EACCES' },
      // Refused before the kernel is asked, as in every executor…
      { key: '4 signal worker', value: 'ERR_ACCESS_DENIED' },
      { key: '5 signal parent', value: 'ERR_ACCESS_DENIED' },
    ]);
    // …and by the kernel too, for code that gets past that check: any process of that user.
    const asUser = spawnSync(
      process.execPath,
      ['-e', `try { process.kill(${w.pid}, 0); console.log("ok") } catch (e) { console.log(e.code) }`],
      { uid, gid, encoding: 'utf8' },
    );
    expect(asUser.stdout.trim(), asUser.stderr).toBe('EPERM');
  });

  it('still shuffles: map outputs are written as that user and served by the worker', async () => {
    const module = `export function map(x, emit) { emit(x % 3, 1) }
      export function reduce(k, ones, emit) { emit(k, ones.length) }`;
    const data = Array.from({ length: 30 }, (_, i) => i);
    expect(await results(m, { module, data, task_count: 3, reduce_tasks: 2 })).toEqual(
      [0, 1, 2].map((k) => ({ key: k, value: 10 })),
    );
    expect(await results(m, { operation: 'wordcount', data: ['a b', 'b'], reduce_tasks: 2 })).toEqual([
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
    ]);
  });

  it('is refused, saying why, for a user that does not exist and on a worker not running as root', () => {
    const start = (args: string[], as: string[] = []) =>
      spawnSync(
        as.length ? 'setpriv' : process.execPath,
        [
          ...as,
          ...(as.length ? [process.execPath] : []),
          WEIR_BIN,
          'worker',
          '--master',
          'http://127.0.0.185:9',
          ...args,
        ],
        { cwd: c.tmp, encoding: 'utf8', timeout: 30_000 },
      );
    const unknown = start(['--executor-user', 'no-such-weir-user']);
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toMatch(/no user 'no-such-weir-user'.*useradd/);
    const notRoot = start(
      ['--executor-user', USER],
      ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--'],
    );
    expect(notRoot.status).not.toBe(0);
    expect(notRoot.stderr).toMatch(/--executor-user needs a worker running as root/);
  });
});

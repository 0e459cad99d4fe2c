// User code contained: tasks run in executor processes that a task can end, never its
// worker, with none of the worker's environment and only the paths it is allowed
// (addresses 127.0.0.161–169 belong to this file).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  cliSync,
  http,
  sleep,
  submitJob,
  untilJobStatus,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { bearer, cliToken } from '../helpers/tokens.js';

const c = new Cluster('executors');
const SECRET = 'executors-test-secret-of-32-bytes-or-more';
const env = { JWT_SECRET: SECRET };
let m: MasterProc;
let w: WorkerProc;
let auth: Record<string, string>;

beforeAll(async () => {
  m = await c.master('127.0.0.161', { env });
  const token = cliToken(env);
  auth = bearer(token);
  w = await c.worker('127.0.0.162', m, { env, maxTasks: 2, token });
});

afterAll(() => c.cleanup());

const submit = (config: Json) => submitJob(m.url, { name: 'x', type: 'batch', config }, auth);

const failed = async (config: Json) =>
  (await untilJobStatus(m.url, await submit(config), 'failed', 60_000, auth)).error as Json;

async function results(config: Json): Promise<Json[]> {
  const id = await submit(config);
  await untilJobStatus(m.url, id, 'completed', 60_000, auth);
  return (await http('GET', `${m.url}/api/jobs/${id}/results`, undefined, auth)).json.results as Json[];
}

const workerStatus = async (of: WorkerProc = w) => (await http('GET', `${of.url}/api/status`, undefined, auth)).json;

/** A plain task still runs on the worker afterwards. */
const plainTaskRuns = async () =>
  expect(await results({ module: 'export function map(x, emit) { emit("x", x * 2) }', data: [21] })).toEqual([
    { key: 'x', value: 42 },
  ]);

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe('a task’s process', () => {
  it('holds none of the worker’s environment, only config.env', async () => {
    const rows = await results({
      module:
        'export function map(x, emit) { emit("secret", process.env.JWT_SECRET ?? null); emit("greeting", process.env.GREETING) }',
      data: [1],
      env: { GREETING: 'hello' },
    });
    expect(rows).toEqual([
      { key: 'greeting', value: 'hello' },
      { key: 'secret', value: null },
    ]);
  });

  it('killed by its task fails the job (counted, not re-run for ever); the worker lives on with its id', async () => {
    const before = await workerStatus();
    const error = await failed({
      module: 'export function map() { process.kill(process.pid, "SIGKILL") }',
      data: [1],
      max_retries: 0,
    });
    expect(error.message).toMatch(/killed by SIGKILL/);
    expect(w.exitCode).toBeUndefined();
    const after = await workerStatus();
    expect(after.worker_id).toBe(before.worker_id);
    await plainTaskRuns();
    expect((await workerStatus()).worker_id).toBe(before.worker_id);
  });

  it('ended by process.exit counts against max_retries, with the exit code', async () => {
    const error = await failed({ module: 'export function map() { process.exit(3) }', data: [1], max_retries: 1 });
    expect(error.message).toMatch(/exited with code 3/);
    expect(error.attempts).toBe(2);
  });

  it('ended by process.abort fails its task', async () => {
    const error = await failed({ module: 'export function map() { process.abort() }', data: [1], max_retries: 0 });
    expect(error.message).toMatch(/killed by SIGABRT/);
  });

  it('over memory_mb off the heap fails with memory_limit; the worker’s memory stays its own', async () => {
    const error = await failed({
      module: 'export function map(x, emit) { const b = Buffer.alloc(1.5 * 2 ** 30); emit("n", b.length) }',
      data: [1],
      memory_mb: 64,
      max_retries: 1,
    });
    expect(error.message).toMatch(/^memory_limit/);
    expect(rssMb(w.pid)).toBeLessThan(300);
    await plainTaskRuns();
  });

  it('refuses memory_mb under 64 at submission', async () => {
    const r = await http('POST', `${m.url}/api/jobs`, { name: 'x', type: 'batch', config: { memory_mb: 32 } }, auth);
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/memory_mb/);
  });
});

describe('what a task can reach', () => {
  it('reads a file inside the roots (the temp dir by default)', async () => {
    const path = join(c.tmp, 'inside.txt');
    writeFileSync(path, 'río\n');
    const mod = `import { readFileSync } from "node:fs"; export function map(x, emit) { emit("t", readFileSync(${JSON.stringify(path)}, "utf8")) }`;
    expect(await results({ module: mod, data: [1] })).toEqual([{ key: 't', value: 'río\n' }]);
  });

  it('is refused /etc/shadow, by the built-in grep and by a module, at once and without retries', async () => {
    const t0 = Date.now();
    const grep = await failed({ operation: 'grep', pattern: 'root', input: { path: '/etc/shadow' }, max_retries: 3 });
    expect(grep).toMatchObject({ name: 'permission_denied', attempts: 1 });
    expect(grep.message).toBe('permission_denied: /etc/shadow is outside --allow-read');
    const mod = await failed({
      module: 'import { readFileSync } from "node:fs"; export function map() { return readFileSync("/etc/shadow") }',
      data: [1],
      max_retries: 3,
    });
    expect(mod).toMatchObject({ name: 'permission_denied', attempts: 1 });
    expect(mod.message).toMatch(/\/etc\/shadow is outside --allow-read/);
    // Retries would back off 200 + 400 + 800 ms each.
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('is refused a write outside the roots, part files included', async () => {
    const mod = await failed({
      module:
        'import { writeFileSync } from "node:fs"; export function map() { writeFileSync("/etc/weir-was-here", "x") }',
      data: [1],
    });
    expect(mod.message).toMatch(/permission_denied: \/etc\/weir-was-here is outside --allow-write/);
    const part = await failed({ operation: 'sort', data: ['b', 'a'], output: { path: '/etc/weir-out' } });
    expect(part.message).toMatch(/permission_denied: \/etc\/weir-out.* is outside --allow-write/);
  });

  it('cannot start a process or a thread', async () => {
    const cp = await failed({
      module: 'import { exec } from "node:child_process"; export function map() { exec("id") }',
      data: [1],
    });
    expect(cp).toMatchObject({ name: 'permission_denied', message: 'permission_denied: tasks cannot start processes' });
    const thread = await failed({
      module: 'import { Worker } from "node:worker_threads"; export function map() { new Worker("1", { eval: true }) }',
      data: [1],
    });
    expect(thread).toMatchObject({
      name: 'permission_denied',
      message: 'permission_denied: tasks cannot start threads',
    });
  });

  it('refuses at submission a path the masters can tell is outside', async () => {
    const bad = async (config: Json) =>
      (await http('POST', `${m.url}/api/jobs`, { name: 'x', type: 'batch', config }, auth)).json.error;
    expect(await bad({ operation: 'grep', pattern: 'x', input: { path: '/tmp/../etc/shadow' } })).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/config\.input\.path/),
    });
    expect(await bad({ operation: 'grep', pattern: 'x', input: { path: 'etc/shadow' } })).toMatchObject({
      code: 'validation_failed',
    });
    expect(await bad({ operation: 'sort', data: ['a'], output: { path: '/tmp/x/../../etc' } })).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/config\.output\.path/),
    });
  });
});

describe('a worker with --allow-read, --allow-write and --allow-net', () => {
  let m2: MasterProc;
  const inDir = join(c.tmp, 'in');
  const outDir = join(c.tmp, 'out');
  const sub = async (config: Json) => {
    const r = await http('POST', `${m2.url}/api/jobs`, { name: 'x', type: 'batch', config });
    expect(r.status, r.text).toBe(201);
    return r.json.job_id as string;
  };
  const failedOn = async (config: Json) =>
    (await untilJobStatus(m2.url, await sub(config), 'failed', 60_000)).error as Json;

  beforeAll(async () => {
    mkdirSync(inDir, { recursive: true });
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(inDir, 'words.txt'), 'río weir\nweir\n');
    writeFileSync(join(c.tmp, 'outside.txt'), 'secret\n');
    m2 = await c.master('127.0.0.165');
    await c.worker('127.0.0.166', m2, {
      maxTasks: 2,
      args: ['--allow-read', inDir, '--allow-write', outDir, '--allow-net', 'example.invalid:8080'],
    });
  });

  it('reads and writes inside its roots, through the shuffle', async () => {
    const id = await sub({
      operation: 'wordcount',
      input: { path: join(inDir, 'words.txt') },
      output: { path: join(outDir, 'wc') },
    });
    await untilJobStatus(m2.url, id, 'completed', 60_000);
    expect(readFileSync(join(outDir, 'wc', 'part-00000'), 'utf8')).toMatch(/weir/);
  });

  it('is refused a file outside them, even in the temp dir, naming the flag', async () => {
    const outside = join(c.tmp, 'outside.txt');
    const e = await failedOn({ operation: 'grep', pattern: 's', input: { path: outside }, max_retries: 2 });
    expect(e).toMatchObject({
      name: 'permission_denied',
      attempts: 1,
      message: `permission_denied: ${outside} is outside --allow-read`,
    });
    const w = await failedOn({ operation: 'sort', data: ['b', 'a'], output: { path: join(c.tmp, 'not-out') } });
    expect(w.message).toMatch(/^permission_denied: .*not-out.* is outside --allow-write$/);
  });

  it('is refused a url input on a host it does not name', async () => {
    const e = await failedOn({ operation: 'grep', pattern: 's', input: { url: 'http://127.0.0.169:9/x.txt' } });
    expect(e).toMatchObject({
      name: 'permission_denied',
      message: 'permission_denied: http://127.0.0.169:9/x.txt is outside --allow-net',
    });
  });
});

describe('a worker killed with SIGKILL', () => {
  it('leaves none of its executors behind', async () => {
    const t = cliSync(['token'], { env }).stdout.trim();
    const doomed = await c.worker('127.0.0.163', m, { env, maxTasks: 2, token: t });
    const pids = await waitFor(
      'the worker’s executors to start',
      async () => {
        const s = await workerStatus(doomed);
        return s.executor_pids.length > 0 ? (s.executor_pids as number[]) : undefined;
      },
      15_000,
    );
    process.kill(doomed.pid, 'SIGKILL');
    await doomed.exited;
    const alive = (pid: number) => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    await waitFor('its executors to end', async () => (pids.some(alive) ? undefined : true), 5_000);
    await sleep(0);
  });
});

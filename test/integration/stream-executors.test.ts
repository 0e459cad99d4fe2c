// A streaming job's functions are user code contained like a batch task's: they run in the
// worker's executor processes, which they can end, never the worker; they see none of the
// worker's environment and only the paths it allows (addresses 127.0.0.171–179 belong to
// this file).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  GiveUp,
  http,
  submitJob,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { bearer, cliToken } from '../helpers/tokens.js';

const c = new Cluster('stream-executors');
const SECRET = 'stream-executors-secret-of-32-bytes-or-more';
const env = { JWT_SECRET: SECRET };
let m: MasterProc;
let w: WorkerProc;
let auth: Record<string, string>;

beforeAll(async () => {
  m = await c.master('127.0.0.171', { env });
  const token = cliToken(env);
  auth = bearer(token);
  // Room for every instance of the largest topology here (8).
  w = await c.worker('127.0.0.172', m, { env, maxTasks: 10, token });
});

afterAll(() => c.cleanup());

/** http source → `op` with `fn` → collect. */
const through = (op: string, fn = 'f') => ({
  spouts: [{ id: 'in', type: 'http' }],
  bolts: [
    { id: 'fn', op, fn, inputs: [{ from: 'in', grouping: 'shuffle' }] },
    { id: 'out', op: 'collect', inputs: [{ from: 'fn', grouping: 'shuffle' }] },
  ],
});

const submit = (config: Json) => submitJob(m.url, { name: 'stream', type: 'streaming', config }, auth);

/** POSTs events to the job's source, again while it is not placed yet (503) or saturated (429). */
async function post(id: string, events: Json[], timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `events for ${id} to be accepted`,
    async () => {
      const r = await http('POST', `${m.url}/api/jobs/${id}/events`, events, auth, timeoutMs);
      if (r.status !== 202 && r.status !== 429 && r.status !== 503 && r.status !== 409) {
        throw new GiveUp(`events: ${r.status} ${r.text}`);
      }
      return r.status === 202;
    },
    timeoutMs,
    100,
  );
}

async function rows(id: string, n: number): Promise<Json[]> {
  return waitFor(`${n} rows of ${id}`, async () => {
    const r = (await http('GET', `${m.url}/api/jobs/${id}/results?limit=100000`, undefined, auth)).json
      .results as Json[];
    return r.length >= n ? r : undefined;
  });
}

async function cancel(id: string): Promise<void> {
  await http('POST', `${m.url}/api/jobs/${id}/cancel`, undefined, auth);
}

/**
 * A job that fails on what it is sent. Events sent before its source is placed on the worker,
 * or while a failed instance is placed again, get 503 "send them again", and are sent again,
 * as a client would; those that reach it end it.
 */
async function failsOn(config: Json, events: Json[] = [{ n: 1 }]): Promise<Json> {
  const id = await submit(config);
  let sending = false;
  const job = await waitFor(
    `job ${id} to fail`,
    async () => {
      const r = (await http('GET', `${m.url}/api/jobs/${id}`, undefined, auth)).json;
      if (r.status === 'failed') return r;
      if (r.status === 'completed' || r.status === 'cancelled') throw new GiveUp(`job ${id} ended ${r.status}`);
      if (!sending) {
        sending = true;
        void http('POST', `${m.url}/api/jobs/${id}/events`, events, auth, 60_000)
          .catch(() => undefined)
          .finally(() => (sending = false));
      }
      return undefined;
    },
    90_000,
    100,
  );
  return job.error as Json;
}

const workerStatus = async () => (await http('GET', `${w.url}/api/status`, undefined, auth)).json;
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** A plain streaming job runs on the worker: its map doubles what it is sent. */
async function plainStreamRuns(extra: Json = {}): Promise<void> {
  const id = await submit({
    topology: through('map'),
    module: 'export function f(e) { return { n: e.n * 2 } }',
    ...extra,
  });
  await post(id, [{ n: 21 }]);
  expect(await rows(id, 1)).toEqual([{ n: 42 }]);
  await cancel(id);
}

/** Runs `{n}` events through a one-function job (`op` of `module`'s `f`): the `n`s of the first `count` rows, sorted. */
async function collectedNs(op: string, module: string, ns: number[], count: number): Promise<number[]> {
  const id = await submit({ topology: through(op), module });
  await post(
    id,
    ns.map((n) => ({ n })),
  );
  const got = (await rows(id, count)).map((r) => r.n as number).sort();
  await cancel(id);
  return got;
}

describe('a streaming function’s process', () => {
  it('holds none of the worker’s environment, only config.env', async () => {
    const id = await submit({
      topology: through('map'),
      module:
        'export function f() { return { secret: process.env.JWT_SECRET ?? null, greeting: process.env.GREETING } }',
      env: { GREETING: 'hello' },
    });
    await post(id, [{}]);
    expect(await rows(id, 1)).toEqual([{ secret: null, greeting: 'hello' }]);
    await cancel(id);
  });

  it('ended by process.exit fails its instance (counted, with the exit code); the worker lives on with its id', async () => {
    const before = await workerStatus();
    const error = await failsOn({
      topology: through('map'),
      module: 'export function f() { process.exit(3) }',
      max_retries: 1,
      ack_timeout_ms: 10_000,
    });
    expect(error.message).toMatch(/exited with code 3/);
    // The instance as `weir status` lists it: its place in its component, not the job's task index.
    expect(error.message).toMatch(/\(in component 'fn', instance 0\)$/);
    // Placed again once, which the same event (replayed) killed again.
    expect(error.attempts).toBe(2);
    expect(w.exitCode).toBeUndefined();
    expect((await workerStatus()).worker_id).toBe(before.worker_id);
    await plainStreamRuns();
    expect((await workerStatus()).worker_id).toBe(before.worker_id);
  });

  it('returning millions of events for one fails its instance, saying so; the worker goes on answering', async () => {
    const before = await workerStatus();
    const error = await failsOn({
      topology: through('flat_map'),
      module: 'export function f() { const e = {}; return Array.from({ length: 5_000_000 }, () => e) }',
      max_retries: 0,
      memory_mb: 1024,
      ack_timeout_ms: 10_000,
    });
    expect(error.message).toMatch(
      /'f' returned 5000000 events for 1; at most 65536 for one event of input: emit fewer per event/,
    );
    expect((await workerStatus()).worker_id).toBe(before.worker_id);
    await plainStreamRuns();
  });

  it('killed once mid-batch: the instance is placed again and the events it held are replayed to it, none lost', async () => {
    const marker = join(c.tmp, 'killed-once');
    const id = await submit({
      topology: through('map'),
      module: `import { existsSync, writeFileSync } from 'node:fs';
export function f(e) {
  if (!existsSync(${JSON.stringify(marker)})) { writeFileSync(${JSON.stringify(marker)}, 'x'); process.kill(process.pid, 'SIGKILL'); }
  return { n: e.n };
}`,
      ack_timeout_ms: 10_000,
    });
    // Answered once all three are processed: after the replay of the batch the kill took down.
    await post(id, [{ n: 1 }, { n: 2 }, { n: 3 }], 60_000);
    const got = await rows(id, 3);
    expect(got.map((r) => r.n).sort()).toEqual([1, 2, 3]);
    const job = (await http('GET', `${m.url}/api/jobs/${id}`, undefined, auth)).json;
    expect(job.status).toBe('running');
    await cancel(id);
  });

  it('over memory_mb off the heap fails with memory_limit; the worker’s memory stays its own', async () => {
    const error = await failsOn({
      topology: through('map'),
      module: 'export function f() { const b = Buffer.alloc(1.5 * 2 ** 30); return { n: b.length } }',
      memory_mb: 64,
      max_retries: 0,
    });
    expect(error.message).toMatch(/^memory_limit/);
    expect(rssMb(w.pid)).toBeLessThan(300);
    // The limit counts the process's baseline, and a function that allocates little fits the least.
    await plainStreamRuns({ memory_mb: 64 });
  });

  it('that throws on an event drops that event (counted) and goes on', async () => {
    const module = 'export function f(e) { if (e.n === 2) throw new Error("two"); return true }';
    expect(await collectedNs('filter', module, [1, 2, 3], 2)).toEqual([1, 3]);
  });

  it('a module whose top-level code never finishes fails the job saying so, not as its source’s timeout', async () => {
    const error = await failsOn({
      topology: through('map'),
      module: 'await new Promise(() => {});\nexport function f(e) { return e }',
      max_retries: 0,
      ack_timeout_ms: 10_000,
    });
    expect(error.message).toMatch(/the job's module did not finish loading \(task timed out after \d+ ms\)/);
  });

  it('an async function is awaited: its map emits what it resolves to, its filter keeps what resolves truthy', async () => {
    const map = 'export async function f(e) { await new Promise((r) => setTimeout(r, 5)); return { n: e.n * 2 } }';
    expect(await collectedNs('map', map, [1, 2], 2)).toEqual([2, 4]);
    expect(await collectedNs('filter', 'export async function f(e) { return e.n > 1 }', [1, 2, 3], 2)).toEqual([2, 3]);
  });

  it('refuses memory_mb under 64 and an env that is not strings at submission', async () => {
    for (const bad of [{ memory_mb: 32 }, { env: { A: 1 } }]) {
      const r = await http(
        'POST',
        `${m.url}/api/jobs`,
        {
          name: 'x',
          type: 'streaming',
          config: { topology: through('map'), module: 'export function f(e) { return e }', ...bad },
        },
        auth,
      );
      expect(r.status).toBe(400);
      expect(r.json.error.message).toMatch(Object.keys(bad)[0]!);
    }
  });
});

describe('what a streaming function can reach', () => {
  it('is refused a file outside the roots: the job fails at once, not retried, naming the path and the flag', async () => {
    const error = await failsOn({
      topology: through('map'),
      module:
        'import { readFileSync } from "node:fs"; export function f() { return { t: readFileSync("/etc/shadow", "utf8") } }',
      max_retries: 3,
    });
    expect(error).toMatchObject({ name: 'permission_denied', attempts: 1 });
    expect(error.message).toMatch(/^permission_denied: \/etc\/shadow is outside --allow-read/);
  });

  it('cannot start a process', async () => {
    const error = await failsOn({
      topology: through('flat_map'),
      module:
        'import { execSync } from "node:child_process"; export function f() { return [{ id: String(execSync("id")) }] }',
    });
    expect(error).toMatchObject({ name: 'permission_denied' });
    expect(error.message).toMatch(/^permission_denied: tasks cannot start processes/);
  });
  it('shares no state with another job’s functions: what one leaves on globalThis, the other never sees', async () => {
    const leaves = await submit({
      topology: through('map'),
      module: 'export function f(e) { globalThis.left = "by a"; Array.prototype.at = () => "patched"; return e }',
    });
    await post(leaves, [{ n: 1 }]);
    await rows(leaves, 1);
    const looks = await submit({
      topology: through('map'),
      module: 'export function f() { return { left: globalThis.left ?? null, at: [1].at(0) } }',
    });
    await post(looks, [{}]);
    expect(await rows(looks, 1)).toEqual([{ left: null, at: 1 }]);
    await cancel(leaves);
    await cancel(looks);
  });
});

describe('a streaming job with functions', () => {
  it('collects exactly what the same functions give in one process', async () => {
    const module = `
export function tag(e) { return { n: e.n, odd: e.n % 2 === 1 } }
export function keep(e) { return e.n % 3 !== 0 }
export function spread(e) { return e.odd ? [{ n: e.n, part: 'a' }, { n: e.n, part: 'b' }] : [{ n: e.n, part: 'a' }] }`;
    const id = await submit({
      module,
      topology: {
        spouts: [{ id: 'in', type: 'http', parallelism: 2 }],
        bolts: [
          { id: 'tag', op: 'map', fn: 'tag', parallelism: 2, inputs: [{ from: 'in', grouping: 'shuffle' }] },
          { id: 'keep', op: 'filter', fn: 'keep', inputs: [{ from: 'tag', grouping: 'shuffle' }] },
          {
            id: 'spread',
            op: 'flat_map',
            fn: 'spread',
            parallelism: 2,
            inputs: [{ from: 'keep', grouping: 'shuffle' }],
          },
          { id: 'out', op: 'collect', inputs: [{ from: 'spread', grouping: 'global' }] },
        ],
      },
    });
    const events = Array.from({ length: 3000 }, (_, i) => ({ n: i }));
    await Promise.all([0, 1, 2].map((p) => post(id, events.slice(p * 1000, (p + 1) * 1000))));
    const expected: Json[] = [];
    for (const e of events) {
      const t = { n: e.n, odd: e.n % 2 === 1 };
      if (t.n % 3 === 0) continue;
      expected.push({ n: t.n, part: 'a' });
      if (t.odd) expected.push({ n: t.n, part: 'b' });
    }
    const order = (a: Json, b: Json) => a.n - b.n || String(a.part).localeCompare(String(b.part));
    const got = await rows(id, expected.length);
    expect(got.sort(order)).toEqual(expected.sort(order));
    await cancel(id);
  });
});

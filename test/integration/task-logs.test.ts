// What user code prints (console.*, process.stdout/stderr) is kept per task attempt on the
// masters, served by GET /api/jobs/ID/logs and `weir logs`, and outlives its worker
// (addresses 127.0.0.3–127.0.0.10 belong to this file).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_CAP_BYTES, LOG_CUT_MARKER } from '../../src/protocol/task-log.js';
import {
  Cluster,
  cliSync,
  freePorts,
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
import { bearer } from '../helpers/tokens.js';
import { CHROMIUM, hasChromium, launchChromium } from '../../scripts/chromium.js';

// The functions handed to the page run in the browser; this project's types are Node's.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;

const c = new Cluster('task-logs');
let m: MasterProc;
let w: WorkerProc;

beforeAll(async () => {
  m = await c.master('127.0.0.3');
  // Room for the streaming job's four instances.
  w = await c.worker('127.0.0.4', m, { maxTasks: 4 });
});

afterAll(() => c.cleanup());

interface Line {
  task: number;
  attempt: number;
  stream: string;
  time: string;
  text: string;
  component?: string;
  instance?: number;
}

const submit = (url: string, config: Json, name = 'logs') => submitJob(url, { name, type: 'batch', config });

/** Every line of a job's logs, page by page (`query`: task=, attempt=, limit=). */
async function allLines(url: string, id: string, query = ''): Promise<Line[]> {
  const lines: Line[] = [];
  let cursor: string | null = null;
  for (let first = true; first || cursor; first = false) {
    const q: string = [query, cursor ? `cursor=${cursor}` : ''].filter(Boolean).join('&');
    const r = await http('GET', `${url}/api/jobs/${id}/logs${q ? `?${q}` : ''}`);
    expect(r.status, r.text).toBe(200);
    lines.push(...r.json.lines);
    cursor = r.json.next_cursor;
  }
  return lines;
}

const texts = (lines: Line[]) => lines.map((l) => l.text);

describe('GET /api/jobs/ID/logs', () => {
  it('has what map tasks printed with console.log and console.error, each line with its task, attempt, stream and time', async () => {
    const id = await submit(m.url, {
      module: `export function map(r, emit) {
        console.log('out', r);
        console.error('err', r);
        process.stdout.write('partial ' + r);
        process.stdout.write(' line\\n');
        emit(r, 1);
      }`,
      data: [0, 1, 2, 3, 4, 5],
      task_count: 3,
    });
    await untilJobStatus(m.url, id, 'completed');
    const lines = await allLines(m.url, id);
    expect(lines).toHaveLength(18);
    for (let r = 0; r < 6; r++) {
      const out = lines.find((l) => l.text === `out ${r}`)!;
      const err = lines.find((l) => l.text === `err ${r}`)!;
      const partial = lines.find((l) => l.text === `partial ${r} line`)!;
      expect(out).toMatchObject({ stream: 'stdout', attempt: 1 });
      expect(err).toMatchObject({ stream: 'stderr', attempt: 1, task: out.task });
      expect(partial).toMatchObject({ stream: 'stdout', task: out.task });
      expect(out.task).toBeGreaterThanOrEqual(0);
      expect(out.task).toBeLessThan(3);
      expect(Date.parse(out.time)).toBeGreaterThan(Date.now() - 120_000);
    }
    // A task's lines alone, and one page at a time.
    const t0 = await allLines(m.url, id, 'task=0&limit=1');
    expect(t0.length).toBeGreaterThan(0);
    expect(t0.every((l) => l.task === 0)).toBe(true);
    expect(t0).toEqual(lines.filter((l) => l.task === 0));
  });

  it('keeps the lines of every attempt of a task that failed and was retried', async () => {
    const flag = join(c.tmp, `retry-${Date.now()}`);
    const id = await submit(m.url, {
      module: `import { existsSync, writeFileSync } from 'node:fs';
      export function map(r, emit) {
        if (!existsSync(${JSON.stringify(flag)})) {
          writeFileSync(${JSON.stringify(flag)}, '');
          console.log('first try');
          throw new Error('boom');
        }
        console.log('second try');
        emit(r, 1);
      }`,
      data: [1],
      task_count: 1,
      max_retries: 2,
    });
    await untilJobStatus(m.url, id, 'completed');
    expect(texts(await allLines(m.url, id, 'task=0&attempt=1'))).toEqual(['first try']);
    expect(texts(await allLines(m.url, id, 'task=0&attempt=2'))).toEqual(['second try']);
  });

  it('cuts a log at 1 MiB with a marker line when a task prints 2 MiB', async () => {
    const id = await submit(m.url, {
      module: `export function map(r, emit) {
        for (let i = 0; i < 2048; i++) console.log(String(i).padEnd(1023, '.'));
        emit(r, 1);
      }`,
      data: [1],
      task_count: 1,
    });
    await untilJobStatus(m.url, id, 'completed');
    const lines = await allLines(m.url, id, 'limit=300');
    expect(lines[lines.length - 1]).toMatchObject({ text: LOG_CUT_MARKER, stream: 'stderr' });
    const kept = lines.slice(0, -1);
    const bytes = kept.reduce((n, l) => n + l.text.length, 0);
    expect(bytes).toBeLessThanOrEqual(LOG_CAP_BYTES);
    expect(bytes).toBeGreaterThan(0.9 * LOG_CAP_BYTES);
    // In order, none lost before the cut.
    expect(kept.map((l) => Number(l.text.replace(/\.+$/, '')))).toEqual(kept.map((_, i) => i));
  });

  it('bounds its worker’s memory when a task prints 100 MiB in a loop: the log is cut at 1 MiB', async () => {
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${w.pid}/status`, 'utf8'))![1]) * 1024;
    const before = rss();
    const id = await submit(m.url, {
      module: `export function map(r, emit) {
        const line = 'x'.repeat(1023);
        for (let i = 0; i < 100 * 1024; i++) console.log(line);
        emit(r, 1);
      }`,
      data: [1],
      task_count: 1,
    });
    await untilJobStatus(m.url, id, 'completed');
    const lines = await allLines(m.url, id, 'limit=10000');
    expect(lines[lines.length - 1]!.text).toBe(LOG_CUT_MARKER);
    expect(rss() - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('keeps what a task printed before it called process.exit, or ran out of memory', async () => {
    const exits = await submit(m.url, {
      module: `export function map(r, emit) { console.log('before exit'); console.error('bye'); process.exit(3); }`,
      data: [1],
      task_count: 1,
      max_retries: 0,
    });
    const oom = await submit(m.url, {
      module: `export function map(r, emit) {
        console.log('before the memory ran out');
        const hog = [];
        for (;;) hog.push(new Array(1e6).fill(r));
      }`,
      data: [1],
      task_count: 1,
      max_retries: 0,
      memory_mb: 128,
    });
    await untilJobStatus(m.url, exits, 'failed');
    await untilJobStatus(m.url, oom, 'failed');
    expect(texts(await allLines(m.url, exits))).toEqual(['before exit', 'bye']);
    expect(texts(await allLines(m.url, oom))).toEqual(['before the memory ran out']);
  });

  it('are deleted with their job: 404 from then on', async () => {
    const id = await submit(m.url, {
      module: `export function map(r, emit) { console.log('soon gone'); emit(r, 1); }`,
      data: [1],
      task_count: 1,
    });
    await untilJobStatus(m.url, id, 'completed');
    expect(texts(await allLines(m.url, id))).toEqual(['soon gone']);
    expect((await http('DELETE', `${m.url}/api/jobs/${id}`)).status).toBe(204);
    const r = await http('GET', `${m.url}/api/jobs/${id}/logs`);
    expect(r.status).toBe(404);
    expect(r.json.error.code).toBe('not_found');
  });

  it('refuses bad parameters with 400 and an unknown job with 404', async () => {
    const id = await submit(m.url, { operation: 'noop', task_count: 1 });
    for (const q of [
      'task=-1',
      'task=x',
      'attempt=0&task=1',
      'attempt=1',
      'cursor=zzz',
      'limit=0',
      'limit=100001',
      'follow=maybe',
    ]) {
      const r = await http('GET', `${m.url}/api/jobs/${id}/logs?${q}`);
      expect(r.status, q).toBe(400);
      expect(['bad_request', 'validation_failed'], q).toContain(r.json.error.code);
    }
    const r = await http('GET', `${m.url}/api/jobs/job_nope/logs`);
    expect(r.status).toBe(404);
  });
});

describe('weir logs', () => {
  it('prints each line as `task N #ATTEMPT STREAM TIME text`', async () => {
    const id = await submit(m.url, {
      module: `export function map(r, emit) { console.error('cli line', r); emit(r, 1); }`,
      data: [7],
      task_count: 1,
    });
    await untilJobStatus(m.url, id, 'completed');
    const r = await c.cli(['--master', m.url, 'logs', id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^task 0 #1 stderr \d\d:\d\d:\d\d\.\d\d\d cli line 7\n$/);
    const bad = await c.cli(['--master', m.url, 'logs', id, '--attempt', '1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--attempt needs --task/);
    const unknown = await c.cli(['--master', m.url, 'logs', 'job_nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not_found/);
  });
});

/** The NDJSON of `GET …/logs?follow=1`, read as it arrives, and the job's status when the first line came. */
async function follow(url: string, id: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${url}/api/jobs/${id}/logs?follow=1`, { headers, signal: AbortSignal.timeout(60_000) });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/application\/x-ndjson/);
  const decoder = new TextDecoder();
  let text = '';
  let statusAtFirst: string | undefined;
  for await (const chunk of r.body!) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    if (statusAtFirst === undefined && text.trim()) {
      statusAtFirst = (await http('GET', `${url}/api/jobs/${id}`, undefined, headers)).json.status;
    }
  }
  const lines = text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Line);
  return { lines, statusAtFirst };
}

describe('GET /api/jobs/ID/logs?follow=1', () => {
  it('streams the lines of a running job as NDJSON, and ends when the job ends', async () => {
    const id = await submit(m.url, {
      module: `export function map(r, emit) {
        console.log('task of', r, 'starts');
        if (r === 'slow') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
        console.log('task of', r, 'ends');
        emit(r, 1);
      }`,
      data: ['quick', 'slow'],
      task_count: 2,
    });
    const { lines, statusAtFirst } = await follow(m.url, id);
    expect(statusAtFirst).toBe('running');
    expect((await http('GET', `${m.url}/api/jobs/${id}`)).json.status).toBe('completed');
    expect(texts(lines).sort()).toEqual(
      ['task of quick starts', 'task of quick ends', 'task of slow starts', 'task of slow ends'].sort(),
    );
    expect(lines.every((l) => l.attempt === 1 && l.stream === 'stdout')).toBe(true);
  });
});

describe('logs on three masters, when their worker and then the leader are killed', () => {
  const hosts = ['127.0.0.5', '127.0.0.6', '127.0.0.7'];
  const masters: MasterProc[] = [];
  let w3: WorkerProc;

  beforeAll(async () => {
    const ports = await freePorts(hosts);
    const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
    masters.push(
      ...(await Promise.all(hosts.map((h, i) => c.master(h, { port: ports[i]!, args: ['--peers', peers] })))),
    );
    await untilAgreedLeader(
      masters.map((x) => x.url),
      { procs: masters },
    );
    w3 = await c.worker('127.0.0.8', masters[0]!, { maxTasks: 2, masters: masters.map((x) => x.url) });
  });

  it('are still served by the masters left: kill -9 of the worker, then of the leader', async () => {
    const urls = masters.map((x) => x.url);
    const id = await submitRetrying(urls[0]!, {
      name: 'survivor',
      type: 'batch',
      config: {
        module: `export function map(r, emit) { console.log('printed by', r); console.error('and to stderr'); emit(r, 1); }`,
        data: ['a', 'b'],
        task_count: 2,
      },
    });
    await untilJobStatus(urls[0]!, id, 'completed');
    await c.stop(w3, 'SIGKILL');
    const { leaderId, leaderUrl, term } = await untilAgreedLeader(urls, { procs: masters });
    const leader = masters.find((x) => x.url === leaderUrl)!;
    expect(leader).toBeDefined();
    await c.stop(leader, 'SIGKILL');
    const left = urls.filter((u) => u !== leaderUrl);
    const agreed = await untilAgreedLeader(left, { minTerm: term + 1 });
    expect(agreed.leaderId).not.toBe(leaderId);
    for (const url of left) {
      const lines = await waitFor(`logs from ${url}`, async () => {
        const r = await http('GET', `${url}/api/jobs/${id}/logs`);
        return r.status === 200 ? (r.json.lines as Line[]) : undefined;
      });
      expect(texts(lines).sort()).toEqual(['and to stderr', 'and to stderr', 'printed by a', 'printed by b']);
    }
  });
});

describe('logs with JWT_SECRET set', () => {
  const env = { JWT_SECRET: 'task-logs-test-secret-0123456789abcdef' };
  let sm: MasterProc;
  let token: string;

  beforeAll(async () => {
    const t = cliSync(['token'], { env });
    expect(t.code, t.stderr).toBe(0);
    token = t.stdout.trim();
    sm = await c.master('127.0.0.9', { env });
    await c.worker('127.0.0.10', sm, { env, maxTasks: 1, token });
  });

  it('are read with a client token, by REST and by `weir logs`, and refused without one (401)', async () => {
    const r = await http(
      'POST',
      `${sm.url}/api/jobs`,
      {
        name: 'secret-logs',
        type: 'batch',
        config: {
          module: `export function map(r, emit) { console.log('for token holders'); emit(r, 1); }`,
          data: [1],
          task_count: 1,
        },
      },
      bearer(token),
    );
    expect(r.status, r.text).toBe(201);
    const id = r.json.job_id as string;
    await untilJobStatus(sm.url, id, 'completed', 60_000, bearer(token));
    const ok = await http('GET', `${sm.url}/api/jobs/${id}/logs`, undefined, bearer(token));
    expect(ok.status, ok.text).toBe(200);
    expect(texts(ok.json.lines)).toEqual(['for token holders']);
    const none = await http('GET', `${sm.url}/api/jobs/${id}/logs`);
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('unauthorized');
    const followed = await fetch(`${sm.url}/api/jobs/${id}/logs?follow=1`);
    expect(followed.status).toBe(401);
    const cli = await c.cli(['--master', sm.url, 'logs', id], { env: { WEIR_TOKEN: token } });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^task 0 #1 stdout \S+ for token holders\n$/);
  });
});

describe('a streaming job', () => {
  it('has what its functions print, by component and instance, while it runs', async () => {
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'stream-logs',
      type: 'streaming',
      config: {
        topology: {
          spouts: [{ id: 'in', type: 'http' }],
          bolts: [
            { id: 'shout', op: 'map', fn: 'shout', parallelism: 2, inputs: [{ from: 'in', grouping: 'shuffle' }] },
            { id: 'out', op: 'collect', inputs: [{ from: 'shout', grouping: 'shuffle' }] },
          ],
        },
        module: `export function shout(e) { console.log('shouting', e.word); return { id: e.word, word: e.word.toUpperCase() }; }`,
      },
    });
    expect(r.status, r.text).toBe(201);
    const id = r.json.job_id as string;
    const words = ['a', 'b', 'c', 'd', 'e', 'f'];
    await waitFor(`events for ${id} to be accepted`, async () => {
      const p = await http(
        'POST',
        `${m.url}/api/jobs/${id}/events`,
        words.map((word) => ({ word })),
      );
      if (p.status !== 202 && p.status !== 503 && p.status !== 409 && p.status !== 429) throw new Error(p.text);
      return p.status === 202;
    });
    const lines = await waitFor(`the instances' lines of ${id}`, async () => {
      const got = await allLines(m.url, id);
      return got.length >= words.length ? got : undefined;
    });
    expect(texts(lines).sort()).toEqual(words.map((w) => `shouting ${w}`));
    for (const l of lines) {
      expect(l.component).toBe('shout');
      expect([0, 1]).toContain(l.instance);
      expect(l.stream).toBe('stdout');
    }
    const cli = await c.cli(['--master', m.url, 'logs', id]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^task \d+ \(shout\[[01]\]\) #1 stdout \S+ shouting a$/m);
    expect((await http('POST', `${m.url}/api/jobs/${id}/cancel`)).status).toBe(200);
  });
});

const NO_BROWSER = !hasChromium() && process.env.CI !== 'true';

describe.skipIf(NO_BROWSER)(
  `the job's page on the dashboard${NO_BROWSER ? ` (skipped: no chromium at ${CHROMIUM})` : ''}`,
  () => {
    it('shows the logs, live while the job runs, and only one task’s when asked', async () => {
      const browser = await launchChromium();
      try {
        const id = await submit(m.url, {
          module: `export function map(r, emit) {
          console.log('page line', r);
          if (r === 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
          emit(r, 1);
        }`,
          data: [0, 1],
          task_count: 2,
        });
        const page = await browser.newPage();
        await page.goto(`${m.url}/jobs/${id}`);
        const shown = (re: RegExp) =>
          page.waitForFunction(
            (src: string) => new RegExp(src).test(document.querySelector('[data-logs]')?.textContent ?? ''),
            { timeout: 30_000, polling: 200 },
            re.source,
          );
        // Task 0's line arrives while task 1 still sleeps; task 1's once it has ended.
        await shown(/task 0 #1 page line 0/);
        await shown(/task 1 #1 page line 1/);
        await page.type('[data-logs-task]', '1');
        await page.waitForFunction(
          () => {
            const t = document.querySelector('[data-logs]')?.textContent ?? '';
            return t.includes('page line 1') && !t.includes('page line 0');
          },
          { timeout: 30_000, polling: 200 },
        );
      } finally {
        await browser.close();
      }
    });
  },
);

// The dashboard in a real browser (Debian's chromium through puppeteer-core) against a real
// cluster: what the page shows, live, and what it does (addresses 127.0.0.243–245 belong to
// this file). Without chromium the spec is skipped, saying why — except under CI=true, where
// it fails: CI installs chromium (.ci/run).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { CHROMIUM, hasChromium, launchChromium } from '../../scripts/chromium.js';
import { Cluster, cliSync, http, untilJobStatus, type MasterProc, type WorkerProc } from '../helpers/cluster.js';

// The functions handed to the page run in the browser; this project's types are Node's.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any, location: any, localStorage: any;

const MISSING = !hasChromium();
const MUST = process.env.CI === 'true';
const reason = MISSING ? ` (skipped: no chromium at ${CHROMIUM}; apt-get install chromium)` : '';
if (MISSING && !MUST) console.warn(`dashboard.test.ts${reason}`);

const c = new Cluster('dashboard');
const shots = mkdtempSync(join(tmpdir(), 'weir-dashboard-shots-'));
const SECRET = 'dashboard-spec-secret-of-32-bytes-or-more!';
let m: MasterProc;
let w: WorkerProc;
let secured: MasterProc;
let browser: Browser;
let page: Page;

/** On failure, a screenshot of what the page showed, its path printed. */
function shootOnFail(p: () => Page | undefined, name: string) {
  onTestFailed(async () => {
    const target = p();
    if (!target) return;
    const path = join(shots, `${name}.png`);
    await target.screenshot({ path, fullPage: true }).catch(() => {});
    console.error(`dashboard spec '${name}' failed: the page as it was is at ${path}`);
  });
}

async function submit(config: object, name = 'dash'): Promise<string> {
  const r = await http('POST', `${m.url}/api/jobs`, { name, type: 'batch', config });
  expect(r.status, r.text).toBe(201);
  return r.json.job_id as string;
}

/** The text of the first element matching `selector`, once it matches `re`. */
async function textOf(selector: string, re: RegExp, on: Page = page, timeout = 30_000): Promise<string> {
  const handle = await on.waitForFunction(
    (sel: string, src: string, flags: string) => {
      const t = document.querySelector(sel)?.textContent;
      return typeof t === 'string' && new RegExp(src, flags).test(t) ? t : null;
    },
    { timeout, polling: 'mutation' },
    selector,
    re.source,
    re.flags,
  );
  return (await handle.jsonValue()) as string;
}

/** Clicks the button whose text is `label` (the page's two-step buttons: once to arm, once to act). */
async function clickButton(label: string): Promise<void> {
  const btn = await page.waitForFunction(
    (l: string) => [...document.querySelectorAll('button')].find((b) => b.textContent?.trim() === l && !b.disabled),
    {},
    label,
  );
  await btn.asElement()!.click();
}

describe.skipIf(MISSING && !MUST)(`the dashboard in a browser${reason}`, () => {
  beforeAll(async () => {
    if (MISSING)
      throw new Error(`CI=true and no chromium at ${CHROMIUM}: .ci/run installs it (apt-get install chromium)`);
    [m, secured, browser] = await Promise.all([
      c.master('127.0.0.243'),
      c.master('127.0.0.245', { env: { JWT_SECRET: SECRET } }),
      launchChromium(),
    ]);
    w = await c.worker('127.0.0.244', m, { maxTasks: 4 });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
  });

  afterAll(async () => {
    await browser?.close();
    await c.cleanup();
  });

  it('serves the page at / and at a deep link, with its assets, without a token', async () => {
    for (const path of ['/', '/jobs/job-none']) {
      const r = await http('GET', `${secured.url}${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/text\/html/);
      const script = /src="(\/assets\/[^"]+\.js)"/.exec(r.text)?.[1];
      expect(script).toBeDefined();
      const js = await http('GET', `${secured.url}${script}`);
      expect(js.status).toBe(200);
      expect(js.headers.get('content-type')).toMatch(/javascript/);
      expect(js.headers.get('x-content-type-options')).toBe('nosniff');
      expect(js.headers.get('cache-control')).toMatch(/immutable/);
    }
    // The data is not open: the API still wants the token.
    expect((await http('GET', `${secured.url}/api/jobs`)).status).toBe(401);
    expect((await http('GET', `${secured.url}/assets/../package.json`)).status).toBe(404);
  });

  it('answers a poll that finds nothing changed with 304 and no body, and a changed one in full', async () => {
    for (const path of ['/api/workers?consistency=stale', '/api/cluster/masters?consistency=stale']) {
      const r = await http('GET', `${m.url}${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('etag'), path).toMatch(/^W\/"[A-Za-z0-9_-]+"$/);
    }
    // No job runs yet: two polls of the jobs list find the same list.
    const path = '/api/jobs?limit=100&consistency=stale';
    const first = await http('GET', `${m.url}${path}`);
    const again = await http('GET', `${m.url}${path}`, undefined, { 'if-none-match': first.headers.get('etag')! });
    expect(again.status).toBe(304);
    expect(again.text).toBe('');
    const before = await http('GET', `${m.url}/api/jobs?consistency=stale`);
    await submit({ operation: 'multiply', factor: 1, task_count: 1 }, 'etag');
    const after = await http('GET', `${m.url}/api/jobs?consistency=stale`, undefined, {
      'if-none-match': before.headers.get('etag')!,
    });
    expect(after.status).toBe(200);
    expect(after.json.jobs.some((j: { name: string }) => j.name === 'etag')).toBe(true);
  });

  it('shows the masters, the workers and the jobs', async () => {
    shootOnFail(() => page, 'overview');
    const done = await submit({ operation: 'multiply', factor: 3, task_count: 5 }, 'Multiplicar');
    await untilJobStatus(m.url, done, 'completed');
    await page.goto(`${m.url}/`);
    expect(await textOf(`[data-master="${m.url}"]`, /leader/)).toContain('healthy');
    await textOf(`[data-worker="${w.address}"]`, /active/);
    const row = await textOf(`[data-job="${done}"]`, /completed/);
    expect(row).toContain('Multiplicar');
    expect(row).toContain('5/5');
  });

  it('follows a job as its progress moves, and filters the jobs', async () => {
    shootOnFail(() => page, 'progress');
    // 24 tasks of 600 ms on 4 slots: about 4 s, several polls of the page.
    const id = await submit({ operation: 'sleep', ms: 600, task_count: 24 }, 'sleepers');
    const sel = `[data-job="${id}"] [data-progress]`;
    const midway = await textOf(sel, /^\s*([1-9]|1[0-9]|2[0-3])\/24\s*$/);
    expect(midway).toMatch(/\/24$/);
    await textOf(sel, /^\s*24\/24\s*$/);
    await textOf(`[data-job="${id}"] [data-status]`, /^completed$/);

    await page.type('input[type="search"]', 'sleepers');
    await page.waitForFunction(() => document.querySelectorAll('[data-job]').length === 1);
    await page.click('input[type="search"]', { count: 3 });
    await page.keyboard.press('Backspace');
    await page.waitForFunction(() => document.querySelectorAll('[data-job]').length >= 2);
  });

  it('draws the charts and moves by the change stream, not by reading the jobs list again', async () => {
    shootOnFail(() => page, 'live');
    const refused: string[] = [];
    const onConsole = (msg: { type(): string; text(): string }) => {
      if (/Content Security Policy|Refused/.test(msg.text())) refused.push(msg.text());
    };
    page.on('console', onConsole);
    try {
      await page.goto(`${m.url}/`);
      await textOf('#live-state', /^live$/);
      await page.waitForSelector('#chart-throughput canvas');
      await page.waitForSelector('#chart-running canvas');
      const reads: string[] = [];
      page.on('request', (r) => void (r.url().includes('/api/jobs?') && reads.push(r.url())));
      const id = await submit({ operation: 'sleep', ms: 300, task_count: 12 }, 'streamed');
      // The new job's row and its progress come in frames of GET /api/live.
      await textOf(`[data-job="${id}"] [data-progress]`, /^\s*12\/12\s*$/);
      await textOf(`[data-job="${id}"] [data-status]`, /^completed$/);
      expect(reads).toEqual([]);
      await page.waitForFunction(() => Number(document.querySelector('#chart-throughput')?.dataset.points) >= 2);

      await page.goto(`${m.url}/jobs/${id}`);
      await page.waitForSelector('#chart-progress canvas');
      expect(refused).toEqual([]);

      // A job's page: its tasks move by the frames too (each carries the tasks that moved).
      const slow = await submit({ operation: 'sleep', ms: 500, task_count: 24 }, 'followed');
      await page.goto(`${m.url}/jobs/${slow}`);
      await textOf('#live-state', /^live$/);
      const taskReads: string[] = [];
      const onTasks = (r: { url(): string }) =>
        void (r.url().includes(`/api/jobs/${slow}/tasks`) && taskReads.push(r.url()));
      await textOf('#tasks tbody', /completed/);
      page.on('request', onTasks);
      try {
        await page.waitForFunction(
          () =>
            [...document.querySelectorAll('#tasks tbody [data-status]')].filter((e) => e.textContent === 'completed')
              .length === 24,
          // Under the 30 s a live page's panels wait before they read their routes regardless.
          { timeout: 20_000, polling: 'mutation' },
        );
      } finally {
        page.off('request', onTasks);
      }
      // At most the one read the page makes as its stream comes up (it may land here).
      expect(taskReads.length).toBeLessThanOrEqual(1);
    } finally {
      page.off('console', onConsole);
    }
  });

  it('closes its stream while the tab is hidden, and opens it again when shown', async () => {
    shootOnFail(() => page, 'hidden');
    await page.goto(`${m.url}/`);
    await textOf('#live-state', /^live$/);
    const opened: string[] = [];
    const cut: string[] = [];
    const onRequest = (r: { url(): string }) => void (r.url().includes('/api/live') && opened.push(r.url()));
    const onFailed = (r: { url(): string }) => void (r.url().includes('/api/live') && cut.push(r.url()));
    page.on('request', onRequest);
    page.on('requestfailed', onFailed);
    try {
      const setHidden = (hidden: boolean) =>
        page.evaluate((h) => {
          Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
          document.dispatchEvent(new Event('visibilitychange'));
        }, hidden);
      await setHidden(true);
      await page.waitForFunction(() => !/^live$/.test(document.querySelector('#live-state')?.textContent ?? ''));
      expect(cut.length).toBeGreaterThanOrEqual(1);
      expect(opened).toEqual([]);
      await setHidden(false);
      await textOf('#live-state', /^live$/);
      expect(opened.length).toBe(1);
    } finally {
      page.off('request', onRequest);
      page.off('requestfailed', onFailed);
    }
  });

  it("opens a job's page: its tasks, the timeline of runs per worker and its results", async () => {
    shootOnFail(() => page, 'job-page');
    const id = await submit({ operation: 'multiply', factor: 2, task_count: 6 }, 'doubling');
    await untilJobStatus(m.url, id, 'completed');
    await page.goto(`${m.url}/`);
    await page.waitForSelector(`[data-job="${id}"] a`);
    await page.click(`[data-job="${id}"] a`);
    await page.waitForSelector(`[data-job-page="${id}"]`);
    expect(new URL(page.url()).pathname).toBe(`/jobs/${id}`);
    await page.waitForFunction(() => document.querySelectorAll('#tasks tbody tr').length === 6);
    expect(await textOf('#tasks tbody tr', /completed/)).toContain(w.address);
    await page.waitForSelector(`#timeline [data-lane] .run.s-completed`);
    expect(await textOf('#results pre', /./)).toBe([2, 4, 6, 8, 10, 12].join('\n'));
  });

  it('cancels a running job from its page, and deletes it', async () => {
    shootOnFail(() => page, 'cancel');
    const id = await submit({ operation: 'sleep', ms: 5000, task_count: 40 }, 'too long');
    await page.goto(`${m.url}/jobs/${id}`);
    await textOf('.job-head [data-status]', /^(running|pending)$/);
    await clickButton('Cancel job');
    await clickButton('Click again to cancel');
    await textOf('.job-head [data-status]', /^cancelled$/);
    expect((await http('GET', `${m.url}/api/jobs/${id}`)).json.status).toBe('cancelled');

    await clickButton('Delete');
    await clickButton('Click again to delete');
    // Where DELETE /api/jobs/{id} exists the page goes back to the jobs; where not, it says so.
    await page.waitForFunction(
      () =>
        location.pathname === '/' ||
        /cannot delete jobs yet/.test(document.querySelector('[data-action-note]')?.textContent ?? ''),
    );
    const gone = new URL(page.url()).pathname === '/';
    expect((await http('GET', `${m.url}/api/jobs/${id}`)).status).toBe(gone ? 404 : 200);
  });

  it("draws a streaming job's topology: components, edges and each instance's rates", async () => {
    shootOnFail(() => page, 'topology');
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'per-key sums',
      type: 'streaming',
      config: {
        topology: {
          spouts: [{ id: 'gen', type: 'generator', keys: 3, rate: 200 }],
          bolts: [
            {
              id: 'per-key',
              op: 'window',
              aggregate: 'sum',
              field: 'value',
              key: 'key',
              window: { type: 'tumbling', size_ms: 500 },
              inputs: [{ from: 'gen', grouping: 'fields', fields: ['key'] }],
            },
            { id: 'out', op: 'collect', inputs: [{ from: 'per-key', grouping: 'global' }] },
          ],
        },
      },
    });
    expect(r.status, r.text).toBe(201);
    const id = r.json.job_id as string;
    try {
      await page.goto(`${m.url}/jobs/${id}`);
      for (const c of ['gen', 'per-key', 'out']) await page.waitForSelector(`#topology [data-component="${c}"]`);
      await page.waitForFunction(() => document.querySelectorAll('#topology path.edge').length === 2);
      // The spout's instance is placed on the worker and its rate shows once it reports.
      await textOf('#topology [data-component="gen"] .inst', /127\.0\.0\.244/);
      await textOf('#topology [data-component="gen"] .node-head', /out [1-9]/);
    } finally {
      await http('POST', `${m.url}/api/jobs/${id}/cancel`);
    }
  });

  it('asks for a token when the cluster has a secret, and keeps it in the browser', async () => {
    const p = await browser.newPage();
    shootOnFail(() => p, 'token');
    try {
      await p.goto(`${secured.url}/`);
      await p.waitForSelector('#token-form');
      await p.type('#token-form input', 'not-a-token');
      await p.click('#token-form button[type="submit"]');
      await p.waitForFunction(() => /refused/.test(document.querySelector('#token-form')?.textContent ?? ''));

      const token = cliSync(['token', '--role', 'client', '--ttl', '5m'], {
        env: { JWT_SECRET: SECRET },
      }).stdout.trim();
      await p.click('#token-form input', { count: 3 });
      await p.keyboard.press('Backspace');
      await p.type('#token-form input', token);
      await p.click('#token-form button[type="submit"]');
      await p.waitForSelector(`[data-master="${secured.url}"]`);
      expect(await p.evaluate(() => localStorage.getItem('weir.token'))).toBe(token);

      // Kept: a reload goes straight to the cluster.
      await p.reload();
      await p.waitForSelector(`[data-master="${secured.url}"]`);
      expect(await p.$('#token-form')).toBeNull();
    } finally {
      await p.close();
    }
  });
});

// The README's two pictures of the dashboard: `node dist/scripts/screenshots.js` (after
// `npm run build`) starts a master and a worker of its own on 127.0.0.246–247, gives them
// work, and writes docs/dashboard-overview.png and docs/dashboard-job.png.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.js';

const here = dirname(fileURLToPath(import.meta.url));
// From dist/scripts/ or scripts/: the checkout is where package.json is.
const root = here.includes(`${join('dist', 'scripts')}`) ? join(here, '..', '..') : join(here, '..');
const bin = join(root, 'bin', 'weir.js');
const docs = join(root, 'docs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`gave up waiting for ${what}`);
    await sleep(100);
  }
}

const getJson = async (url: string) => {
  const r = await fetch(url);
  return r.ok ? ((await r.json()) as Record<string, unknown>) : undefined;
};

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'weir-shots-'));
  const procs: ChildProcess[] = [];
  const run = (args: string[]) => {
    const p = spawn(process.execPath, [bin, ...args], { stdio: 'ignore', env: { ...process.env, JWT_SECRET: '' } });
    procs.push(p);
  };
  const master = 'http://127.0.0.246:18246';
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    run(['master', '--host', '127.0.0.246', '--port', '18246', '--data-dir', join(tmp, 'm')]);
    await until('the master', async () => (await fetch(`${master}/ready`)).ok || undefined);
    run([
      'worker',
      '--host',
      '127.0.0.247',
      '--port',
      '18247',
      '--master',
      master,
      '--max-tasks',
      '4',
      '--data-dir',
      join(tmp, 'w'),
    ]);
    await until('the worker', async () => ((await getJson(`${master}/api/workers`))?.workers as unknown[])?.length);
    const submit = async (name: string, config: object) =>
      (
        (await (
          await fetch(`${master}/api/jobs`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name, type: 'batch', config }),
          })
        ).json()) as { job_id: string }
      ).job_id;
    // The pages open before the work comes, so that their charts draw it as it happens.
    mkdirSync(docs, { recursive: true });
    browser = await launchChromium();
    const b = browser;
    const tab = async () => {
      // Each tab in its own context (its own window): a headless background tab is hidden.
      const p = await (await b.createBrowserContext()).newPage();
      await p.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
      return p;
    };
    const page = await tab();
    const jobTab = await tab();
    await page.goto(`${master}/`);
    await page.waitForSelector('#live-state');
    await submit('Mi Trabajo', {});
    await submit('Multiplicar', { operation: 'multiply', factor: 3, task_count: 5 });
    await submit('avg-age', { operation: 'avg', field: 'age', data: [{ age: 31 }, { age: 4 }, { age: 58 }] });
    await submit('pi', { operation: 'pi', samples: 200000, task_count: 8 });
    const shown = await submit('nightly-sleepers', { operation: 'sleep', ms: 1000, task_count: 60 });
    await jobTab.goto(`${master}/jobs/${shown}`);
    await submit('backlog', { operation: 'sleep', ms: 500, task_count: 40 });
    // Halfway through: bars in motion on both pages.
    await until('the sleepers halfway', async () => {
      const j = await getJson(`${master}/api/jobs/${shown}`);
      const p = j?.progress as { completed: number } | undefined;
      return p && p.completed >= 24 ? true : undefined;
    });

    await page.waitForSelector(`[data-job="${shown}"]`);
    await page.waitForSelector('[data-worker]');
    await sleep(1200); // one more frame, so the workers' rates are filled in
    await page.screenshot({ path: join(docs, 'dashboard-overview.png') });
    await jobTab.waitForSelector('#timeline .run');
    await jobTab.screenshot({ path: join(docs, 'dashboard-job.png') });
    console.log(`wrote ${join(docs, 'dashboard-overview.png')} and ${join(docs, 'dashboard-job.png')}`);
  } finally {
    await browser?.close();
    for (const p of procs) p.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();

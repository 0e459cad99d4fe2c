// What an open dashboard costs the cluster (`npm run bench -- dashboard`): the core
// benchmark's throughput rounds (10,000 no-op tasks on 1 master + 2 workers) on one cluster,
// alternately with no browser page open and with headless chromium showing `/` and the page
// of a job running in that round. Reports both throughputs and their ratio, and the CPU each
// party used in each round, read from /proc: on a 2-core machine chromium's own CPU takes
// cores from the cluster, which a person's browser on their own machine would not — the
// master's CPU per task is what the cluster pays for the page.
//
// Options: --rounds N        measured rounds of each kind (default 3), after 3 warm-up rounds
//          --max-tasks N     the workers' --max-tasks (default 128)
//          --threads T       the workers' --threads (default 2)
//          --pin-chromium C  run chromium (all its processes) on CPU C only (taskset -c C),
//                            so that it takes at most one core from the cluster
//          --tabs overview   only the overview tab open (default: the overview and a job's page)
//          --reopen          open the tabs for each round with the page and close them after it
//                            (default: they stay open through the run, and in the rounds without
//                            the page a blank tab of the same window is in front: the dashboard's
//                            tab is hidden, as a person's background tab, and reads nothing)
//          --profile DIR     where the time goes: the master runs with --cpu-prof (its profile
//                            covers every round), each tab's renderer is profiled (CDP Profiler)
//                            in the rounds with the page, and chromium's CPU is split by process
//                            type; profiles and a summary go to DIR
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Browser, CDPSession, Page } from 'puppeteer-core';
import { CHROMIUM, hasChromium, launchChromium } from '../scripts/chromium.js';
import { runMain } from './main.js';
import { chromiumKind, cpuSeconds, treeCpu, treeCpuSeconds } from './proc-cpu.js';
import { cpuProfArgs, formatProfilesIn, summarizeProfile } from './profile-summary.js';
import { machineInfo, table, writeJson } from './report.js';
import { log, medianInterval, positiveInt, spread, type Spread } from './stats.js';
import { describeSetting, startWeirCluster, weirThroughputRound, type Api, type WeirCluster } from './weir.js';

const SHAPE = { jobs: 100, tasksPerJob: 100, inFlight: 16 };
const TOTAL = SHAPE.jobs * SHAPE.tasksPerJob;
const WARMUP_ROUNDS = 3;
/**
 * A pair of rounds takes 5–7 s here with the waits for a quiet browser: 20 s a pair, and the
 * start, leave room for a loaded machine without cutting a long run (`--rounds 200`) short.
 */
function deadlineMs(argv: string[]): number {
  let rounds = 3;
  try {
    rounds = parseArgs(argv).rounds;
  } catch {
    // main reports the bad option.
  }
  return Math.max(10 * 60_000, 3 * 60_000 + rounds * 20_000);
}

interface Options {
  rounds: number;
  maxTasks: number;
  threads: number;
  pinChromium?: number;
  profile?: string;
  /** Which tabs a round with the page opens. */
  tabs: 'both' | 'overview';
  /** Tabs opened for each round with the page and closed after it, rather than kept open and hidden. */
  reopen: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 3, maxTasks: 128, threads: 2, tabs: 'both', reopen: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') o.rounds = positiveInt(a, argv[++i]);
    else if (a === '--max-tasks') o.maxTasks = positiveInt(a, argv[++i]);
    else if (a === '--threads') o.threads = positiveInt(a, argv[++i]);
    else if (a === '--pin-chromium') o.pinChromium = Number(argv[++i]);
    else if (a === '--profile') o.profile = argv[++i];
    else if (a === '--reopen') o.reopen = true;
    else if (a === '--tabs') {
      const t = argv[++i];
      if (t !== 'both' && t !== 'overview') throw new Error('--tabs takes both or overview');
      o.tabs = t;
    } else
      throw new Error(
        `unknown option '${a}' (known: --rounds N, --max-tasks N, --threads T, --pin-chromium CPU, --tabs both|overview, --reopen, --profile DIR)`,
      );
  }
  if (o.pinChromium !== undefined && !(Number.isInteger(o.pinChromium) && o.pinChromium >= 0)) {
    throw new Error('--pin-chromium takes a CPU number, e.g. 1');
  }
  return o;
}

/** One measured round: its throughput and the CPU seconds each party used during it. */
interface Round {
  page: boolean;
  tasks_per_s: number;
  wall_s: number;
  cpu_s: { master: number; workers: number; chromium: number };
  /** Requests the page's tabs sent to the master during the round (a stream counts once, when opened). */
  page_requests: number;
  /** With --profile: chromium's CPU by process kind, each tab's renderer figures and top functions. */
  profile?: Record<string, unknown>;
}

/** How busy a settled tab's renderer may still be: its main thread under a tenth of the time. */
const SETTLED_SHARE = 0.1;
const SETTLE_WINDOW_MS = 500;
const SETTLE_MAX_MS = 15_000;

/** Resolves once the tab's renderer has been nearly idle for a window (at most SETTLE_MAX_MS). */
async function settled(page: Page): Promise<void> {
  const cdp = await page.createCDPSession();
  await cdp.send('Performance.enable');
  const busy = async () =>
    (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration')?.value ?? 0;
  const deadline = Date.now() + SETTLE_MAX_MS;
  let before = await busy();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, SETTLE_WINDOW_MS));
    const now = await busy();
    if (now - before < (SETTLE_WINDOW_MS / 1000) * SETTLED_SHARE) break;
    before = now;
  }
  await cdp.detach();
}

/** Chromium's CPU over a window, at most this much, twice running: the browser has settled. */
const QUIET_CPU_S = 0.03;

/**
 * Resolves once the whole browser (every process and thread: V8's background compiles and
 * GC, raster, the browser process) has been nearly idle for two windows running, at most
 * SETTLE_MAX_MS. A tab's main thread goes idle long before the rest of a page just opened:
 * measured from there, a round counted the page's start, not a page kept open (a page opened
 * on an idle cluster used 0.82 s of CPU in its first half-second, 0.16 in the next, then 0–0.06 a
 * half-second).
 */
async function quietBrowser(browser: Browser): Promise<void> {
  const pid = browser.process()?.pid;
  if (pid === undefined) return;
  const deadline = Date.now() + SETTLE_MAX_MS;
  let quiet = 0;
  while (quiet < 2 && Date.now() < deadline) {
    const before = treeCpuSeconds(pid);
    await new Promise((r) => setTimeout(r, SETTLE_WINDOW_MS));
    quiet = treeCpuSeconds(pid) - before <= QUIET_CPU_S ? quiet + 1 : 0;
  }
}

/**
 * The browser and its two tabs, shown for a round (and settled) and put away after it: closed
 * with --reopen, else hidden behind a blank tab of the same window and shown again for the
 * next round with the page — a dashboard kept open, its code warm, as a person keeps it.
 */
class Dashboard {
  private pages: Page[] = [];
  /** Kept open: a blank tab in each dashboard tab's window, in front while the page is put away. */
  private covers: Page[] = [];
  /** Requests the tabs sent to the API, counted from when they were opened. */
  requests = 0;
  constructor(
    readonly browser: Browser,
    private readonly origin: string,
    private readonly withJobTab = true,
    private readonly reopen = false,
  ) {}

  /**
   * `/` open and drawn on the first tab; the second tab shows the page of `shownJob` (a job
   * of the warm-up) — a person following jobs keeps a job's page open and moves to the next
   * one, so a round counts following a new job, not the first start of the job page's code
   * in a new renderer. Kept open, the tabs are opened once and brought to the front after.
   */
  async open(shownJob?: string): Promise<void> {
    if (this.covers.length) {
      for (const p of this.pages) await p.bringToFront();
    } else {
      // Each tab in its own context (its own window): a headless background tab is hidden.
      const overview = await (await this.browser.createBrowserContext()).newPage();
      const job = this.withJobTab ? await (await this.browser.createBrowserContext()).newPage() : undefined;
      this.pages = job ? [overview, job] : [overview];
      for (const p of this.pages)
        p.on('request', (r) => void (new URL(r.url()).pathname.startsWith('/assets/') || this.requests++));
      await overview.goto(`${this.origin}/`);
      await overview.waitForSelector('#jobs table, #jobs .empty', { timeout: 30_000 });
      if (job) {
        await job.goto(`${this.origin}/${shownJob ? `jobs/${shownJob}` : ''}`);
        if (shownJob) await job.waitForSelector('#tasks tbody tr', { timeout: 30_000 });
      }
      if (!this.reopen) {
        this.covers = await Promise.all(this.pages.map((p) => p.browserContext().newPage()));
        for (const p of this.pages) await p.bringToFront();
      }
    }
    for (const p of this.pages) {
      // A tab in front is visible, so it polls; a hidden one would poll nothing.
      if (await p.evaluate('document.hidden')) log('  (a dashboard tab is hidden: it polls nothing while so)');
    }
    // A page kept open is what costs the cluster: its start (the bundle compiled, the first
    // renders, the charts set up) — or, shown again, its reads of what moved while it was
    // hidden — is not counted in the round that follows.
    await Promise.all(this.pages.map((p) => settled(p)));
    await quietBrowser(this.browser);
  }

  /** Points the second tab at a job of this round (as a person following it would). */
  follow(jobId: string): void {
    void this.pages[1]
      ?.evaluate(`history.pushState(null, '', '/jobs/${jobId}'); dispatchEvent(new PopStateEvent('popstate'))`)
      .catch(() => {});
  }

  get tabs(): { name: string; page: Page }[] {
    return this.pages.map((page, i) => ({ name: i === 0 ? 'overview' : 'job', page }));
  }

  /** Puts the page away after a round: hidden behind its blank tab (it then holds no stream), or closed. */
  async close(): Promise<void> {
    if (this.covers.length) {
      for (const c of this.covers) await c.bringToFront();
      for (const p of this.pages)
        if (!(await p.evaluate('document.hidden'))) log('  (a dashboard tab put away is still visible)');
    } else await this.dispose();
    // The tabs' teardown (a closed renderer, or a stream closed and panels stopped) is not the
    // next round's (a round without the page).
    await quietBrowser(this.browser);
  }

  async dispose(): Promise<void> {
    await Promise.all(
      this.pages.map((p) =>
        p
          .browserContext()
          .close()
          .catch(() => {}),
      ),
    );
    this.pages = [];
    this.covers = [];
  }
}

/** The renderer's figures (CDP Performance.getMetrics) a round's profile reports, as deltas. */
const TAB_METRICS = [
  'TaskDuration',
  'ScriptDuration',
  'LayoutDuration',
  'RecalcStyleDuration',
  'LayoutCount',
  'RecalcStyleCount',
];

/** Where a round with the page spent chromium's time: each tab's renderer (a CPU profile and its metrics) and each process kind. */
class RoundProfile {
  private sessions: { name: string; cdp: CDPSession; before: Record<string, number> }[] = [];
  private cpuBefore = new Map<number, number>();
  constructor(
    private readonly dash: Dashboard,
    private readonly chromium: number,
    private readonly dir: string,
    private readonly label: string,
  ) {}

  private static async metrics(cdp: CDPSession): Promise<Record<string, number>> {
    const { metrics } = await cdp.send('Performance.getMetrics');
    return Object.fromEntries(metrics.filter((m) => TAB_METRICS.includes(m.name)).map((m) => [m.name, m.value]));
  }

  async start(): Promise<void> {
    for (const { name, page } of this.dash.tabs) {
      const cdp = await page.createCDPSession();
      await cdp.send('Performance.enable');
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 250 });
      await cdp.send('Profiler.start');
      this.sessions.push({ name, cdp, before: await RoundProfile.metrics(cdp) });
    }
    this.cpuBefore = treeCpu(this.chromium);
  }

  /** Writes each tab's profile and returns the round's figures. */
  async stop(): Promise<Record<string, unknown>> {
    const after = treeCpu(this.chromium);
    const byKind: Record<string, number> = {};
    for (const [pid, cpu] of after) {
      const kind = chromiumKind(pid);
      byKind[kind] = (byKind[kind] ?? 0) + Math.max(0, cpu - (this.cpuBefore.get(pid) ?? 0));
    }
    const tabs: Record<string, unknown> = {};
    for (const { name, cdp, before } of this.sessions) {
      const now = await RoundProfile.metrics(cdp);
      const { profile } = await cdp.send('Profiler.stop');
      const file = join(this.dir, `${this.label}-${name}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      const s = summarizeProfile(file, 12);
      tabs[name] = {
        metrics: Object.fromEntries(TAB_METRICS.map((k) => [k, +((now[k] ?? 0) - (before[k] ?? 0)).toFixed(3)])),
        busy_percent: +s.busyPercent.toFixed(1),
        top_functions: s.functions.map((f) => `${f.percent.toFixed(1)}% ${f.name}`),
      };
      await cdp.detach().catch(() => {});
    }
    return { cpu_s_by_process_kind: byKind, tabs };
  }
}

/** Runs chromium through `taskset -c CPU` (its zygote and renderers inherit the mask). */
function pinnedChromium(dir: string, cpu: number): string {
  const wrapper = join(dir, 'chromium-pinned.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec taskset -c ${cpu} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}

async function measure(
  cluster: WeirCluster,
  browser: Browser,
  dash: Dashboard | undefined,
  label: string,
  profileDir?: string,
) {
  const master = cluster.masters[0]!.child.proc.pid!;
  const workers = cluster.workers.map((w) => w.proc.pid!);
  const chromium = browser.process()?.pid;
  const cpu = () => ({
    master: cpuSeconds(master),
    workers: workers.reduce((s, p) => s + cpuSeconds(p), 0),
    chromium: chromium ? treeCpuSeconds(chromium) : 0,
  });
  // The job page follows the round's first job once it is accepted.
  let followed = false;
  const api = {
    call: async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
      const r = await cluster.api.call<T>(method, path, body);
      if (dash && !followed && method === 'POST') {
        followed = true;
        dash.follow((r as { job_id: string }).job_id);
      }
      return r;
    },
  } as Api;
  const prof = dash && profileDir && chromium ? new RoundProfile(dash, chromium, profileDir, label) : undefined;
  await prof?.start();
  const before = cpu();
  const requestsBefore = dash?.requests ?? 0;
  const t0 = performance.now();
  const tasksPerS = await weirThroughputRound(api, SHAPE, label);
  const wall = (performance.now() - t0) / 1000;
  const after = cpu();
  const profile = await prof?.stop();
  const pageRequests = (dash?.requests ?? 0) - requestsBefore;
  return {
    ...(profile ? { profile } : {}),
    page_requests: pageRequests,
    tasks_per_s: tasksPerS,
    wall_s: wall,
    cpu_s: {
      master: after.master - before.master,
      workers: after.workers - before.workers,
      // Renderers of the last round's closed tabs may exit during this one, taking their CPU
      // figure out of the tree: never below nothing.
      chromium: Math.max(0, after.chromium - before.chromium),
    },
  };
}

const fmt = (x: number, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

function summarise(rounds: Round[], withPage: boolean) {
  const rs = rounds.filter((r) => r.page === withPage);
  const perTask = (k: keyof Round['cpu_s']) => spread(rs.map((r) => (r.cpu_s[k] / TOTAL) * 1e6));
  return {
    tasks_per_s: spread(rs.map((r) => r.tasks_per_s)),
    // CPU microseconds per task: what a round cost each party, whatever its length.
    cpu_us_per_task: { master: perTask('master'), workers: perTask('workers'), chromium: perTask('chromium') },
    master_cores: spread(rs.map((r) => r.cpu_s.master / r.wall_s)),
    // What the page asked of the master, whatever the machine's load: requests per second of round.
    page_requests_per_s: spread(rs.map((r) => r.page_requests / r.wall_s)),
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!hasChromium()) throw new Error(`no chromium at ${CHROMIUM}: apt-get install chromium (or set WEIR_CHROMIUM)`);
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg()[0]!;
  const setting = { maxTasks: o.maxTasks, threads: o.threads };
  log(
    `Weir: 1 master + 2 workers, ${describeSetting(setting)}; chromium ${o.pinChromium === undefined ? 'unpinned' : `pinned to CPU ${o.pinChromium}`}`,
  );
  const profileDir = o.profile;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const cluster = await startWeirCluster({
    ...setting,
    ...(profileDir ? { nodeArgs: (n: string) => (n.startsWith('w') ? [] : cpuProfArgs(profileDir)('master')) } : {}),
  });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium(o.pinChromium === undefined ? CHROMIUM : pinnedChromium(cluster.dir, o.pinChromium));
    const dash = new Dashboard(browser, cluster.api.origin, o.tabs === 'both', o.reopen);
    // The last job the warm-up submitted: the job tab shows it before each round with the page.
    let warmJob: string | undefined;
    const warmApi = {
      call: async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
        const r = await cluster.api.call<T>(method, path, body);
        if (method === 'POST') warmJob = (r as { job_id?: string }).job_id ?? warmJob;
        return r;
      },
    } as Api;
    for (let i = 0; i < WARMUP_ROUNDS; i++) await weirThroughputRound(warmApi, SHAPE, `warmup${i}`);
    // Kept open, the tabs are there (hidden) in every round without the page, the first too.
    if (!o.reopen) {
      await dash.open(warmJob);
      await dash.close();
    }
    // Pairs in alternating order (off-on, on-off, …), so that a drift in the machine's load
    // or the cluster's size weighs on both kinds alike.
    const rounds: Round[] = [];
    for (let i = 0; i < o.rounds; i++) {
      for (const page of i % 2 === 0 ? [false, true] : [true, false]) {
        if (page) await dash.open(warmJob);
        try {
          const r = await measure(
            cluster,
            browser,
            page ? dash : undefined,
            `${page ? 'page' : 'none'}-r${i}`,
            profileDir,
          );
          rounds.push({ page, ...r });
          if (r.profile) log(`  ${JSON.stringify(r.profile, null, 1)}`);
          log(
            `  round ${i + 1}/${o.rounds} ${page ? 'with page   ' : 'without page'}: ${fmt(r.tasks_per_s)} tasks/s; CPU s master ${fmt(r.cpu_s.master, 2)}, workers ${fmt(r.cpu_s.workers, 2)}, chromium ${fmt(r.cpu_s.chromium, 2)}`,
          );
        } finally {
          if (page) await dash.close();
        }
      }
    }
    const without = summarise(rounds, false);
    const withPage = summarise(rounds, true);
    const pairRatios = Array.from({ length: o.rounds }, (_, i) => {
      const [a, b] = rounds.slice(2 * i, 2 * i + 2);
      const on = a!.page ? a! : b!;
      const off = a!.page ? b! : a!;
      return on.tasks_per_s / off.tasks_per_s;
    });
    const figures = {
      started_at: startedAt,
      load: { start: loadAtStart, end: loadavg()[0]! },
      machine: machineInfo(),
      workload: `${TOTAL} no-op tasks as ${SHAPE.jobs} jobs × ${SHAPE.tasksPerJob} per round, ${WARMUP_ROUNDS} warm-up rounds, then ${o.rounds} pairs (with and without the page, alternating order); page = headless chromium on /${o.tabs === 'both' ? " and on a job's page (a warm-up job's, settled), which follows the round's first job" : ' only'}, ${o.reopen ? 'opened for each round with the page and closed after it' : 'kept open through the run and hidden behind a blank tab of its window in the rounds without the page'}`,
      page_kept_open: !o.reopen,
      setting: { max_tasks: o.maxTasks, threads: o.threads },
      chromium_pinned_to_cpu: o.pinChromium ?? null,
      without_page: without,
      with_page: withPage,
      ratio: {
        of_medians: withPage.tasks_per_s.median / without.tasks_per_s.median,
        per_pair: spread(pairRatios),
        // Where the median of the pairs' ratios lies, at 95% (order statistics): the figure to hold against 0.95.
        per_pair_median_95: medianInterval(pairRatios) ?? null,
        master_cpu_per_task: withPage.cpu_us_per_task.master.median / without.cpu_us_per_task.master.median,
      },
      rounds,
    };
    process.stdout.write(`\n${report(figures)}\n`);
    log(`\nfigures written to ${writeJson('dashboard', startedAt, figures)}`);
  } finally {
    await browser?.close().catch(() => {});
    await cluster.stop();
  }
  if (profileDir) {
    try {
      log(formatProfilesIn(profileDir));
    } catch (err) {
      log(`no master profile: ${(err as Error).message}`);
    }
  }
}

type Summary = ReturnType<typeof summarise>;

function report(f: {
  without_page: Summary;
  with_page: Summary;
  ratio: {
    of_medians: number;
    per_pair: Spread;
    per_pair_median_95: { low: number; high: number } | null;
    master_cpu_per_task: number;
  };
  chromium_pinned_to_cpu: number | null;
}): string {
  const s = (x: Spread, d = 0) => `${fmt(x.median, d)} (${fmt(x.min, d)}–${fmt(x.max, d)})`;
  const row = (label: string, m: Summary) => [
    label,
    s(m.tasks_per_s),
    s(m.cpu_us_per_task.master, 1),
    s(m.master_cores, 2),
    s(m.cpu_us_per_task.workers, 1),
    s(m.cpu_us_per_task.chromium, 1),
  ];
  return [
    table([
      ['', 'tasks/s', 'master µs CPU/task', 'master cores', 'workers µs CPU/task', 'chromium µs CPU/task'],
      row('without page', f.without_page),
      row('with page', f.with_page),
    ]),
    '',
    `with/without throughput: ${fmt(f.ratio.of_medians, 3)} (medians); per pair ${s(f.ratio.per_pair, 3)}${
      f.ratio.per_pair_median_95
        ? `, its median between ${fmt(f.ratio.per_pair_median_95.low, 3)} and ${fmt(f.ratio.per_pair_median_95.high, 3)} (95%)`
        : ' (too few pairs for an interval: --rounds 6 or more)'
    }`,
    `with/without master CPU per task: ${fmt(f.ratio.master_cpu_per_task, 3)}`,
    `the page's requests to the master: ${s(f.with_page.page_requests_per_s, 1)} a second`,
    `chromium: ${f.chromium_pinned_to_cpu === null ? 'not pinned (shares both cores with the cluster)' : `pinned to CPU ${f.chromium_pinned_to_cpu}`}; medians (min–max) over the rounds`,
  ].join('\n');
}

runMain(main, { deadlineMs: deadlineMs(process.argv.slice(2)) });

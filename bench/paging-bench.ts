// Weir's paging benchmark (`npm run bench -- paging`, issue 16): what a results page costs on a
// job of about a million keyed rows against one of ten, on a real local cluster of 1 master +
// 2 workers (child processes on 127.0.0.x).
//
// Both jobs are real wordcounts: the big one over a generated file of N distinct words (one a
// line, default 1,000,000), the small one over inline data of 10 distinct words. Then, turn by
// turn, `GET /api/jobs/ID/results?limit=10` on each: the first page, and pages from cursors
// spread over the whole job (gathered by walking it in pages of 10,000). Reports the p50 and
// p99 of each and the ratio of the p50s (big / small); also how long the big job took from
// submit to completed, and the full walk. Figures go to stdout and to
// bench/results/paging-<date>.json.
//
// Options: --rows N      distinct words of the big job (default 1000000)
//          --samples N   timed pages per job and kind (default 300)
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runMain } from './main.js';
import { makeTempDir } from './procs.js';
import { machineInfo, table, writeJson } from './report.js';
import { log, percentiles, positiveInt, type Percentiles } from './stats.js';
import { startWeirCluster, walkResults, type Api, type JobView } from './weir.js';

/** Clear of the integration tests' addresses and of the other benchmarks' masters. */
const HOSTS = { master: '127.0.0.245', workers: '127.0.0.246' };
const DEADLINE_MS = 30 * 60_000;
const PAGE = 10;

interface Options {
  rows: number;
  samples: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rows: 1_000_000, samples: 300 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const v = argv[++i];
    if (flag === '--rows') o.rows = positiveInt(flag, v);
    else if (flag === '--samples') o.samples = positiveInt(flag, v);
    else throw new Error(`unknown option ${flag}; see the head of bench/paging-bench.ts`);
  }
  return o;
}

/** N distinct words, one a line: a wordcount of it has N keyed rows of count 1. */
function writeWords(path: string, n: number): void {
  const fd = openSync(path, 'w');
  try {
    const lines: string[] = [];
    for (let i = 0; i < n; i++) {
      lines.push(`w${i.toString(36)}`);
      if (lines.length === 65_536 || i === n - 1) {
        writeSync(fd, lines.join('\n') + '\n');
        lines.length = 0;
      }
    }
  } finally {
    closeSync(fd);
  }
}

async function runToCompletion(api: Api, config: unknown, timeoutMs: number): Promise<{ id: string; ms: number }> {
  const t0 = performance.now();
  const job = await api.call<JobView>('POST', '/api/jobs', { name: 'paging', type: 'batch', config });
  for (;;) {
    const v = await api.call<JobView>('GET', `/api/jobs/${job.job_id}?wait_ms=5000`);
    if (v.status === 'completed') return { id: job.job_id, ms: performance.now() - t0 };
    if (v.status === 'failed' || v.status === 'cancelled') {
      throw new Error(`job ${job.job_id} ${v.status}: ${v.error?.message ?? 'no error given'}`);
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`job ${job.job_id} not done in ${timeoutMs} ms`);
  }
}

interface Page {
  results: unknown[];
  next_cursor: string | null;
}

async function pageMs(api: Api, id: string, cursor: string | undefined): Promise<number> {
  const q = cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`;
  const t0 = performance.now();
  const page = await api.call<Page>('GET', `/api/jobs/${id}/results?limit=${PAGE}${q}`);
  const ms = performance.now() - t0;
  if (page.results.length !== PAGE) throw new Error(`a page of ${PAGE} came with ${page.results.length} rows`);
  return ms;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const dir = makeTempDir('weir-paging-');
  const path = join(dir, 'words.txt');
  log(`generating ${o.rows.toLocaleString('en-US')} distinct words`);
  writeWords(path, o.rows);
  const cluster = await startWeirCluster({ maxTasks: 2, masterHosts: [HOSTS.master], workerHost: HOSTS.workers });
  try {
    const { api } = cluster;
    log('running the big wordcount');
    const big = await runToCompletion(
      api,
      { operation: 'wordcount', input: { path }, task_count: 4, reduce_tasks: 4, memory_mb: 1024 },
      20 * 60_000,
    );
    log(`  completed in ${(big.ms / 1000).toFixed(1)} s`);
    const words = ['río', 'weir', 'agua', 'dam', 'flow', 'stone', 'ñandú', 'x1', 'lake', 'sluice'];
    const small = await runToCompletion(
      api,
      { operation: 'wordcount', data: [words.join(' ')], task_count: 1, reduce_tasks: 1 },
      60_000,
    );
    log('walking the big job in pages of 10,000');
    const full = await walkResults(api, big.id, 10_000);
    if (full.rows !== o.rows) throw new Error(`the big job has ${full.rows} rows, not ${o.rows}`);

    log(`timing ${o.samples} pages of ${PAGE} per kind, turn by turn`);
    const t = { bigFirst: [] as number[], bigMiddle: [] as number[], small: [] as number[] };
    for (let i = 0; i < 20; i++) await Promise.all([pageMs(api, big.id, undefined), pageMs(api, small.id, undefined)]);
    for (let i = 0; i < o.samples; i++) {
      t.bigFirst.push(await pageMs(api, big.id, undefined));
      t.small.push(await pageMs(api, small.id, undefined));
      t.bigMiddle.push(await pageMs(api, big.id, full.cursors[(i * 7919) % full.cursors.length]));
    }
    const p = {
      big_first: percentiles(t.bigFirst),
      big_anywhere: percentiles(t.bigMiddle),
      small: percentiles(t.small),
    };
    const ratio = p.big_anywhere.p50 / p.small.p50;
    const ratioFirst = p.big_first.p50 / p.small.p50;
    const row = (name: string, q: Percentiles) => [name, q.p50.toFixed(2), q.p99.toFixed(2)];
    process.stdout.write(
      `\nResults page (?limit=${PAGE}) on a job of ${o.rows.toLocaleString('en-US')} keyed rows vs one of 10\n` +
        `The big job is a real wordcount over a generated file of ${o.rows.toLocaleString('en-US')} distinct words ` +
        `(one a line; 4 map tasks, 4 reduce tasks), submit to completed in ${(big.ms / 1000).toFixed(1)} s;\n` +
        `walking all of it in pages of 10,000 took ${(full.ms / 1000).toFixed(1)} s.\n\n` +
        table([
          ['page', 'p50 ms', 'p99 ms'],
          row('big job, first page', p.big_first),
          row('big job, from cursors all over it', p.big_anywhere),
          row('10-row job', p.small),
        ]) +
        `\n\nratio of p50s, big (anywhere) / small: ${ratio.toFixed(2)}×; first page: ${ratioFirst.toFixed(2)}×\n`,
    );
    const file = writeJson('paging', new Date().toISOString(), {
      machine: machineInfo(),
      rows: o.rows,
      samples: o.samples,
      built_by: 'wordcount over a generated file of distinct words, 4 map and 4 reduce tasks',
      build_ms: big.ms,
      walk_ms: full.ms,
      percentiles_ms: p,
      ratio_p50: ratio,
      ratio_p50_first_page: ratioFirst,
    });
    log(`figures written to ${file}`);
  } finally {
    await cluster.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) runMain(main, { deadlineMs: DEADLINE_MS });

// Weir's streaming benchmark (`npm run bench -- stream`, issue 4), after the Yahoo streaming
// benchmark: `generator → map → keyed tumbling 1 s window count → sink` across 2 workers.
//
//   a. sustained throughput: the generator runs as fast as credits allow for a while; the
//      rate is what the windows counted, read from the window results the sink delivers
//      (the sum of the counts of the windows that ended in the steady part of the run);
//   b. end-to-end latency at half that rate: for every window result, the time it reached
//      the sink (an HTTP server in this process) minus the window's end, as Yahoo's
//      benchmark measures it; p50 and p99 over the results after warm-up;
//   c. the ceiling: the same pipeline as a plain loop in this process (generate, map, count
//      per key and window in a Map), events/s.
//
// Figures go to stdout and to bench/results/stream-<date>.json.
// Options: --seconds N (each measured phase, default 20), --keys N (default 1000),
//          --parallelism P (of each component but the sink, default 2), --max-tasks N.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { loadavg } from 'node:os';
import { runMain } from './main.js';
import { machineInfo, table, writeJson, type Machine } from './report.js';
import { log, percentiles, positiveInt, type Percentiles } from './stats.js';
import { startWeirCluster, type WeirCluster } from './weir.js';

/** Clear of the tests' addresses and of the other benchmarks'. */
const HOSTS = { master: '127.0.0.241', workers: '127.0.0.242', sink: '127.0.0.243' };
const DEADLINE_MS = 20 * 60_000;
const WINDOW_MS = 1000;
/** Windows that end in the first seconds of a phase are warm-up: JIT, placement, links. */
const WARMUP_MS = 4000;
const TARGETS = { eventsPerS: 300_000, p99Ms: 100 };

/** The map step: a projection, as Yahoo's benchmark projects its ad events. */
const MODULE = `export function project(e) { return { key: e.key, ts: e.ts, seq: e.seq }; }`;

interface Options {
  seconds: number;
  keys: number;
  parallelism: number;
  maxTasks: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 20, keys: 1000, parallelism: 2, maxTasks: 16 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const take = () => positiveInt(a, argv[++i]);
    if (a === '--seconds') o.seconds = take();
    else if (a === '--keys') o.keys = take();
    else if (a === '--parallelism') o.parallelism = take();
    else if (a === '--max-tasks') o.maxTasks = take();
    else throw new Error(`unknown option '${a}' (known: --seconds N, --keys N, --parallelism P, --max-tasks N)`);
  }
  return o;
}

function topology(o: Options, sinkUrl: string, rate?: number) {
  return {
    spouts: [{ id: 'gen', type: 'generator', parallelism: o.parallelism, keys: o.keys, ...(rate ? { rate } : {}) }],
    bolts: [
      {
        id: 'project',
        op: 'map',
        fn: 'project',
        parallelism: o.parallelism,
        inputs: [{ from: 'gen', grouping: 'shuffle' }],
      },
      {
        id: 'count',
        op: 'window',
        aggregate: 'count',
        key: 'key',
        window: { type: 'tumbling', size_ms: WINDOW_MS },
        parallelism: o.parallelism,
        inputs: [{ from: 'project', grouping: 'fields', fields: ['key'] }],
      },
      { id: 'out', op: 'http', url: sinkUrl, parallelism: 1, inputs: [{ from: 'count', grouping: 'global' }] },
    ],
  };
}

// ------------------------------------------------------------------ the sink

interface WindowRow {
  key: unknown;
  window_start: number;
  window_end: number;
  value: number;
}

/** What the sink received: every window result with the time it arrived. */
class Sink {
  rows: { row: WindowRow; at: number }[] = [];
  private server: Server | undefined;

  async listen(host: string): Promise<string> {
    this.server = createServer((req, res) => {
      void body(req).then((text) => {
        const at = Date.now();
        for (const row of JSON.parse(text) as WindowRow[]) this.rows.push({ row, at });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, host, r));
    const { port } = this.server.address() as { port: number };
    return `http://${host}:${port}/windows`;
  }

  reset(): void {
    this.rows = [];
  }

  close(): Promise<void> {
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Events per second counted by windows that ended in `[from, to)`: every event is counted
 * once by the window holding it (a re-fired window, after a replay, would count twice; the
 * rows say so).
 */
function countedRate(rows: Sink['rows'], from: number, to: number): { rate: number; windows: number } {
  const perWindow = new Map<number, number>();
  for (const { row } of rows) {
    if (row.window_end <= from || row.window_end > to) continue;
    perWindow.set(row.window_end, (perWindow.get(row.window_end) ?? 0) + row.value);
  }
  let total = 0;
  for (const n of perWindow.values()) total += n;
  return { rate: perWindow.size ? total / ((perWindow.size * WINDOW_MS) / 1000) : 0, windows: perWindow.size };
}

// ------------------------------------------------------------------ phases

async function runPhase(
  c: WeirCluster,
  sink: Sink,
  o: Options,
  sinkUrl: string,
  rate: number | undefined,
): Promise<{ started: number; ended: number }> {
  sink.reset();
  const job = await c.api.call<{ job_id: string }>('POST', '/api/jobs', {
    name: rate ? `stream-at-${Math.round(rate)}` : 'stream-flat-out',
    type: 'streaming',
    // In flight per spout: enough that the windows' hold (1 s of events) is not what caps the rate.
    config: { topology: topology(o, sinkUrl, rate), module: MODULE, max_pending: 1_000_000 },
  });
  const started = Date.now();
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  const ended = Date.now();
  await c.api.call('POST', `/api/jobs/${job.job_id}/cancel`);
  // The windows that were open at the cancel never fire; wait out the ones in the sink's way.
  await new Promise((r) => setTimeout(r, 500));
  return { started, ended };
}

/**
 * The same pipeline as a plain loop: what one thread of this machine does without Weir.
 * Events are made in batches of 1024 as the generator makes them, projected into a new
 * batch as the map does, and counted per key and window in Maps.
 */
function ceiling(o: Options, seconds: number): number {
  const project = (e: { key: string; ts: number; seq: number }) => ({ key: e.key, ts: e.ts, seq: e.seq });
  const windows = new Map<number, Map<string, number>>();
  let seq = 0;
  let fired = 0;
  const t0 = Date.now();
  for (let now = t0; now - t0 < seconds * 1000; now = Date.now()) {
    for (let b = 0; b < 10; b++) {
      const batch = new Array<{ seq: number; key: string; value: number; ts: number }>(1024);
      for (let i = 0; i < batch.length; i++, seq++) batch[i] = { seq, key: `k${seq % o.keys}`, value: 1, ts: now };
      const start = Math.floor(now / WINDOW_MS) * WINDOW_MS;
      let w = windows.get(start);
      if (!w) windows.set(start, (w = new Map()));
      for (const e of batch.map(project)) w.set(e.key, (w.get(e.key) ?? 0) + 1);
    }
    for (const [start, w] of windows) {
      if (start + WINDOW_MS <= now) {
        fired += w.size;
        windows.delete(start);
      }
    }
  }
  if (fired < 0) log('unreachable'); // keeps the loop's results alive
  return seq / ((Date.now() - t0) / 1000);
}

// ------------------------------------------------------------------ main

interface StreamResults {
  started_at: string;
  machine: Machine;
  load: { start: number; end: number };
  options: Options;
  throughput: { events_per_s: number; windows: number; rows: number };
  latency: { rate: number; events_per_s: number; ms: Percentiles };
  ceiling: { events_per_s: number; ratio: number };
  targets: { events_per_s: number; p99_ms: number; met: { throughput: boolean; p99: boolean } };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const loadStart = loadavg()[0]!;
  log('c. the ceiling: the same pipeline as a plain loop in this process');
  const ceil = ceiling(o, 5);
  log(`  ${Math.round(ceil).toLocaleString('en-US')} events/s`);

  const sink = new Sink();
  const sinkUrl = await sink.listen(HOSTS.sink);
  const c = await startWeirCluster({ maxTasks: o.maxTasks, masterHosts: [HOSTS.master], workerHost: HOSTS.workers });
  try {
    log(
      `a. flat out for ${o.seconds} s: generator ×${o.parallelism} → map ×${o.parallelism} → window ×${o.parallelism} → http sink`,
    );
    const a = await runPhase(c, sink, o, sinkUrl, undefined);
    const flat = countedRate(sink.rows, a.started + WARMUP_MS, a.ended);
    log(`  ${Math.round(flat.rate).toLocaleString('en-US')} events/s over ${flat.windows} windows`);
    const throughputRows = sink.rows.length;

    const half = Math.max(1000, Math.round(flat.rate / 2));
    log(`b. at half that rate (${half.toLocaleString('en-US')} events/s) for ${o.seconds} s`);
    const b = await runPhase(c, sink, o, sinkUrl, half);
    const measured = sink.rows.filter(({ row }) => row.window_end > b.started + WARMUP_MS && row.window_end <= b.ended);
    const lat = percentiles(measured.map(({ row, at }) => at - row.window_end));
    const atHalf = countedRate(sink.rows, b.started + WARMUP_MS, b.ended);
    log(`  latency p50 ${lat.p50} ms, p99 ${lat.p99} ms over ${lat.samples} window results`);

    const r: StreamResults = {
      started_at: startedAt,
      machine: machineInfo(),
      load: { start: loadStart, end: loadavg()[0]! },
      options: o,
      throughput: { events_per_s: flat.rate, windows: flat.windows, rows: throughputRows },
      latency: { rate: half, events_per_s: atHalf.rate, ms: lat },
      ceiling: { events_per_s: ceil, ratio: flat.rate / ceil },
      targets: {
        events_per_s: TARGETS.eventsPerS,
        p99_ms: TARGETS.p99Ms,
        met: { throughput: flat.rate >= TARGETS.eventsPerS, p99: lat.p99 <= TARGETS.p99Ms },
      },
    };
    process.stdout.write(`\n${formatReport(r)}\n`);
    log(`\nfigures written to ${writeJson('stream', r.started_at, r)}`);
  } finally {
    await c.stop();
    await sink.close();
  }
}

function formatReport(r: StreamResults): string {
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const ok = (b: boolean) => (b ? 'met' : 'MISSED');
  return [
    `Weir streaming benchmark, ${r.started_at}: 1 master + 2 workers on ${r.machine.cpus} × ${r.machine.cpu_model}, Node ${r.machine.node}`,
    `Load average (1 min): ${r.load.start.toFixed(2)} at start, ${r.load.end.toFixed(2)} at end.`,
    `Pipeline: generator ×${r.options.parallelism} → map ×${r.options.parallelism} → keyed tumbling ${WINDOW_MS} ms count ×${r.options.parallelism} (${r.options.keys} keys) → http sink; ${r.options.seconds} s per phase, the first ${WARMUP_MS / 1000} s not counted.`,
    '',
    table([
      ['', 'value', 'target'],
      [
        'sustained throughput',
        `${int(r.throughput.events_per_s)} events/s`,
        `≥ ${int(r.targets.events_per_s)} (${ok(r.targets.met.throughput)})`,
      ],
      ['plain loop in one process (the ceiling)', `${int(r.ceiling.events_per_s)} events/s`, ''],
      ['Weir / ceiling', `${r.ceiling.ratio.toFixed(3)}×`, ''],
      [
        `latency at ${int(r.latency.rate)} events/s (counted ${int(r.latency.events_per_s)}): p50`,
        `${r.latency.ms.p50} ms`,
        '',
      ],
      ['p99', `${r.latency.ms.p99} ms`, `≤ ${r.targets.p99_ms} ms (${ok(r.targets.met.p99)})`],
      ['max', `${r.latency.ms.max} ms`, ''],
    ]),
  ].join('\n');
}

runMain(main, { deadlineMs: DEADLINE_MS });

// Weir's batch benchmark (`npm run bench -- batch`, issue 5): two data jobs on a real local
// cluster of 1 master + 2 workers (child processes on 127.0.0.x), on generated inputs.
//
//   a. wordcount over a generated text file (default 256 MiB), timed from submit to
//      completed, against the same counting code as a plain single-thread loop in this
//      process (read in chunks, split lines, count into a Map); the counts must be equal.
//      Reports the speedup (target ≥ 1.6× on 2 cores, ceiling 2×) and a sweep of job shapes
//      (task_count, reduce_tasks) and worker settings (--max-tasks, --threads);
//   b. sort of 100-byte records (default 1 GiB; 99 printable ASCII characters and '\n', the
//      line is the key), TeraSort-like, with part files under an output directory; reports
//      MB/s in total and per worker, next to the Spark 2014 sort record's per-vCPU rate, and
//      checks the output streaming: the parts in order are sorted and hold the input's lines
//      (count and an order-independent hash of every line).
//
// Each measured job is followed by its per-task timeline (GET /api/jobs/{id}/tasks): where
// the wall time goes, stage by stage and worker by worker. Figures go to stdout as a report
// and to bench/results/batch-<date>.json. Inputs are generated into a temp dir, removed at
// the end.
//
// Options: --size-mb N          both inputs are N MiB (default 256 for wordcount, 1024 for sort)
//          --only wordcount|sort  run one part
//          --max-tasks N --threads T --task-count M --reduce-tasks R
//                               skip the sweep of that setting (both parts) and use this one
//          --repeats N           timed runs of the best setting (default 3)
//          --cpu-prof            after the figures, run each part's best setting once more with
//                               the workers profiled (node --cpu-prof) and summarise
import { closeSync, mkdirSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { freemem, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { runMain } from './main.js';
import { makeTempDir } from './procs.js';
import { formatProfile, summarizeProfile } from './profile-summary.js';
import { machineInfo, table, writeJson, type Machine } from './report.js';
import { log, positiveInt, spread, type Spread } from './stats.js';
import { describeSetting, startWeirCluster, type Api, type WeirCluster, type WorkerSetting } from './weir.js';

/** Clear of the integration tests' 127.0.0.2–99 and of the other benchmarks' masters. */
const HOSTS = { master: '127.0.0.215', workers: '127.0.0.216' };
/** The whole run stops by itself after this long, whatever it is doing. */
const DEADLINE_MS = 75 * 60_000;
/** Every data job's limits: a split of a big input needs a big heap; nothing here is stuck before 10 min. */
const LIMITS = { memory_mb: 1024, timeout_ms: 600_000 };
/** A job not finished by then is stuck, not slow. */
const JOB_DEADLINE_MS = 20 * 60_000;
const MiB = 1024 * 1024;
/** MB as the Spark record counts them: 10^6 bytes. */
const MB = 1e6;
/**
 * Spark's 2014 Daytona GraySort record: 100 TB sorted in 1406 s on 206 EC2 i2.8xlarge nodes of
 * 32 vCPUs each, i.e. about 10.8 MB/s per vCPU.
 */
const SPARK_2014 = { bytes: 100e12, seconds: 1406, nodes: 206, vcpus_per_node: 32 };
const SPARK_MB_PER_VCPU = SPARK_2014.bytes / SPARK_2014.seconds / (SPARK_2014.nodes * SPARK_2014.vcpus_per_node) / MB;
const SPEEDUP_TARGET = 1.6;

/** A job's shape: its map tasks (input splits) and reduce tasks. */
interface Shape {
  task_count: number;
  reduce_tasks: number;
}

/**
 * What the sweeps try. Job shapes first, on the first worker setting; then every worker
 * setting on the best shape. On 2 cores: one thread per worker uses both; a second slot
 * hides the round trip to the master between tasks.
 */
const WORKER_SETTINGS: WorkerSetting[] = [
  { maxTasks: 2, threads: 1 },
  { maxTasks: 1, threads: 1 },
  { maxTasks: 2, threads: 2 },
  { maxTasks: 4, threads: 2 },
];
const WORDCOUNT_SHAPES: Shape[] = [
  { task_count: 2, reduce_tasks: 2 },
  { task_count: 4, reduce_tasks: 2 },
  { task_count: 8, reduce_tasks: 2 },
  { task_count: 16, reduce_tasks: 2 },
  { task_count: 32, reduce_tasks: 2 },
  { task_count: 16, reduce_tasks: 4 },
];
/** 1 GiB of records is 10.7 million lines: 16 to 64 splits of 670,000 to 170,000 lines. */
const SORT_SHAPES: Shape[] = [
  { task_count: 16, reduce_tasks: 8 },
  { task_count: 32, reduce_tasks: 8 },
  { task_count: 32, reduce_tasks: 16 },
  { task_count: 64, reduce_tasks: 16 },
];

type Part = 'wordcount' | 'sort';

interface Options {
  wordcountMb: number;
  sortMb: number;
  parts: Set<Part>;
  setting?: WorkerSetting;
  shape?: Shape;
  repeats: number;
  cpuProf: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    wordcountMb: 256,
    sortMb: 1024,
    parts: new Set(['wordcount', 'sort']),
    repeats: 3,
    cpuProf: false,
  };
  const fixed: { maxTasks?: number; threads?: number; taskCount?: number; reduceTasks?: number } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    if (a === '--size-mb') o.wordcountMb = o.sortMb = positiveInt(a, next());
    else if (a === '--only') {
      const p = next();
      if (p !== 'wordcount' && p !== 'sort') throw new Error('--only takes wordcount or sort');
      o.parts = new Set([p]);
    } else if (a === '--max-tasks') fixed.maxTasks = positiveInt(a, next());
    else if (a === '--threads') fixed.threads = positiveInt(a, next());
    else if (a === '--task-count') fixed.taskCount = positiveInt(a, next());
    else if (a === '--reduce-tasks') fixed.reduceTasks = positiveInt(a, next());
    else if (a === '--repeats') o.repeats = positiveInt(a, next());
    else if (a === '--cpu-prof') o.cpuProf = true;
    else {
      throw new Error(
        `unknown option '${a}' (known: --size-mb N, --only wordcount|sort, --max-tasks N, --threads T, --task-count M, --reduce-tasks R, --repeats N, --cpu-prof)`,
      );
    }
  }
  if (fixed.threads !== undefined && fixed.maxTasks === undefined) throw new Error('--threads goes with --max-tasks');
  if (fixed.maxTasks !== undefined) {
    o.setting = { maxTasks: fixed.maxTasks, ...(fixed.threads === undefined ? {} : { threads: fixed.threads }) };
  }
  if ((fixed.taskCount === undefined) !== (fixed.reduceTasks === undefined)) {
    throw new Error('--task-count and --reduce-tasks go together');
  }
  if (fixed.taskCount !== undefined) o.shape = { task_count: fixed.taskCount, reduce_tasks: fixed.reduceTasks! };
  return o;
}

// ------------------------------------------------------------------ inputs

/** xorshift32: fast and seeded, so every run generates the same inputs. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const ACCENTED = 'éèüöñøåç';

/**
 * A vocabulary of `n` distinct words: mostly lowercase ASCII, a few with accented letters
 * (the tokenizer splits on anything but \p{L}\p{N}) or digits.
 */
function vocabulary(n: number, rand: () => number): string[] {
  const seen = new Set<string>();
  while (seen.size < n) {
    const len = 1 + (rand() % 6) + (rand() % 6);
    let w = '';
    for (let i = 0; i < len; i++) {
      const r = rand() % 1000;
      w += r < 8 ? ACCENTED[r % ACCENTED.length] : r < 20 ? String(r % 10) : LETTERS[rand() % LETTERS.length];
    }
    seen.add(w);
  }
  return [...seen];
}

/**
 * Writes about `bytes` of text: lines of 4–20 words drawn from a Zipf (s = 1) distribution
 * over 200,000 words, some Capitalized or UPPER case (the same word once lowercased),
 * separated by spaces and now and then punctuation. Words are copied byte by byte from one
 * pool into a big buffer, written 8 MiB at a time.
 */
export function generateText(path: string, bytes: number): { bytes: number; lines: number } {
  const rand = xorshift(0x5eed);
  const words = vocabulary(200_000, rand);
  // Each word in three spellings, one after the other in the pool: lower, Capitalized, UPPER.
  const spellings = words.flatMap((w) => [w, w[0]!.toUpperCase() + w.slice(1), w.toUpperCase()]);
  const encoded = spellings.map((s) => Buffer.from(s, 'utf8'));
  const pool = Buffer.concat(encoded);
  const start = new Int32Array(encoded.length + 1);
  for (let i = 0; i < encoded.length; i++) start[i + 1] = start[i]! + encoded[i]!.length;
  // Zipf by table lookup: slot j holds the word whose cumulative probability covers (j + ½) / T.
  const T = 1 << 22;
  const zipf = new Int32Array(T);
  let h = 0;
  for (let i = 1; i <= words.length; i++) h += 1 / i;
  for (let j = 0, i = 0, cdf = 1 / h; j < T; j++) {
    while ((j + 0.5) / T > cdf && i < words.length - 1) cdf += 1 / (++i + 1) / h;
    zipf[j] = i;
  }
  const SEPARATORS = [' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ', ', '. ', ' - ', "'s ", '; ', ' (', ') '].map((s) =>
    Buffer.from(s),
  );
  const CHUNK = 8 * MiB;
  const buf = Buffer.allocUnsafe(CHUNK + 4096);
  const fd = openSync(path, 'w');
  let written = 0;
  let lines = 0;
  try {
    while (written < bytes) {
      let pos = 0;
      while (pos < CHUNK && written + pos < bytes) {
        const n = 4 + (rand() % 17);
        for (let k = 0; k < n; k++) {
          const r = rand();
          const spelling = (r & 0xff) < 26 ? 1 : (r & 0xff) < 29 ? 2 : 0;
          const s = zipf[(r >>> 10) & (T - 1)]! * 3 + spelling;
          for (let b = start[s]!, e = start[s + 1]!; b < e; b++) buf[pos++] = pool[b]!;
          if (k < n - 1) {
            const sep = SEPARATORS[rand() % SEPARATORS.length]!;
            for (let b = 0; b < sep.length; b++) buf[pos++] = sep[b]!;
          }
        }
        buf[pos++] = 0x0a;
        lines++;
      }
      writeSync(fd, buf, 0, pos);
      written += pos;
    }
  } finally {
    closeSync(fd);
  }
  return { bytes: written, lines };
}

/**
 * An order-independent digest of a file's lines, fed chunk by chunk: the count, and the sum
 * and xor of every line's FNV-1a hash. Optionally checks that each line is ≥ the one before
 * (byte order, which is Weir's order for ASCII keys): compared byte by byte as they arrive.
 */
class LineDigest {
  lines = 0;
  sum = 0;
  xor = 0;
  /** Lines that sort before the line above them. */
  outOfOrder = 0;
  private h = 0x811c9dc5;
  private prev: Uint8Array = new Uint8Array(256);
  private prevLen = 0;
  private cur: Uint8Array = new Uint8Array(256);
  private curLen = 0;
  /** -1 less than the previous line so far, 0 equal so far, 1 greater. */
  private cmp = 0;
  private first = true;

  constructor(private readonly checkOrder: boolean) {}

  feed(buf: Uint8Array, from: number, to: number): void {
    let h = this.h;
    for (let i = from; i < to; i++) {
      const b = buf[i]!;
      if (b === 0x0a) {
        this.endLine(h);
        h = 0x811c9dc5;
        continue;
      }
      h = Math.imul(h ^ b, 0x01000193);
      if (this.checkOrder) {
        if (this.curLen === this.cur.length) this.cur = grow(this.cur);
        if (this.cmp === 0)
          this.cmp =
            this.curLen >= this.prevLen ? 1 : b < this.prev[this.curLen]! ? -1 : b > this.prev[this.curLen]! ? 1 : 0;
        this.cur[this.curLen++] = b;
      }
    }
    this.h = h;
  }

  /** A last line without '\n' counts too. */
  finish(): void {
    if (this.h !== 0x811c9dc5 || this.curLen > 0) this.endLine(this.h);
  }

  private endLine(h: number): void {
    this.lines++;
    this.sum = (this.sum + (h >>> 0)) >>> 0;
    this.xor = (this.xor ^ h) >>> 0;
    if (!this.checkOrder) return;
    // Equal so far and shorter: a proper prefix of the line above sorts before it.
    const less = this.cmp < 0 || (this.cmp === 0 && this.curLen < this.prevLen);
    if (!this.first && less) this.outOfOrder++;
    this.first = false;
    [this.prev, this.cur] = [this.cur, this.prev];
    this.prevLen = this.curLen;
    this.curLen = 0;
    this.cmp = 0;
  }
}

function grow(a: Uint8Array): Uint8Array {
  const b = new Uint8Array(a.length * 2);
  b.set(a);
  return b;
}

/** Feeds files in order through a digest, 8 MiB at a time. */
function digestFiles(paths: readonly string[], checkOrder: boolean): LineDigest {
  const d = new LineDigest(checkOrder);
  const buf = Buffer.allocUnsafe(8 * MiB);
  for (const p of paths) {
    const fd = openSync(p, 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) d.feed(buf, 0, n);
    } finally {
      closeSync(fd);
    }
  }
  d.finish();
  return d;
}

/** `count` records of 99 printable ASCII characters (0x20–0x7e) and '\n', written 8 MiB at a time. */
export function generateRecords(path: string, count: number): { bytes: number; digest: LineDigest } {
  const PER = Math.floor((8 * MiB) / 100);
  const buf = Buffer.allocUnsafe(PER * 100);
  const digest = new LineDigest(false);
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < count;) {
      const n = Math.min(PER, count - done);
      randomFillSync(buf, 0, n * 100);
      for (let r = 0; r < n; r++) {
        const o = r * 100;
        for (let k = 0; k < 99; k++) buf[o + k] = 0x20 + (buf[o + k]! % 95);
        buf[o + 99] = 0x0a;
      }
      digest.feed(buf, 0, n * 100);
      writeSync(fd, buf, 0, n * 100);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  digest.finish();
  return { bytes: count * 100, digest };
}

// ------------------------------------------------------------------ the single-thread baseline

/** Weir's wordcount tokenizer (src/ops/builtin-jobs.ts), as is. */
const tokens = (line: unknown): string[] =>
  String(line)
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w !== '');

/**
 * Wordcount as a plain loop in this thread: reads 4 MiB at a time, cuts at the last newline
 * (the rest waits for the next read, so a UTF-8 character is never split), splits the text
 * into lines and counts every token into one Map, as Weir's mapSplit does for its split.
 * With `range`, counts the lines that start in `[start, end)` (the ceiling's halves).
 */
export function baselineWordcount(path: string, range?: { start: number; end: number }): Map<string, number> {
  const CHUNK = 4 * MiB;
  const counts = new Map<string, number>();
  const count = (text: string) => {
    for (let line of text.split('\n')) {
      if (line.endsWith('\r')) line = line.slice(0, -1); // as Weir's line reader
      for (const w of tokens(line)) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  };
  const buf = Buffer.allocUnsafe(2 * CHUNK);
  const fd = openSync(path, 'r');
  try {
    let pos = range?.start ?? 0;
    const end = range?.end ?? Infinity;
    let carry = 0;
    for (;;) {
      const n = readSync(fd, buf, carry, Math.min(CHUNK, end - pos), pos);
      pos += n;
      const filled = carry + n;
      if (n === 0) {
        if (filled > 0) count(buf.toString('utf8', 0, filled));
        break;
      }
      const nl = buf.lastIndexOf(0x0a, filled - 1);
      if (nl < 0) {
        if (filled > CHUNK) throw new Error(`${path}: a line longer than ${CHUNK} bytes`);
        carry = filled;
        continue;
      }
      count(buf.toString('utf8', 0, nl));
      buf.copy(buf, 0, nl + 1, filled);
      carry = filled - nl - 1;
    }
  } finally {
    closeSync(fd);
  }
  return counts;
}

/**
 * What this machine allows: the same loop in two threads at once, each over half the file
 * (cut after a newline), and the two Maps merged. No framework, no shuffle: 2 cores that
 * slow each other down (shared caches, memory bandwidth) give less than 2×.
 */
async function twoThreadWordcount(path: string, bytes: number): Promise<number> {
  const probe = Buffer.allocUnsafe(64 * 1024);
  const fd = openSync(path, 'r');
  const n = readSync(fd, probe, 0, probe.length, Math.floor(bytes / 2));
  closeSync(fd);
  const mid = Math.floor(bytes / 2) + probe.subarray(0, n).indexOf(0x0a) + 1;
  const t = performance.now();
  const halves = await Promise.all(
    [
      { start: 0, end: mid },
      { start: mid, end: bytes },
    ].map(
      (range) =>
        new Promise<Map<string, number>>((resolveHalf, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: { wordcount: path, range } });
          w.once('message', resolveHalf);
          w.once('error', reject);
        }),
    ),
  );
  const merged = halves[0]!;
  for (const [k, v] of halves[1]!) merged.set(k, (merged.get(k) ?? 0) + v);
  return (performance.now() - t) / 1000;
}

// ------------------------------------------------------------------ driving Weir

interface JobDetail {
  job_id: string;
  status: string;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  progress: { total: number; completed: number };
  stages?: { name: string; total: number }[];
  output?: { path: string; parts: { part: string; records: number; bytes: number }[] };
  error?: { message: string };
}

interface TaskRow {
  idx: number;
  status: string;
  attempt: number;
  failures: number;
  worker_id: string | null;
  started_at: string | null;
  finished_at: string | null;
}

async function getJson<T>(api: Api, path: string, timeoutMs = 30_000): Promise<T> {
  const { status, text } = await api.send('GET', path, undefined, timeoutMs);
  if (status >= 300) throw new Error(`GET ${path} → ${status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/** Submits a job and long-polls it to `completed`; the seconds are from submit to the poll's answer. */
async function runJob(
  api: Api,
  name: string,
  config: Record<string, unknown>,
): Promise<{ seconds: number; job: JobDetail; submittedAt: number }> {
  const submittedAt = Date.now();
  const t0 = performance.now();
  const submitted = await api.call<JobDetail>('POST', '/api/jobs', { name, type: 'batch', config });
  for (;;) {
    const job = await getJson<JobDetail>(api, `/api/jobs/${submitted.job_id}?wait_ms=60000`, 75_000);
    if (job.status === 'completed') return { seconds: (performance.now() - t0) / 1000, job, submittedAt };
    if (job.status === 'failed' || job.status === 'cancelled') {
      throw new Error(`job ${job.job_id} (${name}) ${job.status}: ${job.error?.message ?? 'no error given'}`);
    }
    if (performance.now() - t0 > JOB_DEADLINE_MS) throw new Error(`job ${job.job_id} (${name}) still ${job.status}`);
  }
}

/** Every row of a completed job's results, page by page. */
async function allResults(api: Api, jobId: string): Promise<{ key: unknown; value: unknown }[]> {
  const rows: { key: unknown; value: unknown }[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const page: { results: { key: unknown; value: unknown }[]; next_cursor: string | null } = await getJson(
      api,
      `/api/jobs/${jobId}/results?limit=100000${q}`,
      120_000,
    );
    for (const r of page.results) rows.push(r);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return rows;
}

/** One stage of a job as its tasks' start and finish times show it (seconds from submit). */
interface StageTimes {
  name: string;
  tasks: number;
  first_start_s: number;
  last_finish_s: number;
  task_s: { median: number; min: number; max: number; sum: number };
  retried: number;
}

interface Timeline {
  wall_s: number;
  /** From submit to the job's first task assigned. */
  to_first_task_s: number;
  /** From the last task finished (as the master recorded it) to the client seeing `completed`. */
  after_last_task_s: number;
  stages: StageTimes[];
  /** Gaps between one stage's last task and the next stage's first: scheduling between stages. */
  stage_gaps_s: number[];
  /** Per worker: tasks run and the sum of their times; busy / wall is how many ran at once on average. */
  workers: { worker: string; tasks: number; busy_s: number }[];
}

async function timelineOf(api: Api, job: JobDetail, submittedAt: number, wallS: number): Promise<Timeline> {
  const { tasks } = await getJson<{ tasks: TaskRow[] }>(api, `/api/jobs/${job.job_id}/tasks?limit=100000`);
  const at = (iso: string | null) => (iso === null ? NaN : (Date.parse(iso) - submittedAt) / 1000);
  const stagesOf = job.stages ?? [{ name: 'tasks', total: job.progress.total }];
  const stages: StageTimes[] = [];
  let first = 0;
  for (const st of stagesOf) {
    const mine = tasks.filter((t) => t.idx >= first && t.idx < first + st.total);
    first += st.total;
    const durations = mine.map((t) => at(t.finished_at) - at(t.started_at)).sort((a, b) => a - b);
    const s = spread(durations);
    stages.push({
      name: st.name,
      tasks: mine.length,
      first_start_s: Math.min(...mine.map((t) => at(t.started_at))),
      last_finish_s: Math.max(...mine.map((t) => at(t.finished_at))),
      task_s: { median: s.median, min: s.min, max: s.max, sum: durations.reduce((a, b) => a + b, 0) },
      retried: mine.filter((t) => t.attempt > 1 || t.failures > 0).length,
    });
  }
  const byWorker = new Map<string, { tasks: number; busy_s: number }>();
  for (const t of tasks) {
    const w = byWorker.get(t.worker_id ?? '?') ?? { tasks: 0, busy_s: 0 };
    w.tasks++;
    w.busy_s += at(t.finished_at) - at(t.started_at);
    byWorker.set(t.worker_id ?? '?', w);
  }
  const lastFinish = Math.max(...stages.map((s) => s.last_finish_s));
  return {
    wall_s: wallS,
    to_first_task_s: Math.min(...stages.map((s) => s.first_start_s)),
    after_last_task_s: wallS - lastFinish,
    stages,
    stage_gaps_s: stages.slice(1).map((s, i) => s.first_start_s - stages[i]!.last_finish_s),
    workers: [...byWorker].map(([worker, w]) => ({ worker, ...w })).sort((a, b) => a.worker.localeCompare(b.worker)),
  };
}

function formatTimeline(t: Timeline): string {
  const s = (x: number) => x.toFixed(2);
  const rows = [
    ['stage', 'tasks', 'first start', 'last finish', 'task median', 'task min–max', 'Σ task', 'retried'],
    ...t.stages.map((st) => [
      st.name,
      String(st.tasks),
      s(st.first_start_s),
      s(st.last_finish_s),
      s(st.task_s.median),
      `${s(st.task_s.min)}–${s(st.task_s.max)}`,
      s(st.task_s.sum),
      String(st.retried),
    ]),
  ];
  return [
    `  timeline (seconds from submit; wall ${s(t.wall_s)} s, first task assigned at ${s(t.to_first_task_s)} s, completed seen ${s(t.after_last_task_s)} s after the last task):`,
    table(rows)
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n'),
    `    gaps between stages: ${t.stage_gaps_s.map(s).join(', ') || '—'} s; per worker (tasks, Σ task s, avg running at once): ${t.workers
      .map((w) => `${w.worker.slice(-6)} ${w.tasks} tasks ${s(w.busy_s)} s ×${(w.busy_s / t.wall_s).toFixed(2)}`)
      .join('; ')}`,
  ].join('\n');
}

/** 1-minute load averages seen during the run (every 5 s), for the report. */
class LoadWatch {
  readonly samples: number[] = [];
  private readonly timer = setInterval(() => this.samples.push(loadavg()[0]!), 5000).unref();
  stop(): void {
    clearInterval(this.timer);
  }
}

const startCluster = (setting: WorkerSetting, profDir?: string): Promise<WeirCluster> =>
  startWeirCluster({
    ...setting,
    masterHosts: [HOSTS.master],
    workerHost: HOSTS.workers,
    // Default profile names carry the pid and thread id: the task threads write their own.
    ...(profDir
      ? { nodeArgs: (n: string) => (n.startsWith('w') ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, n)}`] : []) }
      : {}),
  });

/** Small inputs each fresh cluster runs once first, so thread start-up and JIT warm-up are not timed. */
interface Warmups {
  text: string;
  records: string;
  out: string;
}

async function warmUp(c: WeirCluster, w: Warmups): Promise<void> {
  await runJob(c.api, 'warmup-wordcount', wordcountConfig(w.text, { task_count: 4, reduce_tasks: 2 }));
  await runJob(c.api, 'warmup-sort', sortConfig(w.records, { task_count: 4, reduce_tasks: 4 }, w.out));
  rmSync(w.out, { recursive: true, force: true });
}

const wordcountConfig = (path: string, s: Shape) => ({
  operation: 'wordcount',
  input: { path, format: 'lines' },
  ...s,
  ...LIMITS,
});

const sortConfig = (path: string, s: Shape, out: string) => ({
  operation: 'sort',
  input: { path, format: 'lines' },
  ...s,
  output: { path: out },
  ...LIMITS,
});

const settingKey = (s: WorkerSetting) => `${s.maxTasks}/${s.threads ?? s.maxTasks}`;
const shapeText = (s: Shape) => `task_count ${s.task_count}, reduce_tasks ${s.reduce_tasks}`;

/** One run of the sweep or of the best setting. */
interface RunRow {
  max_tasks: number;
  threads: number | null;
  task_count: number;
  reduce_tasks: number;
  seconds: number;
  /** Load average at the end of the run. */
  load: number;
  ok: boolean;
  note?: string;
}

/**
 * Drives one part: a sweep of shapes on the first worker setting, then the worker settings
 * on the best shape, then `repeats` runs of the best of all; each run checked by `verify`.
 * Settings given on the command line pin that dimension.
 */
async function sweepAndRepeat(
  o: Options,
  shapes: Shape[],
  w: Warmups,
  runOnce: (c: WeirCluster, s: Shape, label: string) => Promise<{ seconds: number; ok: boolean; note?: string }>,
): Promise<{ sweep: RunRow[]; best: { setting: WorkerSetting; shape: Shape; runs: RunRow[] } }> {
  const settings = o.setting ? [o.setting] : WORKER_SETTINGS;
  const shapeList = o.shape ? [o.shape] : shapes;
  const sweep: RunRow[] = [];
  const clusters = new Map<string, WeirCluster>();
  const clusterFor = async (s: WorkerSetting) => {
    // One cluster at a time: an idle one still has threads and timers.
    for (const [k, c] of clusters) if (k !== settingKey(s)) await c.stop().then(() => clusters.delete(k));
    let c = clusters.get(settingKey(s));
    if (!c) {
      log(`  cluster: 1 master + 2 workers, ${describeSetting(s)}`);
      c = await startCluster(s);
      clusters.set(settingKey(s), c);
      await warmUp(c, w);
    }
    return c;
  };
  const measure = async (setting: WorkerSetting, shape: Shape, label: string): Promise<RunRow> => {
    const c = await clusterFor(setting);
    // A job that fails is a row of the sweep (with its error), not the end of the part.
    const r = await runOnce(c, shape, label).catch((err: Error) => ({
      seconds: NaN,
      ok: false,
      note: `job failed: ${err.message}`,
    }));
    const row: RunRow = {
      max_tasks: setting.maxTasks,
      threads: setting.threads ?? null,
      ...shape,
      seconds: r.seconds,
      load: loadavg()[0]!,
      ok: r.ok,
      ...(r.note ? { note: r.note } : {}),
    };
    log(
      `  ${label}: ${describeSetting(setting)}; ${shapeText(shape)} → ${r.seconds.toFixed(2)} s${r.ok ? '' : ` FAILED: ${r.note}`} (load ${row.load.toFixed(2)})`,
    );
    return row;
  };
  const fastest = (rows: RunRow[]) =>
    rows.filter((r) => r.ok).reduce<RunRow | undefined>((a, b) => (!a || b.seconds < a.seconds ? b : a), undefined);
  try {
    const first = settings[0]!;
    if (shapeList.length > 1 || settings.length > 1) {
      for (const shape of shapeList) sweep.push(await measure(first, shape, 'sweep'));
      const bestShape = fastest(sweep) ?? sweep[0]!;
      for (const setting of settings.slice(1)) {
        sweep.push(
          await measure(setting, { task_count: bestShape.task_count, reduce_tasks: bestShape.reduce_tasks }, 'sweep'),
        );
      }
    }
    const b = fastest(sweep);
    const setting: WorkerSetting = b
      ? { maxTasks: b.max_tasks, ...(b.threads === null ? {} : { threads: b.threads }) }
      : first;
    const shape: Shape = b ? { task_count: b.task_count, reduce_tasks: b.reduce_tasks } : shapeList[0]!;
    const runs: RunRow[] = [];
    for (let i = 0; i < o.repeats; i++) runs.push(await measure(setting, shape, `best ${i + 1}/${o.repeats}`));
    return { sweep, best: { setting, shape, runs } };
  } finally {
    for (const c of clusters.values()) await c.stop();
  }
}

/** A profiled run of `shape` on a fresh cluster with `setting`, summarised per profile file. */
async function profiledRun(
  setting: WorkerSetting,
  w: Warmups,
  runOnce: (c: WeirCluster, label: string) => Promise<unknown>,
): Promise<string[]> {
  const profDir = makeTempDir('weir-batch-prof-');
  const c = await startCluster(setting, profDir);
  try {
    await warmUp(c, w);
    await runOnce(c, 'profiled');
  } finally {
    await c.stop();
  }
  const out: string[] = [];
  for (const worker of readdirSync(profDir).sort()) {
    for (const f of readdirSync(join(profDir, worker)).sort()) {
      const file = join(profDir, worker, f);
      // A thread that was mostly idle (the main thread, a thread no task ran on) says little.
      if (summarizeProfile(file).busyPercent >= 20) out.push(`${worker}: ${formatProfile(file)}`);
    }
  }
  return out;
}

// ------------------------------------------------------------------ a. wordcount

interface WordcountResults {
  input: { bytes: number; lines: number; tokens: number; distinct: number; generate_s: number };
  baseline: { seconds: Spread; mb_per_s: number };
  /** The same loop in two threads at once: this machine's ceiling for 2 workers. */
  two_threads: { seconds: Spread; speedup: number };
  sweep: RunRow[];
  best: {
    setting: string;
    max_tasks: number;
    threads: number | null;
    shape: Shape;
    seconds: Spread;
    mb_per_s: number;
    runs: RunRow[];
  };
  speedup: number;
  speedup_target: number;
  /** Weir's speedup as a share of the two-thread loop's. */
  of_ceiling: number;
  met: boolean;
  timeline?: Timeline;
  profiles?: string[];
}

async function partWordcount(o: Options, dir: string, w: Warmups): Promise<WordcountResults> {
  const path = join(dir, 'words.txt');
  log(`a. wordcount: generating ${o.wordcountMb} MiB of text`);
  let t = performance.now();
  const gen = generateText(path, o.wordcountMb * MiB);
  const generateS = (performance.now() - t) / 1000;
  log(`  ${(gen.bytes / MiB).toFixed(0)} MiB, ${gen.lines.toLocaleString('en-US')} lines in ${generateS.toFixed(1)} s`);

  // The baseline first, with the machine otherwise idle: no cluster is running yet.
  const baseRuns: number[] = [];
  let expected = new Map<string, number>();
  for (let i = 0; i < o.repeats; i++) {
    t = performance.now();
    expected = baselineWordcount(path);
    baseRuns.push((performance.now() - t) / 1000);
    log(`  baseline (one thread, this process) ${i + 1}/${o.repeats}: ${baseRuns[i]!.toFixed(2)} s`);
  }
  const twoRuns: number[] = [];
  for (let i = 0; i < o.repeats; i++) {
    twoRuns.push(await twoThreadWordcount(path, gen.bytes));
    log(`  the same loop in two threads, a half each ${i + 1}/${o.repeats}: ${twoRuns[i]!.toFixed(2)} s`);
  }
  let tokenTotal = 0;
  for (const n of expected.values()) tokenTotal += n;
  log(`  ${tokenTotal.toLocaleString('en-US')} words, ${expected.size.toLocaleString('en-US')} distinct`);

  let lastTimeline: Timeline | undefined;
  const runOnce = async (c: WeirCluster, shape: Shape, label: string) => {
    const { seconds, job, submittedAt } = await runJob(c.api, `wordcount-${label}`, wordcountConfig(path, shape));
    lastTimeline = await timelineOf(c.api, job, submittedAt, seconds);
    const check = compareCounts(expected, await allResults(c.api, job.job_id));
    return { seconds, ...check };
  };
  const { sweep, best } = await sweepAndRepeat(o, WORDCOUNT_SHAPES, w, runOnce);
  const timeline = lastTimeline;
  if (timeline) log(formatTimeline(timeline));
  const base = spread(baseRuns);
  const weir = spread(best.runs.map((r) => r.seconds));
  const speedup = base.median / weir.median;
  const two = spread(twoRuns);
  const results: WordcountResults = {
    input: { bytes: gen.bytes, lines: gen.lines, tokens: tokenTotal, distinct: expected.size, generate_s: generateS },
    baseline: { seconds: base, mb_per_s: gen.bytes / MB / base.median },
    two_threads: { seconds: two, speedup: base.median / two.median },
    sweep,
    best: {
      setting: describeSetting(best.setting),
      max_tasks: best.setting.maxTasks,
      threads: best.setting.threads ?? null,
      shape: best.shape,
      seconds: weir,
      mb_per_s: gen.bytes / MB / weir.median,
      runs: best.runs,
    },
    speedup,
    speedup_target: SPEEDUP_TARGET,
    of_ceiling: speedup / (base.median / two.median),
    met: speedup >= SPEEDUP_TARGET && best.runs.every((r) => r.ok),
    ...(timeline ? { timeline } : {}),
  };
  if (o.cpuProf) {
    log('  profiling the workers over one more run of the best setting');
    results.profiles = await profiledRun(best.setting, w, (c, l) => runOnce(c, best.shape, l));
  }
  rmSync(path, { force: true });
  return results;
}

/** Weir's counts against the baseline's: every key, and the totals. */
function compareCounts(
  expected: Map<string, number>,
  rows: { key: unknown; value: unknown }[],
): { ok: boolean; note?: string } {
  let total = 0;
  let wrong = 0;
  const example: string[] = [];
  for (const r of rows) {
    const n = Number(r.value);
    total += n;
    if (expected.get(r.key as string) !== n) {
      wrong++;
      if (example.length < 3) example.push(`${JSON.stringify(r.key)}: ${n} vs ${expected.get(r.key as string)}`);
    }
  }
  let expectedTotal = 0;
  for (const n of expected.values()) expectedTotal += n;
  const ok = wrong === 0 && rows.length === expected.size && total === expectedTotal;
  return ok
    ? { ok }
    : {
        ok,
        note: `${rows.length} keys (expected ${expected.size}), ${total} words (expected ${expectedTotal}), ${wrong} keys differ${example.length ? ` e.g. ${example.join(', ')}` : ''}`,
      };
}

// ------------------------------------------------------------------ b. sort

interface SortResults {
  input: { bytes: number; records: number; generate_s: number };
  sweep: RunRow[];
  best: { setting: string; max_tasks: number; threads: number | null; shape: Shape; seconds: Spread; runs: RunRow[] };
  mb_per_s: number;
  mb_per_s_per_worker: number;
  spark_2014_mb_per_s_per_vcpu: number;
  validation: { lines: number; out_of_order: number; digest_equal: boolean; parts: number; check_s: number };
  timeline?: Timeline;
  profiles?: string[];
}

async function partSort(o: Options, dir: string, w: Warmups): Promise<SortResults> {
  const path = join(dir, 'records.txt');
  const count = Math.floor((o.sortMb * MiB) / 100);
  log(`b. sort: generating ${count.toLocaleString('en-US')} records of 100 bytes`);
  let t = performance.now();
  const gen = generateRecords(path, count);
  const generateS = (performance.now() - t) / 1000;
  log(`  ${(gen.bytes / MiB).toFixed(0)} MiB in ${generateS.toFixed(1)} s`);

  let lastTimeline: Timeline | undefined;
  let lastValidation: SortResults['validation'] | undefined;
  let n = 0;
  const runOnce = async (c: WeirCluster, shape: Shape, label: string) => {
    const out = join(dir, `sorted-${n++}`);
    const { seconds, job, submittedAt } = await runJob(c.api, `sort-${label}`, sortConfig(path, shape, out));
    lastTimeline = await timelineOf(c.api, job, submittedAt, seconds);
    t = performance.now();
    const parts = readdirSync(out)
      .filter((f) => /^part-\d{5}$/.test(f))
      .sort()
      .map((f) => join(out, f));
    const d = digestFiles(parts, true);
    const v = {
      lines: d.lines,
      out_of_order: d.outOfOrder,
      digest_equal: d.lines === gen.digest.lines && d.sum === gen.digest.sum && d.xor === gen.digest.xor,
      parts: parts.length,
      check_s: (performance.now() - t) / 1000,
    };
    lastValidation = v;
    rmSync(out, { recursive: true, force: true });
    const ok = v.digest_equal && v.out_of_order === 0 && v.parts === shape.reduce_tasks;
    return {
      seconds,
      ok,
      ...(ok
        ? {}
        : {
            note: `${v.parts} parts (expected ${shape.reduce_tasks}), ${v.lines} lines (expected ${gen.digest.lines}), ${v.out_of_order} out of order, digest ${v.digest_equal ? 'equal' : 'DIFFERS'}`,
          }),
    };
  };
  const { sweep, best } = await sweepAndRepeat(o, SORT_SHAPES, w, runOnce);
  const timeline = lastTimeline;
  if (timeline) log(formatTimeline(timeline));
  const weir = spread(best.runs.map((r) => r.seconds));
  const mbPerS = gen.bytes / MB / weir.median;
  const results: SortResults = {
    input: { bytes: gen.bytes, records: count, generate_s: generateS },
    sweep,
    best: {
      setting: describeSetting(best.setting),
      max_tasks: best.setting.maxTasks,
      threads: best.setting.threads ?? null,
      shape: best.shape,
      seconds: weir,
      runs: best.runs,
    },
    mb_per_s: mbPerS,
    mb_per_s_per_worker: mbPerS / 2,
    spark_2014_mb_per_s_per_vcpu: SPARK_MB_PER_VCPU,
    validation: lastValidation!,
    ...(timeline ? { timeline } : {}),
  };
  if (o.cpuProf) {
    log('  profiling the workers over one more run of the best setting');
    results.profiles = await profiledRun(best.setting, w, (c, l) => runOnce(c, best.shape, l));
  }
  rmSync(path, { force: true });
  return results;
}

// ------------------------------------------------------------------ report

interface BatchResults {
  started_at: string;
  duration_s: number;
  machine: Machine;
  load: { start: number; end: number; max: number; samples: number[] };
  hosts: typeof HOSTS;
  job_limits: typeof LIMITS;
  wordcount?: WordcountResults | { failed: string };
  sort?: SortResults | { failed: string };
}

const sweepRows = (rows: RunRow[]) => [
  ['run', '--max-tasks', '--threads', 'task_count', 'reduce_tasks', 'seconds', 'load', 'check'],
  ...rows.map((r, i) => [
    String(i + 1),
    String(r.max_tasks),
    String(r.threads ?? r.max_tasks),
    String(r.task_count),
    String(r.reduce_tasks),
    Number.isNaN(r.seconds) ? '—' : r.seconds.toFixed(2),
    r.load.toFixed(2),
    r.ok ? 'ok' : `FAILED: ${(r.note ?? '').slice(0, 100)}`,
  ]),
];

/** Whether every job that completed counted as the baseline did (failed jobs are listed in the sweep). */
function countsLine(rows: RunRow[]): string {
  const completed = rows.filter((r) => !Number.isNaN(r.seconds));
  const wrong = completed.filter((r) => !r.ok).length;
  return wrong === 0
    ? `Weir's counts equal the baseline's (every key) in all ${completed.length} completed jobs`
    : `Weir's counts DIFFER from the baseline's in ${wrong} of ${completed.length} completed jobs`;
}

const range = (s: Spread) =>
  `${s.median.toFixed(2)} s (min ${s.min.toFixed(2)}, max ${s.max.toFixed(2)}, ${s.runs.length} runs)`;

function formatReport(r: BatchResults): string {
  const out = [
    `Weir batch benchmark, ${r.started_at}: 1 master (${r.hosts.master}) + 2 workers (${r.hosts.workers}) on ${r.machine.cpus} × ${r.machine.cpu_model}, Node ${r.machine.node}`,
    `Load average (1 min): ${r.load.start.toFixed(2)} at start, ${r.load.end.toFixed(2)} at end, max ${r.load.max.toFixed(2)} during the run.`,
    `Every job: memory_mb ${r.job_limits.memory_mb}, timeout_ms ${r.job_limits.timeout_ms}; each fresh cluster ran a small warm-up job first.`,
    '',
  ];
  const wc = r.wordcount;
  if (wc && 'failed' in wc) out.push(`a. wordcount FAILED: ${wc.failed}`, '');
  else if (wc) {
    out.push(
      `a. wordcount over ${(wc.input.bytes / MiB).toFixed(0)} MiB (${wc.input.lines.toLocaleString('en-US')} lines, ${wc.input.tokens.toLocaleString('en-US')} words, ${wc.input.distinct.toLocaleString('en-US')} distinct)`,
      table([
        ['', 'time', 'MB/s'],
        ['single-thread loop (this process)', range(wc.baseline.seconds), wc.baseline.mb_per_s.toFixed(1)],
        [
          'the same loop in 2 threads, a half each',
          range(wc.two_threads.seconds),
          (wc.input.bytes / MB / wc.two_threads.seconds.median).toFixed(1),
        ],
        [`Weir (${wc.best.setting}; ${shapeText(wc.best.shape)})`, range(wc.best.seconds), wc.best.mb_per_s.toFixed(1)],
      ]),
      `speedup (medians): ${wc.speedup.toFixed(2)}×  — target ≥ ${wc.speedup_target}×, ceiling 2× — ${wc.met ? 'met' : 'MISSED'}; ${countsLine([...wc.sweep, ...wc.best.runs])}`,
      `this machine's ceiling (the loop in 2 threads): ${wc.two_threads.speedup.toFixed(2)}×; Weir reaches ${(100 * wc.of_ceiling).toFixed(0)}% of it`,
      '',
      'sweep (shapes on the first worker setting, then worker settings on the best shape; seconds from submit to completed), then the best setting again:',
      table(sweepRows([...wc.sweep, ...wc.best.runs]), 0),
      '',
    );
    if (wc.timeline) out.push('last run of the best setting:', formatTimeline(wc.timeline), '');
  }
  const so = r.sort;
  if (so && 'failed' in so) out.push(`b. sort FAILED: ${so.failed}`, '');
  else if (so) {
    const v = so.validation;
    out.push(
      `b. sort of ${(so.input.bytes / MiB).toFixed(0)} MiB (${so.input.records.toLocaleString('en-US')} records of 100 bytes), output as part files`,
      table([
        ['', 'value'],
        [`Weir (${so.best.setting}; ${shapeText(so.best.shape)})`, range(so.best.seconds)],
        ['throughput (MB = 10^6 bytes)', `${so.mb_per_s.toFixed(1)} MB/s`],
        ['per worker (= per vCPU here: 2 workers, 2 cores)', `${so.mb_per_s_per_worker.toFixed(1)} MB/s`],
        [
          'Spark 2014 record (100 TB, 206 × 32 vCPUs, 1406 s)',
          `${so.spark_2014_mb_per_s_per_vcpu.toFixed(1)} MB/s per vCPU`,
        ],
      ]),
      `output check (last run): ${v.parts} parts, ${v.lines.toLocaleString('en-US')} lines, ${v.out_of_order} out of order, line digest ${v.digest_equal ? 'equal to the input' : 'DIFFERS'} (${v.check_s.toFixed(1)} s to check)`,
      '',
      'sweep, then the best setting again:',
      table(sweepRows([...so.sweep, ...so.best.runs]), 0),
      '',
    );
    if (so.timeline) out.push('last run of the best setting:', formatTimeline(so.timeline), '');
  }
  for (const p of [
    ...((wc && 'profiles' in wc && wc.profiles) || []),
    ...((so && 'profiles' in so && so.profiles) || []),
  ])
    out.push(p, '');
  return out.join('\n');
}

// ------------------------------------------------------------------ main

let partial: BatchResults | undefined;

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const t0 = performance.now();
  const load = new LoadWatch();
  const loadAtStart = loadavg()[0]!;
  const r: BatchResults = {
    started_at: startedAt.toISOString(),
    duration_s: 0,
    machine: machineInfo(),
    load: { start: loadAtStart, end: NaN, max: NaN, samples: load.samples },
    hosts: HOSTS,
    job_limits: LIMITS,
  };
  partial = r;
  const finish = () => {
    r.duration_s = (performance.now() - t0) / 1000;
    r.load.end = loadavg()[0]!;
    r.load.max = Math.max(loadAtStart, r.load.end, ...load.samples);
  };
  const dir = makeTempDir('weir-batch-data-');
  const need = (o.parts.has('wordcount') ? o.wordcountMb : 0) + (o.parts.has('sort') ? 3 * o.sortMb : 0);
  log(`inputs and outputs in ${dir} (up to ~${need} MiB on disk; ${Math.round(freemem() / MiB)} MiB of memory free)`);
  const warm: Warmups = {
    text: join(dir, 'warm.txt'),
    records: join(dir, 'warm-records.txt'),
    out: join(dir, 'warm-out'),
  };
  generateText(warm.text, 2 * MiB);
  generateRecords(warm.records, 20_000);
  mkdirSync(warm.out, { recursive: true });
  let failed = false;
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | { failed: string }> => {
    try {
      return await fn();
    } catch (err) {
      failed = true;
      log(`${what} failed: ${(err as Error).stack ?? String(err)}`);
      return { failed: (err as Error).message };
    }
  };
  if (o.parts.has('wordcount')) r.wordcount = await attempt('wordcount', () => partWordcount(o, dir, warm));
  if (o.parts.has('sort')) r.sort = await attempt('sort', () => partSort(o, dir, warm));
  load.stop();
  finish();
  process.stdout.write(`\n${formatReport(r)}\n`);
  log(`\nfigures written to ${writeJson('batch', r.started_at, r)}`);
  if (failed) process.exitCode = 1;
}

// Imported (e.g. to generate an input for a profile by hand), it only exports its generators.
if (!isMainThread && (workerData as { wordcount?: string }).wordcount) {
  const { wordcount, range } = workerData as { wordcount: string; range: { start: number; end: number } };
  parentPort!.postMessage(baselineWordcount(wordcount, range));
} else if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  runMain(main, {
    deadlineMs: DEADLINE_MS,
    onDeadline: () => {
      if (partial) log(`figures so far written to ${writeJson('batch', partial.started_at, partial)}`);
    },
  });
}

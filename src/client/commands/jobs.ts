import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync, openSync } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { CliError, EXIT, note, out, readConfig, readTextFile, type CliContext } from '../cli-context.js';
import { formatJob, formatJobs, formatLogLine, progressLine } from '../format.js';
import {
  FIRST_RESULTS,
  JOB_STATUSES,
  TERMINAL_STATUSES,
  type JobStatus,
  type JobView,
  type ResultsPage,
  type WeirClient,
} from '../sdk.js';
import { WeirError } from '../../common/errors.js';
import { UPLOAD_ID, uploadPath } from '../../common/ids.js';
import { normalizeBatchConfig } from '../../ops/batch-config.js';
import { retentionOf } from '../../ops/retention.js';

/** `weir submit`, `run`, `status`, `wait`, `results`, `cancel`, `jobs`: a job's life. */
export function jobCommands(program: Command, ctx: CliContext): void {
  program
    .command('submit')
    .description('submit a job; prints its id alone on stdout')
    .argument('<type>', 'batch or streaming')
    .argument('<name>', 'a name for the job')
    .argument('[config]', 'JSON (starting with {) or a JSON file; for streaming, the topology file')
    .option('--module <file>', 'JavaScript module with the job’s functions')
    .option('--input <file>', 'a local input file to upload')
    .action(async (type: string, name: string, configArg: string | undefined, f: SubmitFlags) => {
      const job = await submitJob(ctx, type, name, configArg, f);
      if (ctx.global.json) out(JSON.stringify(job, null, 2));
      else {
        // A stream never ends, so `wait` would not return: its status and its output are what to follow.
        const follow =
          job.type === 'streaming'
            ? `weir status ${job.job_id} (its output: weir results ${job.job_id} --follow)`
            : `weir wait ${job.job_id}`;
        note(`submitted job "${job.name}" with ${job.progress.total} task(s); follow it with: ${follow}`);
        out(job.job_id);
      }
    });

  program
    .command('run')
    .description(
      'submit a batch job, wait for it and print its results as JSON: exit 0 completed, 1 failed, 2 cancelled, 3 cluster unreachable',
    )
    .argument('<type>', 'batch (a stream never finishes: submit it, then weir results --follow)')
    .argument('<name>', 'a name for the job')
    .argument('[config]', 'JSON (starting with {) or a JSON file')
    .option('--module <file>', 'JavaScript module with the job’s functions')
    .option('--input <file>', 'a local input file to upload')
    .action(async (type: string, name: string, configArg: string | undefined, f: SubmitFlags) => {
      if (type !== 'batch') {
        throw new CliError(
          `weir run takes batch jobs; got '${type}' (a stream never finishes: weir submit streaming, then weir results --follow)`,
        );
      }
      // The submit's answer waits a second for the job and brings the results of one that
      // completed: a short job is one round trip.
      const { results_page: first, ...job } = await submitJob(ctx, type, name, configArg, f, RUN_SUBMIT_WAIT_MS);
      note(`job ${job.job_id}`);
      const done = TERMINAL_STATUSES.has(job.status)
        ? job
        : await waitWithProgress(ctx.sdk(), job.job_id, ctx.global.json);
      if (done.status === 'completed') await writeResults(ctx, job.job_id, { first });
      else note(formatJob(done));
      ctx.exitCode = exitCodeOf(done);
    });

  program
    .command('status')
    .description("a job's status and progress")
    .argument('<job_id>')
    .action(async (id: string) => {
      const job = await ctx.sdk().job(id);
      ctx.print(job, () => formatJob(job));
    });

  program
    .command('wait')
    .description('wait for a job to finish: exit 0 completed, 1 failed, 2 cancelled, 3 cluster unreachable')
    .argument('<job_id>')
    .action(async (id: string) => {
      const job = await waitWithProgress(ctx.sdk(), id, ctx.global.json);
      if (ctx.global.json) out(JSON.stringify(job, null, 2));
      else note(formatJob(job));
      ctx.exitCode = exitCodeOf(job);
    });

  program
    .command('results')
    .description("a completed job's results, as JSON")
    .argument('<job_id>')
    .option('-o, --output <file>', 'write them to a file')
    .option('--follow', 'wait for the job to finish first')
    .action(async (id: string, f: { output?: string; follow?: boolean }) => writeResults(ctx, id, f));

  program
    .command('cancel')
    .description('cancel a job')
    .argument('<job_id>')
    .action(async (id: string) => {
      const job = await ctx.sdk().cancel(id);
      ctx.print(job, () => `cancelled job ${job.job_id}`);
    });

  program
    .command('delete')
    .description(
      'delete jobs and everything they left (a running job is cancelled first), or uploads no job reads (up_…)',
    )
    .argument('<job_id...>')
    .action(async (ids: string[]) => {
      const sdk = ctx.sdk();
      type Outcome = { deleted: boolean; error?: { code: string; message: string } };
      const jobs: (Outcome & { job_id: string })[] = [];
      const uploads: (Outcome & { upload_id: string })[] = [];
      for (const id of ids) {
        const upload = UPLOAD_ID.test(id);
        const what = upload ? 'upload' : 'job';
        const record = (o: Outcome) =>
          upload ? uploads.push({ upload_id: id, ...o }) : jobs.push({ job_id: id, ...o });
        try {
          await (upload ? sdk.deleteUpload(id) : sdk.delete(id));
          record({ deleted: true });
          if (!ctx.global.json) out(`deleted ${what} ${id}`);
        } catch (err) {
          // An unreachable cluster stops here; one refused (unknown, bad id, still read) does not stop the rest.
          if (!(err instanceof WeirError)) throw err;
          record({ deleted: false, error: { code: err.code, message: err.message } });
          if (!ctx.global.json) note(`could not delete ${what} ${id}: ${err.message}`);
        }
      }
      if (ctx.global.json) out(JSON.stringify({ jobs, ...(uploads.length ? { uploads } : {}) }, null, 2));
      if ([...jobs, ...uploads].some((o) => !o.deleted)) ctx.exitCode = 1;
    });

  program
    .command('logs')
    .description(
      "what a job's tasks printed (console.*, stdout, stderr): one line each, `task N #ATTEMPT STREAM TIME text`",
    )
    .argument('<job_id>')
    .option('--task <n>', 'only this task (a streaming job: this instance)')
    .option('--attempt <k>', 'only this attempt of --task')
    .option('--follow', 'keep printing what they print until the job ends')
    .action(async (id: string, f: { task?: string; attempt?: string; follow?: boolean }) => {
      const task = wholeNumber(f.task, '--task', 0);
      const attempt = wholeNumber(f.attempt, '--attempt', 1);
      if (attempt !== undefined && task === undefined)
        throw new CliError('--attempt needs --task: an attempt is of one task');
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      const o = {
        follow: f.follow === true,
        signal: stop.signal,
        ...(task === undefined ? {} : { task }),
        ...(attempt === undefined ? {} : { attempt }),
      };
      for await (const lines of ctx.sdk().logs(id, o)) {
        const text = lines.map((l) => (ctx.global.json ? JSON.stringify(l) : formatLogLine(l))).join('\n');
        if (!process.stdout.write(`${text}\n`)) await once(process.stdout, 'drain');
      }
    });

  program
    .command('jobs')
    .description('list jobs, newest first')
    .option('--limit <n>', 'how many', '50')
    .option('--status <status>', `only jobs in this status: ${JOB_STATUSES.join(', ')}`)
    .action(async (f: { limit: string; status?: string }) => {
      if (f.status !== undefined && !(JOB_STATUSES as readonly string[]).includes(f.status)) {
        throw new CliError(`--status takes one of ${JOB_STATUSES.join(', ')}; got '${f.status}'`);
      }
      const status = f.status as JobStatus | undefined;
      const limit = Number(f.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new CliError(`--limit takes a whole number from 1 to 1000; got '${f.limit}'`);
      }
      const page = await ctx.sdk().jobs(undefined, limit, status);
      ctx.print(page, () => formatJobs(page.jobs));
    });
}

/** A whole-number flag, at least `min`, or undefined when not given. */
function wholeNumber(v: string | undefined, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v) || Number(v) < min)
    throw new CliError(`${flag} takes a whole number of at least ${min}; got '${v}'`);
  return Number(v);
}

interface SubmitFlags {
  module?: string;
  input?: string;
}

/** How long `run`'s submit waits for the job before it follows it with `wait`'s polls. */
const RUN_SUBMIT_WAIT_MS = 1000;

/** How `wait` and `run` end: what a script needs to know of the job's end. */
const exitCodeOf = (job: JobView): number =>
  job.status === 'completed' ? EXIT.ok : job.status === 'cancelled' ? EXIT.cancelled : EXIT.failed;

/** Submits a job from the command line's arguments: its config, module and input file. */
async function submitJob(
  ctx: CliContext,
  type: string,
  name: string,
  configArg: string | undefined,
  f: SubmitFlags,
  waitMs = 0,
): Promise<JobView> {
  if (type !== 'batch' && type !== 'streaming')
    throw new CliError(`job type must be 'batch' or 'streaming'; got '${type}'`);
  let config = readConfig(configArg);
  if (type === 'streaming') {
    if (!config) throw new CliError('give the topology: weir submit streaming NAME TOPOLOGY_FILE [--module FILE]');
    // The file is the topology itself, or a whole config holding it.
    if (!('topology' in config)) config = { topology: config };
  }
  let uploaded: string | undefined;
  if (f.input) {
    const format = inputFormat(f.input, config?.input);
    if (type === 'batch') refuseBeforeUpload(config, format);
    const { upload_id, ...input } = await uploadInput(ctx, f.input, format);
    uploaded = upload_id;
    config = { ...config, input };
  }
  if (f.module) config = { ...config, module: readTextFile(f.module, 'module file') };
  // A waited submit asks for the first results too (weir run prints them).
  const resultsLimit = waitMs > 0 && type === 'batch' ? FIRST_RESULTS : undefined;
  try {
    return await ctx.sdk().submit({ name, type, ...(config ? { config } : {}) }, randomUUID(), waitMs, resultsLimit);
  } catch (err) {
    // The upload no job will read goes now, not after --retention. Asked whatever the error:
    // had the submit been taken after all, the job reads the upload and the master keeps it.
    if (uploaded)
      await ctx
        .sdk()
        .deleteUpload(uploaded)
        .catch(() => undefined);
    throw err;
  }
}

/** The input's format: the config's `input.format`, else the file's extension. */
const inputFormat = (file: string, given: unknown): unknown =>
  (given as { format?: unknown } | undefined)?.format ??
  (/\.jsonl$/i.test(file) ? 'jsonl' : /\.csv$/i.test(file) ? 'csv' : 'lines');

/**
 * What the master would refuse in a batch config, said before the input file goes up: an
 * upload no job reads stays on the masters, so each refused submit left one behind.
 */
function refuseBeforeUpload(config: Record<string, unknown> | undefined, format: unknown): void {
  const { rest } = retentionOf(config);
  const someUpload = `http://master${uploadPath(`up_${'0'.repeat(32)}`)}`;
  normalizeBatchConfig({ ...(rest as Record<string, unknown> | undefined), input: { url: someUpload, format } });
}

/** Uploads a local input file; the job reads it back from the masters by URL. */
async function uploadInput(
  ctx: CliContext,
  file: string,
  format: unknown,
): Promise<{ url: string; format: unknown; upload_id: string }> {
  if (!existsSync(file)) throw new CliError(`cannot read input file '${file}'`);
  const up = await ctx.sdk().upload(file);
  const kept = up.copies > 1 ? `, kept by ${up.copies} masters` : '';
  note(`uploaded ${file} (${(up.bytes / 1048576).toFixed(1)} MiB${kept}); workers read it from ${up.url}`);
  return { url: up.url, format, upload_id: up.upload_id };
}

/** `-o FILE` opened now, so that a path that cannot be written is one line, not a stack trace. */
function writableFile(path: string): NodeJS.WritableStream & { write(s: string): boolean } {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (err) {
    throw new CliError(`cannot write '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return createWriteStream('', { fd });
}

/** The results as one JSON array, streamed page by page; a followed stream's rows as JSON lines. */
async function writeResults(
  ctx: CliContext,
  id: string,
  f: { output?: string; follow?: boolean; first?: ResultsPage | undefined },
): Promise<void> {
  const sdk = ctx.sdk();
  const sink = f.output ? writableFile(f.output) : process.stdout;
  const write = async (s: string) => {
    if (!sink.write(s)) await once(sink, 'drain');
  };
  if (f.follow && (await sdk.job(id)).type === 'streaming') {
    // A stream never finishes: its rows are printed as they come, one JSON line each.
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    for await (const rows of sdk.follow(id, stop.signal)) for (const r of rows) await write(`${JSON.stringify(r)}\n`);
    return;
  }
  if (f.follow) await waitWithProgress(sdk, id, true);
  let n = 0;
  await write('[');
  for await (const page of sdk.resultsFrom(id, f.first)) {
    for (const r of page) await write((n++ ? ',' : '') + JSON.stringify(r));
  }
  await write(']\n');
  if (f.output) {
    (sink as NodeJS.WritableStream).end();
    await once(sink, 'finish');
    note(`wrote ${n} result(s) to ${f.output}`);
  }
}

/** Follows a job to its end: a progress bar on a terminal, a line per change otherwise. */
async function waitWithProgress(client: WeirClient, id: string, quiet: boolean): Promise<JobView> {
  const tty = process.stderr.isTTY && !quiet;
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = '';
  try {
    return await client.wait(id, (job) => {
      if (quiet) return;
      if (tty) {
        if (!bar) {
          bar = new cliProgress.SingleBar(
            {
              format: '{bar} {percentage}% | {value}/{total} tasks | {status}',
              stream: process.stderr,
              hideCursor: true,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(job.progress.total, 0, { status: job.status });
        }
        bar.update(job.progress.completed, { status: job.status });
      } else {
        const line = `${job.status}: ${progressLine(job)}`;
        if (line !== lastLine) note(line);
        lastLine = line;
      }
    });
  } finally {
    bar?.stop();
  }
}

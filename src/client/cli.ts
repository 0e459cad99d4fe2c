import { randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { Command, CommanderError } from 'commander';
import cliProgress from 'cli-progress';
import { splitUrls } from '../common/address.js';
import { mintToken } from '../common/auth.js';
import { parseDuration } from '../common/duration.js';
import { WeirError } from '../common/errors.js';
import { UnreachableError } from '../common/http-client.js';
import { extractGlobalArgs } from './argv.js';
import { runDev } from './dev.js';
import { formatCluster, formatJob, formatJobs, formatWorkers, progressLine } from './format.js';
import { WeirClient, type JobView } from './sdk.js';
import { runMaster, runWorker } from './servers.js';

/** Exit codes of `wait` (DESIGN.md section 5); other commands use 1 for errors, 3 for unreachable. */
const EXIT = { ok: 0, failed: 1, cancelled: 2, unreachable: 3 } as const;

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const out = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
const note = (text: string) => process.stderr.write(`${text}\n`);

function readConfig(arg: string | undefined): Record<string, unknown> | undefined {
  if (arg === undefined) return undefined;
  let text = arg;
  if (!arg.trimStart().startsWith('{')) {
    try {
      text = readFileSync(arg, 'utf8');
    } catch {
      throw new CliError(`cannot read config file '${arg}' (a config starting with '{' is read as JSON)`);
    }
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`the config is not a JSON object: ${(err as Error).message}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  const g = extractGlobalArgs(argv);
  const masterUrls = () => splitUrls(g.master ?? process.env.WEIR_MASTER ?? 'http://127.0.0.1:8080');
  let client: WeirClient | undefined;
  const sdk = () => (client ??= new WeirClient({ masters: masterUrls() }));
  const print = (json: unknown, human: () => string) => out(g.json ? JSON.stringify(json, null, 2) : human());
  /** Uploads a local input file; the job reads it back from the masters by URL. */
  const uploadInput = async (file: string, given: unknown) => {
    if (!existsSync(file)) throw new CliError(`cannot read input file '${file}'`);
    const format =
      (given as { format?: unknown } | undefined)?.format ??
      (/\.jsonl$/i.test(file) ? 'jsonl' : /\.csv$/i.test(file) ? 'csv' : 'lines');
    const up = await sdk().upload(file);
    const kept = up.copies > 1 ? `, kept by ${up.copies} masters` : '';
    note(`uploaded ${file} (${(up.bytes / 1048576).toFixed(1)} MiB${kept}); workers read it from ${up.url}`);
    return { url: up.url, format };
  };
  let exitCode = 0;

  const program = new Command('weir')
    .description(
      'Weir: distributed batch and stream processing.\nGlobal options anywhere: --master URL[,URL…] (default $WEIR_MASTER or http://127.0.0.1:8080), --json',
    )
    .usage('[HOST:PORT] <command> [options]')
    .exitOverride()
    .showHelpAfterError('(run weir --help for the commands)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('master')
    .description('run a master node')
    .option('--id <n>', 'node id (default: c*256+d of the host IPv4 a.b.c.d)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (default $PORT or 8080)')
    .option('--data-dir <dir>', 'where the state lives (default $WEIR_DATA_DIR or ./data/master-HOST-PORT)')
    .option('--peers <urls>', "every master's URL, this one's included")
    .option('--discover <dns:NAME>', 'find the peers in DNS')
    .option('--bootstrap-expect <n>', 'with DNS discovery, wait for N peers before the first election')
    .action(async (f) => runMaster(f));

  program
    .command('worker')
    .description('run a worker node')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port', '8081')
    .option('--max-tasks <n>', 'tasks run at once', '10')
    .option('--threads <n>', 'threads running them (default: one per task slot)')
    .option('--data-dir <dir>', 'scratch space (default $WEIR_DATA_DIR or ./data/worker-HOST-PORT)')
    .action(async (f) => runWorker(f, masterUrls()));

  program
    .command('dev')
    .description('a local cluster (1 master, 2 workers) with data under ./data')
    .action(async () => runDev());

  program
    .command('submit')
    .description('submit a job; prints its id alone on stdout')
    .argument('<type>', 'batch or streaming')
    .argument('<name>', 'a name for the job')
    .argument('[config]', 'JSON (starting with {) or a JSON file; for streaming, the topology file')
    .option('--module <file>', 'JavaScript module with the job’s functions')
    .option('--input <file>', 'a local input file to upload')
    .action(
      async (type: string, name: string, configArg: string | undefined, f: { module?: string; input?: string }) => {
        if (type !== 'batch' && type !== 'streaming')
          throw new CliError(`job type must be 'batch' or 'streaming'; got '${type}'`);
        let config = readConfig(configArg);
        if (type === 'streaming') {
          if (!config)
            throw new CliError('give the topology: weir submit streaming NAME TOPOLOGY_FILE [--module FILE]');
          // The file is the topology itself, or a whole config holding it.
          if (!('topology' in config)) config = { topology: config };
        }
        if (f.input) config = { ...config, input: await uploadInput(f.input, config?.input) };
        if (f.module) {
          let source: string;
          try {
            source = readFileSync(f.module, 'utf8');
          } catch {
            throw new CliError(`cannot read module file '${f.module}'`);
          }
          config = { ...config, module: source };
        }
        const job = await sdk().submit({ name, type, ...(config ? { config } : {}) }, randomUUID());
        if (g.json) out(JSON.stringify(job, null, 2));
        else {
          note(
            `submitted job "${job.name}" with ${job.progress.total} task(s); follow it with: weir wait ${job.job_id}`,
          );
          out(job.job_id);
        }
      },
    );

  program
    .command('status')
    .description("a job's status and progress")
    .argument('<job_id>')
    .action(async (id: string) => {
      const job = await sdk().job(id);
      print(job, () => formatJob(job));
    });

  program
    .command('wait')
    .description('wait for a job to finish: exit 0 completed, 1 failed, 2 cancelled, 3 cluster unreachable')
    .argument('<job_id>')
    .action(async (id: string) => {
      const job = await waitWithProgress(sdk(), id, g.json);
      if (g.json) out(JSON.stringify(job, null, 2));
      else note(formatJob(job));
      exitCode = job.status === 'completed' ? EXIT.ok : job.status === 'cancelled' ? EXIT.cancelled : EXIT.failed;
    });

  program
    .command('results')
    .description("a completed job's results, as JSON")
    .argument('<job_id>')
    .option('-o, --output <file>', 'write them to a file')
    .option('--follow', 'wait for the job to finish first')
    .action(async (id: string, f: { output?: string; follow?: boolean }) => {
      const sink = f.output ? createWriteStream(f.output) : process.stdout;
      if (f.follow && (await sdk().job(id)).type === 'streaming') {
        // A stream never finishes: its rows are printed as they come, one JSON line each.
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        for await (const rows of sdk().follow(id, stop.signal)) {
          for (const r of rows) if (!sink.write(`${JSON.stringify(r)}\n`)) await once(sink, 'drain');
        }
        return;
      }
      if (f.follow) await waitWithProgress(sdk(), id, true);
      const write = async (s: string) => {
        if (!sink.write(s)) await once(sink, 'drain');
      };
      let n = 0;
      await write('[');
      for await (const page of sdk().results(id)) {
        for (const r of page) await write((n++ ? ',' : '') + JSON.stringify(r));
      }
      await write(']\n');
      if (f.output) {
        (sink as NodeJS.WritableStream).end();
        await once(sink, 'finish');
        note(`wrote ${n} result(s) to ${f.output}`);
      }
    });

  program
    .command('cancel')
    .description('cancel a job')
    .argument('<job_id>')
    .action(async (id: string) => {
      const job = await sdk().cancel(id);
      print(job, () => `cancelled job ${job.job_id}`);
    });

  program
    .command('jobs')
    .description('list jobs, newest first')
    .option('--limit <n>', 'how many', '50')
    .action(async (f: { limit: string }) => {
      const page = await sdk().jobs(undefined, Math.max(1, Math.min(1000, Number(f.limit) || 50)));
      print(page, () => formatJobs(page.jobs));
    });

  program
    .command('workers')
    .description('list workers')
    .action(async () => {
      const w = await sdk().workers();
      print(w, () => formatWorkers(w.workers));
    });

  program
    .command('cluster')
    .description('the masters and who leads; `cluster remove ID` takes a master out')
    .argument('[action]', 'remove')
    .argument('[id]', 'the node id to remove')
    .action(async (action: string | undefined, id: string | undefined) => {
      if (action === undefined) {
        const c = await sdk().cluster();
        print(c, () => formatCluster(c));
        return;
      }
      if (action !== 'remove' || !id || !/^\d+$/.test(id)) {
        throw new CliError("usage: weir cluster [remove ID]; list the ids with 'weir cluster'");
      }
      const r = await sdk().removeMaster(Number(id));
      print(r, () => `removed master ${id} from the cluster`);
    });

  program
    .command('token')
    .description('print a bearer token signed with $JWT_SECRET')
    .option('--ttl <duration>', 'lifetime: 30s, 5m, 1h, 7d', '1h')
    .action(async (f: { ttl: string }) => {
      const secret = process.env.JWT_SECRET;
      if (!secret) throw new CliError('JWT_SECRET is not set; set it to the cluster’s secret to mint a token');
      out(await mintToken(secret, parseDuration(f.ttl), 'weir-cli'));
    });

  try {
    await program.parseAsync(g.rest, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    if (err instanceof UnreachableError) {
      note(`weir: cannot reach the cluster: ${err.message}`);
      return EXIT.unreachable;
    }
    if (err instanceof WeirError) {
      note(`weir: ${err.message} (${err.code})`);
      return 1;
    }
    note(`weir: ${(err as Error).message}`);
    return err instanceof CliError ? err.exitCode : 1;
  } finally {
    await client?.close();
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

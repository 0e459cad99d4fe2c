import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';

// `--tls-ca` is listed for --help; its value never reaches commander, which gets the line
// without the options that may stand anywhere (see extractGlobalArgs).
const TLS_CA_HELP = 'verify the other nodes against this CA and present --tls-cert to them (mutual TLS)';

/**
 * A node's code (fastify, SQLite, the executors' pool…) is loaded only by the command that runs
 * one: every other command starts in a fraction of the time (test/unit/startup-imports.test.ts).
 */
const servers = () => import('../servers.js');

/** `weir master`, `weir worker`, `weir dev`: the commands that run nodes. */
export function nodeCommands(program: Command, ctx: CliContext): void {
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
    .option('--min-free-bytes <n>', 'refuse writes that add data (507 no_space) under this free on the data dir (64M)')
    .option('--max-db-bytes <n>', 'the same over this in state, log and uploads (8G)')
    .option('--snapshot-entries <n>', 'compact the log once this many applied entries sit in it (25000)')
    .option('--snapshot-bytes <n>', 'or once the log since the last compaction holds this many bytes (64M)')
    .option('--retention <duration>', 'delete finished jobs and forget dead workers after this long (0: keep)', '7d')
    .option('--restore <file>', 'found a new single-master cluster from a backup (weir backup), in an empty --data-dir')
    .option('--tls-cert <file>', 'serve https/wss only, with this certificate (PEM)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--tls-ca <file>', TLS_CA_HELP)
    .action(async (f) => (await servers()).runMaster({ ...f, tlsCa: ctx.global.tlsCa }));

  program
    .command('worker')
    .description('run a worker node')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port', '8081')
    .option('--max-tasks <n>', 'tasks run at once', '10')
    .option('--threads <n>', 'executor processes running them (default: one per task slot)')
    .option('--allow-read <dirs>', 'DIR[,DIR…] tasks may read (default: the working and temp dirs)')
    .option('--allow-write <dirs>', 'DIR[,DIR…] tasks may write (default: the temp dir)')
    .option('--allow-net <hosts>', 'HOST[:PORT][,…] url inputs and http sinks may reach (default: any)')
    .option('--data-dir <dir>', 'scratch space (default $WEIR_DATA_DIR or ./data/worker-HOST-PORT)')
    .option('--tls-cert <file>', 'serve https/wss only, with this certificate (PEM)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--tls-ca <file>', TLS_CA_HELP)
    .option('--executor-user <user>', 'run tasks as this user (the worker runs as root); see Security in the README')
    .action(async (f) => {
      const tls = { ...f, tlsCa: ctx.global.tlsCa };
      return (await servers()).runWorker(tls, ctx.masterUrls(tls.tlsCert !== undefined ? 'https' : 'http'));
    });

  program
    .command('dev')
    .description('a local cluster (3 masters, 2 workers) with data under ./data')
    .option('--tls', 'serve https: a throwaway CA and certificates under ./data/tls (needs openssl)')
    .action(async (f: { tls?: boolean }) => (await import('../dev.js')).runDev({ tls: f.tls === true }));
}

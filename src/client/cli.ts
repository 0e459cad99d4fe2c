import { Command, CommanderError } from 'commander';
import { WeirError } from '../common/errors.js';
import { UnreachableError, UntrustedServerError } from '../common/http-client.js';
import { extractGlobalArgs } from './argv.js';
import { CliContext, CliError, EXIT, note } from './cli-context.js';
import { clusterCommands } from './commands/cluster.js';
import { jobCommands } from './commands/jobs.js';
import { nodeCommands } from './commands/nodes.js';

/** Runs the `weir` command line; resolves with the exit code. Errors are one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const ctx = new CliContext(extractGlobalArgs(argv));
  const program = new Command('weir')
    .description(
      'Weir: distributed batch and stream processing.\nGlobal options anywhere: --master URL[,URL…] (default $WEIR_MASTER or http://127.0.0.1:8080), --tls-ca FILE (default $WEIR_TLS_CA; https is then the default scheme), --retry-for DURATION (how long to keep trying while no master answers; default $WEIR_RETRY_FOR or 30s), --json',
    )
    .usage('[HOST:PORT] <command> [options]')
    .exitOverride()
    .showHelpAfterError('(run weir --help for the commands)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  nodeCommands(program, ctx);
  jobCommands(program, ctx);
  clusterCommands(program, ctx);

  try {
    await program.parseAsync(ctx.global.rest, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    return exitCodeOf(err, ctx);
  } finally {
    await ctx.close();
  }
}

/** Says what went wrong in one line and picks the exit code. */
function exitCodeOf(err: unknown, ctx: CliContext): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
  if (err instanceof UntrustedServerError) {
    const ca = ctx.caPath();
    const todo =
      ca === undefined
        ? "give the CA that signed the cluster's certificates with --tls-ca FILE or WEIR_TLS_CA=FILE"
        : `the CA in ${ctx.caSource()} ('${ca}') did not sign it: give the cluster's CA`;
    note(`weir: ${err.message}; ${todo}`);
    return EXIT.unreachable;
  }
  if (err instanceof UnreachableError) {
    // A TLS server hangs up on a client speaking plain http, without a word.
    const tls = /http:\/\/.*(other side closed|socket hang up)/.test(err.message)
      ? ' (a master serving https hangs up on http://: give its https:// URL)'
      : '';
    note(`weir: cannot reach the cluster: ${err.message}${tls}`);
    return EXIT.unreachable;
  }
  if (err instanceof WeirError) {
    note(`weir: ${err.message} (${err.code})`);
    return 1;
  }
  note(`weir: ${(err as Error).message}`);
  return err instanceof CliError ? err.exitCode : 1;
}

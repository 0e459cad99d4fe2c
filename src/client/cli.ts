import { Command, CommanderError } from 'commander';
import { WeirError } from '../common/errors.js';
import { UnreachableError } from '../common/http-client.js';
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
      'Weir: distributed batch and stream processing.\nGlobal options anywhere: --master URL[,URL…] (default $WEIR_MASTER or http://127.0.0.1:8080), --json',
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
    return exitCodeOf(err);
  } finally {
    await ctx.close();
  }
}

/** Says what went wrong in one line and picks the exit code. */
function exitCodeOf(err: unknown): number {
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
}

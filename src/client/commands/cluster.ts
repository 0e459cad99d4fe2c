import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { mintToken, type Role } from '../../common/auth.js';

/** Roles a person mints tokens for; nodes mint their own `peer` tokens from the secret. */
const TOKEN_ROLES: readonly Role[] = ['client', 'worker', 'admin'];
import { parseDuration } from '../../common/duration.js';
import { CliError, out, type CliContext } from '../cli-context.js';
import { formatCluster, formatWorkers } from '../format.js';

/** `weir workers`, `weir cluster`, `weir token`: the cluster as a whole. */
export function clusterCommands(program: Command, ctx: CliContext): void {
  program
    .command('workers')
    .description('list workers')
    .action(async () => {
      const w = await ctx.sdk().workers();
      ctx.print(w, () => formatWorkers(w.workers));
    });

  program
    .command('cluster')
    .description('the masters and who leads; `cluster remove ID` takes a master out')
    .argument('[action]', 'remove')
    .argument('[id]', 'the node id to remove')
    .action(async (action: string | undefined, id: string | undefined) => {
      if (action === undefined) {
        const c = await ctx.sdk().cluster();
        ctx.print(c, () => formatCluster(c));
        return;
      }
      if (action !== 'remove' || !id || !/^\d+$/.test(id)) {
        throw new CliError("usage: weir cluster [remove ID]; list the ids with 'weir cluster'");
      }
      const r = await ctx.sdk().removeMaster(Number(id));
      ctx.print(r, () => `removed master ${id} from the cluster`);
    });

  program
    .command('backup')
    .description("write a consistent copy of the cluster's state to FILE (restore it with weir master --restore FILE)")
    .argument('<file>', 'where to write it')
    .action(async (file: string) => {
      const dest = resolve(file);
      if (!existsSync(dirname(dest))) throw new CliError(`cannot write ${dest}: its directory does not exist`);
      // Of the client commands, this one alone loads SQLite (to check the copy it received).
      const { checkBackup } = await import('../../state/backup-file.js');
      const info = await ctx.sdk().backup(dest, (partial) => {
        try {
          return checkBackup(partial);
        } catch (err) {
          throw new CliError(
            `the backup received does not check out (${dest} is left as it was): ${(err as Error).message}`,
          );
        }
      });
      const bytes = statSync(dest).size;
      ctx.print(
        { file: dest, index: info.index, term: info.term, bytes },
        () => `backed up the cluster's state as of entry ${info.index} (term ${info.term}, ${bytes} bytes) to ${dest}`,
      );
    });

  program
    .command('token')
    .description('print a bearer token signed with $JWT_SECRET')
    .option('--ttl <duration>', 'lifetime: 30s, 5m, 1h, 7d', '1h')
    .option('--role <role>', `what it may do: ${TOKEN_ROLES.join(', ')}`, 'client')
    .action(async (f: { ttl: string; role: string }) => {
      const secret = process.env.JWT_SECRET;
      if (!secret) throw new CliError('JWT_SECRET is not set; set it to the cluster’s secret to mint a token');
      if (!TOKEN_ROLES.includes(f.role as Role)) {
        throw new CliError(`--role must be one of ${TOKEN_ROLES.join(', ')}; got '${f.role}'`);
      }
      out(await mintToken(secret, parseDuration(f.ttl), 'weir-cli', { role: f.role as Role }));
    });
}

import { WeirError } from '../common/errors.js';
import type { Consensus } from '../consensus/consensus.js';
import type { Applied, Command, DeleteJob, ForgetUpload, Results } from '../state/commands.js';

/** Consensus over the cluster's commands: `propose` of a command resolves with its own result. */
export type ClusterConsensus = Consensus<Command, Results>;

/**
 * Proposes `command` and returns what applying it did; a refusal (an unknown job, a job
 * already over) becomes the HTTP error it names.
 */
export async function commit<T extends Command>(consensus: ClusterConsensus, command: T): Promise<Applied[T['type']]> {
  const result: Results[Command['type']] = await consensus.propose(command);
  if (!result.ok) throw new WeirError(result.code, result.message);
  return result as Applied[T['type']];
}

/** How long a write that gives space back waits for this master to lead again after a full disk refused it. */
const FREEING_PATIENCE_MS = 5_000;

/**
 * Commits a write that gives space back (a job's or an upload's delete): deletes go on while
 * the disk is full. One whose log write the full disk refused is proposed again, once, when
 * this master leads again: that refusal made it give its disk reserve up (disk-reserve.ts) and
 * start over from its durable state, so the entry has room now. Applied after all under another
 * leader (a follower had written it), a job's second delete is refused as `not_found`: the job
 * is gone, as asked (an upload's is simply applied again).
 */
export async function commitFreeing(
  consensus: ClusterConsensus,
  command: DeleteJob | ForgetUpload,
  patienceMs = FREEING_PATIENCE_MS,
): Promise<void> {
  try {
    await commit(consensus, command);
  } catch (err) {
    if (!(err instanceof WeirError && err.code === 'no_space')) throw err;
    const until = Date.now() + patienceMs;
    while (!consensus.isLeader() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    try {
      await commit(consensus, { ...command, at: Date.now() });
    } catch (again) {
      if (!(again instanceof WeirError && again.code === 'not_found')) throw again;
    }
  }
}

import { WeirError } from '../common/errors.js';
import type { Consensus } from '../consensus/consensus.js';
import type { Applied, Command, Results } from '../state/commands.js';

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

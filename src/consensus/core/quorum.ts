import type { NodeId } from './types.js';

/** Voters needed for a majority of `n`. */
export const majority = (n: number): number => Math.floor(n / 2) + 1;

/**
 * The highest index that a majority of voters has: sort the voters' matched indexes in
 * descending order and take the one at position `majority - 1`.
 */
export function committedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const matched = voters.map(matchOf).sort((a, b) => b - a);
  return matched[majority(voters.length) - 1]!;
}

/** Outcome of a vote so far: won, lost, or still open. */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): 'won' | 'lost' | 'pending' {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const g = votes.get(v);
    if (g === true) granted++;
    else if (g === false) rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) return 'won';
  if (voters.length - rejected < need) return 'lost';
  return 'pending';
}

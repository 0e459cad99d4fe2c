import type { ConfChange, Entry, Member, NodeId } from './types.js';

/**
 * Applies one membership change (Raft thesis §4.1: one server at a time, in effect as soon
 * as it is in the log). Pure: returns a new list, sorted by id.
 */
export function applyConfChange(members: readonly Member[], cc: ConfChange): Member[] {
  switch (cc.op) {
    case 'bootstrap':
      return [...cc.members].sort((a, b) => a.id - b.id);
    case 'addLearner':
      if (members.some((m) => m.id === cc.id)) return [...members];
      return [...members, { id: cc.id, address: cc.address, voter: false }].sort((a, b) => a.id - b.id);
    case 'promote':
      return members.map((m) => (m.id === cc.id ? { ...m, voter: true } : m));
    case 'remove':
      return members.filter((m) => m.id !== cc.id);
  }
}

/** The configuration after `entries`, starting from `base` (the snapshot's). */
export function membersAfter(base: readonly Member[], entries: Iterable<Entry>): Member[] {
  let members = [...base];
  for (const e of entries) if (e.kind === 'conf') members = applyConfChange(members, e.data as ConfChange);
  return members;
}

export const votersOf = (members: readonly Member[]): NodeId[] => members.filter((m) => m.voter).map((m) => m.id);

/**
 * The durable state a founding master starts from: one committed entry holding the first
 * configuration, the same on every founder, so a master that joins later learns the whole
 * configuration from the log (or a snapshot) like everything else.
 */
export function bootstrapState(members: readonly Member[]) {
  const entry: Entry = { index: 1, term: 1, kind: 'conf', data: { op: 'bootstrap', members: [...members] } };
  return { hardState: { term: 1, vote: 0, commit: 1 }, entries: [entry] };
}

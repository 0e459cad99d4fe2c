import { join } from 'node:path';
import { TokenSource } from '../../src/common/auth.js';
import type { Logger } from '../../src/common/logger.js';
import { PeerTransport } from '../../src/consensus/peer-transport.js';
import { RaftConsensus } from '../../src/consensus/raft-consensus.js';
import { RaftStorage } from '../../src/consensus/raft-storage.js';
import { commandCodec } from '../../src/state/command-codec.js';
import type { Command, Results } from '../../src/state/commands.js';
import { StateMachine } from '../../src/state/state-machine.js';

export const SELF = { id: 1, address: 'http://127.0.0.1:1' };

/**
 * The consensus of a master that is a cluster of one, on real storage in `dir` (founding the
 * cluster on first open, restarting from what is there after): `leading` settles once it leads.
 */
export function openSingleMaster(
  dir: string,
  log: Logger,
  compaction: { snapshotEntries?: number; snapshotBytes?: number; keepEntries?: number } = {},
) {
  const storage = new RaftStorage(join(dir, 'raft.db'));
  if (!storage.initialized) storage.bootstrap([{ id: SELF.id, address: SELF.address, voter: true }]);
  const state = new StateMachine(join(dir, 'state.db'));
  const handlers = {
    onFrame: () => undefined,
    onSnapshotFailed: () => undefined,
    onSnapshotSent: () => undefined,
    receivingFile: (from: number, transfer: number) => join(dir, `state.db.receiving-${from}-${transfer}`),
  };
  const tokens = new TokenSource(undefined, undefined, 't');
  const transport = new PeerTransport(SELF.id, SELF.address, tokens, undefined, handlers, log);
  const timing = { tickMs: 10, electionTicks: 10, heartbeatTicks: 1 };
  const consensus = new RaftConsensus<Command, Results>({
    self: SELF,
    storage,
    state,
    transport,
    codec: commandCodec,
    timing,
    log,
    ...compaction,
  });
  const leading = new Promise<void>((r) => consensus.onLeadershipChange((l) => l && r()));
  consensus.start();
  const close = async () => {
    await consensus.close();
    state.close();
    storage.close();
  };
  return { storage, state, consensus, leading, close };
}

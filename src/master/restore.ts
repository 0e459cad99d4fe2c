import { copyFileSync, existsSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Member } from '../consensus/core/types.js';
import { RaftStorage } from '../consensus/raft-storage.js';
import { adoptBackup, checkBackup, type BackupInfo } from '../state/backup-file.js';

/** Refuses a data dir that holds anything: a restore founds a cluster, it never overwrites one. */
export function assertEmptyDataDir(dataDir: string): void {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(
      `--restore founds a new cluster in an empty data dir, and ${dataDir} is not empty; give another --data-dir, or move that one away (a data dir restored before starts without --restore)`,
    );
  }
}

/**
 * Founds a new single-master cluster in `dataDir` (empty, locked by the caller) from the backup
 * `file`: the state database is the backup's, at its log position, with `self` as the only
 * member; the log starts after that position, as if compacted there, so masters that join
 * later receive the state as a snapshot. The file is checked before anything is written.
 *
 * Order: state.db first (under a temporary name until complete), raft.db last — a restore
 * cut short leaves a data dir a master refuses to start from, never one it misreads.
 */
export function restoreDataDir(file: string, dataDir: string, self: Member): BackupInfo {
  checkBackup(file);
  const statePath = join(dataDir, 'state.db');
  const incoming = `${statePath}.restoring`;
  copyFileSync(file, incoming);
  const info = adoptBackup(incoming, self);
  renameSync(incoming, statePath);
  const storage = new RaftStorage(join(dataDir, 'raft.db'));
  try {
    const members = [{ ...self, voter: true }];
    storage.save({ term: info.term, vote: 0, commit: info.index }, [], {
      index: info.index,
      term: info.term,
      members,
    });
  } finally {
    storage.close();
  }
  return info;
}

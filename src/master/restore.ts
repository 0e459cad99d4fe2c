import { copyFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Member } from '../consensus/core/types.js';
import { RaftStorage } from '../consensus/raft-storage.js';
import { adoptBackup, checkBackup, type BackupInfo } from '../state/backup-file.js';
import { renameDurably } from '../state/durable-file.js';

/** Suffix of the files a restore writes before they are renamed into place. */
const RESTORING = '.restoring';

/**
 * What a restore cut short (a crash, kill -9, power cut) leaves: no raft.db yet — it is
 * renamed into place last — and only the restore's own files and the dead process's LOCK.
 */
function cutShortRestore(names: readonly string[]): boolean {
  if (names.includes('raft.db')) return false;
  if (!names.some((n) => n.includes(RESTORING))) return false;
  return names.every(
    (n) => n === 'LOCK' || n === 'state.db' || n.includes(RESTORING) || /^state\.db-(wal|shm)$/.test(n),
  );
}

/**
 * Refuses a data dir that holds anything: a restore founds a cluster, it never overwrites one.
 * A restore cut short is the exception: the restore starts over in it (restoreDataDir).
 */
export function assertEmptyDataDir(dataDir: string): void {
  if (!existsSync(dataDir)) return;
  const names = readdirSync(dataDir);
  if (names.length === 0 || cutShortRestore(names)) return;
  throw new Error(
    `--restore founds a new cluster in an empty data dir, and ${dataDir} is not empty; give another --data-dir, or move that one away (a data dir restored before starts without --restore)`,
  );
}

/**
 * Refuses to start from a data dir a restore was cut short in: without this, the master
 * would found an empty cluster there, as if the restore had never been asked for.
 */
export function assertNoRestoreCutShort(dataDir: string): void {
  if (!existsSync(dataDir) || !cutShortRestore(readdirSync(dataDir))) return;
  throw new Error(
    `a restore into ${dataDir} was cut short before it completed: run weir master --restore FILE with the same --data-dir again (it starts over), or move that dir away`,
  );
}

/**
 * Founds a new single-master cluster in `dataDir` (empty, locked by the caller) from the backup
 * `file`: the state database is the backup's, at its log position, with `self` as the only
 * member; the log starts after that position, as if compacted there, so masters that join
 * later receive the state as a snapshot. The file is checked before anything is written.
 *
 * Each database is written under a temporary name, synced, renamed into place and its
 * directory synced (durable-file.ts): both written first, then state.db renamed, raft.db last. raft.db in place is what
 * says the restore is complete; before that, a master refuses the data dir and a restore
 * again starts over in it — a crash or a power cut at any point never leaves a torn state.db
 * that a master would start from.
 */
export function restoreDataDir(file: string, dataDir: string, self: Member): BackupInfo {
  checkBackup(file);
  // What a restore cut short wrote (assertEmptyDataDir let nothing else through) goes first:
  // its .restoring files last, so that this cut short too is still known as a restore's.
  const left = readdirSync(dataDir).filter((n) => n !== 'LOCK');
  const restoring = (n: string) => n.includes(RESTORING);
  for (const n of [...left.filter((n) => !restoring(n)), ...left.filter(restoring)]) {
    rmSync(join(dataDir, n), { force: true });
  }
  const statePath = join(dataDir, 'state.db');
  const incoming = `${statePath}${RESTORING}`;
  copyFileSync(file, incoming);
  const info = adoptBackup(incoming, self);
  assertNoWal(incoming);
  // raft.db is written (under its temporary name) before state.db is renamed: from that
  // rename on, a restore cut short is still known by raft.db.restoring.
  const raftPath = join(dataDir, 'raft.db');
  const raftIncoming = `${raftPath}${RESTORING}`;
  const storage = new RaftStorage(raftIncoming);
  try {
    const members = [{ ...self, voter: true }];
    storage.save({ term: info.term, vote: 0, commit: info.index }, [], {
      index: info.index,
      term: info.term,
      members,
    });
  } finally {
    // Closing the last connection checkpoints its WAL into the file and removes the WAL.
    storage.close();
  }
  assertNoWal(raftIncoming);
  renameDurably(incoming, statePath);
  renameDurably(raftIncoming, raftPath);
  return info;
}

/** A database renamed without its WAL would lose what the WAL held: closing must have folded it in. */
function assertNoWal(path: string): void {
  if (existsSync(`${path}-wal`))
    throw new Error(`${path}-wal is still there after closing ${path}; the restore stops here`);
}

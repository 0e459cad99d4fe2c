import { closeSync, openSync, readSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import type { Member } from '../consensus/core/types.js';
import { migrate, schemaVersion } from './schema.js';

/**
 * A backup is a copy of a master's state database — everything the log had applied up to
 * `last_applied`, with that index, its term and the configuration of the time — marked with
 * this `application_id` ('WEIR'), so a restore knows it from any other SQLite file.
 */
export const BACKUP_APPLICATION_ID = 0x57454952;

/** What a backup holds: the log position its state is at, and the masters of that time. */
export interface BackupInfo {
  index: number;
  term: number;
  members: Member[];
  bytes?: number;
}

function readInfo(db: Db): BackupInfo {
  const meta = (key: string) =>
    (db.prepare(`SELECT value FROM meta WHERE key = ?`).get(key) as { value: number } | undefined)?.value;
  const index = meta('last_applied');
  const term = meta('last_applied_term');
  if (index === undefined || term === undefined) throw new Error('it holds no applied index');
  const members = (
    db.prepare(`SELECT id, address, voter FROM members ORDER BY id`).all() as {
      id: number;
      address: string;
      voter: number;
    }[]
  ).map((m) => ({ id: m.id, address: m.address, voter: m.voter === 1 }));
  return { index, term, members };
}

const SQLITE_MAGIC = 'SQLite format 3\0';

/** A file refused as a backup, with the reason a person acts on. */
class BackupRefused extends Error {}

/** What an opened backup holds, once its version and pages check out. */
function inspect(db: Db, path: string, notBackup: (why: string) => BackupRefused): BackupInfo {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > schemaVersion()) {
    throw new BackupRefused(
      `the backup ${path} has schema version ${version}, newer than this Weir knows (${schemaVersion()}); restore it with the Weir that made it, or a newer one`,
    );
  }
  if (version < 0) throw notBackup(`its schema version ${version} is no version Weir writes`);
  const check = db.pragma('quick_check', { simple: true }) as string;
  if (check !== 'ok') throw notBackup(`it is damaged: ${check}`);
  // Checked here, before anything is written: a table missing made a restore that completed
  // and a master that then could not start on it.
  const held = new Set(tableNames(db));
  const missing = tablesOfVersion(version).filter((t) => !held.has(t));
  if (missing.length) throw notBackup(`it lacks the table(s) ${missing.join(', ')} of its schema version ${version}`);
  let info: BackupInfo;
  try {
    info = readInfo(db);
  } catch (err) {
    throw notBackup((err as Error).message);
  }
  if (info.index < 1) throw notBackup('it holds no applied state');
  if (!Number.isSafeInteger(info.index) || !Number.isSafeInteger(info.term) || info.term < 1) {
    throw notBackup(`its log position (index ${info.index}, term ${info.term}) is not one a master writes`);
  }
  return info;
}

const tableNames = (db: Db): string[] =>
  (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]).filter(
    (n) => !n.startsWith('sqlite_'),
  );

/** The tables a state database of schema `version` has: those its migrations make. */
const tablesByVersion = new Map<number, string[]>();
function tablesOfVersion(version: number): string[] {
  let names = tablesByVersion.get(version);
  if (!names) {
    const mem = new Database(':memory:');
    try {
      migrate(mem, version);
      names = tableNames(mem);
    } finally {
      mem.close();
    }
    tablesByVersion.set(version, names);
  }
  return names;
}

/**
 * Checks that `path` is a Weir backup this version can restore, and says what it holds;
 * throws an error a person can act on otherwise. Opens it read-only: nothing is changed.
 */
export function checkBackup(path: string): BackupInfo {
  const notBackup = (why: string) =>
    new BackupRefused(
      `${path} is not a Weir backup (${why}); make one with 'weir backup FILE' against a running cluster`,
    );
  let header: Buffer;
  try {
    const fd = openSync(path, 'r');
    try {
      header = Buffer.alloc(100);
      header = header.subarray(0, readSync(fd, header, 0, 100, 0));
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw new Error(`cannot read the backup ${path}: ${(err as Error).message}`);
  }
  if (header.subarray(0, 16).toString('latin1') !== SQLITE_MAGIC) throw notBackup('not an SQLite database');
  if (header.length < 72 || header.readUInt32BE(68) !== BACKUP_APPLICATION_ID) {
    throw notBackup('an SQLite database, but not one written by weir backup');
  }
  let db: Db;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw notBackup(`SQLite cannot open it: ${(err as Error).message}`);
  }
  try {
    return inspect(db, path, notBackup);
  } catch (err) {
    if (err instanceof BackupRefused) throw err;
    // SQLite's own complaint: a file cut short or overwritten in places.
    throw notBackup(`it is damaged: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

/**
 * Turns a copy of a backup into the state database of a new cluster whose only member is
 * `self`: its schema brought up to date, its configuration replaced (the old masters are not
 * this cluster's), and the backup mark removed. The log position stays the backup's.
 */
export function adoptBackup(path: string, self: Member): BackupInfo {
  const db = new Database(path);
  try {
    migrate(db);
    db.pragma('journal_mode = WAL');
    db.pragma('application_id = 0');
    db.transaction(() => {
      db.prepare(`DELETE FROM members`).run();
      db.prepare(`INSERT INTO members (id, address, voter) VALUES (?, ?, 1)`).run(self.id, self.address);
    })();
    return readInfo(db);
  } finally {
    db.close();
  }
}

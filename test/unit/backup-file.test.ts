import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adoptBackup, BACKUP_APPLICATION_ID, checkBackup } from '../../src/state/backup-file.js';
import { StateMachine } from '../../src/state/state-machine.js';

let dir: string;
let state: StateMachine;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-backup-'));
  state = new StateMachine(join(dir, 'state.db'));
  state.applyBatch([
    {
      index: 1,
      term: 1,
      kind: 'conf',
      data: { op: 'bootstrap', members: [{ id: 7, address: 'http://old:1', voter: true }] },
    },
    {
      index: 2,
      term: 3,
      kind: 'cmd',
      data: { type: 'registerWorker', at: 5, worker_id: 'w1', address: 'a:1', max_tasks: 2 },
    },
  ]);
});
afterEach(() => {
  state.close();
  rmSync(dir, { recursive: true, force: true });
});

const backup = async () => {
  const path = join(dir, 'b.db');
  await state.backupInBackground(path);
  return path;
};

describe('a backup file', () => {
  it('holds the state with its log position and configuration, marked as a backup, in one file', async () => {
    const path = await backup();
    expect(checkBackup(path)).toEqual({
      index: 2,
      term: 3,
      members: [{ id: 7, address: 'http://old:1', voter: true }],
    });
    const db = new Database(path, { readonly: true });
    expect(db.pragma('application_id', { simple: true })).toBe(BACKUP_APPLICATION_ID);
    expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
    expect(db.prepare('SELECT worker_id FROM workers').all()).toEqual([{ worker_id: 'w1' }]);
    db.close();
  });

  it('is made whole while the event loop is held: a thread of its own copies (a leader goes on with heartbeats)', async () => {
    // Made step by step on the leader's own connection, the copy's last step (writing it out)
    // held the loop 1.2–1.6 s for a state of 1.2 GB, and the leader lost its lead each time.
    const path = join(dir, 'held.db');
    const making = state.backupInBackground(path);
    const marked = () => {
      if (!existsSync(path)) return false;
      const fd = openSync(path, 'r');
      try {
        const header = Buffer.alloc(72);
        return readSync(fd, header, 0, 72, 0) === 72 && header.readUInt32BE(68) === BACKUP_APPLICATION_ID;
      } finally {
        closeSync(fd);
      }
    };
    // Not one turn of the loop until the copy is there and marked (or 30 s have passed).
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const until = Date.now() + 30_000;
    while (!marked() && Date.now() < until) Atomics.wait(pause, 0, 0, 10);
    expect(marked()).toBe(true);
    expect(await making).toMatchObject({ index: 2, term: 3 });
  });

  it('becomes the state of a new cluster whose only member is the restoring master', async () => {
    const path = await backup();
    expect(adoptBackup(path, { id: 9, address: 'http://new:2', voter: true })).toEqual({
      index: 2,
      term: 3,
      members: [{ id: 9, address: 'http://new:2', voter: true }],
    });
    // No longer a backup: a state database.
    expect(() => checkBackup(path)).toThrow(/not one written by weir backup/);
  });

  it('is refused, with what to do, when it is not SQLite, not marked, damaged, empty of state or too new', async () => {
    const junk = join(dir, 'junk');
    writeFileSync(junk, 'hello');
    expect(() => checkBackup(junk)).toThrow(
      /junk is not a Weir backup \(not an SQLite database\); make one with 'weir backup FILE'/,
    );
    expect(() => checkBackup(join(dir, 'missing'))).toThrow(/cannot read the backup/);

    const plain = join(dir, 'plain.db');
    new Database(plain).exec('CREATE TABLE t (x)');
    expect(() => checkBackup(plain)).toThrow(/not one written by weir backup/);

    const marked = join(dir, 'marked.db');
    const m = new Database(marked);
    m.pragma(`application_id = ${BACKUP_APPLICATION_ID}`);
    m.exec('CREATE TABLE t (x)');
    m.close();
    expect(() => checkBackup(marked)).toThrow(/is not a Weir backup \(no such table: meta\)/);

    const path = await backup();
    const bytes = readFileSync(path);
    const cut = join(dir, 'cut.db');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expect(() => checkBackup(cut)).toThrow(/is not a Weir backup \((it is damaged|SQLite cannot open it)/);

    const newer = new Database(path);
    newer.pragma('user_version = 999');
    newer.close();
    expect(() => checkBackup(path)).toThrow(/schema version 999, newer than this Weir knows/);
  });

  it('is refused before anything is written when it was tampered with: a table gone, a version or log position no master writes', async () => {
    const tampered = async (name: string, change: (db: Database.Database) => void) => {
      const path = join(dir, `${name}.db`);
      await state.backupInBackground(path);
      const db = new Database(path);
      change(db);
      db.close();
      return path;
    };
    const noTasks = await tampered('no-tasks', (db) => db.exec('DROP TABLE tasks'));
    expect(() => checkBackup(noTasks)).toThrow(
      /is not a Weir backup \(it lacks the table\(s\) tasks of its schema version \d+\)/,
    );
    const negative = await tampered('negative', (db) => db.pragma('user_version = -1'));
    expect(() => checkBackup(negative)).toThrow(
      /is not a Weir backup \(its schema version -1 is no version Weir writes\)/,
    );
    const termZero = await tampered('term-zero', (db) =>
      db.prepare(`UPDATE meta SET value = 0 WHERE key = 'last_applied_term'`).run(),
    );
    expect(() => checkBackup(termZero)).toThrow(/its log position \(index 2, term 0\) is not one a master writes/);
    const huge = await tampered('huge-index', (db) =>
      db.prepare(`UPDATE meta SET value = ? WHERE key = 'last_applied'`).run(2n ** 53n + 1n),
    );
    expect(() => checkBackup(huge)).toThrow(
      /its log position \(index 9007199254740992, term 3\) is not one a master writes/,
    );
  });
});

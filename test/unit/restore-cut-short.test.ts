// Which data dirs `weir master --restore` may start over in, and which a master refuses to
// start from: a restore cut short (no raft.db yet, only its own files) is told apart from a
// data dir in use and from one whose raft.db was lost.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { assertEmptyDataDir, assertNoRestoreCutShort } from '../../src/master/restore.js';

const dirs: string[] = [];
function dirWith(...names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'weir-restore-unit-'));
  dirs.push(dir);
  for (const n of names) writeFileSync(join(dir, n), '');
  return dir;
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('a restore cut short', () => {
  const cut = [
    ['LOCK', 'state.db.restoring'],
    ['LOCK', 'state.db.restoring', 'state.db.restoring-wal', 'raft.db.restoring'],
    ['LOCK', 'state.db', 'raft.db.restoring', 'raft.db.restoring-wal', 'raft.db.restoring-shm'],
  ];
  it.each(cut)(
    '%s: --restore starts over there; a master without --restore refuses it, saying what to do',
    (...names) => {
      const dir = dirWith(...names);
      expect(() => assertEmptyDataDir(dir)).not.toThrow();
      expect(() => assertNoRestoreCutShort(dir)).toThrow(/restore into .* was cut short .*--restore FILE .* again/);
    },
  );

  it('is not a data dir holding raft.db (a restore that completed, or a master in use)', () => {
    const dir = dirWith('LOCK', 'state.db', 'raft.db', 'raft.db.restoring');
    expect(() => assertEmptyDataDir(dir)).toThrow(/is not empty/);
    expect(() => assertNoRestoreCutShort(dir)).not.toThrow();
  });

  it('is not a data dir whose raft.db was lost, nor one holding anything else', () => {
    for (const names of [['LOCK', 'state.db'], ['state.db.restoring', 'uploads'], ['notes.txt']]) {
      const dir = dirWith(...names);
      expect(() => assertEmptyDataDir(dir)).toThrow(/is not empty/);
      expect(() => assertNoRestoreCutShort(dir)).not.toThrow();
    }
  });

  it('an empty or missing data dir is for a restore, and nothing to refuse', () => {
    const dir = dirWith();
    expect(() => assertEmptyDataDir(dir)).not.toThrow();
    expect(() => assertEmptyDataDir(join(dir, 'none'))).not.toThrow();
    expect(() => assertNoRestoreCutShort(join(dir, 'none'))).not.toThrow();
  });
});

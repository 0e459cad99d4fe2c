// A master keeps one backup copy at a time on its disk: from the start of the copy until it
// is removed once sent, a second request is told to come back, so readers that stall cannot
// each hold a copy of the whole state.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupMaker } from '../../src/master/backup-maker.js';
import { StateMachine } from '../../src/state/state-machine.js';

let dir: string;
let state: StateMachine;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-backup-maker-'));
  state = new StateMachine(join(dir, 'state.db'));
  state.applyBatch([
    {
      index: 1,
      term: 1,
      kind: 'conf',
      data: { op: 'bootstrap', members: [{ id: 1, address: 'http://a:1', voter: true }] },
    },
  ]);
});
afterEach(() => {
  state.close();
  rmSync(dir, { recursive: true, force: true });
});

const copies = () => readdirSync(dir).filter((n) => n.startsWith('backup-'));
const until = async (what: () => boolean) => {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
  return what();
};

describe('backups on one master', () => {
  it('are made one at a time, a copy counting until it is removed after sending', async () => {
    const maker = new BackupMaker(state, dir);
    const first = await maker.make();
    expect(existsSync(first.path)).toBe(true);
    // Made, not yet sent: the next one waits for it.
    await expect(maker.make()).rejects.toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining('already making or sending a backup'),
    });
    first.discard();
    first.discard(); // a stream closing twice removes nothing more
    expect(await until(() => copies().length === 0)).toBe(true);
    const second = await maker.make();
    expect(copies()).toEqual([second.path.slice(dir.length + 1)]);
    second.discard();
    expect(await until(() => copies().length === 0)).toBe(true);
  });

  it('takes the next one after a copy that failed, leaving nothing of it', async () => {
    const maker = new BackupMaker(state, dir);
    const file = join(dir, 'state.db');
    // The copy's own connection finds no database to read.
    state.close();
    for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
    await expect(maker.make()).rejects.toMatchObject({ code: 'unavailable' });
    expect(copies()).toEqual([]);
    state = new StateMachine(file);
    state.applyBatch([
      {
        index: 1,
        term: 1,
        kind: 'conf',
        data: { op: 'bootstrap', members: [{ id: 1, address: 'http://a:1', voter: true }] },
      },
    ]);
    const again = await maker.make();
    expect(again.index).toBe(1);
    again.discard();
  });
});

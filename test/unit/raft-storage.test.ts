// The Raft log's storage: one transaction per Ready, all of it or none of it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Entry } from '../../src/consensus/core/types.js';
import { RaftStorage } from '../../src/consensus/raft-storage.js';

let dir: string;
let storage: RaftStorage;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-raft-storage-'));
  storage = new RaftStorage(join(dir, 'raft.db'));
});
afterEach(() => {
  storage.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a save', () => {
  it('refused part-way keeps none of its entries nor its hard state, and the next save is written', () => {
    const bad = { index: 2, term: undefined, kind: 'noop' } as unknown as Entry;
    expect(() => storage.save({ term: 3, vote: 1, commit: 0 }, [{ index: 1, term: 3, kind: 'noop' }, bad])).toThrow(
      /NOT NULL/,
    );
    expect(storage.entries()).toEqual([]);
    expect(storage.hardState()).toEqual({ term: 0, vote: 0, commit: 0 });
    storage.save({ term: 3, vote: 1, commit: 0 }, [{ index: 1, term: 3, kind: 'noop' }]);
    expect(storage.entries()).toEqual([{ index: 1, term: 3, kind: 'noop' }]);
    expect(storage.hardState()).toEqual({ term: 3, vote: 1, commit: 0 });
  });
});

describe('entries saved from an index the log holds', () => {
  const e = (index: number, term: number): Entry => ({ index, term, kind: 'noop' });

  it('replace everything from there on, the later ones too', () => {
    storage.save(undefined, [e(1, 1), e(2, 1), e(3, 1)]);
    storage.save(undefined, [e(2, 2)]);
    expect(storage.entries()).toEqual([e(1, 1), e(2, 2)]);
  });

  it('replace them in a log opened again', () => {
    storage.save(undefined, [e(1, 1), e(2, 1), e(3, 1)]);
    storage.close();
    storage = new RaftStorage(join(dir, 'raft.db'));
    storage.save(undefined, [e(2, 2)]);
    expect(storage.entries()).toEqual([e(1, 1), e(2, 2)]);
  });

  it('replace them after a save that was refused and rolled back', () => {
    storage.save(undefined, [e(1, 1), e(2, 1), e(3, 1)]);
    const bad = { index: 1, term: undefined, kind: 'noop' } as unknown as Entry;
    expect(() => storage.save(undefined, [bad])).toThrow(/NOT NULL/);
    expect(storage.entries()).toEqual([e(1, 1), e(2, 1), e(3, 1)]);
    storage.save(undefined, [e(2, 3)]);
    expect(storage.entries()).toEqual([e(1, 1), e(2, 3)]);
  });

  it('after a snapshot, start the log again from it', () => {
    storage.save(undefined, [e(1, 1), e(2, 1), e(3, 1)]);
    storage.save(undefined, [], { index: 10, term: 2, members: [] });
    storage.save(undefined, [e(11, 2), e(12, 2)]);
    storage.save(undefined, [e(12, 3)]);
    expect(storage.entries()).toEqual([e(11, 2), e(12, 3)]);
  });
});

describe('a log whose writer was killed -9 mid-stream', () => {
  // The built module, in a process of its own: the kill must land wherever it lands.
  const built = fileURLToPath(new URL('../../dist/src/consensus/raft-storage.js', import.meta.url));
  const writer = `
    const { RaftStorage } = await import(${JSON.stringify(built)});
    const s = new RaftStorage(process.argv[1]);
    for (let i = 1; ; i++) {
      s.save(undefined, [{ index: i, term: 1, kind: 'noop' }]);
      if (i === 50) process.stdout.write('saving\\n');
    }`;

  it('replaces the entries from an index it holds on, once opened again: none of the killed run’s are left past them', async () => {
    storage.close();
    const path = join(dir, 'raft.db');
    const child = spawn(process.execPath, ['--input-type=module', '-e', writer, path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const saving = await Promise.race([
      new Promise<boolean>((resolve) => child.stdout.once('data', () => resolve(true))),
      exited.then(() => false),
    ]);
    expect(saving, 'the writer is saving').toBe(true);
    child.kill('SIGKILL');
    await exited;
    storage = new RaftStorage(path);
    const held = storage.entries();
    expect(held.length).toBeGreaterThanOrEqual(50);
    storage.save(undefined, [{ index: 10, term: 2, kind: 'noop' }]);
    expect(storage.entries().map((x) => `${x.index}@${x.term}`)).toEqual([
      ...held.slice(0, 9).map((x) => `${x.index}@1`),
      '10@2',
    ]);
  });
});

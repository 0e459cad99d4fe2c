// A write the disk refuses for want of space is answered 507 no_space by the consensus driver
// (the master's alarm counts such failures); a disk failing otherwise stays a 503 to retry.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { StorageError } from '../../src/consensus/ports.js';
import type { Command } from '../../src/state/commands.js';
import { openSingleMaster } from '../helpers/single-master.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
const log = createLogger('test');
log.level = 'silent';

const reg = (i: number): Command => ({ type: 'registerWorker', at: i, worker_id: `w${i}`, address: 'a', max_tasks: 1 });
const refusal = (code: string) =>
  new StorageError('the Raft log could not be written', Object.assign(new Error('disk'), { code }));

type Node = ReturnType<typeof openSingleMaster>;

/** The next write of `n`'s log fails as the disk answers with `code`; the call puts the disk right again. */
function refuseNextWrite(n: Node, code: string): () => void {
  const save = vi.spyOn(n.storage, 'save').mockImplementationOnce(() => {
    throw refusal(code);
  });
  return () => save.mockRestore();
}

/** Rebuilt from the durable state within a second, `n` leads again and takes writes. */
async function writesAgain(n: Node): Promise<void> {
  const r = await waitFor(
    'a proposal to be taken again',
    () => n.consensus.propose(reg(2)).catch(() => undefined),
    10_000,
  );
  expect(r.ok).toBe(true);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-diskfull-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('a proposal whose write the disk refuses', () => {
  it.each([
    ['SQLITE_FULL', 'no_space', 507, 1],
    ['ENOSPC', 'no_space', 507, 1],
    ['SQLITE_IOERR', 'unavailable', 503, 0],
  ])(
    'on %s is refused with %s (%d), and the master writes again once the disk takes it',
    async (code, want, status, full) => {
      const n = openSingleMaster(dir, log);
      await n.leading;
      let heard = 0;
      n.consensus.onDiskFull(() => heard++);
      const diskBack = refuseNextWrite(n, code);
      await expect(n.consensus.propose(reg(1))).rejects.toMatchObject({ code: want, status });
      expect(n.consensus.diskFullFailures).toBe(full);
      expect(heard, 'the space monitor is told as the write fails').toBe(full);
      diskBack();
      await writesAgain(n);
      expect(n.consensus.diskFullFailures).toBe(full);
      await n.close();
    },
  );

  describe('a listener of full-disk failures that throws', () => {
    it('neither stops the refusal nor the master writing again once the disk takes it', async () => {
      const n = openSingleMaster(dir, log);
      await n.leading;
      let heard = 0;
      n.consensus.onDiskFull(() => {
        throw new Error('a broken listener');
      });
      n.consensus.onDiskFull(() => heard++);
      const diskBack = refuseNextWrite(n, 'ENOSPC');
      await expect(n.consensus.propose(reg(1))).rejects.toMatchObject({ code: 'no_space', status: 507 });
      expect(heard, 'the listeners after it are told all the same').toBe(1);
      diskBack();
      await writesAgain(n);
      await n.close();
    });
  });
});

import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isDiskFull } from '../common/disk-errors.js';
import { WeirError, noSpace } from '../common/errors.js';
import type { BackupInfo } from '../state/backup-file.js';
import type { StateMachine } from '../state/state-machine.js';

/** A backup made, on this master's disk until it has been sent: `discard` removes it. */
export interface MadeBackup extends BackupInfo {
  path: string;
  bytes: number;
  discard(): void;
}

const PREFIX = 'backup-';
const SUFFIX = '.db.partial';

/**
 * A backup's reader that takes nothing for this long is cut off, and its copy removed: clients
 * that stopped reading held a copy of the whole state each on the master's disk for as long
 * as they kept their connections.
 */
export const BACKUP_STALL_MS = 60_000;

/**
 * Makes consistent copies of this master's state database for `GET /api/cluster/backup`, one
 * at a time — from the start of a copy to its removal, once sent — in its data dir (the
 * state's own disk). Copies a crash left behind are removed at start.
 */
export class BackupMaker {
  private busy = false;

  constructor(
    private readonly state: StateMachine,
    private readonly dataDir: string,
  ) {
    for (const name of readdirSync(dataDir)) {
      if (name.startsWith(PREFIX) && name.endsWith(SUFFIX)) rmSync(join(dataDir, name), { force: true });
    }
  }

  /** A copy of the state, this master's only one until its `discard` (once sent, or not). */
  async make(): Promise<MadeBackup> {
    if (this.busy) {
      throw new WeirError(
        'unavailable',
        'this master is already making or sending a backup; try again when it is done (or ask another master with ?consistency=stale)',
      );
    }
    this.busy = true;
    const path = join(this.dataDir, `${PREFIX}${Date.now()}-${randomBytes(4).toString('hex')}${SUFFIX}`);
    let discarded = false;
    // Off the event loop, as the copy is: removing a copy of 1.2 GB held it 0.3–0.6 s.
    const discard = () => {
      if (discarded) return;
      discarded = true;
      this.busy = false;
      void rm(path, { force: true }).catch(() => {});
    };
    try {
      const generation = this.state.generation;
      const info = await this.state.backupInBackground(path);
      // A snapshot installed meanwhile replaced the database the copy was reading.
      if (this.state.generation !== generation) throw new Error('the state was replaced by a snapshot');
      return { ...info, path, bytes: (await stat(path)).size, discard };
    } catch (err) {
      discard();
      if (err instanceof WeirError) throw err;
      // Not something to try again at once: the copy needs room for the whole state.
      if (isDiskFull(err)) {
        throw noSpace(`this master's disk has no room for a copy of the state (${(err as Error).message})`);
      }
      throw new WeirError('unavailable', `the backup could not be made: ${(err as Error).message}; try again`);
    }
  }
}

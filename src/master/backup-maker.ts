import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WeirError } from '../common/errors.js';
import { writeBackup, type BackupInfo } from '../state/backup-file.js';
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
 * Makes consistent copies of this master's state database for `GET /api/cluster/backup`, one
 * at a time, in its data dir (the state's own disk) until they are sent. Copies a crash left
 * behind are removed at start.
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

  async make(): Promise<MadeBackup> {
    if (this.busy)
      throw new WeirError('unavailable', 'this master is already making a backup; try again when it is done');
    this.busy = true;
    const path = join(this.dataDir, `${PREFIX}${Date.now()}-${randomBytes(4).toString('hex')}${SUFFIX}`);
    const discard = () => rmSync(path, { force: true });
    try {
      const generation = this.state.generation;
      const info = await writeBackup(this.state.db, path);
      // A snapshot installed meanwhile replaced the database the copy was reading.
      if (this.state.generation !== generation) throw new Error('the state was replaced by a snapshot');
      return { ...info, path, bytes: statSync(path).size, discard };
    } catch (err) {
      discard();
      if (err instanceof WeirError) throw err;
      throw new WeirError('unavailable', `the backup could not be made: ${(err as Error).message}; try again`);
    } finally {
      this.busy = false;
    }
  }
}

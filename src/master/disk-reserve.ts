import { stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** How much a master keeps aside on its disk for its own work once the disk is full. */
export const RESERVE_BYTES = 4 * 1024 * 1024;

/**
 * A file of RESERVE_BYTES in the data dir, held while there is room and given up the moment a
 * write fails for a full disk — filled by this master or by something else — so that the
 * cluster's own work (an election's vote, the new leader's first entry, cancels, deletes,
 * compaction) still finds room to be written. It is taken again once the alarm is off.
 */
export class DiskReserve {
  readonly path: string;
  private held = false;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'RESERVE');
  }

  /** The bytes held now: they count as free, since they are freed when needed. */
  get bytes(): number {
    return this.held ? RESERVE_BYTES : 0;
  }

  /** Holds the reserve left from before a restart, if it is whole: its bytes count as free from the first look. */
  async find(): Promise<boolean> {
    if (!this.held) this.held = (await stat(this.path).catch(() => undefined))?.size === RESERVE_BYTES;
    return this.held;
  }

  /** Takes the reserve (or finds it from before a restart); leaves nothing behind on a disk without room. */
  async take(): Promise<void> {
    if (await this.find()) return;
    try {
      await writeFile(this.path, Buffer.alloc(RESERVE_BYTES));
      this.held = true;
    } catch {
      await unlink(this.path).catch(() => undefined);
    }
  }

  /** Gives the reserve up to the disk; true when there was one to give. */
  async release(): Promise<boolean> {
    const existed = await unlink(this.path).then(
      () => true,
      () => false,
    );
    this.held = false;
    return existed;
  }
}

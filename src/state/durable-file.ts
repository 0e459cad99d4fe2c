// Files that survive a power cut: written under a temporary name, synced, renamed into place,
// and the directory synced so that the rename itself is on disk. A rename alone is atomic
// against a crash of the process, not of the machine: without the syncs, a power cut after
// it may leave the new name pointing at an empty or torn file.
import { closeSync, fsyncSync, openSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';

/** Flushes the file (or directory) at `path` to the disk. */
export function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A rename is durable once its directory is synced. */
export const syncDir = syncPath;

/**
 * Moves `from` (complete, not synced yet) to `to` durably: `from` is synced first, so the
 * new name can only ever show the whole file, then the directory, so the rename holds.
 */
export function renameDurably(from: string, to: string): void {
  syncPath(from);
  renameSync(from, to);
  syncDir(dirname(to));
}

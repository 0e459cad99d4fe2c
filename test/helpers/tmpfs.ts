// Small tmpfs mounts for full-disk specs (root only), and another program filling them.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCutShort } from './on-cut-short.js';

const MiB = 1024 * 1024;

/** Mounts not yet unmounted: unmounted when the process ends however it ends, after its processes are killed. */
const mounted = new Set<string>();

/** Mounts a tmpfs of `mib` MiB on a new directory; the reason it cannot, otherwise. */
export function mountTmpfs(mib: number, tag: string): { dir: string } | { why: string } {
  if (process.getuid?.() !== 0) return { why: 'not root: mounting a tmpfs needs root' };
  const dir = mkdtempSync(join(tmpdir(), `weir-${tag}-mnt-`));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { why: `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}` };
  }
  if (mounted.size === 0) onCutShort(() => [...mounted].forEach(unmount));
  mounted.add(dir);
  return { dir };
}

/** Unmounts (lazily if something still holds a file there) and removes the mount point. */
export function unmount(dir: string): void {
  mounted.delete(dir);
  if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
  rmSync(dir, { recursive: true, force: true });
}

/** What the file system at `dir` has free now, as an unprivileged writer sees it. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Another program filling the disk: a file of zeros at `path` in `dir`, until only `leave` bytes are free (or none). */
export function fill(dir: string, name: string, leave: number): string {
  const path = join(dir, name);
  const fd = openSync(path, 'a');
  const chunk = Buffer.alloc(MiB);
  try {
    for (let left = freeBytes(dir) - leave; left > 0; left -= chunk.length) {
      writeSync(fd, chunk, 0, Math.min(chunk.length, left));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return path;
}

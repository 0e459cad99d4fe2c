import type { Database } from 'better-sqlite3';

/**
 * The bytes a SQLite database's live pages take: its pages less the free ones. What a delete
 * frees counts as free at once, before any VACUUM gives the file's space back to the disk.
 */
export function sqliteUsedBytes(db: Database): number {
  const pages = db.pragma('page_count', { simple: true }) as number;
  const free = db.pragma('freelist_count', { simple: true }) as number;
  const size = db.pragma('page_size', { simple: true }) as number;
  return (pages - free) * size;
}

import type { Database } from 'better-sqlite3';

/**
 * The bytes a SQLite database's pages take: the live ones, and the free ones a delete left
 * inside the file (room for new data, though the file does not shrink without a VACUUM).
 */
export function sqlitePageBytes(db: Database): { usedBytes: number; freeBytes: number } {
  const pages = db.pragma('page_count', { simple: true }) as number;
  const free = db.pragma('freelist_count', { simple: true }) as number;
  const size = db.pragma('page_size', { simple: true }) as number;
  return { usedBytes: (pages - free) * size, freeBytes: free * size };
}

import type { Entry } from './core/types.js';

/**
 * When the log is compacted, and down to where: pure, so that it is specified apart from
 * the driver (test/unit/compaction-policy.test.ts).
 *
 * Entries alone were not enough: a leader batches a commit round's task reports into one
 * entry, so a million tasks made only a few thousand entries of ~20 KB each, and at 25,000
 * entries the log kept ~150 MB per million tasks (the scale benchmark). Bytes bound it too.
 */
export interface CompactionLimits {
  /** Compact once this many applied entries sit in the log (`--snapshot-entries`). */
  entries: number;
  /** …or once the log since the last compaction holds this many bytes (`--snapshot-bytes`). */
  bytes: number;
  /** The newest entries kept for followers slightly behind: at most this many… */
  keepEntries: number;
  /** …and at most this many bytes of them (else a byte-triggered compaction keeps too much). */
  keepBytes: number;
}

/** The default `--snapshot-bytes`: 64 MiB of log since the last compaction. */
export const DEFAULT_SNAPSHOT_BYTES = 64 * 1024 * 1024;

/** What an entry weighs in the log: its data, and a little for index, term and kind. */
export function entryBytes(e: Entry): number {
  const d = e.data;
  const size = d instanceof Uint8Array ? d.byteLength : d === undefined ? 0 : 64;
  return size + 16;
}

/** The limits for `--snapshot-entries N` and `--snapshot-bytes B`: the newest fifth is kept. */
export function compactionLimits(entries: number, bytes: number): CompactionLimits {
  return {
    entries,
    bytes,
    keepEntries: Math.min(5_000, Math.floor(entries / 5)),
    keepBytes: Math.floor(bytes / 5),
  };
}

/** Whether a log of `count` applied entries and `bytes` bytes is due for compaction. */
export function dueForCompaction(count: number, bytes: number, limits: CompactionLimits): boolean {
  return count >= limits.entries || bytes >= limits.bytes;
}

/**
 * The index to compact up to: `applied` less the newest entries kept (`keepEntries`, and no
 * more than `keepBytes` of them), never past `floor` — the index of a snapshot on its way to
 * a follower, which needs the entries after it once installed (etcd keeps them so too; the
 * scale benchmark's joiner was sent snapshot after snapshot while the leader compacted past
 * each one in flight). `sizes(from, to)` gives the sizes of entries `[from, to]`, oldest first.
 * Returns at most `applied`; a result ≤ the current compaction point means nothing to do.
 */
export function compactionPoint(
  applied: number,
  limits: CompactionLimits,
  sizes: (from: number, to: number) => readonly number[],
  floor = Infinity,
): number {
  const byCount = applied - limits.keepEntries;
  // Walk back from `applied` over the kept entries until they weigh keepBytes.
  const kept = sizes(byCount + 1, applied);
  let to = byCount;
  let sum = 0;
  for (let i = kept.length - 1; i >= 0; i--) {
    sum += kept[i]!;
    if (sum > limits.keepBytes) {
      to = applied - (kept.length - 1 - i);
      break;
    }
  }
  return Math.min(to, floor);
}

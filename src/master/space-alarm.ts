/**
 * When a master's `no_space` alarm is on (DESIGN §7): pure, so the rule is tested apart from
 * the disk it reads.
 */

/** `weir master --min-free-bytes` and `--max-db-bytes`. */
export interface SpaceLimits {
  /** The alarm is on while the data dir's disk has less than this free. */
  minFreeBytes: number;
  /** …or while the state database, the log, their WAL files and the uploads hold more than this. */
  maxDbBytes: number;
}

export const DEFAULT_SPACE_LIMITS: SpaceLimits = { minFreeBytes: 64 * 1024 ** 2, maxDbBytes: 8 * 1024 ** 3 };

/** One look at the disk, taken about once a second. */
export interface SpaceReading {
  /** Bytes an unprivileged process may still write on the data dir's file system. */
  freeBytes: number;
  /** What this master's data takes (see SpaceMonitor for what is counted). */
  dbBytes: number;
  /** Pages inside the database files that deletes freed: room for new data, though not on the disk's count. */
  slackBytes: number;
  /**
   * A write failed for want of space, with the room (free bytes plus slack) there was when
   * that was noticed: something else may fill the disk between two looks.
   */
  fullSince?: { roomBytes: number };
}

/**
 * A full-disk failure keeps the alarm on — whatever `minFreeBytes` says (it may be 0) — until
 * this much more room is there than when it failed (freed on the disk, or inside the
 * databases by deletes): the few bytes a failed write leaves are not space given back.
 */
export const GIVEN_BACK_BYTES = 1024 * 1024;

/** The room a reading counts toward a full disk's recovery. */
export const roomOf = (r: Pick<SpaceReading, 'freeBytes' | 'slackBytes'>): number => r.freeBytes + r.slackBytes;

/**
 * Once on, the alarm goes off only this far on the right side of a limit (5% of it, at most
 * 64 MiB): the compaction it starts gives a little back at once, and writes taken at the
 * limit's edge would put it right back on — a flapping alarm, each flap admitting a write.
 */
export const marginOf = (limit: number): number => Math.min(64 * 1024 ** 2, Math.floor(limit / 20));

/**
 * Why the alarm is on, in words an operator can act on; undefined while it is off. `wasOn`:
 * whether it was on at the last look (see marginOf).
 */
export function spaceAlarm(r: SpaceReading, limits: SpaceLimits, wasOn = false): string | undefined {
  const { minFreeBytes: min, maxDbBytes: max } = limits;
  if (r.freeBytes < min + (wasOn ? marginOf(min) : 0)) {
    const until = r.freeBytes < min ? '' : `; the alarm goes off at ${mib(min + marginOf(min))} free`;
    return `the disk of this master's data dir has ${mib(r.freeBytes)} free, under --min-free-bytes ${mib(min)}${until}`;
  }
  if (r.dbBytes > max - (wasOn ? marginOf(max) : 0)) {
    const until = r.dbBytes > max ? '' : `; the alarm goes off under ${mib(max - marginOf(max))}`;
    return `this master's state, log and uploads take ${mib(r.dbBytes)}, over --max-db-bytes ${mib(max)}${until}`;
  }
  if (r.fullSince && roomOf(r) < r.fullSince.roomBytes + GIVEN_BACK_BYTES) {
    return `the disk of this master's data dir is full (a write failed; ${mib(r.freeBytes)} free)`;
  }
  return undefined;
}

const mib = (bytes: number) => `${Number((bytes / 1024 ** 2).toFixed(2))} MiB`;

/**
 * A byte count as `weir master` takes it: `N`, or `N` with `K`/`M`/`G`/`T` (powers of 1024;
 * `KiB`, `KB`… say the same). Throws naming the flag otherwise.
 */
export function parseBytes(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`${flag} takes a byte count such as 67108864, 64M or 8GiB; got '${text}'`);
  const power = ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
  const n = Math.floor(Number(m[1]) * 1024 ** power);
  if (!Number.isSafeInteger(n)) throw new Error(`${flag} is too large: '${text}'`);
  return n;
}

import { statfsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common/logger.js';
import { DiskReserve, RESERVE_BYTES } from './disk-reserve.js';
import { roomOf, spaceAlarm, type SpaceLimits, type SpaceReading } from './space-alarm.js';

/** How often the disk is looked at: cheap (a statfs, a few stats and pragmas), and never per request. */
export const CHECK_EVERY_MS = 1_000;
/**
 * Within this of --max-db-bytes at the last look, a write that adds data reads the databases'
 * pages first (~10 µs): between two looks a second of 1 MiB submits, 40 of them, took a
 * master capped at 6 MiB to 43 MiB. Further from the cap, the looks each second suffice.
 */
const NEAR_CAP_BYTES = 64 * 1024 ** 2;
/** While the alarm stays on, the log is compacted again this often: deletes meanwhile free more. */
const COMPACT_EVERY_MS = 10_000;

export const NO_SPACE = 'no_space';

/** What the monitor reads, each behind a function so that a test can hand in its own. */
export interface SpaceSources {
  dataDir: string;
  /** The bytes of state.db's and raft.db's pages: live, and freed by deletes. */
  dbPageBytes: () => { usedBytes: number; freeBytes: number };
  /** How many writes failed for a full disk so far (the consensus driver counts them). */
  diskFullFailures: () => number;
  /** Compacts the log and checkpoints the state database: what frees the space deletes gave back. */
  compact: () => void;
  /** Bytes an unprivileged process may write on the data dir's file system (default: its statfs). */
  diskFreeBytes?: () => number;
}

const statfsFree = (dir: string) => () => {
  const fs = statfsSync(dir);
  return fs.bavail * fs.bsize;
};

/**
 * Watches the disk of a master's data dir and raises its `no_space` alarm (space-alarm.ts
 * says when). What a master's data takes is the live pages of `state.db` and `raft.db`,
 * their WAL files, and `uploads/`; what is free counts the master's reserve (see
 * DiskReserve), which a full-disk failure gives up. When the alarm goes on, and every 10 s
 * while it stays on, the log is compacted, so that what deletes freed is given back; the
 * alarm goes off by itself at the first look that finds the space back.
 */
export class SpaceMonitor {
  private reading: SpaceReading = { freeBytes: Number.MAX_SAFE_INTEGER, dbBytes: 0, slackBytes: 0 };
  private why: string | undefined;
  private seenFailures: number;
  private readonly reserve: DiskReserve;
  private lastCompact = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** What the last look counted besides the databases' live pages: WAL files and uploads. */
  private filesBytes = 0;
  private checking: Promise<void> | undefined;
  /** The least room there was as a write failed for a full disk, since the last look. */
  private roomAtFailure: number | undefined;
  private readonly diskFreeBytes: () => number;

  constructor(
    private readonly sources: SpaceSources,
    readonly limits: SpaceLimits,
    private readonly log: Logger,
    /** The master could start only by giving its reserve up: the disk was full before any write. */
    fullAtStart = false,
  ) {
    this.reserve = new DiskReserve(sources.dataDir);
    this.diskFreeBytes = sources.diskFreeBytes ?? statfsFree(sources.dataDir);
    this.seenFailures = sources.diskFullFailures() - (fullAtStart ? 1 : 0);
  }

  /** Takes a first reading before it returns, so a master starting on a full disk alarms at once. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  /** The alarms on now: `["no_space"]` or none. */
  alarms(): string[] {
    return this.why ? [NO_SPACE] : [];
  }

  /**
   * Why the alarm is on (undefined when it is off). A full-disk failure the last look has not
   * seen yet counts at once: the requests right after it get 507, not whatever the failed
   * write left behind (a lost leadership's 503).
   */
  get reason(): string | undefined {
    if (this.why) return this.why;
    if (this.sources.diskFullFailures() !== this.seenFailures) {
      void this.check();
      return "this master's disk is full: a write to its data dir failed";
    }
    if (this.reading.dbBytes + NEAR_CAP_BYTES < this.limits.maxDbBytes) return undefined;
    const dbBytes = this.sources.dbPageBytes().usedBytes + this.filesBytes;
    const over = spaceAlarm({ ...this.reading, dbBytes }, { ...NO_LIMITS, maxDbBytes: this.limits.maxDbBytes });
    if (over) void this.check();
    return over;
  }

  get freeBytes(): number {
    return this.reading.freeBytes;
  }

  get dbBytes(): number {
    return this.reading.dbBytes;
  }

  /**
   * A write failed for a full disk just now: the room there is now is what the alarm waits to
   * see 1 MiB more of. Measured here, not at the next look up to a second later: space freed
   * in between (an operator's rm) must count as given back, and space taken in between (a
   * copy's file growing) must not hide that the disk was full.
   */
  diskFull(): void {
    let slack = this.reading.slackBytes;
    try {
      slack = this.sources.dbPageBytes().freeBytes;
    } catch {
      // The last look's figure, then: the databases' free pages change slowly.
    }
    try {
      const room = roomOf({ freeBytes: this.diskFreeBytes() + this.reserve.bytes, slackBytes: slack });
      this.roomAtFailure = Math.min(this.roomAtFailure ?? Infinity, room);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not measure the data dir as a write failed');
    }
  }

  /** One look at the disk; overlapping calls share it. Never rejects. */
  check(): Promise<void> {
    this.checking ??= this.look()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'could not measure the data dir'))
      .finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async look(): Promise<void> {
    const failures = this.sources.diskFullFailures();
    const failed = failures !== this.seenFailures;
    this.seenFailures = failures;
    // Taken with the count: a failure heard while this look runs is the next look's.
    const heardRoom = this.roomAtFailure;
    this.roomAtFailure = undefined;
    if (failed) {
      // The cluster's own next writes need room now: the reserve goes back to the disk. (It
      // counts as free either way, so giving it up moves no figure of the alarm.)
      if (await this.reserve.release())
        this.log.warn('a write failed on a full disk: gave the disk reserve up for the cluster’s own writes');
    } else {
      // One from before a restart is on the disk already: counted free from the first look, as
      // at every later one, or giving it up would look like room given back.
      await this.reserve.find();
    }
    const reading = await this.measure();
    // The room as the failure happened (see diskFull); as this look finds it for one not
    // heard of (a master that could start only by giving its reserve up).
    const failedWith = heardRoom ?? roomOf(reading);
    let fullSince = failed ? { roomBytes: failedWith } : this.reading.fullSince;
    if (fullSince && spaceAlarm({ ...reading, fullSince }, NO_LIMITS) === undefined) fullSince = undefined;
    this.reading = { ...reading, ...(fullSince ? { fullSince } : {}) };
    this.update(spaceAlarm(this.reading, this.limits, this.why !== undefined));
    // Taken back only with room to spare: writing it must not be what fills the disk.
    if (!this.why && reading.freeBytes - this.reserve.bytes >= 2 * RESERVE_BYTES) await this.reserve.take();
  }

  private async measure(): Promise<SpaceReading> {
    const { dataDir } = this.sources;
    const free = this.diskFreeBytes();
    const pages = this.sources.dbPageBytes();
    const files = ['state.db-wal', 'raft.db-wal'].map((f) => join(dataDir, f));
    this.filesBytes = (await sizes(files)) + (await sizes(await listFiles(join(dataDir, 'uploads'))));
    const dbBytes = pages.usedBytes + this.filesBytes;
    return { freeBytes: free + this.reserve.bytes, dbBytes, slackBytes: pages.freeBytes };
  }

  private update(why: string | undefined): void {
    const was = this.why;
    this.why = why;
    if (why && !was) this.log.warn({ why }, 'no_space alarm on: refusing writes that add data');
    if (!why && was) this.log.info({ free_bytes: this.reading.freeBytes }, 'no_space alarm off: taking writes again');
    if (why && Date.now() - this.lastCompact >= COMPACT_EVERY_MS) {
      this.lastCompact = Date.now();
      try {
        this.sources.compact();
      } catch (err) {
        // On a full disk even compaction may fail to write; the next round tries again.
        this.log.warn({ err: (err as Error).message }, 'compacting the log for the no_space alarm failed');
      }
    }
    if (!why) this.lastCompact = -Infinity;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** Limits no reading crosses: what is left of the alarm is a full disk's. */
const NO_LIMITS: SpaceLimits = { minFreeBytes: 0, maxDbBytes: Number.MAX_SAFE_INTEGER };

async function listFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.map((n) => join(dir, n));
}

/** Their sizes added up; a file gone meanwhile counts nothing. */
async function sizes(paths: string[]): Promise<number> {
  let total = 0;
  for (const p of paths) total += (await stat(p).catch(() => undefined))?.size ?? 0;
  return total;
}

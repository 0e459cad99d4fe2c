import type { AppliedListener } from '../consensus/consensus.js';
import type { Logger } from '../common/logger.js';
import type { Command, Results } from '../state/commands.js';
import type { LifecycleQueries } from '../state/lifecycle-queries.js';
import { noLeader } from '../common/errors.js';
import type { ClusterConsensus } from './cluster-log.js';
import { unclaimedTooLong } from './unclaimed-uploads.js';
import { deletedUploadsKeptMs, PRUNES_DELETED_UPLOADS_FROM } from '../state/rules.js';

/** The uploads this master holds on its disk. */
export interface LocalUploads {
  ids(): string[];
  /** When upload `id` was received whole (ms since the epoch). */
  madeAt(id: string): number;
  remove(id: string): Promise<void>;
}

/** Jobs (and dead workers) a sweep proposes to delete at most, one command at a time. */
const SWEEP_BATCH = 100;
/** A purge the disk (or a lost quorum) interrupted goes on after this long, not at the next sweep. */
const PURGE_RETRY_MS = 1_000;
/** …while this master leads again within this many of those (after the next sweep, who leads goes on). */
const PURGE_RETRIES = 10;

/** How often the sweep runs: often enough for a short retention, at least every 10 s. */
export const sweepIntervalMs = (retentionMs: number): number =>
  retentionMs > 0 ? Math.min(10_000, Math.max(250, Math.floor(retentionMs / 4))) : 10_000;

/**
 * What a deletion leaves to clean up, on every master: the leader deletes jobs whose
 * retention ran out, forgets workers dead for longer than it, and keeps proposing purgeJob
 * slices of a deleted job's rows until none are left (after a failover too: the slices still
 * due are in the `purging` table). Every master removes its copy of an upload no job reads any
 * more — when the delete is applied, and on each sweep for one that missed it (a master that
 * was down, or installed a snapshot) — and has one that no job read within the retention
 * deleted through the log (an upload whose submit never came, or was refused). Times travel
 * in the commands; apply reads no clock.
 */
export class Janitor {
  private timer: NodeJS.Timeout | undefined;
  /** Deleted jobs (by seq) whose next slice is being proposed. */
  private readonly purging = new Set<number>();
  private sweeping = false;
  private closed = false;

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly queries: LifecycleQueries,
    /** The rules the state is applied by: pruning deleted uploads came with rules 3. */
    private readonly rules: { rulesVersion(): number },
    private readonly uploads: LocalUploads,
    /** --retention in ms; 0 keeps finished jobs, dead workers and unclaimed uploads for ever. */
    private readonly retentionMs: number,
    private readonly log: Logger,
    /** How a follower has an unclaimed copy deleted: by asking the leader (unclaimed-uploads.ts). */
    private readonly forgetAtLeader: (uploadId: string) => Promise<void> = () => Promise.reject(noLeader()),
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), sweepIntervalMs(this.retentionMs));
    this.timer.unref();
    void this.sweep();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  /** The effects of applied deletions, on every master in log order. */
  readonly onApplied: AppliedListener<Command, Results> = (batch) => {
    for (const e of batch) {
      if (!e.result.ok) continue;
      if (e.type === 'deleteJob') {
        const { upload_id, more, seq } = e.result;
        if (upload_id) this.removeUpload(upload_id);
        if (more) this.purge(seq);
      } else if (e.type === 'purgeJob' && e.result.more) {
        this.purge(e.command.seq);
      } else if (e.type === 'forgetUpload') {
        this.removeUpload(e.command.upload_id);
      }
    }
  };

  /** Proposes the slices of a deleted job's rows, one after the other, until none are left. */
  private purge(seq: number): void {
    if (this.purging.has(seq) || this.closed || !this.consensus.isLeader()) return;
    this.purging.add(seq);
    void (async () => {
      const started = Date.now();
      let slices = 0;
      let rows = 0;
      try {
        for (;;) {
          if (this.closed || !this.consensus.isLeader()) return;
          const r = await this.consensus.propose({ type: 'purgeJob', at: Date.now(), seq });
          if (!r.ok) return;
          slices++;
          rows += r.removed;
          if (!r.more) {
            this.log.info({ seq, slices, rows, ms: Date.now() - started }, "purged a deleted job's rows");
            return;
          }
        }
      } catch (err) {
        // Lost the lead (whoever leads goes on at its next sweep), or the disk refused: tried
        // again shortly, since a purge is what gives a full disk its space back.
        this.log.debug({ err: (err as Error).message, seq }, 'purging a deleted job paused');
        this.resumeLater(seq, PURGE_RETRIES);
      } finally {
        this.purging.delete(seq);
      }
    })();
  }

  /** Purges `seq` again in a moment — once this master leads again, after a start-over, within `tries` moments. */
  private resumeLater(seq: number, tries: number): void {
    setTimeout(() => {
      if (this.closed || this.purging.has(seq)) return;
      if (this.consensus.isLeader()) this.purge(seq);
      else if (tries > 1) this.resumeLater(seq, tries - 1);
    }, PURGE_RETRY_MS).unref();
  }

  private removeUpload(id: string): void {
    this.uploads
      .remove(id)
      .catch((err: Error) => this.log.warn({ err: err.message, upload_id: id }, 'could not remove an upload'));
  }

  /**
   * This master's copies: those of deleted uploads go; one no job read within the retention
   * is deleted through the log (the leader decides whether a job reads it by then).
   */
  private async sweepUploads(now: number): Promise<void> {
    const unclaimed: string[] = [];
    for (const id of this.uploads.ids()) {
      if (this.queries.uploadDeleted(id)) this.removeUpload(id);
      else if (unclaimedTooLong(this.uploads.madeAt(id), now, this.retentionMs) && !this.queries.uploadRead(id)) {
        unclaimed.push(id);
      }
    }
    for (const id of unclaimed.slice(0, SWEEP_BATCH)) {
      if (this.closed) return;
      try {
        if (this.consensus.isLeader()) {
          const r = await this.consensus.propose({ type: 'forgetUpload', at: Date.now(), upload_id: id });
          if (r.ok) this.log.info({ upload_id: id }, 'deleted an upload no job read within the retention');
        } else {
          await this.forgetAtLeader(id);
          this.log.info({ upload_id: id }, 'asked the leader to delete an upload no job read within the retention');
        }
      } catch (err) {
        // Asked again at the next sweep.
        this.log.debug({ err: (err as Error).message, upload_id: id }, 'could not delete an unclaimed upload');
        return;
      }
    }
  }

  /** On the leader: forgets deleted uploads recorded longer ago than they are kept (rules 3). */
  private async pruneDeletedUploads(): Promise<void> {
    if (this.rules.rulesVersion() < PRUNES_DELETED_UPLOADS_FROM) return;
    const before = Date.now() - deletedUploadsKeptMs(this.retentionMs);
    // Asked first through the index: an entry every sweep with nothing to prune would grow the log.
    if (!this.queries.deletedUploadsBefore(before)) return;
    let removed = 0;
    for (;;) {
      if (this.closed || !this.consensus.isLeader()) return;
      const r = await this.consensus.propose({ type: 'pruneDeletedUploads', at: Date.now(), before });
      if (!r.ok) return;
      removed += r.removed;
      if (!r.more) break;
    }
    this.log.info({ removed, before: new Date(before).toISOString() }, 'forgot uploads deleted longer ago than kept');
  }

  /** One pass: local uploads on every master; retention and unfinished purges on the leader. */
  async sweep(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      await this.sweepUploads(Date.now());
      if (!this.consensus.isLeader()) return;
      for (const seq of this.queries.purging()) this.purge(seq);
      // Jobs may carry their own retention even when the cluster keeps everything.
      const now = Date.now();
      for (const jobId of this.queries.expiredJobs(now, this.retentionMs, SWEEP_BATCH)) {
        if (!this.consensus.isLeader()) return;
        const r = await this.consensus.propose({ type: 'deleteJob', at: Date.now(), job_id: jobId });
        if (r.ok) this.log.info({ job_id: jobId }, 'deleted a job past its retention');
      }
      await this.pruneDeletedUploads();
      if (this.retentionMs <= 0) return;
      for (const w of this.queries.deadWorkers(now - this.retentionMs, SWEEP_BATCH)) {
        if (!this.consensus.isLeader()) return;
        const at = Date.now();
        const r = await this.consensus.propose({
          type: 'forgetWorker',
          at,
          worker_id: w.worker_id,
          dead_before: at - this.retentionMs,
        });
        if (r.ok && r.forgotten) this.log.info({ worker_id: w.worker_id }, 'forgot a worker dead past the retention');
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'a retention sweep stopped early');
    } finally {
      this.sweeping = false;
    }
  }
}

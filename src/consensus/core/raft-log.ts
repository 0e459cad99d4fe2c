import type { Entry, SnapshotMeta } from './types.js';

/**
 * The log as the core sees it: entries after the last snapshot, in memory.
 *
 * Invariants: `snapshot.index < first entry index`, indexes are contiguous,
 * `applied <= committed <= lastIndex`, and `stable` (what the driver has persisted)
 * `<= lastIndex`.
 */
export class RaftLog {
  private entries: Entry[] = [];
  snapshot: SnapshotMeta;
  committed: number;
  applied: number;
  /** Entries up to here are durable; later ones still have to be handed to the driver. */
  stable: number;

  constructor(snapshot: SnapshotMeta, entries: Entry[], committed: number, applied = 0) {
    this.snapshot = snapshot;
    this.entries = entries.filter((e) => e.index > snapshot.index);
    this.stable = this.lastIndex;
    this.committed = Math.max(snapshot.index, Math.min(committed, this.lastIndex));
    this.applied = Math.max(snapshot.index, Math.min(applied, this.committed));
  }

  get firstIndex(): number {
    return this.snapshot.index + 1;
  }

  get lastIndex(): number {
    return this.entries.length ? this.entries[this.entries.length - 1]!.index : this.snapshot.index;
  }

  get lastTerm(): number {
    return this.term(this.lastIndex)!;
  }

  /** The term of entry `i`, or undefined when it is compacted away or not there. */
  term(i: number): number | undefined {
    if (i === this.snapshot.index) return this.snapshot.term;
    if (i < this.firstIndex || i > this.lastIndex) return undefined;
    return this.entries[i - this.firstIndex]!.term;
  }

  entry(i: number): Entry | undefined {
    if (i < this.firstIndex || i > this.lastIndex) return undefined;
    return this.entries[i - this.firstIndex];
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** Entries `[from, to]` (bounded by `max`); `from` must not be compacted. */
  slice(from: number, to: number, max = Infinity): Entry[] {
    if (from < this.firstIndex) throw new Error(`entries from ${from} are compacted (first is ${this.firstIndex})`);
    const hi = Math.min(to, this.lastIndex, from + max - 1);
    if (hi < from) return [];
    return this.entries.slice(from - this.firstIndex, hi - this.firstIndex + 1);
  }

  /** §5.4.1: a log is at least as up to date when its last term is higher, or equal and it is no shorter. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  append(entries: Entry[]): void {
    for (const e of entries) this.entries.push(e);
  }

  /**
   * Appends what a leader sent after `prevIndex` (which matched): entries already present
   * with the same term are kept, the first conflicting one and everything after it are
   * replaced (§5.3). Returns the index of the last new entry.
   */
  appendFromLeader(prevIndex: number, entries: Entry[]): number {
    for (const [k, e] of entries.entries()) {
      const existing = this.term(e.index);
      if (existing === undefined && e.index <= this.snapshot.index) continue; // covered by the snapshot
      if (existing === e.term) continue;
      if (e.index <= this.committed) {
        throw new Error(`entry ${e.index} conflicts with a committed entry; this log is corrupt`);
      }
      this.truncateFrom(e.index);
      this.append(entries.slice(k));
      break;
    }
    return prevIndex + entries.length;
  }

  private truncateFrom(index: number): void {
    if (index <= this.lastIndex) this.entries.length = Math.max(0, index - this.firstIndex);
    this.stable = Math.min(this.stable, index - 1);
  }

  unstableEntries(): Entry[] {
    return this.stable >= this.lastIndex ? [] : this.slice(Math.max(this.stable + 1, this.firstIndex), this.lastIndex);
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex) throw new Error(`commit ${index} is beyond the last index ${this.lastIndex}`);
    this.committed = index;
    return true;
  }

  /** Replaces the whole log with a snapshot (a follower installing one). */
  restore(snapshot: SnapshotMeta): void {
    this.snapshot = snapshot;
    this.entries = [];
    this.committed = snapshot.index;
    this.applied = snapshot.index;
    this.stable = snapshot.index;
  }

  /** Drops entries up to `index` (≤ applied): the state machine holds them now. */
  compact(index: number, members: SnapshotMeta['members']): void {
    if (index <= this.snapshot.index) return;
    if (index > this.applied) throw new Error(`cannot compact to ${index}: only ${this.applied} is applied`);
    const term = this.term(index)!;
    this.entries = this.entries.slice(index - this.firstIndex + 1);
    this.snapshot = { index, term, members };
  }
}

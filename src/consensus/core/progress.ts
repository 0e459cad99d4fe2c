/**
 * The leader's view of one follower's log (§5.3, with etcd's refinements):
 * - `probe`: one append at a time, backing `next` off on rejection, until one matches;
 * - `replicate`: appends pipelined optimistically, at most `maxInflight` unanswered;
 * - `snapshot`: a snapshot is on its way; nothing else is sent until it is answered.
 * Invariant: `match < next`.
 */
export class Progress {
  match = 0;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot' = 'probe';
  /** In probe: an append is out and unanswered; wait for its answer or the next heartbeat. */
  paused = false;
  /** Last index of each unanswered append, oldest first (replicate). */
  inflight: number[] = [];
  /** Heard from it since the last check-quorum round. */
  recentActive = true;
  /** Ticks since the leader last heard from it. */
  heardElapsed = 0;
  /** Ticks it has been caught up and responsive (leadership preference). */
  healthyTicks = 0;
  /** Ticks since the snapshot went out (snapshot state); its answer may be lost, like any message. */
  snapshotElapsed = 0;

  constructor(next: number) {
    this.next = next;
  }

  becomeProbe(): void {
    this.state = 'probe';
    this.paused = false;
    this.inflight = [];
    this.next = this.match + 1;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.paused = false;
    this.inflight = [];
    this.next = this.match + 1;
  }

  becomeSnapshot(): void {
    this.state = 'snapshot';
    this.paused = true;
    this.inflight = [];
    this.snapshotElapsed = 0;
  }

  /** Records an accepted append up to `index`; says whether it moved anything. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.paused = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length && this.inflight[0]! <= index) this.inflight.shift();
    return updated;
  }

  /**
   * Handles a rejected append of `rejected` (its prevIndex) with the follower's hint;
   * false when the rejection is stale (an older append).
   */
  maybeDecrease(rejected: number, hint: number, firstIndex = 1): boolean {
    // It no longer holds what it acknowledged: it started over from an empty state (its
    // state database lost or corrupt). Start it over from what it says it has — a snapshot,
    // when that is compacted away. A late duplicate of an old rejection can look the same;
    // it is taken only when the answer is a snapshot or the whole log (not an eager resend
    // each time), and a lower match costs time, never safety: it only holds the commit back.
    const startedOver = rejected <= this.match && hint < rejected && (hint === 0 || hint < firstIndex - 1);
    if (this.state === 'replicate') {
      if (rejected <= this.match && !startedOver) return false;
      if (startedOver) this.match = hint;
      this.becomeProbe();
      this.next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
      return true;
    }
    if (this.next - 1 !== rejected && !(startedOver && this.state === 'probe')) return false;
    if (startedOver) this.match = hint;
    this.next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
    this.paused = false;
    return true;
  }

  isPaused(maxInflight: number): boolean {
    switch (this.state) {
      case 'probe':
        return this.paused;
      case 'replicate':
        return this.inflight.length >= maxInflight;
      case 'snapshot':
        return true;
    }
  }

  /** Notes an append that was sent, up to `last`. */
  sent(last: number): void {
    if (this.state === 'replicate') {
      this.next = last + 1;
      this.inflight.push(last);
    } else if (this.state === 'probe') {
      this.paused = true;
    }
  }
}

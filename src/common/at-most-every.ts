/**
 * A line said at most once an interval, per key. A fault that every request, heartbeat or
 * frame meets (a leader away, a full disk, a peer too old, a flood of bad frames) is said
 * once, then again after the interval with how many times it was held back meanwhile: the
 * log stays readable and the count still tells how much there was.
 *
 * The clock is the caller's: consensus code passes its own, so the deterministic simulation
 * decides when a line is due as it decides everything else.
 */
export class AtMostEvery {
  private readonly last = new Map<string, { at: number; heldBack: number }>();

  constructor(
    private readonly everyMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Calls `line` with how many times `key` was held back since it was last said, unless it
   * was said less than the interval ago: then it is held back and counted.
   */
  say(line: (heldBack: number) => void, key = '', now = this.clock()): void {
    const last = this.last.get(key);
    if (last !== undefined && now - last.at < this.everyMs) {
      last.heldBack++;
      return;
    }
    this.last.set(key, { at: now, heldBack: 0 });
    line(last?.heldBack ?? 0);
  }
}

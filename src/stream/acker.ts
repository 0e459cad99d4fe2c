// Storm-style ack tracking (one acker's share of the roots). Pure: time and randomness are
// passed in.
//
// Every tuple gets a random 64-bit id. Each root (an event a spout emitted) keeps one value,
// the XOR of the ids reported for it: the spout reports the ids of the tuples it sent; a
// bolt done with a tuple reports, in ONE update, that tuple's id XOR the ids of the
// children it anchored on it. Each id is thus XORed in exactly twice — once when it is
// created, once when it is acked — in whatever order the reports arrive, so the value is 0
// exactly when the whole tree is done (a false 0 has probability 2^-64 per update). A bolt
// must never report a child without the ack in the same update, or the value could pass
// through 0 early.
//
// Ids are two uint32 halves rather than a BigInt: XOR on two small integers allocates
// nothing and stays in V8's fast paths, and `{hi, lo}` survives JSON and msgpack unchanged
// (a BigInt does neither by default).

export interface TupleId {
  /** Unsigned 32-bit halves; a real id is never 0/0, which would vanish from the XOR. */
  hi: number;
  lo: number;
}

export const xorIds = (a: TupleId, b: TupleId): TupleId => ({ hi: (a.hi ^ b.hi) >>> 0, lo: (a.lo ^ b.lo) >>> 0 });

/** 16 hex digits, e.g. as a root id. */
export const tupleIdHex = (id: TupleId): string =>
  id.hi.toString(16).padStart(8, '0') + id.lo.toString(16).padStart(8, '0');

/** Random tuple ids from an injected source of floats in [0, 1), such as `Math.random`. */
export class TupleIdSource {
  constructor(private readonly random: () => number) {}

  next(): TupleId {
    for (let tries = 0; tries < 8; tries++) {
      const hi = Math.floor(this.random() * 0x1_0000_0000) >>> 0;
      const lo = Math.floor(this.random() * 0x1_0000_0000) >>> 0;
      if ((hi | lo) !== 0) return { hi, lo };
    }
    throw new Error('the random source gave only zero tuple ids; it is not random');
  }
}

export interface Root<S> {
  rootId: string;
  /** Whatever identifies the spout instance that owns the root, to tell it the outcome. */
  spout: S;
  /** When the root was tracked. */
  startedMs: number;
}

interface Entry<S> {
  hi: number;
  lo: number;
  /** Absent until `track`: updates can overtake the spout's own message. */
  spout?: S;
  startedMs: number;
  /** Acker clock when the entry was created; entries are created in this order. */
  bornMs: number;
}

/**
 * Pending roots and their XOR values. A root leaves by completing (value back to 0), by
 * `fail`, or by `expire`; the last two hand it back for replay. Stray updates for a root that
 * already left (acks still in flight after a failure) make an untracked entry that `expire`
 * later drops, so a replay must use a NEW root id, never the old one.
 */
export class Acker<S = number> {
  /** Insertion order is creation order, and `bornMs` never decreases along it. */
  private readonly roots = new Map<string, Entry<S>>();
  private clock = -Infinity;
  readonly stats = { completed: 0, failed: 0, expired: 0, orphaned: 0 };

  get pending(): number {
    return this.roots.size;
  }

  /**
   * Starts tracking a root for `spout`, with `initial` the XOR of the ids of the tuples the
   * spout sent (or report them with `update`). Returns the root if updates that overtook this
   * call had already completed it. A root that sent no tuples never completes here: the
   * spout should treat it as done without tracking it.
   */
  track(rootId: string, spout: S, nowMs: number, initial?: TupleId): Root<S> | undefined {
    this.clock = Math.max(this.clock, nowMs);
    let e = this.roots.get(rootId);
    const early = e !== undefined;
    if (!e) {
      e = { hi: 0, lo: 0, startedMs: nowMs, bornMs: this.clock };
      this.roots.set(rootId, e);
    }
    e.spout = spout;
    e.startedMs = nowMs;
    if (initial) {
      e.hi = (e.hi ^ initial.hi) >>> 0;
      e.lo = (e.lo ^ initial.lo) >>> 0;
    }
    return (early || initial) && (e.hi | e.lo) === 0 ? this.complete(rootId, e) : undefined;
  }

  /** XORs `value` into the root's; returns the root when that completes its tree. */
  update(rootId: string, value: TupleId): Root<S> | undefined {
    let e = this.roots.get(rootId);
    if (!e) {
      e = { hi: 0, lo: 0, startedMs: this.clock, bornMs: this.clock };
      this.roots.set(rootId, e);
    }
    e.hi = (e.hi ^ value.hi) >>> 0;
    e.lo = (e.lo ^ value.lo) >>> 0;
    return (e.hi | e.lo) === 0 && e.spout !== undefined ? this.complete(rootId, e) : undefined;
  }

  /** A bolt gave up on a tuple of this root: forget it and hand it back for replay. */
  fail(rootId: string): Root<S> | undefined {
    const e = this.roots.get(rootId);
    if (!e || e.spout === undefined) return undefined;
    this.roots.delete(rootId);
    this.stats.failed++;
    return { rootId, spout: e.spout, startedMs: e.startedMs };
  }

  /**
   * Roots created more than `timeoutMs` before `nowMs`, removed and handed back for replay.
   * Untracked ones (only stray updates seen) are dropped and counted as orphaned. Stops at
   * the first young entry, so a call costs the number of expired roots, not all pending ones.
   */
  expire(nowMs: number, timeoutMs: number): Root<S>[] {
    this.clock = Math.max(this.clock, nowMs);
    const out: Root<S>[] = [];
    for (const [rootId, e] of this.roots) {
      if (e.bornMs > nowMs - timeoutMs) break;
      this.roots.delete(rootId);
      if (e.spout === undefined) {
        this.stats.orphaned++;
      } else {
        this.stats.expired++;
        out.push({ rootId, spout: e.spout, startedMs: e.startedMs });
      }
    }
    return out;
  }

  private complete(rootId: string, e: Entry<S>): Root<S> {
    this.roots.delete(rootId);
    this.stats.completed++;
    return { rootId, spout: e.spout!, startedMs: e.startedMs };
  }
}

// Credit-based flow control for one channel (a sending worker -> one receiving instance), as
// in Flink's network stack: the receiver has a bounded buffer and grants the sender one credit
// per free slot; the sender sends only what it holds credits for, so the buffer never
// overflows and a slow receiver pushes back on its senders instead of growing memory.
// Pure bookkeeping; the links carry the grants as messages.

/** The sender's side: credits granted and not yet used. */
export class SendCredits {
  private credits = 0;

  get available(): number {
    return this.credits;
  }

  /** Takes credits for up to `n` events and returns how many may be sent now (0 = wait for a grant). */
  trySend(n = 1): number {
    const k = Math.min(n, this.credits);
    this.credits -= k;
    return k;
  }

  grant(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`a grant must be a whole number >= 0; got ${n}`);
    this.credits += n;
  }

  /** A new connection starts with nothing: the credits of the old one died with it. */
  reset(): void {
    this.credits = 0;
  }
}

/**
 * The receiver's side, with a buffer of `capacity` tuples. Invariant:
 * `buffered + outstanding + ungranted === capacity`, where `outstanding` is what the sender
 * holds (as far as the receiver knows) and `ungranted` the free slots not yet granted.
 * Freed slots are granted back in batches of at least `batch` (default half the buffer),
 * trading a little buffer for far fewer grant messages, and all at once when the buffer
 * empties: so a sender out of credits always gets them back, and a drained channel ends at
 * rest (every credit with the sender), where either end may forget it and start it again
 * from the whole window without a word to the other.
 */
export class ReceiveWindow {
  private buffered_ = 0;
  private outstanding = 0;
  private ungranted: number;

  constructor(
    readonly capacity: number,
    readonly batch = Math.ceil(capacity / 2),
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be >= 1; got ${capacity}`);
    if (!Number.isInteger(batch) || batch < 1 || batch > capacity) {
      throw new RangeError(`batch must be from 1 to capacity (${capacity}); got ${batch}`);
    }
    this.ungranted = capacity;
  }

  get buffered(): number {
    return this.buffered_;
  }

  /** Nothing buffered and every slot with the sender: a new window in its place would be the same. */
  get atRest(): boolean {
    return this.outstanding === this.capacity;
  }

  /**
   * The first grant for a (new) sender: every free slot. Credits granted to an earlier
   * connection are void, so they return to the pool first.
   */
  open(): number {
    this.ungranted += this.outstanding;
    this.outstanding = this.ungranted;
    this.ungranted = 0;
    return this.outstanding;
  }

  /** Whether `n` events arriving now stay within the credits granted (a sender past them is refused, not believed). */
  allows(n: number): boolean {
    return n <= this.outstanding;
  }

  /** `n` events arrived. More than the sender had credits for is a sender bug and fails loudly. */
  received(n: number): void {
    if (n > this.outstanding) {
      throw new RangeError(`sender overran its credits: got ${n} events with ${this.outstanding} credits outstanding`);
    }
    this.outstanding -= n;
    this.buffered_ += n;
  }

  /** `n` events left the buffer; returns the credits to grant the sender now (often 0). */
  consumed(n: number): number {
    if (n > this.buffered_) throw new RangeError(`consumed ${n} events with only ${this.buffered_} buffered`);
    this.buffered_ -= n;
    this.ungranted += n;
    if (this.ungranted < this.batch && this.buffered_ > 0) return 0;
    const grant = this.ungranted;
    this.outstanding += grant;
    this.ungranted = 0;
    return grant;
  }
}

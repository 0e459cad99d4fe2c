import type { Principal } from './auth.js';

/** Enough for every caller of a busy cluster; a token is a few hundred bytes. */
const DEFAULT_MAX_TOKENS = 4096;

/**
 * Tokens that verified, with whom they name, until they expire: a server checks a caller's
 * token once, not on every request. Verifying HS256 through WebCrypto goes to the thread
 * pool and back twice (importing the key, then the signature): ~0.15 ms here, a tenth of a
 * one-task job's round trip, for an answer that cannot change before the token's `exp`.
 *
 * A token is its own key: the same bytes carry the same signature and the same claims, so a
 * hit says what checking it again would — unless it has expired since, which every hit looks
 * at (as jose does: expired once `exp`, in whole seconds, is not after now). Only tokens that
 * verified are held, so only a caller with a valid token adds to it (a few spellings of one
 * token decode alike, and each takes a place); past `max` the least recently used goes.
 */
export class VerifiedTokens {
  private readonly held = new Map<string, Principal>();

  constructor(
    private readonly max = DEFAULT_MAX_TOKENS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whom `token` names, if it verified before and has not expired since. */
  get(token: string): Principal | undefined {
    const principal = this.held.get(token);
    if (principal === undefined) return undefined;
    this.held.delete(token);
    if (principal.expires_at !== undefined && principal.expires_at <= this.now()) return undefined;
    // To the back of the line: the busiest callers' tokens are the last to go.
    this.held.set(token, principal);
    return principal;
  }

  /** Holds a token that just verified. One without an expiry is never held. */
  add(token: string, principal: Principal): void {
    if (principal.expires_at === undefined) return;
    if (this.held.size >= this.max && !this.held.has(token)) {
      this.held.delete(this.held.keys().next().value!);
    }
    this.held.set(token, Object.freeze({ ...principal }));
  }

  get size(): number {
    return this.held.size;
  }
}

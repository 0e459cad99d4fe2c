/** The longest delay setTimeout keeps (about 24.8 days); later instants are reached in steps. */
export const MAX_DELAY_MS = 2 ** 31 - 1;

/** How a socket that outlived its token with no fresh one is closed (worker channels, stream and peer links): the peer dials again with a fresh one. */
export const CLOSE_TOKEN_EXPIRED = 4401;
export const TOKEN_EXPIRED_REASON = 'the token expired; reconnect with a fresh one';

/**
 * Ends a long-lived connection when the token it was opened with — or last renewed with —
 * stops being valid. A token checked only as a socket opens would speak for it for ever:
 * a channel opened with a token that leaked and expired would still carry its holder's reports.
 */
export class TokenExpiry {
  private timer: NodeJS.Timeout | undefined;
  private at: number | undefined;
  private stopped = false;

  /** `expiresAt` in ms since the epoch; undefined: the token never expires (an open cluster). */
  constructor(
    expiresAt: number | undefined,
    private readonly onExpired: () => void,
  ) {
    this.set(expiresAt);
  }

  /** A fresh token was checked: the connection lives until that one expires. */
  renew(expiresAt: number | undefined): void {
    if (!this.stopped) this.set(expiresAt);
  }

  /** The connection ended: nothing more to do. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private set(expiresAt: number | undefined): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = expiresAt;
    if (expiresAt !== undefined) this.arm();
  }

  private arm(): void {
    const left = this.at! - Date.now();
    if (left <= 0) {
      this.stop();
      this.onExpired();
      return;
    }
    this.timer = setTimeout(() => this.arm(), Math.min(left, MAX_DELAY_MS));
    this.timer.unref();
  }
}

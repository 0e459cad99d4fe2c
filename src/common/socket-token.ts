import { CLOSE_TOKEN_REFUSED } from '../protocol/token-frame.js';
import { authorize, type AccessTable } from './access.js';
import { verifyBearer, type Principal } from './auth.js';
import type { Logger } from './logger.js';
import { CLOSE_TOKEN_EXPIRED, TOKEN_EXPIRED_REASON, TokenExpiry } from './token-expiry.js';

/**
 * What the token a long-lived socket opened with allows: until when, and how a fresh one sent
 * on it is checked. Absent on an open cluster (no JWT_SECRET), which checks no token.
 */
export interface TokenAuthority {
  /** When the token stops being valid, in ms since the epoch. */
  expiresAt: number | undefined;
  /** Resolves with a fresh token's expiry; rejects (saying why) when it may not speak for the socket. */
  renew(token: string): Promise<number | undefined>;
}

/**
 * The authority of a socket opened on `route` of `table` with a token valid until `expiresAt`:
 * a fresh token is taken only where the route would have taken it at the upgrade, for the same
 * `params` (a worker's channel takes only that worker's tokens), and — `sameSender` — only when
 * it names who the socket's first token named (a master's peer link takes only its own master's).
 */
export function routeAuthority(
  secret: string,
  table: AccessTable,
  route: string,
  params: Record<string, string>,
  expiresAt: number | undefined,
  sameSender?: (fresh: Principal) => string | undefined,
): TokenAuthority {
  return {
    expiresAt,
    async renew(token) {
      const principal = await verifyBearer(secret, `Bearer ${token}`);
      authorize(table, route, principal, { params, body: undefined });
      const other = sameSender?.(principal);
      if (other) throw new Error(other);
      return principal.expires_at;
    },
  };
}

/** What became of the tokens a socket was sent, and of the socket at its token's expiry. */
export interface TokenOutcomes {
  renewed(): void;
  refused(why: string): void;
  expired(): void;
}

/** Counts of TokenOutcomes, for a `…_tokens_total{outcome}` metric. */
export type TokenCounts = Record<keyof TokenOutcomes, number>;

/**
 * Outcomes counted in `counts` and, when a socket closes for them, logged as warnings naming
 * the socket (`what`: "a worker channel", "a peer link") and `fields`.
 */
export function countedOutcomes(
  counts: TokenCounts,
  log: Logger,
  what: string,
  fields: Record<string, unknown> = {},
): TokenOutcomes {
  return {
    renewed: () => counts.renewed++,
    refused: (why) => {
      counts.refused++;
      log.warn({ ...fields, why }, `a token ${what} may not use; closing it`);
    },
    expired: () => {
      counts.expired++;
      log.warn(fields, `${what} outlived its token; closing it`);
    },
  };
}

/**
 * The receiving end's hold on a socket's token: closes the socket (4401) when its token expires
 * with no fresh one, takes fresh ones, and closes it (4403) on one that may not speak for it.
 */
export class SocketToken {
  private readonly expiry: TokenExpiry;
  private closed = false;

  constructor(
    private readonly authority: TokenAuthority | undefined,
    private readonly socket: { close(code: number, reason: string): void },
    private readonly on: TokenOutcomes,
  ) {
    this.expiry = new TokenExpiry(authority?.expiresAt, () => {
      on.expired();
      socket.close(CLOSE_TOKEN_EXPIRED, TOKEN_EXPIRED_REASON);
    });
  }

  /** A fresh token arrived on the socket. */
  renew(token: string): void {
    if (!this.authority) return;
    // Checked after the socket closed (a check is asynchronous): nothing was renewed or refused.
    this.authority.renew(token).then(
      (expiresAt) => {
        if (this.closed) return;
        this.on.renewed();
        this.expiry.renew(expiresAt);
      },
      (err: Error) => {
        if (this.closed) return;
        this.on.refused(err.message);
        this.expiry.stop();
        this.socket.close(CLOSE_TOKEN_REFUSED, 'a token that may not speak for this socket');
      },
    );
  }

  /** The socket closed. */
  stop(): void {
    this.closed = true;
    this.expiry.stop();
  }
}

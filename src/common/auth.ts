import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { WeirError } from './errors.js';
import type { VerifiedTokens } from './verified-tokens.js';

const ALG = 'HS256';

/**
 * Who a token speaks for. `client`: a user (also what a token without a role means);
 * `worker`: a worker node, bound to its `worker_id` once registered; `peer`: a master, bound to
 * its `node_id`; `admin`: an operator.
 */
export const ROLES = ['client', 'worker', 'peer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What a token may carry beyond its subject and lifetime. */
export interface TokenClaims {
  role?: Role;
  worker_id?: string;
  node_id?: number;
  /** Narrows a token to the routes that name this scope (a task's token: `shuffle` reads). */
  scope?: string;
  /** A task's token speaks for its job alone: it reads that job's map outputs, no other's. */
  job_id?: string;
}

/** The caller a verified token names; the open cluster's callers are `admin`. */
export interface Principal {
  role: Role;
  subject: string;
  worker_id?: string;
  node_id?: number;
  scope?: string;
  job_id?: string;
  /** When the token stops being valid (ms since the epoch): a long-lived stream ends then. */
  expires_at?: number;
}

/** Every caller of a cluster without JWT_SECRET: it is open, and says so at start. */
export const OPEN_CLUSTER: Principal = Object.freeze({ role: 'admin', subject: 'anyone' });

/** How long a token a node mints for itself is valid, unless `WEIR_TOKEN_TTL` says otherwise. */
export const DEFAULT_TOKEN_TTL_MS = 3_600_000;

/** HS256 keys shorter than the hash add no strength; the seed's `secret_key` still works. */
const STRONG_SECRET_BYTES = 32;

/** What to warn at start about the cluster's secret, if anything. */
export function secretWarning(secret: string | undefined): string | undefined {
  if (!secret) return 'JWT_SECRET is not set: this node is open to anyone who can reach it';
  const bytes = Buffer.byteLength(secret);
  if (bytes < STRONG_SECRET_BYTES) {
    return `JWT_SECRET is ${bytes} bytes: tokens signed with it can be forged by guessing it; use ${STRONG_SECRET_BYTES} random bytes or more`;
  }
  return undefined;
}

function keyOf(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/**
 * When a token minted at `nowMs` to live `ttlMs` expires, in ms since the epoch. `exp` counts
 * whole seconds from a floored now, so a token can end almost a second before `nowMs + ttlMs`:
 * a holder that renews a short-lived token must go by this instant, not by its own sum.
 */
export function tokenExpiresAt(nowMs: number, ttlMs: number): number {
  return (Math.floor(nowMs / 1000) + Math.max(1, Math.round(ttlMs / 1000))) * 1000;
}

/** A bearer token signed with the cluster's shared secret, expiring at `tokenExpiresAt(nowMs, ttlMs)`. */
export async function mintToken(
  secret: string,
  ttlMs: number,
  subject = 'weir',
  claims: TokenClaims = {},
  nowMs = Date.now(),
): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: ALG, typ: 'JWT' })
    .setSubject(subject)
    .setIssuedAt(Math.floor(nowMs / 1000))
    .setExpirationTime(tokenExpiresAt(nowMs, ttlMs) / 1000)
    .sign(keyOf(secret));
}

const unauthorized = (why: string) =>
  new WeirError('unauthorized', `${why}; mint a new one with 'weir token' and the cluster's JWT_SECRET`);

/**
 * Verifies an `Authorization` header value and returns whom it names. Only HS256 is accepted,
 * so `alg: none` and tokens signed with another algorithm are refused like a wrong signature;
 * a token must expire (`exp`), and its claims must be of the right types. With `verified`,
 * a token that verified before is not checked again until it expires (verified-tokens.ts).
 */
export async function verifyBearer(
  secret: string,
  header: string | undefined,
  verified?: VerifiedTokens,
): Promise<Principal> {
  const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  const token = m?.[1];
  if (!token) {
    throw new WeirError('unauthorized', 'this cluster needs a bearer token: set WEIR_TOKEN, or JWT_SECRET to mint one');
  }
  const known = verified?.get(token);
  if (known) return known;
  const principal = await verifyToken(secret, token);
  verified?.add(token, principal);
  return principal;
}

async function verifyToken(secret: string, token: string): Promise<Principal> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, keyOf(secret), { algorithms: [ALG], requiredClaims: ['exp'] }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw unauthorized('the token has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'exp') {
      throw unauthorized('the token has no expiry (exp)');
    }
    throw unauthorized('the token is not valid for this cluster');
  }
  const role = payload.role ?? 'client';
  if (!ROLES.includes(role as Role))
    throw unauthorized(`the token's role ${JSON.stringify(role)} is not one of ${ROLES.join(', ')}`);
  const principal: Principal = { role: role as Role, subject: typeof payload.sub === 'string' ? payload.sub : '' };
  if (typeof payload.exp === 'number') principal.expires_at = payload.exp * 1000;
  if (payload.worker_id !== undefined) {
    if (typeof payload.worker_id !== 'string') throw unauthorized('the token’s worker_id is not a string');
    principal.worker_id = payload.worker_id;
  }
  if (payload.scope !== undefined) {
    if (typeof payload.scope !== 'string') throw unauthorized('the token’s scope is not a string');
    principal.scope = payload.scope;
  }
  if (payload.job_id !== undefined) {
    if (typeof payload.job_id !== 'string') throw unauthorized('the token’s job_id is not a string');
    principal.job_id = payload.job_id;
  }
  if (payload.node_id !== undefined) {
    if (!Number.isSafeInteger(payload.node_id)) throw unauthorized('the token’s node_id is not an integer');
    principal.node_id = payload.node_id as number;
  }
  return principal;
}

/**
 * Caches a self-minted token and renews it before it expires, for long-lived callers
 * (workers, the CLI's `wait`). Returns undefined when the cluster is open.
 */
export class TokenSource {
  private token: string | undefined;
  private expiresAt = 0;
  private generation = 0;

  constructor(
    private readonly secret: string | undefined,
    private readonly fixed: string | undefined,
    private readonly subject: string,
    private claims: TokenClaims = {},
    /** How long the tokens it mints are valid (`WEIR_TOKEN_TTL`); an hour by default. */
    private readonly ttlMs = DEFAULT_TOKEN_TTL_MS,
  ) {}

  /** How long before its expiry a token is replaced: a minute, or a third of a short life. */
  private get margin(): number {
    return Math.min(60_000, Math.floor(this.ttlMs / 3));
  }

  /**
   * When header() will next give a token other than the one it gives now (ms since the epoch),
   * which a long-lived channel must be sent before its token expires; undefined when it never
   * will (a fixed token, an open cluster).
   */
  renewsAt(): number | undefined {
    if (this.fixed || !this.secret) return undefined;
    return this.token ? this.expiresAt - this.margin : Date.now();
  }

  static fromEnv(subject: string, claims: TokenClaims = {}, env: NodeJS.ProcessEnv = process.env): TokenSource {
    // A token file saved with a line end (CRLF above all) is still the token.
    const fixed = env.WEIR_TOKEN?.trim() || undefined;
    // eslint-disable-next-line no-control-regex
    if (fixed && /[\s\u0000-\u001f\u007f]/.test(fixed)) {
      throw new WeirError('bad_request', 'WEIR_TOKEN is not a token: it holds a space or a control character');
    }
    return new TokenSource(env.JWT_SECRET || undefined, fixed, subject, claims);
  }

  /** A source of tokens with other claims, from the same secret (a narrower identity). */
  derive(claims: TokenClaims): TokenSource {
    return new TokenSource(this.secret, this.fixed, this.subject, claims, this.ttlMs);
  }

  /** Tokens minted from now on carry these claims (a worker once it has its id). */
  setClaims(claims: TokenClaims): void {
    this.claims = claims;
    this.token = undefined;
    this.generation++;
  }

  async header(): Promise<string | undefined> {
    if (this.fixed) return `Bearer ${this.fixed}`;
    if (!this.secret) return undefined;
    const now = Date.now();
    if (!this.token || now >= this.expiresAt - this.margin) {
      const ttl = this.ttlMs;
      const generation = this.generation;
      const token = await mintToken(this.secret, ttl, this.subject, this.claims, now);
      // Claims that changed while it was minted make it stale: use it once, keep none.
      if (generation !== this.generation) return `Bearer ${token}`;
      this.token = token;
      this.expiresAt = tokenExpiresAt(now, ttl);
    }
    return `Bearer ${this.token}`;
  }
}

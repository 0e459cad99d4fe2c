import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { WeirError } from './errors.js';

const ALG = 'HS256';

function keyOf(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/** A bearer token signed with the cluster's shared secret. */
export async function mintToken(secret: string, ttlMs: number, subject = 'weir'): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: ALG, typ: 'JWT' })
    .setSubject(subject)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + Math.max(1, Math.round(ttlMs / 1000)))
    .sign(keyOf(secret));
}

/**
 * Verifies an `Authorization` header value. Only HS256 is accepted, so `alg: none` and
 * tokens signed with another algorithm are refused like a wrong signature.
 */
export async function verifyBearer(secret: string, header: string | undefined): Promise<void> {
  const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  if (!m?.[1]) {
    throw new WeirError('unauthorized', 'this cluster needs a bearer token: set WEIR_TOKEN, or JWT_SECRET to mint one');
  }
  try {
    await jwtVerify(m[1], keyOf(secret), { algorithms: [ALG] });
  } catch (err) {
    const why =
      err instanceof joseErrors.JWTExpired ? 'the token has expired' : 'the token is not valid for this cluster';
    throw new WeirError('unauthorized', `${why}; mint a new one with 'weir token' and the cluster's JWT_SECRET`);
  }
}

/**
 * Caches a self-minted token and renews it before it expires, for long-lived callers
 * (workers, the CLI's `wait`). Returns undefined when the cluster is open.
 */
export class TokenSource {
  private token: string | undefined;
  private expiresAt = 0;

  constructor(
    private readonly secret: string | undefined,
    private readonly fixed: string | undefined,
    private readonly subject: string,
  ) {}

  static fromEnv(subject: string, env: NodeJS.ProcessEnv = process.env): TokenSource {
    return new TokenSource(env.JWT_SECRET || undefined, env.WEIR_TOKEN || undefined, subject);
  }

  async header(): Promise<string | undefined> {
    if (this.fixed) return `Bearer ${this.fixed}`;
    if (!this.secret) return undefined;
    const now = Date.now();
    if (!this.token || now > this.expiresAt - 60_000) {
      const ttl = 3_600_000;
      this.token = await mintToken(this.secret, ttl, this.subject);
      this.expiresAt = now + ttl;
    }
    return `Bearer ${this.token}`;
  }
}

import { cliSync } from './cluster.js';
import { SignJWT } from 'jose';

/** An Authorization header carrying `token`. */
export const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

/**
 * A token as anyone holding `secret` could sign it, with any claims — a role, a worker_id, a
 * node_id — expiring in ten minutes, at `exp` (seconds since the epoch), or never with
 * `exp: false` (which the cluster refuses); issued now or at `iat`.
 */
export async function signedToken(
  secret: string,
  claims: Record<string, unknown>,
  o: { exp?: boolean | number; iat?: number; subject?: string } = {},
): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.subject ?? 'test')
    .setIssuedAt(o.iat ?? nowS);
  if (o.exp !== false) jwt = jwt.setExpirationTime(typeof o.exp === 'number' ? o.exp : nowS + 600);
  return jwt.sign(new TextEncoder().encode(secret));
}

/**
 * A token as `weir token` issues it from the JWT_SECRET in `env` (a client's, or `role`'s);
 * a refusal fails the spec, saying why.
 */
export function cliToken(env: Record<string, string>, role?: string): string {
  const r = cliSync(role ? ['token', '--role', role] : ['token'], { env });
  if (r.code !== 0) throw new Error(`weir token exited ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

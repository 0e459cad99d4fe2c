import { SignJWT } from 'jose';

/** An Authorization header carrying `token`. */
export const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

/**
 * A token as anyone holding `secret` could sign it, with any claims — a role, a worker_id, a
 * node_id — expiring in ten minutes (or `expiresInS`), or never with `exp: false` (which the cluster refuses).
 */
export async function signedToken(
  secret: string,
  claims: Record<string, unknown>,
  o: { exp?: boolean; subject?: string; expiresInS?: number } = {},
): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.subject ?? 'test')
    .setIssuedAt(nowS);
  if (o.exp !== false) jwt = jwt.setExpirationTime(nowS + (o.expiresInS ?? 600));
  return jwt.sign(new TextEncoder().encode(secret));
}

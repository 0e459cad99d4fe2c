import { describe, expect, it } from 'vitest';
import { mintToken, verifyBearer, type Principal } from '../../src/common/auth.js';
import { VerifiedTokens } from '../../src/common/verified-tokens.js';

const SECRET = 'unit-test-secret-0123456789abcdef0123';
const client = (expiresAt: number | undefined): Principal => ({
  role: 'client',
  subject: 'someone',
  ...(expiresAt === undefined ? {} : { expires_at: expiresAt }),
});

describe('VerifiedTokens', () => {
  it('names the principal of a token held, until the instant it expires', () => {
    let now = 1_000_000;
    const held = new VerifiedTokens(10, () => now);
    held.add('t', client(1_005_000));
    expect(held.get('t')).toMatchObject({ role: 'client', subject: 'someone' });
    now = 1_004_999;
    expect(held.get('t')).toBeDefined();
    // jose: expired once `exp` (whole seconds) is not after now.
    now = 1_005_000;
    expect(held.get('t')).toBeUndefined();
    expect(held.size).toBe(0);
  });

  it('holds no token without an expiry', () => {
    const held = new VerifiedTokens();
    held.add('t', client(undefined));
    expect(held.get('t')).toBeUndefined();
  });

  it('knows nothing of a token it was not given, however close to one it holds', () => {
    const held = new VerifiedTokens(10, () => 0);
    held.add('header.payload.signature', client(1000));
    expect(held.get('header.payload.signaturf')).toBeUndefined();
    expect(held.get('header.payload.signature ')).toBeUndefined();
  });

  it('lets the least recently used token go past its bound', () => {
    const held = new VerifiedTokens(2, () => 0);
    held.add('a', client(1000));
    held.add('b', client(1000));
    held.add('a', client(1000));
    expect(held.size).toBe(2);
    held.add('c', client(1000));
    expect(held.size).toBe(2);
    expect(held.get('a')).toBeUndefined();
    expect(held.get('b')).toBeDefined();
    expect(held.get('c')).toBeDefined();
    // b was used after c: c goes next.
    expect(held.get('b')).toBeDefined();
    held.add('d', client(1000));
    expect(held.get('c')).toBeUndefined();
    expect(held.get('b')).toBeDefined();
  });

  it('hands out a principal no caller can change for the next', () => {
    const held = new VerifiedTokens(10, () => 0);
    const given = client(1000);
    held.add('t', given);
    given.role = 'admin';
    const p = held.get('t')!;
    expect(p.role).toBe('client');
    expect(() => {
      (p as { role: string }).role = 'admin';
    }).toThrow(TypeError);
  });
});

describe('verifyBearer with the tokens it verified', () => {
  it('verifies a token once and answers the same principal after, without checking it again', async () => {
    const held = new VerifiedTokens();
    const token = await mintToken(SECRET, 60_000, 'alice', { role: 'worker', worker_id: 'w-1' });
    const first = await verifyBearer(SECRET, `Bearer ${token}`, held);
    expect(first).toMatchObject({ role: 'worker', subject: 'alice', worker_id: 'w-1' });
    expect(held.size).toBe(1);
    // Checked again, the signature would not match this secret: the answer is the held one.
    // (A server holds the tokens of its one secret: installAuth makes a VerifiedTokens per server.)
    expect(await verifyBearer('not-the-secret-it-was-signed-with-0123', `Bearer ${token}`, held)).toEqual(first);
    await expect(verifyBearer('not-the-secret-it-was-signed-with-0123', `Bearer ${token}`)).rejects.toThrow(
      /not valid for this cluster/,
    );
  });

  it('holds nothing it refused', async () => {
    const held = new VerifiedTokens();
    const token = await mintToken('another-secret-entirely-0123456789abc', 60_000);
    await expect(verifyBearer(SECRET, `Bearer ${token}`, held)).rejects.toThrow(/not valid for this cluster/);
    expect(held.size).toBe(0);
  });
});

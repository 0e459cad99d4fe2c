// The receiving end's hold on a long-lived socket's token (SocketToken): a fresh token checked
// renews the socket's life, one that may not speak for it closes it (4403), and the socket is
// closed (4401) when its token runs out with no fresh one.
import { describe, expect, it } from 'vitest';
import { SocketToken, type TokenAuthority, type TokenCounts } from '../../src/common/socket-token.js';
import { waitFor } from '../helpers/wait.js';

function harness(authority: TokenAuthority) {
  const counts: TokenCounts = { renewed: 0, refused: 0, expired: 0 };
  const closes: number[] = [];
  const token = new SocketToken(
    authority,
    { close: (code) => closes.push(code) },
    {
      renewed: () => counts.renewed++,
      refused: () => counts.refused++,
      expired: () => counts.expired++,
    },
  );
  return { token, counts, closes };
}

/** An authority whose checks resolve when the spec says so. */
function deferredAuthority(expiresAt: number) {
  const pending: { resolve: (at: number) => void; reject: (err: Error) => void }[] = [];
  const authority: TokenAuthority = {
    expiresAt,
    renew: () => new Promise((resolve, reject) => pending.push({ resolve, reject })),
  };
  return { authority, pending };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('SocketToken', () => {
  it('counts a fresh token checked while the socket is open, and closes the socket on one refused', async () => {
    const { authority, pending } = deferredAuthority(Date.now() + 60_000);
    const { token, counts, closes } = harness(authority);
    token.renew('fresh');
    pending[0]!.resolve(Date.now() + 120_000);
    await settle();
    expect(counts).toEqual({ renewed: 1, refused: 0, expired: 0 });
    token.renew('stranger');
    pending[1]!.reject(new Error('not this socket’s'));
    await settle();
    expect(counts).toEqual({ renewed: 1, refused: 1, expired: 0 });
    expect(closes).toEqual([4403]);
    token.stop();
  });

  it('counts nothing, and closes nothing, for a check that ends after the socket closed', async () => {
    const { authority, pending } = deferredAuthority(Date.now() + 60_000);
    const { token, counts, closes } = harness(authority);
    token.renew('fresh');
    token.renew('stranger');
    token.stop();
    pending[0]!.resolve(Date.now() + 120_000);
    pending[1]!.reject(new Error('not this socket’s'));
    await settle();
    expect(counts).toEqual({ renewed: 0, refused: 0, expired: 0 });
    expect(closes).toEqual([]);
  });

  it('closes the socket (4401) once its token has expired with no fresh one', async () => {
    const { token, counts, closes } = harness({
      expiresAt: Date.now() + 20,
      renew: () => Promise.reject(new Error('no')),
    });
    await waitFor('the socket closed', () => closes.length > 0, 5_000, 5);
    expect(closes).toEqual([4401]);
    expect(counts.expired).toBe(1);
    token.stop();
  });
});

import { request, type Dispatcher } from 'undici';
import type { TokenSource } from '../common/auth.js';
import { noLeader } from '../common/errors.js';
import type { ClusterConsensus } from './cluster-log.js';
import { UPLOADS_PATH } from './forwarding.js';

/**
 * Whether a copy of an upload no job reads has waited for one long enough to go: it was received
 * whole more than `retentionMs` ago (0 keeps it, as it keeps finished jobs). An upload's time is in
 * its id; for an id that does not say, the copy's file time. Pure.
 */
export function unclaimedTooLong(madeAt: number, now: number, retentionMs: number): boolean {
  return retentionMs > 0 && now - madeAt > retentionMs;
}

/**
 * A follower's way to have an unclaimed copy of its own deleted: the leader's `DELETE
 * /api/uploads/ID`, as a peer. The deletion goes through the log (a submit naming the upload
 * is refused from that entry on, and every master removes its copy), so a copy the leader does
 * not hold — an upload acknowledged by the followers alone, or one refused after some of them
 * took it — goes too. A job that reads the upload by now, or an upload not that old by the
 * leader's clock, is the leader's to see: 409, kept.
 */
export function forgetAtLeader(
  consensus: ClusterConsensus,
  tokens: TokenSource,
  dispatcher?: Dispatcher,
): (id: string) => Promise<void> {
  return async (id) => {
    const leader = consensus.leaderUrl();
    if (!leader) throw noLeader();
    const auth = await tokens.header();
    const res = await request(`${leader}${UPLOADS_PATH}/${id}?unclaimed=true`, {
      method: 'DELETE',
      headers: auth ? { authorization: auth } : {},
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
      ...(dispatcher ? { dispatcher } : {}),
    });
    const text = await res.body.text();
    if (res.statusCode !== 204 && res.statusCode !== 409) {
      throw new Error(`the leader answered ${res.statusCode} ${text.slice(0, 200)}`);
    }
  };
}

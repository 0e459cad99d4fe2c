import { request, type Dispatcher } from 'undici';
import type { TokenSource } from '../common/auth.js';
import type { Logger } from '../common/logger.js';
import type { Peer } from './discovery.js';

interface RemoteStatus {
  current_node_id: number;
  leader_id: number | null;
  leader_address: string | null;
  nodes: { id: number; address: string }[];
}

async function statusOf(
  url: string,
  tokens: TokenSource,
  dispatcher: Dispatcher | undefined,
): Promise<RemoteStatus | undefined> {
  try {
    const auth = await tokens.header();
    const res = await request(`${url}/cluster/status`, {
      headersTimeout: 1000,
      bodyTimeout: 1000,
      ...(dispatcher ? { dispatcher } : {}),
      ...(auth ? { headers: { authorization: auth } } : {}),
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return undefined;
    }
    return (await res.body.json()) as RemoteStatus;
  } catch {
    return undefined;
  }
}

/**
 * Whether the peers already form a cluster with a leader; returns that leader's view so a
 * new master can tell if it is a member or must ask to join. `dispatcher`: one that speaks
 * TLS to the other masters, when they serve it.
 */
export async function findRunningCluster(
  peers: readonly Peer[],
  self: Peer,
  tokens: TokenSource,
  dispatcher?: Dispatcher,
): Promise<RemoteStatus | undefined> {
  const others = peers.filter((p) => p.url !== self.url);
  const answers = await Promise.all(others.map((p) => statusOf(p.url, tokens, dispatcher)));
  return answers.find((s) => s?.leader_id != null);
}

/**
 * Asks the cluster to add this master (as a learner; the leader promotes it once it has
 * caught up). Retries until a master accepts, or `stopped()` says to give up.
 */
export async function requestJoin(
  urls: readonly string[],
  self: Peer,
  tokens: TokenSource,
  log: Logger,
  stopped: () => boolean,
  dispatcher?: Dispatcher,
): Promise<void> {
  for (let attempt = 0; !stopped(); attempt++) {
    const url = urls[attempt % urls.length]!;
    try {
      const auth = await tokens.header();
      const res = await request(`${url}/api/cluster/members`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: JSON.stringify({ id: self.id, address: self.url }),
        headersTimeout: 5000,
        bodyTimeout: 5000,
        ...(dispatcher ? { dispatcher } : {}),
      });
      const text = await res.body.text();
      if (res.statusCode < 300) {
        log.info({ via: url }, 'asked the cluster to add this master; catching up as a learner');
        return;
      }
      if (res.statusCode === 409) throw new Error(`the cluster refused this master: ${text}`);
      log.debug({ via: url, status: res.statusCode, body: text }, 'join not accepted yet');
    } catch (err) {
      if ((err as Error).message.startsWith('the cluster refused')) throw err;
      log.debug({ via: url, err: (err as Error).message }, 'join request failed');
    }
    await new Promise((r) => setTimeout(r, Math.min(200 * (attempt + 1), 2000)));
  }
}

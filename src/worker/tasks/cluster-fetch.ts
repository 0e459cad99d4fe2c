import type { Agent } from 'undici';
import type { TaskTls } from '../../protocol/task-spec.js';

export type Fetch = typeof fetch;

/**
 * undici with one agent per CA for the life of the thread, so connections to other nodes
 * are reused. Loaded on first use: a thread of a cluster without TLS never pays for it.
 */
let undici: Promise<{ fetch: typeof import('undici').fetch; agent: (ca: string) => Agent }> | undefined;

function loadUndici() {
  return (undici ??= import('./cluster-undici.js').then((u) => {
    const agents = new Map<string, Agent>();
    return {
      fetch: u.fetch,
      agent: (ca: string) => {
        let a = agents.get(ca);
        if (!a) agents.set(ca, (a = new u.Agent({ connect: { ca } })));
        return a;
      },
    };
  }));
}

/**
 * The fetch a task reaches other nodes of its cluster with: the global one, unless the
 * cluster's CA must verify them (then an agent trusting that CA alone). No client
 * certificate is presented: the token a task carries says whom it acts for.
 */
export function clusterFetch(tls: TaskTls | undefined): Fetch {
  const ca = tls?.ca;
  if (ca === undefined) return fetch;
  return (async (input: string, init?: RequestInit) => {
    const u = await loadUndici();
    return u.fetch(input, { ...(init as object), dispatcher: u.agent(ca) });
  }) as unknown as Fetch;
}

/** `https` when the cluster serves TLS. */
export const clusterScheme = (tls: TaskTls | undefined): 'http' | 'https' => (tls ? 'https' : 'http');

import { Agent, fetch as undiciFetch } from 'undici';
import type { TaskTls } from '../../protocol/task-spec.js';

export type Fetch = typeof fetch;

/** One agent per CA for the life of the thread, so connections to other nodes are reused. */
const agents = new Map<string, Agent>();

/**
 * The fetch a task reaches other nodes of its cluster with: the global one, unless the
 * cluster's CA must verify them (then an agent trusting that CA alone). No client
 * certificate is presented: the token a task carries says whom it acts for.
 */
export function clusterFetch(tls: TaskTls | undefined): Fetch {
  const ca = tls?.ca;
  if (ca === undefined) return fetch;
  let dispatcher = agents.get(ca);
  if (!dispatcher) agents.set(ca, (dispatcher = new Agent({ connect: { ca } })));
  const d = dispatcher;
  return ((input: string, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher: d })) as unknown as Fetch;
}

/** `https` when the cluster serves TLS. */
export const clusterScheme = (tls: TaskTls | undefined): 'http' | 'https' => (tls ? 'https' : 'http');

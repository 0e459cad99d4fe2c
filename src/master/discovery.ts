import { Resolver } from 'node:dns/promises';
import { nodeIdFromIpv4, normalizeUrl } from '../common/address.js';
import type { Logger } from '../common/logger.js';
import type { Scheme } from '../common/tls.js';

export interface Peer {
  id: number;
  url: string;
}

/**
 * Who the masters are: a static list (`--peers`), or the A records of a DNS name
 * (`--discover dns:NAME`, the seed's SERVICE_NAME), re-resolved periodically so a master
 * started later, or restarted, is found. `WEIR_DNS_SERVER` (host:port) points the resolver
 * at a specific server (tests serve DNS locally).
 */
export interface Discovery {
  peers(): Promise<Peer[]>;
}

/** A peer's id: the seed's rule on its IPv4 address, unless it says otherwise. */
export function peerFromUrl(url: string): Peer | undefined {
  const id = nodeIdFromIpv4(new URL(url).hostname);
  return id === undefined ? undefined : { id, url };
}

/** A `--peers` entry: `URL` or `ID=URL`. */
export interface PeerEntry {
  id?: number;
  url: string;
}

/** `scheme` is what an entry without one gets: https on a master serving TLS. */
export function parsePeerEntry(entry: string, scheme: Scheme = 'http'): PeerEntry {
  const m = /^(\d+)=(.+)$/.exec(entry.trim());
  return m ? { id: Number(m[1]), url: normalizeUrl(m[2]!, scheme) } : { url: normalizeUrl(entry, scheme) };
}

export class StaticDiscovery implements Discovery {
  private readonly list: Peer[];

  /** `self` is this master: its own entry takes its id, whatever its address says. */
  constructor(entries: readonly PeerEntry[], self: Peer) {
    this.list = entries.map((e) => {
      if (e.url === self.url) return self;
      if (e.id !== undefined) return { id: e.id, url: e.url };
      const peer = peerFromUrl(e.url);
      if (!peer) {
        throw new Error(`cannot derive a node id from ${e.url}: write it as ID=URL in --peers, or use an IPv4 address`);
      }
      return peer;
    });
  }

  async peers(): Promise<Peer[]> {
    return this.list;
  }
}

export class DnsDiscovery implements Discovery {
  private readonly resolver = new Resolver({ timeout: 2000, tries: 2 });

  constructor(
    private readonly name: string,
    private readonly scheme: Scheme,
    private readonly port: number,
    private readonly log: Logger,
    server = process.env.WEIR_DNS_SERVER,
  ) {
    if (server) this.resolver.setServers([server]);
  }

  async peers(): Promise<Peer[]> {
    try {
      const addrs = await this.resolver.resolve4(this.name);
      return addrs
        .map((a) => peerFromUrl(`${this.scheme}://${a}:${this.port}`))
        .filter((p): p is Peer => p !== undefined)
        .sort((a, b) => a.id - b.id);
    } catch (err) {
      this.log.debug({ name: this.name, err: (err as Error).message }, 'DNS lookup failed');
      return [];
    }
  }
}

/** Fails start-up when two peers would share an id. */
export function checkUniqueIds(peers: readonly Peer[]): void {
  const seen = new Map<number, string>();
  for (const p of peers) {
    const other = seen.get(p.id);
    if (other && other !== p.url) {
      throw new Error(`node id ${p.id} is shared by ${other} and ${p.url}; ids must be unique (set --id)`);
    }
    seen.set(p.id, p.url);
  }
}

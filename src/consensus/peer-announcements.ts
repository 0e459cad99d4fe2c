import type { NodeId } from './core/types.js';

/** What a master announced of itself in the headers of a link it opened (undefined: nothing). */
export interface Announced {
  /** The newest state (schema) version it can install. */
  state: number | undefined;
  /** The newest rules it applies commands by. */
  rules: number | undefined;
}

/**
 * The versions other masters announced on their links to this one, kept per live link. A
 * peer's version is the newest its live links announced: beside its own link, a stray one
 * opened in its name (a tool, a fuzzer, anyone holding its token) with an older, garbage or no
 * header lowers nothing, whichever opened last. What a process announced goes with its links,
 * and a link from a process that is gone ends once it has been silent a while (the transport
 * closes it: SILENT_LINK_MS in peer-transport.ts), so a peer back on an older Weir is taken at
 * its word soon after.
 *
 * A peer's rules are forgotten with its last link (one not linked has said nothing, and is held
 * back until it has). Its state version is kept until it links again: snapshots go over this
 * master's own link to it, which may be up while its link here is not.
 */
export class PeerAnnouncements<Link> {
  private readonly live = new Map<NodeId, Map<Link, Announced>>();
  private readonly lastState = new Map<NodeId, number>();

  opened(peer: NodeId, link: Link, announced: Announced): void {
    let links = this.live.get(peer);
    if (!links) this.live.set(peer, (links = new Map()));
    links.set(link, announced);
  }

  closed(peer: NodeId, link: Link): void {
    const links = this.live.get(peer);
    if (!links?.has(link)) return;
    if (links.size === 1) {
      const state = this.state(peer);
      if (state === undefined) this.lastState.delete(peer);
      else this.lastState.set(peer, state);
      this.live.delete(peer);
    } else {
      links.delete(link);
    }
  }

  /** Forgets what peers no longer in the configuration announced, once their links are gone. */
  keepOnly(members: ReadonlySet<NodeId>): void {
    for (const peer of this.lastState.keys()) if (!members.has(peer)) this.lastState.delete(peer);
  }

  /** Whether `peer` has a link open to this master now (and so has said what it knows). */
  linked(peer: NodeId): boolean {
    return this.live.has(peer);
  }

  /** The rules `peer` announced: undefined if none of its live links did, or it has none. */
  rules(peer: NodeId): number | undefined {
    return this.newest(peer, 'rules');
  }

  /** The state version `peer` announced: on its live links, else on the last ones it had. */
  state(peer: NodeId): number | undefined {
    return this.live.has(peer) ? this.newest(peer, 'state') : this.lastState.get(peer);
  }

  private newest(peer: NodeId, what: keyof Announced): number | undefined {
    let newest: number | undefined;
    for (const a of this.live.get(peer)?.values() ?? []) {
      const v = a[what];
      if (v !== undefined && (newest === undefined || v > newest)) newest = v;
    }
    return newest;
  }
}

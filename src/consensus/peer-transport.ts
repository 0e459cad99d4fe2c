import type { IncomingHttpHeaders } from 'node:http';
import type { WebSocket } from 'ws';
import type { Principal, TokenSource } from '../common/auth.js';
import { groupBy } from '../common/group-by.js';
import type { Logger } from '../common/logger.js';
import { isUntrustedCertificate, type TlsConnect } from '../common/tls.js';
import type { Member, Message, NodeId } from './core/types.js';
import { refusedFrames } from '../protocol/checked-decode.js';
import { decodeFrame, encodeFrame } from './peer-frame.js';
import type { Inbound, Snapshot, Transport } from './ports.js';
import { PeerAnnouncements } from './peer-announcements.js';
import { SnapshotReceiver, SnapshotSender, type SnapshotChunk } from './snapshot-stream.js';
import { ReconnectingSocket, wsUrl } from '../common/reconnecting-socket.js';
import { SocketToken, countedOutcomes, type TokenAuthority } from '../common/socket-token.js';

export interface TransportHandlers {
  onFrame(frame: Inbound): void;
  /** A snapshot could not be delivered to `to`. */
  onSnapshotFailed(to: NodeId): void;
  /** A snapshot was delivered whole to `to` (it installs it now). */
  onSnapshotSent(to: NodeId): void;
  /** Where to write a snapshot being received (beside the state database, to be renamed over it). */
  receivingFile(from: NodeId, transfer: number): string;
}

/** Frames queued for a peer while its connection is down; Raft re-sends what matters. */
const MAX_QUEUED = 256;
/** Past this much unsent data the peer is too slow: drop rather than grow memory. */
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
const PING_MS = 500;
/**
 * An incoming link nothing came over for this long is closed: a live master sends at least a
 * ping every PING_MS on an idle link, so this one's process is gone without a word (its host
 * crashed, or the network dropped it), or it is no master's. Until then it would hold a socket
 * and speak for its peer (the versions it announced, see peer-announcements.ts).
 */
export const SILENT_LINK_MS = 20 * PING_MS;
export const PEER_PATH = '/raft/stream';
/**
 * The newest version of the state a master can install, announced when it opens its link: a
 * leader does not send a snapshot its follower's Weir is too old to read.
 */
const STATE_VERSION_HEADER = 'x-weir-state-version';
/**
 * The newest rules of applying commands a master knows (state/rules.ts), announced the same
 * way: a leader moves the cluster to newer rules only once every member has announced them.
 */
const RULES_VERSION_HEADER = 'x-weir-rules-version';

/** What a master announces of itself when it opens a link. */
export interface Versions {
  /** The newest state (schema) version it can install. */
  state: number;
  /** The newest rules it applies commands by. */
  rules: number;
}

/** Fresh tokens other masters sent on their links (renewed, refused) and links closed as their token expired: for /metrics. */
export const peerLinkTokens = { renewed: 0, refused: 0, expired: 0 };

/** A persistent, reconnecting WebSocket to one peer master, sending msgpack frames. */
class PeerLink {
  private readonly socket: ReconnectingSocket;
  private lastSent = 0;
  private warnedUntrusted = false;

  constructor(
    readonly id: NodeId,
    public address: string,
    selfId: NodeId,
    tokens: TokenSource,
    tls: TlsConnect | undefined,
    log: Logger,
    versions: Versions | undefined,
  ) {
    this.socket = new ReconnectingSocket({
      url: () => wsUrl(this.address, PEER_PATH),
      tokens,
      ...(tls ? { tls } : {}),
      headers: {
        'x-weir-node-id': String(selfId),
        ...(versions
          ? { [STATE_VERSION_HEADER]: String(versions.state), [RULES_VERSION_HEADER]: String(versions.rules) }
          : {}),
      },
      // A fresh token goes over the link before the one it opened with expires: the link stays.
      tokenFrame: (token) => encodeFrame({ from: selfId, token }),
      maxPayload: 1024 * 1024 * 1024,
      maxQueued: MAX_QUEUED,
      maxBufferedBytes: MAX_BUFFERED_BYTES,
      onOpen: () => {
        this.lastSent = Date.now();
        this.warnedUntrusted = false;
      },
      onError: (err) => {
        // A peer whose certificate fails verification stays cut off until someone acts: say
        // so once, not on every attempt.
        if (isUntrustedCertificate(err) && !this.warnedUntrusted) {
          this.warnedUntrusted = true;
          log.warn({ peer: id, address: this.address, err: err.message }, 'cannot verify the certificate of a peer');
        } else {
          log.debug({ peer: id, err: err.message }, 'peer link error');
        }
      },
    });
  }

  get open(): boolean {
    return this.socket.open;
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  /** Sends on the open connection only (a snapshot's chunks are never queued for the next). */
  sendNow(frame: Buffer): boolean {
    return this.socket.open && this.send(frame);
  }

  /** Queues or sends a frame; false when it had to be dropped. */
  send(frame: Buffer): boolean {
    const open = this.socket.open;
    if (!this.socket.send(frame)) return false;
    if (open) this.lastSent = Date.now();
    return true;
  }

  pingIfIdle(frame: Buffer): void {
    if (Date.now() - this.lastSent >= PING_MS && this.socket.open) this.send(frame);
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * Peer traffic between masters: one outgoing link per peer for what this node sends, and
 * whatever peers send arriving on their own links to `PEER_PATH`. Links ping when idle, so
 * every node knows which peers it hears from (the `healthy` of /cluster/status).
 */
export class PeerTransport implements Transport {
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly heard = new Map<NodeId, number>();
  /** Addresses senders gave in their frames, for peers the configuration does not (yet) name. */
  private readonly learned = new Map<NodeId, string>();
  private members: readonly Member[] = [];
  private joiningVia: ReadonlySet<NodeId> | undefined;
  /** Links other masters opened to this one, by the node_id their tokens carry. */
  private readonly incoming = new Map<WebSocket, NodeId>();
  /** Every incoming link, and when anything last came over it (see SILENT_LINK_MS). */
  private readonly heardOn = new Map<WebSocket, { peer: NodeId | undefined; at: number }>();
  /** When the last sweep for silent links ran (see closeSilentLinks). */
  private lastSweep = Date.now();
  private readonly pingFrame: Buffer;
  private readonly pinger: NodeJS.Timeout;
  /** The snapshot being streamed to each peer: one at a time, never restarted while it runs. */
  private readonly sending = new Map<NodeId, SnapshotSender | CopyAwaited>();
  private readonly receiver: SnapshotReceiver;
  private transfers = Date.now();
  /** The versions peers announced on their links to this master (peer-announcements.ts). */
  private readonly announced = new PeerAnnouncements<WebSocket>();
  private rulesJudge: ((peer: NodeId, announced: number | undefined) => string | undefined) | undefined;

  constructor(
    private readonly selfId: NodeId,
    private readonly selfAddress: string,
    private readonly tokens: TokenSource,
    /** For https peers: the CA and this master's certificate (see tls.ts). */
    private readonly tls: TlsConnect | undefined,
    private readonly handlers: TransportHandlers,
    private readonly log: Logger,
    /** This master's state version, which its snapshots carry, and rules (see the headers above). */
    private readonly versions?: Versions,
  ) {
    this.pingFrame = encodeFrame({ from: selfId, addr: selfAddress, ping: true });
    this.pinger = setInterval(() => {
      for (const l of this.links.values()) l.pingIfIdle(this.pingFrame);
      this.closeSilentLinks();
    }, PING_MS);
    this.pinger.unref();
    this.receiver = new SnapshotReceiver(handlers.receivingFile, log);
  }

  /**
   * Keeps one link per member other than this node — and per peer that wrote to us without
   * being in our configuration (we are joining and do not know the cluster yet).
   */
  setPeers(members: readonly Member[]): void {
    this.members = members;
    // A master removed from the configuration loses the links it had opened to this one.
    for (const [socket, id] of this.incoming) {
      if (members.length > 0 && !members.some((m) => m.id === id)) socket.close(1008, 'no longer a member');
    }
    const wanted = new Map(this.learned);
    for (const m of members) if (m.id !== this.selfId) wanted.set(m.id, m.address);
    wanted.delete(this.selfId);
    this.announced.keepOnly(new Set(wanted.keys()));
    for (const [id, link] of this.links) {
      if (wanted.get(id) !== link.address) {
        link.close();
        this.links.delete(id);
        this.sending.get(id)?.cancel();
        this.sending.delete(id);
      }
    }
    for (const [id, address] of wanted) {
      if (!this.links.has(id))
        this.links.set(id, new PeerLink(id, address, this.selfId, this.tokens, this.tls, this.log, this.versions));
    }
  }

  /**
   * Sends messages grouped per peer, one frame each. A snapshot message starts streaming
   * `snapshotFor()` to its peer in chunks, unless one is on its way to it already (Raft asks
   * again while a large one is still travelling: restarting would never finish it).
   */
  send(msgs: readonly Message[], snapshotFor: () => Snapshot | Promise<Snapshot>): void {
    for (const [to, all] of groupBy(msgs, (m) => m.to)) {
      const link = this.links.get(to);
      const snap = all.find((m) => m.type === 'snap');
      const list = snap ? all.filter((m) => m !== snap) : all;
      if (list.length > 0) link?.send(encodeFrame({ from: this.selfId, addr: this.selfAddress, msgs: list }));
      if (!snap) continue;
      if (this.sending.get(to)?.running) continue;
      if (!link?.open) {
        this.handlers.onSnapshotFailed(to);
        continue;
      }
      const failed = (err: unknown) => {
        // No room for the copy (or the disk refused it): this follower waits, the leader goes on.
        this.log.warn({ peer: to, err: (err as Error).message }, 'could not copy the state to send a snapshot');
        this.handlers.onSnapshotFailed(to);
      };
      let copy: Snapshot | Promise<Snapshot>;
      try {
        copy = snapshotFor();
      } catch (err) {
        failed(err);
        continue;
      }
      if (!(copy instanceof Promise)) {
        this.streamSnapshot(to, link, snap, copy);
        continue;
      }
      // Held for this peer while the copy is made, so Raft asking again does not start another.
      const waiting = new CopyAwaited();
      this.sending.set(to, waiting);
      copy.then(
        (s) => {
          if (this.sending.get(to) !== waiting || !waiting.running) return;
          this.sending.delete(to);
          const now = this.links.get(to);
          if (now?.open) this.streamSnapshot(to, now, snap, s);
          else this.handlers.onSnapshotFailed(to);
        },
        (err: unknown) => {
          if (this.sending.get(to) !== waiting || !waiting.running) return;
          this.sending.delete(to);
          failed(err);
        },
      );
    }
  }

  private streamSnapshot(to: NodeId, link: PeerLink, snap: Message, s: Snapshot): void {
    // The snapshot sent is the state machine now; its message says so.
    const message = { ...snap, snapshot: s.meta } as Message;
    const chunks = {
      get open() {
        return link.open;
      },
      get bufferedAmount() {
        return link.bufferedAmount;
      },
      sendNow: (chunk: SnapshotChunk, msgs?: Message[]) =>
        link.sendNow(encodeFrame({ from: this.selfId, addr: this.selfAddress, chunk, ...(msgs ? { msgs } : {}) })),
    };
    const started = Date.now();
    const sender = new SnapshotSender(chunks, s, message, ++this.transfers, (ok, why) => {
      if (this.sending.get(to) === sender) this.sending.delete(to);
      if (ok) {
        this.log.info({ peer: to, index: s.meta.index, ms: Date.now() - started }, 'sent a snapshot');
        this.handlers.onSnapshotSent(to);
        return;
      }
      this.log.warn({ peer: to, index: s.meta.index, why }, 'could not send a snapshot; Raft will try again');
      this.handlers.onSnapshotFailed(to);
    });
    this.sending.set(to, sender);
  }

  /**
   * Why `to` could not install a snapshot of this master's state: the version it announced is
   * older than this master's. Unknown (it announced none: a Weir from before the announcement)
   * is not a reason.
   */
  cannotInstall(to: NodeId): string | undefined {
    const theirs = this.announced.state(to);
    const ours = this.versions?.state;
    if (theirs === undefined || ours === undefined || theirs >= ours) return undefined;
    return `master ${to} runs an older Weir: it reads states up to version ${theirs}, and this master's is version ${ours}; upgrade it, and it catches up`;
  }

  /** The rules `peer` announced on its links: undefined if it announced none, or has not linked. */
  announcedRules(peer: NodeId): number | undefined {
    return this.announced.rules(peer);
  }

  /** Whether `peer` has a link open to this master now (and so has said what it knows). */
  linked(peer: NodeId): boolean {
    return this.announced.linked(peer);
  }

  /**
   * How this master judges a peer's announced rules against its state's (the master owns the
   * rules, see state/rules.ts): a peer judged behind is sent no entries of the log.
   */
  judgeRulesBy(judge: (peer: NodeId, announced: number | undefined) => string | undefined): void {
    this.rulesJudge = judge;
  }

  /**
   * A peer that has not linked to this master yet has said nothing of its rules: it is held
   * back too while the state applies newer rules than the first, but silently ('': it is
   * about to link, after this master or it started).
   */
  cannotFollow(to: NodeId): string | undefined {
    const judge = this.rulesJudge;
    if (!judge) return undefined;
    if (!this.linked(to)) return judge(to, undefined) === undefined ? undefined : '';
    return judge(to, this.announcedRules(to));
  }

  private noteVersions(from: NodeId, socket: WebSocket, headers: IncomingHttpHeaders): void {
    this.announced.opened(from, socket, {
      state: parseVersion(headers[STATE_VERSION_HEADER]),
      rules: parseVersion(headers[RULES_VERSION_HEADER]),
    });
    socket.on('close', () => this.announced.closed(from, socket));
  }

  /**
   * A peer's incoming link (the server side of `PEER_PATH`). With a secret, the sender is the
   * `node_id` its token carries, and it must be a member — unless this master knows no
   * configuration yet (it is joining, and learns it from whoever leads). Without one the
   * cluster is open, and the sender is who it says it is. `authority`: how the link's token is
   * renewed on it (absent on an open cluster).
   */
  accept(
    socket: WebSocket,
    headers: IncomingHttpHeaders,
    principal: Principal | null,
    authority?: TokenAuthority,
  ): void {
    const secured = principal !== null && principal.role !== 'admin';
    const sender = secured ? principal.node_id : Number(headers['x-weir-node-id']);
    if (secured && (sender === undefined || !this.mayLink(sender))) {
      this.refused('not a member of this cluster', { node_id: sender ?? null });
      socket.close(1008, 'not a member of this cluster');
      return;
    }
    if (secured) this.incoming.set(socket, sender!);
    if (Number.isSafeInteger(sender)) this.noteVersions(sender!, socket, headers);
    // A link lives while its token does: the sender sends fresh ones on it before each expires.
    // Secured without a way to renew (no authority given): the link still ends with its token.
    const held = secured
      ? (authority ?? {
          expiresAt: principal.expires_at,
          renew: () => Promise.reject(new Error('this master takes no fresh tokens on its links')),
        })
      : undefined;
    const token = new SocketToken(
      held,
      socket,
      countedOutcomes(peerLinkTokens, this.log, 'a peer link', { peer: sender }),
    );
    const heard = { peer: Number.isSafeInteger(sender) ? sender : undefined, at: Date.now() };
    this.heardOn.set(socket, heard);
    socket.on('close', () => {
      token.stop();
      this.incoming.delete(socket);
      this.heardOn.delete(socket);
    });
    socket.on('message', (data: Buffer) => {
      heard.at = Date.now();
      const decoded = decodeFrame(data);
      let why = 'error' in decoded ? decoded.error : '';
      const frame = 'frame' in decoded ? decoded.frame : undefined;
      if (frame && Number.isSafeInteger(sender) && frame.from !== sender) {
        why = `a frame from ${frame.from} on the link of ${sender}`;
      } else if (frame?.msgs?.some((m) => m.to !== this.selfId)) {
        why = 'a message for another node';
      }
      if (why || !frame) {
        this.refused(why, { peer: sender });
        socket.close(1007, 'bad frame');
        return;
      }
      this.heard.set(frame.from, Date.now());
      if (frame.token !== undefined) {
        token.renew(frame.token);
        if (!frame.msgs?.length && !frame.chunk) return;
      }
      if (frame.addr && !this.links.has(frame.from)) {
        this.learned.set(frame.from, frame.addr);
        this.setPeers(this.members);
      }
      if (frame.ping) return;
      if (frame.chunk) {
        const complete = this.receiver.take(frame.from, frame.chunk, frame.msgs);
        if (complete) this.handlers.onFrame(complete);
        return;
      }
      this.handlers.onFrame({ msgs: frame.msgs ?? [] });
    });
    socket.on('error', () => socket.close());
  }

  private closeSilentLinks(): void {
    const now = Date.now();
    const late = now - this.lastSweep > 2 * PING_MS;
    this.lastSweep = now;
    // A sweep this late means this master's own loop stalled (a long GC, a paused VM): what its
    // peers sent meanwhile waits unread in its sockets, and a timer runs before the reads on
    // the turn after a stall, so every link would look silent. The next sweep, after them, judges.
    if (late) return;
    const before = now - SILENT_LINK_MS;
    for (const [socket, { peer, at }] of this.heardOn) {
      if (at >= before) continue;
      this.heardOn.delete(socket);
      this.log.info({ peer: peer ?? null, silent_ms: now - at }, 'closing a silent peer link');
      // No closing handshake: the other end is most likely gone, and would not answer one.
      socket.terminate();
    }
  }

  /**
   * Whether master `id` may open a link to this one: a member — or, while this master knows
   * no configuration yet (it is joining), one of the masters it asked to let it in.
   */
  private mayLink(id: NodeId): boolean {
    if (this.members.length > 0) return this.members.some((m) => m.id === id);
    // Restarted before it learned any configuration (its join's answer lost): any master.
    return this.joiningVia === undefined || this.joiningVia.has(id);
  }

  /** The masters of the cluster this one is joining: until it learns the configuration, only they may link. */
  expectJoinFrom(ids: readonly NodeId[]): void {
    this.joiningVia = new Set(ids);
  }

  /** A link or frame refused: logged, and counted for /metrics. */
  private refused(why: string, fields: Record<string, unknown>): void {
    refusedFrames.peer++;
    this.log.warn({ ...fields, why }, 'refused a peer frame; closing its link');
  }

  /** When this node last heard from `id` (0: never). */
  lastHeard(id: NodeId): number {
    return this.heard.get(id) ?? 0;
  }

  close(): void {
    clearInterval(this.pinger);
    for (const s of this.sending.values()) s.cancel();
    this.sending.clear();
    this.receiver.close();
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }
}

/** A snapshot for a peer whose copy is still being made: cancelled like a sender. */
class CopyAwaited {
  running = true;
  cancel(): void {
    this.running = false;
  }
}

/** A version a peer announced in a header: a plain integer, or none. */
function parseVersion(header: string | string[] | undefined): number | undefined {
  return typeof header === 'string' && /^[0-9]{1,9}$/.test(header) ? Number(header) : undefined;
}

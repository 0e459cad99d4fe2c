import { WebSocket } from 'ws';
import type { TokenSource } from '../../common/auth.js';
import type { Logger } from '../../common/logger.js';
import { AtMostEvery } from '../../common/at-most-every.js';
import { schemeOf, type NodeTls } from '../../common/tls.js';
import { ReceiveWindow, SendCredits } from '../../stream/credits.js';
import { refusedFrames } from '../../protocol/checked-decode.js';
import { decodeFrame, encodeFrame, type AckItem, type LinkFrame, type Tuple } from '../../protocol/stream-link.js';
import { ReconnectingSocket, wsUrl } from '../../common/reconnecting-socket.js';
import { onNextTurn } from '../../common/next-turn.js';
import { SocketToken, countedOutcomes, type TokenAuthority } from '../../common/socket-token.js';

/**
 * Tuples a receiving worker buffers per sending worker before it stops granting credits. A
 * tuple is a batch of at most a spout's batch of events (1024), as a Flink credit is a
 * buffer, not a record.
 */
export const LINK_WINDOW = 64;
/** Tuples a sender queues for one link while it waits for credits; beyond it, producers pause. */
export const LINK_QUEUE = 64;
/** Tuples per frame. */
const MAX_BATCH = 16;

export const LINK_PATH = '/api/stream/link';

/** Fresh tokens taken and refused on stream links this worker received, and links closed as their token expired. */
export const linkTokens = { renewed: 0, refused: 0, expired: 0 };

/**
 * The sending end of a persistent connection to another worker. Tuples wait here for
 * credits the receiver grants as its buffers drain (so a slow consumer slows its producers
 * instead of growing memory); acks go out at once. What is queued when the connection dies
 * is dropped: the sources replay whatever was not fully processed.
 */
export class OutLink {
  private readonly socket: ReconnectingSocket;
  private readonly credits = new SendCredits();
  private queue: { job: string; to: number; tuple: Tuple }[] = [];
  private acks = new Map<string, AckItem[]>();

  constructor(
    readonly address: string,
    tokens: TokenSource,
    tls: NodeTls | undefined,
    log: Logger,
    private readonly onCredit: () => void,
  ) {
    const base = `${schemeOf(tls)}://${address}`;
    this.socket = new ReconnectingSocket({
      url: () => wsUrl(base, LINK_PATH),
      tokens,
      // The receiver closes a link whose token expires (its tuples would replay): fresh ones go first.
      tokenFrame: (token) => encodeFrame({ t: 'token', token }),
      ...(tls ? { tls: tls.connect } : {}),
      maxPayload: 256 * 1024 * 1024,
      onOpen: () => this.credits.reset(),
      onMessage: (data) => {
        const d = decodeFrame(data);
        if (!d.ok) {
          refusedFrames.stream_link++;
          log.warn({ to: address, why: d.error }, 'a bad frame on a stream link; closing it');
          this.socket.drop();
          return;
        }
        const f = d.value;
        if (f.t === 'credit') {
          this.credits.grant(f.n);
          this.schedule();
          this.onCredit();
        }
      },
      onError: (err) => log.debug({ err: err.message, to: address }, 'stream link error'),
      onClose: () => {
        // Tuples in flight or queued are lost with the connection; their roots replay.
        this.queue = [];
        this.credits.reset();
        this.onCredit();
      },
    });
  }

  get queued(): number {
    return this.queue.length;
  }

  get full(): boolean {
    return this.queue.length >= LINK_QUEUE;
  }

  send(job: string, to: number, tuple: Tuple): void {
    this.queue.push({ job, to, tuple });
    this.schedule();
  }

  ack(job: string, item: AckItem): void {
    let list = this.acks.get(job);
    if (!list) this.acks.set(job, (list = []));
    list.push(item);
    this.schedule();
  }

  private readonly schedule = onNextTurn(() => this.flush());

  private flush(): void {
    const ws = this.socket;
    if (!ws.open) return;
    for (const [job, acks] of this.acks) ws.send(encodeFrame({ t: 'acks', job, acks }));
    this.acks.clear();
    while (this.queue.length > 0) {
      const n = this.credits.trySend(Math.min(MAX_BATCH, this.queue.length));
      if (n === 0) break;
      const batch = this.queue.splice(0, n);
      // One frame per job in the batch (almost always one).
      const byJob = new Map<string, { to: number[]; tuples: Tuple[] }>();
      for (const q of batch) {
        let b = byJob.get(q.job);
        if (!b) byJob.set(q.job, (b = { to: [], tuples: [] }));
        b.to.push(q.to);
        b.tuples.push(q.tuple);
      }
      for (const [job, b] of byJob) ws.send(encodeFrame({ t: 'tuples', job, to: b.to, tuples: b.tuples }));
    }
  }

  close(): void {
    this.queue = [];
    this.socket.close();
  }
}

/** Said at most once a second, however many links send bad frames (each is closed at its first). */
const badFrames = new AtMostEvery(1000);

/**
 * The receiving end: tuples are handed to `deliver` with a release callback; credits go
 * back to the sender as the instances consume them.
 */
export class InLink {
  private readonly window = new ReceiveWindow(LINK_WINDOW);
  private readonly token: SocketToken;

  /** `authority`: how the token the link opened with is renewed (absent on an open cluster). */
  constructor(
    private readonly socket: WebSocket,
    private readonly deliver: (job: string, to: number, tuple: Tuple, release: () => void) => void,
    private readonly onAcks: (job: string, acks: AckItem[]) => void,
    authority: TokenAuthority | undefined,
    log: Logger,
  ) {
    this.token = new SocketToken(authority, socket, countedOutcomes(linkTokens, log, 'a stream link'));
    socket.on('close', () => this.token.stop());
    socket.on('message', (data: Buffer) => {
      const d = decodeFrame(data);
      // More tuples than the credits granted is as bad as bytes that are no frame.
      if (d.ok && (d.value.t !== 'tuples' || this.window.allows(d.value.tuples.length))) return this.onFrame(d.value);
      // Whoever sent it learns no more than that: the link closes, its tuples replay.
      refusedFrames.stream_link++;
      const why = d.ok ? 'more tuples than the credits granted' : d.error;
      badFrames.say((heldBack) =>
        log.warn({ why, refused_since_last: heldBack }, 'a bad frame on a stream link; closed it'),
      );
      socket.close(1007, 'bad frame');
    });
    this.grant(this.window.open());
  }

  private readonly release = () => {
    const n = this.window.consumed(1);
    if (n > 0) this.grant(n);
  };

  private onFrame(f: LinkFrame): void {
    if (f.t === 'acks') return this.onAcks(f.job, f.acks);
    if (f.t === 'token') return this.token.renew(f.token);
    if (f.t !== 'tuples') return;
    this.window.received(f.tuples.length);
    for (let i = 0; i < f.tuples.length; i++) this.deliver(f.job, f.to[i]!, f.tuples[i]!, this.release);
  }

  private grant(n: number): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(encodeFrame({ t: 'credit', n }));
  }
}

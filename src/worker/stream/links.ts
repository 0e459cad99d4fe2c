import { WebSocket } from 'ws';
import type { TokenSource } from '../../common/auth.js';
import type { Logger } from '../../common/logger.js';
import { AtMostEvery } from '../../common/at-most-every.js';
import { schemeOf, type NodeTls } from '../../common/tls.js';
import { ReceiveWindow, SendCredits } from '../../stream/credits.js';
import { refusedFrames } from '../../protocol/checked-decode.js';
import {
  decodeFrame,
  encodeFrame,
  LINK_VERSION,
  type AckItem,
  type ChannelGrant,
  type LinkFrame,
  type Tuple,
} from '../../protocol/stream-link.js';
import { ReconnectingSocket, wsUrl } from '../../common/reconnecting-socket.js';
import { onNextTurn } from '../../common/next-turn.js';
import { SocketToken, countedOutcomes, type TokenAuthority } from '../../common/socket-token.js';

/**
 * Tuples a receiving worker buffers for one channel (a sending worker's tuples for one
 * instance of one job) before it stops granting credits. A tuple is a batch of at most a
 * spout's batch of events (1024), as a Flink credit is a buffer, not a record.
 */
export const CHANNEL_WINDOW = 16;
/** Tuples a sender queues for one channel while it waits for credits; beyond it, that instance's producers pause. */
export const CHANNEL_QUEUE = 8;
/** A version-1 sender's one window, shared by everything its link carries. */
export const LINK_WINDOW = 64;
/**
 * Channels with tuples buffered that one link may hold at the receiver, for a worker that runs
 * `maxTasks` instances at once: a channel holds tuples for an instance that runs here, is about
 * to (its assignment on its way), or just left (tuples parked until they are dropped), so twice
 * that and some. A sender past it names instances this worker has no room for, and is refused:
 * what one link holds stays within 16 tuples of 1,024 events a channel.
 */
export const maxChannels = (maxTasks: number): number => 64 + 2 * maxTasks;
/** Tuples per frame. */
const MAX_BATCH = 16;

export const LINK_PATH = '/api/stream/link';

/** Fresh tokens taken and refused on stream links this worker received, and links closed as their token expired. */
export const linkTokens = { renewed: 0, refused: 0, expired: 0 };

/** Tuples for one receiving instance, waiting for its credits. */
interface Channel {
  readonly to: number;
  readonly queue: Tuple[];
  /** Version 2: this channel's credits (the window, less what is in flight or buffered). */
  credits: number;
}

/**
 * The sending end of a persistent connection to another worker. Tuples wait here, per
 * channel, for credits the receiver grants as its buffers drain (so a slow consumer slows its
 * producers instead of growing memory, and only its own); acks go out at once. What is queued
 * when the connection dies is dropped: the sources replay whatever was not fully processed.
 */
export class OutLink {
  private readonly socket: ReconnectingSocket;
  /** How this connection's receiver counts credits; unknown until its first frame. */
  private mode: 'opening' | 'shared' | 'channels' = 'opening';
  /** Version 2: each channel's credits at rest, as the receiver said. */
  private window = 0;
  /** Version 1: the one window. */
  private readonly shared = new SendCredits();
  /** Queued tuples by job, then receiving instance; a channel at rest is forgotten. */
  private readonly channels = new Map<string, Map<number, Channel>>();
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
      url: () => `${wsUrl(base, LINK_PATH)}?v=${LINK_VERSION}`,
      tokens,
      // The receiver closes a link whose token expires (its tuples would replay): fresh ones go first.
      tokenFrame: (token) => encodeFrame({ t: 'token', token }),
      ...(tls ? { tls: tls.connect } : {}),
      maxPayload: 256 * 1024 * 1024,
      onOpen: () => {
        this.mode = 'opening';
        this.shared.reset();
      },
      onMessage: (data) => {
        const d = decodeFrame(data);
        const why = d.ok ? this.onFrame(d.value) : d.error;
        if (why === undefined) return;
        refusedFrames.stream_link++;
        log.warn({ to: address, why }, 'a bad frame on a stream link; closing it');
        this.socket.drop();
      },
      onError: (err) => log.debug({ err: err.message, to: address }, 'stream link error'),
      onClose: () => {
        // Tuples in flight or queued are lost with the connection; their roots replay.
        this.channels.clear();
        this.mode = 'opening';
        this.shared.reset();
        this.onCredit();
      },
    });
  }

  /** Takes a frame from the receiver; returns why it is refused, if it is. */
  private onFrame(f: LinkFrame): string | undefined {
    if (f.t === 'hello') {
      if (this.mode !== 'opening') return 'a second hello';
      this.mode = 'channels';
      this.window = f.window;
      for (const chans of this.channels.values()) for (const ch of chans.values()) ch.credits = f.window;
    } else if (f.t === 'credit') {
      if (this.mode === 'channels') return 'a shared credit from a receiver that gives channels their own';
      this.mode = 'shared';
      this.shared.grant(f.n);
    } else if (f.t === 'grants') {
      if (this.mode !== 'channels') return 'channel grants before a hello';
      // A grant for a channel forgotten at rest would be a receiver's bug: nothing to give it to.
      for (const [job, to, n] of f.g) {
        const ch = this.channels.get(job)?.get(to);
        if (ch) ch.credits += n;
      }
    } else return;
    this.schedule();
    this.onCredit();
    return undefined;
  }

  /** Whether instance `to` of `job` has as much queued here as it may: its producers wait. */
  full(job: string, to: number): boolean {
    const ch = this.channels.get(job)?.get(to);
    return ch !== undefined && ch.queue.length >= CHANNEL_QUEUE;
  }

  send(job: string, to: number, tuple: Tuple): void {
    let chans = this.channels.get(job);
    if (!chans) this.channels.set(job, (chans = new Map()));
    let ch = chans.get(to);
    if (!ch) chans.set(to, (ch = { to, queue: [], credits: this.mode === 'channels' ? this.window : 0 }));
    ch.queue.push(tuple);
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
    if (this.mode === 'opening') return;
    for (const [job, chans] of this.channels) {
      let to: number[] = [];
      let tuples: Tuple[] = [];
      for (const ch of chans.values()) {
        while (ch.queue.length > 0) {
          const want = Math.min(ch.queue.length, MAX_BATCH - tuples.length);
          const n = this.mode === 'channels' ? Math.min(want, ch.credits) : this.shared.trySend(want);
          if (n === 0) break;
          if (this.mode === 'channels') ch.credits -= n;
          for (const t of ch.queue.splice(0, n)) {
            to.push(ch.to);
            tuples.push(t);
          }
          if (tuples.length === MAX_BATCH) {
            ws.send(encodeFrame({ t: 'tuples', job, to, tuples }));
            to = [];
            tuples = [];
          }
        }
        // At rest (nothing queued, every credit back): both ends may forget it.
        if (ch.queue.length === 0 && (this.mode === 'shared' || ch.credits === this.window)) chans.delete(ch.to);
      }
      if (tuples.length > 0) ws.send(encodeFrame({ t: 'tuples', job, to, tuples }));
      if (chans.size === 0) this.channels.delete(job);
    }
  }

  close(): void {
    this.channels.clear();
    this.socket.close();
  }
}

/** Said at most once a second, however many links send bad frames (each is closed at its first). */
const badFrames = new AtMostEvery(1000);

/** How a receiver counts the credits of one connection: the version its sender asked for. */
interface Intake {
  /** The first frame to the sender. */
  readonly opening: LinkFrame;
  /**
   * Takes a frame's tuples, all or none: one release each, which frees its buffer slot.
   * Undefined: more than the credits granted.
   */
  admit(job: string, to: readonly number[]): (() => void)[] | undefined;
}

/** Calls `f` the first time only: a tuple's slot is freed once, however often it is released. */
function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    f();
  };
}

/** Version 1: one window for everything the link carries. */
class SharedIntake implements Intake {
  private readonly window = new ReceiveWindow(LINK_WINDOW);
  readonly opening: LinkFrame;

  constructor(private readonly send: (f: LinkFrame) => void) {
    this.opening = { t: 'credit', n: this.window.open() };
  }

  admit(_job: string, to: readonly number[]): (() => void)[] | undefined {
    if (!this.window.allows(to.length)) return undefined;
    this.window.received(to.length);
    return to.map(() =>
      once(() => {
        const n = this.window.consumed(1);
        if (n > 0) this.send({ t: 'credit', n });
      }),
    );
  }
}

/**
 * Version 2: a window per channel (job, receiving instance), made when its first tuple
 * arrives (the sender holds the whole window from the start) and forgotten once drained.
 * So a full instance holds up its own channel only: tuples for its neighbours pass.
 */
class ChannelIntake implements Intake {
  readonly opening: LinkFrame = { t: 'hello', v: LINK_VERSION, window: CHANNEL_WINDOW };
  private readonly windows = new Map<string, Map<number, ReceiveWindow>>();
  private open = 0;
  /** Grants made this turn, sent together. */
  private grants: ChannelGrant[] = [];

  constructor(
    private readonly send: (f: LinkFrame) => void,
    private readonly maxChannels: number,
  ) {}

  admit(job: string, to: readonly number[]): (() => void)[] | undefined {
    const counts = new Map<number, number>();
    for (const t of to) counts.set(t, (counts.get(t) ?? 0) + 1);
    let wins = this.windows.get(job);
    let fresh = 0;
    for (const [t, n] of counts) {
      const w = wins?.get(t);
      if (w ? !w.allows(n) : n > CHANNEL_WINDOW) return undefined;
      if (!w) fresh++;
    }
    if (this.open + fresh > this.maxChannels) return undefined;
    if (!wins) this.windows.set(job, (wins = new Map()));
    const byTo = new Map<number, ReceiveWindow>();
    for (const [t, n] of counts) {
      let w = wins.get(t);
      if (!w) {
        wins.set(t, (w = new ReceiveWindow(CHANNEL_WINDOW)));
        w.open(); // granted without a word: the sender started with the whole window
        this.open++;
      }
      w.received(n);
      byTo.set(t, w);
    }
    return to.map((t) => {
      const w = byTo.get(t)!;
      return once(() => this.release(job, t, w));
    });
  }

  private release(job: string, to: number, w: ReceiveWindow): void {
    const n = w.consumed(1);
    if (n > 0) {
      this.grants.push([job, to, n]);
      this.flushGrants();
    }
    if (!w.atRest) return;
    const wins = this.windows.get(job);
    if (wins?.get(to) !== w) return;
    wins.delete(to);
    this.open--;
    if (wins.size === 0) this.windows.delete(job);
  }

  private readonly flushGrants = onNextTurn(() => {
    const g = this.grants;
    this.grants = [];
    if (g.length > 0) this.send({ t: 'grants', g });
  });
}

/**
 * The receiving end: tuples are handed to `deliver` with a release callback; credits go
 * back to the sender as the instances consume them.
 */
export class InLink {
  private readonly intake: Intake;
  private readonly token: SocketToken;

  /**
   * `version`: the link protocol the sender asked for (1 when it named none); `maxTasks`: the
   * instances this worker runs at once (its --max-tasks); `authority`: how the token the link
   * opened with is renewed (absent on an open cluster).
   */
  constructor(
    private readonly socket: WebSocket,
    version: number,
    maxTasks: number,
    private readonly deliver: (job: string, to: number, tuple: Tuple, release: () => void) => void,
    private readonly onAcks: (job: string, acks: AckItem[]) => void,
    authority: TokenAuthority | undefined,
    log: Logger,
  ) {
    const send = (f: LinkFrame) => {
      if (this.socket.readyState === WebSocket.OPEN) this.socket.send(encodeFrame(f));
    };
    this.intake = version >= 2 ? new ChannelIntake(send, maxChannels(maxTasks)) : new SharedIntake(send);
    this.token = new SocketToken(authority, socket, countedOutcomes(linkTokens, log, 'a stream link'));
    socket.on('close', () => this.token.stop());
    socket.on('message', (data: Buffer) => {
      const d = decodeFrame(data);
      const why = d.ok ? this.onFrame(d.value) : d.error;
      if (why === undefined) return;
      // Whoever sent it learns no more than that: the link closes, its tuples replay.
      refusedFrames.stream_link++;
      badFrames.say((heldBack) =>
        log.warn({ why, refused_since_last: heldBack }, 'a bad frame on a stream link; closed it'),
      );
      socket.close(1007, 'bad frame');
    });
    send(this.intake.opening);
  }

  /** Takes a frame from the sender; returns why it is refused, if it is. */
  private onFrame(f: LinkFrame): string | undefined {
    if (f.t === 'acks') this.onAcks(f.job, f.acks);
    else if (f.t === 'token') this.token.renew(f.token);
    else if (f.t === 'tuples') {
      // More tuples than the credits granted is as bad as bytes that are no frame.
      const releases = this.intake.admit(f.job, f.to);
      if (!releases) return 'more tuples than the credits granted';
      for (let i = 0; i < f.tuples.length; i++) this.deliver(f.job, f.to[i]!, f.tuples[i]!, releases[i]!);
    } else return `a '${f.t}' frame, which only a receiver sends`;
    return undefined;
  }
}

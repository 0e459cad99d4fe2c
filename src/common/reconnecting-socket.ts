import { WebSocket } from 'ws';
import type { TokenSource } from './auth.js';
import { MAX_DELAY_MS } from './token-expiry.js';
import type { TlsConnect } from './tls.js';
import { INTERNAL_WS_OPTIONS } from './ws-client.js';

/**
 * What follows a connection's end: another attempt after the current backoff, another
 * attempt after the initial backoff (the server pointed somewhere better), or none ever (the
 * socket is then closed as by `close()`).
 */
export type AfterClose = 'retry' | 'retry-reset' | 'stop';

export interface ReconnectingSocketOptions {
  /** The URL of the next attempt, asked before each one, so an owner may move between servers. */
  url: () => string;
  /** Asked for the `authorization` header before each attempt, so a renewed token is used. */
  tokens: Pick<TokenSource, 'header'> & Partial<Pick<TokenSource, 'renewsAt'>>;
  /**
   * The frame that carries a fresh token (no `Bearer `) over an open connection. Given, one is
   * sent each time `tokens` mints a new one: the server closes a connection that outlived its
   * token, and a reconnect would cost what is in flight.
   */
  tokenFrame?: (token: string) => Buffer;
  /** Sent on every attempt besides `authorization`. */
  headers?: Readonly<Record<string, string>>;
  /** For wss: the CA to verify the server against, and a client certificate (see tls.ts). */
  tls?: TlsConnect;
  /** The largest frame taken from the server. */
  maxPayload: number;
  /** The wait before the first reconnect; it doubles after each attempt and starts again on an open. Default 50. */
  initialBackoffMs?: number;
  /** The longest wait between attempts. Default 1000. */
  maxBackoffMs?: number;
  /**
   * Frames kept while disconnected and sent, in order, on the next open; past this many the
   * oldest goes. Default 0: `send` refuses while disconnected.
   */
  maxQueued?: number;
  /** An open connection with more unsent bytes than this refuses frames. Default: no limit. */
  maxBufferedBytes?: number;
  /** Runs on every open, after the queued frames have gone out. */
  onOpen?: () => void;
  onMessage?: (data: Buffer) => void;
  /**
   * A connection's errors (its close follows) and attempts that failed before connecting (the
   * token source threw); either way the next attempt follows as after a close answered 'retry'.
   */
  onError?: (err: Error) => void;
  /**
   * Runs whenever a connection ends, also the last one after `close()` (so the owner may
   * clean up); its answer, 'retry' by default, is ignored once `close()` was called.
   */
  onClose?: (code: number, reason: string) => AfterClose | void | Promise<AfterClose | void>;
}

type Compiled = Required<Omit<ReconnectingSocketOptions, 'tokenFrame'>> & Pick<ReconnectingSocketOptions, 'tokenFrame'>;

const ignore = () => {};

function compile(o: ReconnectingSocketOptions): Compiled {
  const c: Compiled = {
    url: o.url,
    tokens: o.tokens,
    headers: o.headers ?? {},
    tls: o.tls ?? {},
    maxPayload: o.maxPayload,
    initialBackoffMs: o.initialBackoffMs ?? 50,
    maxBackoffMs: o.maxBackoffMs ?? 1000,
    maxQueued: o.maxQueued ?? 0,
    maxBufferedBytes: o.maxBufferedBytes ?? Infinity,
    onOpen: o.onOpen ?? ignore,
    onMessage: o.onMessage ?? ignore,
    onError: o.onError ?? ignore,
    onClose: o.onClose ?? ignore,
    tokenFrame: o.tokenFrame,
  };
  if (!(c.initialBackoffMs > 0) || !(c.maxBackoffMs >= c.initialBackoffMs)) {
    throw new RangeError(
      `backoff needs 0 < initialBackoffMs <= maxBackoffMs (got ${c.initialBackoffMs} and ${c.maxBackoffMs})`,
    );
  }
  if (!Number.isInteger(c.maxQueued) || c.maxQueued < 0) {
    throw new RangeError(`maxQueued must be a whole number of frames (got ${c.maxQueued})`);
  }
  return c;
}

/** `http://h:p` → `ws://h:p`, `https://…` → `wss://…`, a bare `host:port` → `ws://host:port`; then `path`. */
export function wsUrl(base: string, path: string): string {
  return (/^https?:\/\//.test(base) ? base.replace(/^http/, 'ws') : `ws://${base}`) + path;
}

/**
 * A WebSocket between Weir's own processes that reconnects until closed: authenticated
 * afresh on every attempt, with exponential backoff between attempts. It starts connecting
 * when constructed. At most one connection exists at a time: the next attempt starts only
 * after the previous connection has closed and its owner has answered `onClose`.
 */
export class ReconnectingSocket {
  private readonly o: Compiled;
  /** The connection being opened or open; undefined between attempts. */
  private ws: WebSocket | undefined;
  private queue: Buffer[] = [];
  /** The wait before the next attempt: initial after an open, doubled per attempt up to the cap. */
  private backoffMs: number;
  private timer: NodeJS.Timeout | undefined;
  /** When the next fresh token goes out on the open connection. */
  private renewal: NodeJS.Timeout | undefined;
  /** The `authorization` header the connection now speaks with (its upgrade's, or the last fresh one sent). */
  private speaksWith: string | undefined;
  private closed = false;

  constructor(options: ReconnectingSocketOptions) {
    this.o = compile(options);
    this.backoffMs = this.o.initialBackoffMs;
    void this.connect();
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Bytes sent on the open connection but not yet handed to the network (0 when not open). */
  get bufferedAmount(): number {
    return this.open ? this.ws!.bufferedAmount : 0;
  }

  /**
   * Sends now, or queues while disconnected if a queue was asked for; false when the frame
   * was refused (disconnected without a queue, too much unsent, or closed).
   */
  send(data: Buffer): boolean {
    if (this.closed) return false;
    const ws = this.ws;
    if (ws?.readyState === WebSocket.OPEN) {
      if (ws.bufferedAmount > this.o.maxBufferedBytes) return false;
      ws.send(data);
      return true;
    }
    if (this.o.maxQueued === 0) return false;
    if (this.queue.length >= this.o.maxQueued) this.queue.shift();
    this.queue.push(data);
    return true;
  }

  /** Ends the current connection, if any; `onClose` then decides what follows, as for any end. */
  drop(): void {
    this.ws?.close();
  }

  /** Ends the connection for good and stops reconnecting; later calls do nothing. */
  close(code?: number, reason?: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.renewal);
    this.queue = [];
    this.ws?.close(code, reason);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    let ws: WebSocket;
    try {
      const url = this.o.url();
      const auth = await this.o.tokens.header();
      if (this.closed) return;
      this.speaksWith = auth;
      ws = new WebSocket(url, {
        headers: { ...this.o.headers, ...(auth ? { authorization: auth } : {}) },
        maxPayload: this.o.maxPayload,
        ...INTERNAL_WS_OPTIONS,
        ...this.o.tls,
      });
    } catch (err) {
      this.o.onError(err instanceof Error ? err : new Error(String(err)));
      this.afterClose('retry');
      return;
    }
    this.ws = ws;
    ws.on('open', () => {
      this.backoffMs = this.o.initialBackoffMs;
      for (const b of this.queue.splice(0)) ws.send(b);
      this.renewTokenLater(ws);
      this.o.onOpen();
    });
    ws.on('message', (data: Buffer) => this.o.onMessage(data));
    ws.on('error', (err) => this.o.onError(err));
    ws.on('close', (code, reason) => {
      clearTimeout(this.renewal);
      if (this.ws === ws) this.ws = undefined;
      const next = this.o.onClose(code, reason.toString());
      if (next instanceof Promise) {
        next.then(
          (n) => this.afterClose(n),
          (err: unknown) => {
            this.o.onError(err instanceof Error ? err : new Error(String(err)));
            this.afterClose('retry');
          },
        );
      } else {
        this.afterClose(next);
      }
    });
  }

  /** Arms the next fresh token for `ws`, if the owner sends them and the source will mint one. */
  private renewTokenLater(ws: WebSocket): void {
    clearTimeout(this.renewal);
    const frame = this.o.tokenFrame;
    const at = this.o.tokens.renewsAt?.();
    if (!frame || at === undefined || this.closed) return;
    this.renewal = setTimeout(
      () => {
        void this.o.tokens.header().then((header) => {
          // Closed meanwhile: the next connection carries a fresh token in its upgrade.
          if (!header || this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
          // A timer a millisecond early finds the old token still given: not sent twice.
          if (header !== this.speaksWith) ws.send(frame(header.replace(/^Bearer\s+/i, '')));
          this.speaksWith = header;
          this.renewTokenLater(ws);
        }, this.o.onError);
      },
      Math.min(Math.max(0, at - Date.now()), MAX_DELAY_MS),
    );
    this.renewal.unref();
  }

  private afterClose(next: AfterClose | void): void {
    if (this.closed) return;
    if (next === 'stop') {
      this.closed = true;
      this.queue = [];
      return;
    }
    if (next === 'retry-reset') this.backoffMs = this.o.initialBackoffMs;
    this.timer = setTimeout(() => void this.connect(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.maxBackoffMs);
  }
}

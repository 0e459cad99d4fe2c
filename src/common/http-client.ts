import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { replyError, WeirError, type ErrorCode } from './errors.js';
import type { TokenSource } from './auth.js';
import { isUntrustedCertificate, type TlsConnect } from './tls.js';

export interface HttpClientOptions {
  /** Masters to try in turn; the one that answered last is tried first next time. */
  urls: string[];
  tokens?: TokenSource;
  /** How long to keep trying other masters on connection errors and 503s. */
  retryForMs?: number;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** For https masters: the CA to verify them against, and a client certificate (see tls.ts). */
  tls?: TlsConnect;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Overrides the per-request timeout (long polls). */
  timeoutMs?: number;
  /** Give up after the first failure instead of retrying for `retryForMs`. */
  noRetry?: boolean;
  /** A raw body (a file): opened again for each attempt. */
  upload?: { open: () => Readable; length: number };
  /** Takes a successful answer's body as it streams (a download), from the start on each attempt. */
  sink?: (body: Readable) => Promise<void>;
}

/**
 * Raised when every master's certificate failed verification: retrying would not change
 * that, so it is not retried.
 */
export class UntrustedServerError extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(`cannot verify the certificate of ${url}: ${(cause as Error).message}`, { cause });
    this.name = 'UntrustedServerError';
  }
}

/** Raised when no master answered within the retry window (the CLI's exit code 3). */
/**
 * A failure of the caller's own side of a request — its sink could not write what arrived (a
 * full or unwritable disk): no master would do better, so it is not retried.
 */
export class LocalFailure extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'LocalFailure';
  }
}

export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * JSON over HTTP to a set of masters. Connection errors and 503 (no leader) move on to the
 * next master and retry with backoff; any other error answer is raised as a WeirError with
 * the server's code and message.
 */
export class HttpClient {
  private readonly agent: Agent;
  private readonly urls: string[];
  private current = 0;
  private readonly retryForMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: HttpClientOptions) {
    if (options.urls.length === 0) throw new Error('HttpClient needs at least one master URL');
    this.urls = [...options.urls];
    this.agent = new Agent({
      keepAliveTimeout: 10_000,
      connections: 16,
      pipelining: 1,
      ...(options.tls ? { connect: options.tls } : {}),
    });
    this.retryForMs = options.retryForMs ?? 30_000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Every master this client knows of. */
  get masters(): string[] {
    return [...this.urls];
  }

  get baseUrl(): string {
    return this.urls[this.current] ?? this.urls[0]!;
  }

  /** Tries `url` first from now on (a master named the leader). */
  prefer(url: string): void {
    let i = this.urls.indexOf(url);
    if (i < 0) i = this.urls.push(url) - 1;
    this.current = i;
  }

  /** Moves on to the next master (the current one did not serve). */
  rotate(): void {
    this.current = (this.current + 1) % this.urls.length;
  }

  async get<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    return this.call<T>('GET', path, opts);
  }

  async post<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.call<T>('POST', path, { ...opts, body });
  }

  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    const deadline = Date.now() + (opts.noRetry ? 0 : this.retryForMs);
    let delay = 50;
    let lastProblem = '';
    let untrusted: Set<string> | undefined;
    // Masters that answered there is no leader, and those that did not answer at all.
    const leaderless = new Set<string>();
    const silent = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      const base = this.urls[this.current]!;
      try {
        return await this.once<T>(method, base, path, opts);
      } catch (err) {
        const retriable =
          err instanceof WeirError
            ? err.code === 'no_leader' || err.code === 'unavailable'
            : !(err instanceof LocalFailure);
        if (!retriable) throw err;
        if (isUntrustedCertificate(err)) {
          (untrusted ??= new Set()).add(base);
          if (untrusted.size === this.urls.length) throw new UntrustedServerError(base, err);
        }
        lastProblem = `${base}: ${err instanceof Error ? err.message : String(err)}`;
        if (err instanceof WeirError) {
          silent.delete(base);
          if (err.code === 'no_leader') leaderless.add(base);
        } else if (!leaderless.has(base)) silent.add(base);
      }
      this.current = (this.current + 1) % this.urls.length;
      // However short the window, every master is asked once (a retrying caller's).
      if (Date.now() >= deadline && (opts.noRetry || attempt + 1 >= this.urls.length)) break;
      // Go round the list quickly once, then back off.
      if ((attempt + 1) % this.urls.length === 0) {
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
      }
    }
    if (leaderless.size === 0) {
      throw new UnreachableError(`no master answered (${this.urls.join(', ')}); last: ${lastProblem}`);
    }
    const others = silent.size ? `, and ${[...silent].join(', ')} did not answer` : '';
    throw new UnreachableError(
      `no master could serve this: ${[...leaderless].join(', ')} answered that there is no leader (is a majority of the masters up?)${others}; last: ${lastProblem}`,
    );
  }

  private async once<T>(method: string, base: string, path: string, opts: RequestOptions): Promise<T> {
    const headers: Record<string, string> = { ...opts.headers };
    const auth = await this.options.tokens?.header();
    if (auth) headers.authorization = auth;
    let body: string | Readable | undefined;
    if (opts.upload) {
      body = opts.upload.open();
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = String(opts.upload.length);
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    const res = await request(`${base}${path}`, {
      method: method as 'GET',
      headers,
      body,
      dispatcher: this.agent,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    if (opts.sink && res.statusCode < 400) {
      await opts.sink(res.body);
      return undefined as T;
    }
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.statusCode >= 400) {
      const e = replyError(json);
      const code = (e?.code ?? (res.statusCode === 503 ? 'unavailable' : 'internal')) as ErrorCode;
      throw new WeirError(code, e?.message ?? `HTTP ${res.statusCode} from ${base}${path}`, res.statusCode);
    }
    return json as T;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

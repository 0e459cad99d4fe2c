// The page's one way to the API: every call carries the token kept in this browser, and a 401
// asks the person for one (then the polls go on by themselves).

const TOKEN_KEY = 'weir.token';

/** An answer that is not 2xx, with the API's `{error: {code, message}}` when it gave one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Listener = (why: string | null) => void;
const listeners = new Set<Listener>();
let asking: string | null = null;

/** Whether (and why) the page needs a token from the person now; null when it does not. */
export function onTokenNeeded(l: Listener): () => void {
  listeners.add(l);
  l(asking);
  return () => listeners.delete(l);
}

function ask(why: string | null): void {
  asking = why;
  for (const l of listeners) l(why);
}

export function token(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(t: string | null): void {
  if (t) localStorage.setItem(TOKEN_KEY, t.trim());
  else localStorage.removeItem(TOKEN_KEY);
  ask(null);
}

/**
 * One call: JSON in and out. `stale` reads what this master has applied without a round to
 * the leader — the dashboard polls every second, and a second-old view costs the cluster less.
 */
export async function api<T>(method: string, path: string, opts: { body?: unknown; stale?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  let url = path;
  if (opts.stale && method === 'GET') url += `${path.includes('?') ? '&' : '?'}consistency=stale`;
  const held = method === 'GET' ? seen.get(url) : undefined;
  if (held) headers['if-none-match'] = held.etag;
  const res = await fetch(url, {
    method,
    headers,
    // The page keeps what it was answered itself (below); the browser's cache would only copy it.
    cache: 'no-store',
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  // Nothing changed since the last poll: the same object again, so nothing is drawn anew.
  if (res.status === 304 && held) return held.json as T;
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    const e = new ApiError(
      res.status,
      err?.code ?? 'http_' + res.status,
      err?.message ?? `${method} ${path}: HTTP ${res.status}`,
    );
    if (res.status === 401) ask(t ? `The token was refused: ${e.message}` : 'This cluster needs a token.');
    throw e;
  }
  const etag = res.headers.get('etag');
  if (method === 'GET' && etag) remember(url, etag, json);
  return json as T;
}

/** The last answer to each GET the page polls, by its ETag (a few dozen URLs at most). */
const seen = new Map<string, { etag: string; json: unknown }>();
const SEEN_MAX = 64;

function remember(url: string, etag: string, json: unknown): void {
  seen.delete(url);
  seen.set(url, { etag, json });
  if (seen.size > SEEN_MAX) seen.delete(seen.keys().next().value!);
}

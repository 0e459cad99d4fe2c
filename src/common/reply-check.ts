import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * Where `served` (what a reply's schema let through) differs from `plain` (the handler's
 * value as JSON.stringify would send it), as `path: what happened`; undefined when they are
 * the same. Order of keys does not count; a field the schema dropped, a value it coerced
 * (`3` sent as `"3"`, `null` as `""`) does.
 */
export function replyDifference(plain: unknown, served: unknown, path = '$'): string | undefined {
  if (Object.is(plain, served)) return undefined;
  const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (kind(plain) !== kind(served) || typeof plain !== 'object' || plain === null) {
    return `${path}: ${JSON.stringify(plain)} was sent as ${JSON.stringify(served)}`;
  }
  if (Array.isArray(plain)) {
    const s = served as unknown[];
    if (plain.length !== s.length) return `${path}: ${plain.length} items were sent as ${s.length}`;
    for (let i = 0; i < plain.length; i++) {
      const d = replyDifference(plain[i], s[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  const p = plain as Record<string, unknown>;
  const s = served as Record<string, unknown>;
  for (const k of Object.keys(p)) {
    if (!(k in s)) return `${path}.${k}: dropped (the schema does not name it)`;
    const d = replyDifference(p[k], s[k], `${path}.${k}`);
    if (d) return d;
  }
  for (const k of Object.keys(s)) if (!(k in p)) return `${path}.${k}: added by the schema`;
  return undefined;
}

/**
 * For tests (`WEIR_CHECK_REPLIES=1`): every JSON reply is compared with its plain
 * JSON.stringify, and one its response schema changed fails with 500 `internal`, the
 * difference in the node's log — so a schema that lags behind its handler shows in any
 * spec that calls the route, not as a field users silently stop getting.
 */
export function checkReplies(app: Pick<FastifyInstance, 'addHook'>): void {
  const plain = new WeakMap<FastifyRequest, string>();
  app.addHook('preSerialization', async (req, _reply, payload) => {
    plain.set(req, JSON.stringify(payload));
    return payload;
  });
  app.addHook('onSend', async (req, _reply, payload) => {
    const before = plain.get(req);
    plain.delete(req);
    if (before === undefined || typeof payload !== 'string') return payload;
    const diff = replyDifference(JSON.parse(before), JSON.parse(payload));
    if (diff) {
      throw new Error(
        `the reply to ${req.method} ${req.routeOptions.url} differs from its schema's serialisation at ${diff}`,
      );
    }
    return payload;
  });
}

/** `checkReplies` when `WEIR_CHECK_REPLIES=1` is in the node's environment (tests); nothing otherwise. */
export function checkRepliesIfAsked(app: Pick<FastifyInstance, 'addHook'>, env = process.env): void {
  if (env.WEIR_CHECK_REPLIES === '1') checkReplies(app);
}

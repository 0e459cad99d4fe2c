// One catalogue of errors with stable codes. Every error that crosses the API edge is a
// WeirError; the HTTP layer maps it to `{error: {code, message}}` with its status.

/** Every code the edge answers with; README's Errors section documents each (a spec checks it). */
export const ERROR_CODES = [
  'bad_request',
  'invalid_json',
  'validation_failed',
  'unauthorized',
  'forbidden',
  'not_found',
  'unknown_worker',
  'conflict',
  'payload_too_large',
  'no_leader',
  'unavailable',
  'internal',
  'no_space',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_json: 400,
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unknown_worker: 404,
  conflict: 409,
  payload_too_large: 413,
  no_leader: 503,
  unavailable: 503,
  internal: 500,
  no_space: 507,
};

/**
 * A write refused because leadership is changing (no_leader) or this master cannot take one
 * now (unavailable: it is stopping, handing over, or its disk refused, which the space alarm
 * says): expected while a cluster hands over or shuts down, so said in a line, not a stack.
 */
export const isHandOver = (err: unknown): boolean =>
  err instanceof WeirError && (err.code === 'no_leader' || err.code === 'unavailable');

export class WeirError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  /** `status` overrides the code's own, for answers from a server with codes we do not know. */
  constructor(code: ErrorCode, message: string, status?: number) {
    super(message);
    this.name = 'WeirError';
    this.code = code;
    this.status = status ?? STATUS[code] ?? 500;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export const badRequest = (message: string): WeirError => new WeirError('bad_request', message);

export const notFound = (kind: string, id: string): WeirError =>
  new WeirError('not_found', `no ${kind} with id '${id}' exists; list them with 'weir ${kind}s'`);

export const noLeader = (): WeirError =>
  new WeirError('no_leader', 'this master has no leader in reach; retry shortly or try another master');

/** What a write that would add data gets while this master's disk or state is full (the `no_space` alarm). */
export const noSpace = (why: string): WeirError =>
  new WeirError(
    'no_space',
    `${why}; writes that add data are refused until space is back (delete jobs with 'weir delete', or free space on the masters' data dirs): reads, cancels and deletes still work`,
  );

/** The `{error: {code, message}}` of a reply's parsed body, its string fields only; undefined if it is not one. */
export function replyError(body: unknown): { code?: string; message?: string } | undefined {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null | undefined)?.error;
  if (e === null || typeof e !== 'object') return undefined;
  return {
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.message === 'string' ? { message: e.message } : {}),
  };
}

import { parseRetention } from '../common/duration.js';
import { badRequest } from '../common/errors.js';

/** The longest retention a job may ask for: ten years. */
const MAX_RETENTION_MS = 10 * 365 * 86_400_000;

/**
 * Takes `retention` out of a job's config (the rest is the operation's to check): a duration
 * like `2h` or `7d`, or `0` to keep the job for ever, in ms. Absent: the cluster's --retention.
 */
export function retentionOf(config: unknown): { retention_ms?: number; rest: unknown } {
  if (!config || typeof config !== 'object' || Array.isArray(config) || !('retention' in config)) {
    return { rest: config };
  }
  const { retention, ...rest } = config as Record<string, unknown>;
  if (typeof retention !== 'string') {
    throw badRequest(
      `config.retention must be a duration like "2h" or "7d", or "0" to keep the job; got ${JSON.stringify(retention)}`,
    );
  }
  let ms: number;
  try {
    ms = parseRetention(retention);
  } catch (err) {
    throw badRequest(`config.retention: ${(err as Error).message}`);
  }
  if (ms > MAX_RETENTION_MS)
    throw badRequest('config.retention may be at most 10 years ("3650d"); "0" keeps the job for ever');
  return { retention_ms: ms, rest };
}

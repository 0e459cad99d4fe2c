const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `30s`, `5m`, `1h`, `7d`, `250ms` (or a bare number of seconds) into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`'${text}' is not a duration; write it like 30s, 5m, 1h or 7d`);
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
  // Checked once rounded: `0.4ms` is not 0 (which a retention reads as "keep for ever").
  if (!Number.isFinite(ms) || Math.round(ms) <= 0)
    throw new Error(`'${text}' must be a positive duration of at least 1ms`);
  return Math.round(ms);
}

/**
 * A retention: a duration as parseDuration reads it, or `0` (in any unit) for "keep for ever",
 * returned as 0.
 */
export function parseRetention(text: string): number {
  if (/^0+(?:\.0+)?(ms|s|m|h|d)?$/.test(text.trim())) return 0;
  return parseDuration(text);
}

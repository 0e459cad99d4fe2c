/**
 * `host:port`, `http://host:port/` → `http://host:port` (the scheme is optional on the CLI;
 * `scheme` is the one a URL without one gets).
 */
export function normalizeUrl(text: string, scheme: 'http' | 'https' = 'http'): string {
  const trimmed = text.trim().replace(/\/+$/, '');
  const withScheme = /^https?:\/\//.test(trimmed) ? trimmed : `${scheme}://${trimmed}`;
  const url = new URL(withScheme);
  return `${url.protocol}//${url.host}`;
}

export function splitUrls(text: string, scheme: 'http' | 'https' = 'http'): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => normalizeUrl(s, scheme));
}

/** The seed's node id: the last two octets of an IPv4 address, `a.b.c.d` → `c*256+d`. */
export function nodeIdFromIpv4(host: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return (octets[2] ?? 0) * 256 + (octets[3] ?? 0);
}

/** Whether a string looks like the seed's address-first CLI form (`localhost:8080`). */
export function looksLikeAddress(text: string): boolean {
  return /^(https?:\/\/)?[A-Za-z0-9.[\]:-]+:\d{1,5}\/?$/.test(text);
}

// How figures read on the page: short, aligned, with units.

export function duration(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** The time between two ISO stamps (to now when the second is absent). */
export function between(
  from: string | null | undefined,
  to: string | null | undefined,
  now = Date.now(),
): number | null {
  if (!from) return null;
  return (to ? Date.parse(to) : now) - Date.parse(from);
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const ms = now - Date.parse(iso);
  if (ms < 5000) return 'just now';
  return `${duration(ms).replace(/\.\d+ s$/, ' s')} ago`;
}

// Formatters are made once: `toLocaleTimeString(…, options)` builds a new Intl formatter on
// every call, which was a third of the overview's script time with 100 jobs rows a second.
const TIME = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const DAY = new Intl.DateTimeFormat([], { month: 'short', day: 'numeric' });
const COMPACT = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const FIXED = new Map<number, Intl.NumberFormat>();

/** Stamps already formatted: a row's times do not change, and the page redraws them often. */
const clocks = new Map<string, { day: string; text: string }>();
const CLOCKS_KEPT = 2000;

export function clock(iso: string | null | undefined): string {
  if (!iso) return '—';
  const today = new Date().toDateString();
  const hit = clocks.get(iso);
  if (hit?.day === today) return hit.text;
  const d = new Date(iso);
  const time = TIME.format(d);
  const text = d.toDateString() === today ? time : `${DAY.format(d)} ${time}`;
  if (clocks.size >= CLOCKS_KEPT) clocks.clear();
  clocks.set(iso, { day: today, text });
  return text;
}

export function num(n: unknown, digits = 0): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (Math.abs(n) >= 10_000) return COMPACT.format(n);
  let f = FIXED.get(digits);
  if (!f)
    FIXED.set(digits, (f = new Intl.NumberFormat('en', { maximumFractionDigits: digits, minimumFractionDigits: 0 })));
  return f.format(n);
}

export function pct(part: number, whole: number): number {
  return whole > 0 ? Math.min(100, Math.max(0, (part / whole) * 100)) : 0;
}

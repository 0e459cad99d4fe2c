import type { BoltInput } from '../protocol/stream-job.js';

// Which instances of a bolt receive an event, for one edge as seen by one sender instance.
// Pure and deterministic: fields grouping must pick the same instance in every process,
// so it hashes bytes we define (FNV-1a over UTF-8), never anything process-local.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a, 32 bits, over the UTF-8 encoding of `s` (unpaired surrogates encode as U+FFFD). */
export function fnv1a32(s: string): number {
  let h = FNV_OFFSET;
  const byte = (b: number): void => {
    h = Math.imul(h ^ b, FNV_PRIME);
  };
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    }
    if (c < 0x80) byte(c);
    else if (c < 0x800) {
      byte(0xc0 | (c >> 6));
      byte(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      byte(0xe0 | (c >> 12));
      byte(0x80 | ((c >> 6) & 0x3f));
      byte(0x80 | (c & 0x3f));
    } else {
      byte(0xf0 | (c >> 18));
      byte(0x80 | ((c >> 12) & 0x3f));
      byte(0x80 | ((c >> 6) & 0x3f));
      byte(0x80 | (c & 0x3f));
    }
  }
  return h >>> 0;
}

/**
 * The instance a fields grouping sends `event` to: the hash of the JSON array of the chosen
 * fields' values (a missing field counts as `null`), modulo `parallelism`. So `1` and `"1"`
 * differ, and object values hash by their key order as written.
 */
export function fieldsTarget(event: Record<string, unknown>, fields: readonly string[], parallelism: number): number {
  // One string field (the common case) without building the array: the same JSON text.
  const one = fields.length === 1 ? event[fields[0]!] : undefined;
  const json =
    typeof one === 'string' ? `[${JSON.stringify(one)}]` : JSON.stringify(fields.map((f) => event[f] ?? null));
  return fnv1a32(json) % parallelism;
}

/**
 * Routes one sender instance's batches along one edge: `split` says which instance gets
 * which events of a batch.
 *
 * Shuffle is round-robin per batch, per sender, starting at `senderIndex` so that senders
 * that start together do not all hit instance 0 first. `fields` splits a batch by the hash
 * of each event's fields. `global` always picks instance 0, whatever the parallelism; `all`
 * gives every instance the same batch (shared: receivers must not change it).
 */
export class EdgeRouter {
  private cursor: number;

  constructor(
    private readonly input: BoltInput,
    private readonly parallelism: number,
    senderIndex = 0,
  ) {
    if (!Number.isInteger(parallelism) || parallelism < 1)
      throw new RangeError(`parallelism ${parallelism} is not >= 1`);
    this.cursor = senderIndex % parallelism;
  }

  /** `[instance, events]` for every instance that gets some of `events` (none for an empty batch). */
  split<E extends Record<string, unknown>>(events: E[]): [number, E[]][] {
    if (events.length === 0) return [];
    switch (this.input.grouping) {
      case 'shuffle': {
        const target = this.cursor;
        this.cursor = (this.cursor + 1) % this.parallelism;
        return [[target, events]];
      }
      case 'global':
        return [[0, events]];
      case 'all':
        return Array.from({ length: this.parallelism }, (_, i): [number, E[]] => [i, events]);
      case 'fields': {
        if (this.parallelism === 1) return [[0, events]];
        const parts: E[][] = Array.from({ length: this.parallelism }, () => []);
        for (const e of events) parts[fieldsTarget(e, this.input.fields, this.parallelism)]!.push(e);
        const out: [number, E[]][] = [];
        for (let i = 0; i < parts.length; i++) if (parts[i]!.length > 0) out.push([i, parts[i]!]);
        return out;
      }
    }
  }
}
